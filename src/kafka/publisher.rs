//! [`KafkaPublisher`]: an idempotent rdkafka producer; a publish completes on the broker's ack.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::client::client_config;
use super::setup_error::ClientSetupError;
use crate::config::KafkaConfig;
use crate::domain::CheckResult;
use crate::ports::{PublishError, StatusPublisher};
use crate::wire;

pub struct KafkaPublisher {
    producer: FutureProducer,
    topic: String,
}

impl KafkaPublisher {
    /// Creates the producer; nothing connects yet. The error text holds no property value.
    pub fn new(k: &KafkaConfig) -> Result<Self, ClientSetupError> {
        let producer: FutureProducer = client_config(
            k,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("compression.type", "lz4"),
                ("linger.ms", "5"),
                ("message.timeout.ms", "30000"),
            ],
        )
        .create()
        .map_err(|e| ClientSetupError::new(e, k))?;
        Ok(KafkaPublisher { producer, topic: k.topic.clone() })
    }
}

impl StatusPublisher for KafkaPublisher {
    async fn publish(&self, result: &CheckResult) -> Result<(), PublishError> {
        let payload = wire::encode(result);
        let record = FutureRecord::to(&self.topic).key(result.site_id.as_bytes()).payload(&payload);
        self.producer
            .send(record, Timeout::Never)
            .await
            .map(|_| ())
            .map_err(|(e, _)| PublishError::Delivery(e.into()))
    }

    async fn flush(&self, deadline: Duration) -> Result<(), PublishError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(deadline)))
            .await
            .map_err(|e| PublishError::Flush(e.into()))?
            .map_err(|e| PublishError::Flush(e.into()))
    }
}
