//! [`KafkaEventSink`]: incident events to `kafka.events_topic`, keyed by site id, through an
//! idempotent rdkafka producer with the same client settings (TLS, SASL, properties) as the
//! rest; a publish completes on the broker's acknowledgement.

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use super::client::client_config;
use super::redacted_log::RedactedLog;
use super::setup_error::ClientSetupError;
use crate::config::KafkaConfig;
use crate::domain::IncidentEvent;
use crate::ports::{EventSink, PublishError};
use crate::wire;

pub struct KafkaEventSink {
    producer: FutureProducer<RedactedLog>,
    topic: String,
    /// The id a schema registry gave the event schema: events are written in its framing.
    schema_id: Option<u32>,
}

impl KafkaEventSink {
    /// Creates the producer; nothing connects yet. The error text holds no property value.
    pub fn new(k: &KafkaConfig) -> Result<Self, ClientSetupError> {
        let config = client_config(
            k,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "5"),
                ("message.timeout.ms", "30000"),
            ],
        );
        let producer =
            config.create_with_context(RedactedLog::new(k)).map_err(|e| ClientSetupError::new(e, k))?;
        Ok(KafkaEventSink { producer, topic: k.events_topic.clone(), schema_id: None })
    }

    /// Writes the Confluent schema-registry framing with this id of the event schema instead of
    /// Avro single-object encoding.
    pub fn with_schema_id(mut self, id: u32) -> Self {
        self.schema_id = Some(id);
        self
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl EventSink for KafkaEventSink {
    async fn publish(&self, event: &IncidentEvent) -> Result<(), PublishError> {
        let payload = match self.schema_id {
            Some(id) => wire::encode_event_registered(event, id),
            None => wire::encode_event(event),
        };
        let record = FutureRecord::to(&self.topic).key(event.incident.site_id.as_bytes()).payload(&payload);
        self.producer
            .send(record, Timeout::Never)
            .await
            .map(|_| ())
            .map_err(|(e, _)| PublishError::Delivery(e.into()))
    }
}
