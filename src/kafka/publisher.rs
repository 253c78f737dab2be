//! [`KafkaPublisher`]: an idempotent rdkafka producer; a publish completes on the broker's ack.
//! Its client context follows librdkafka's statistics and errors to tell whether any broker is
//! reachable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::util::Timeout;

use super::client::client_config;
use super::redacted_log::RedactedLog;
use super::setup_error::ClientSetupError;
use crate::config::KafkaConfig;
use crate::domain::CheckResult;
use crate::ports::{PublishError, StatusPublisher};
use crate::wire;

/// How often librdkafka reports the state of its broker connections.
const STATISTICS_INTERVAL_MS: &str = "1000";

/// The client context: `up` is true while a broker the cluster named (not a bootstrap entry)
/// has a working connection. Statistics set it every second; "all brokers down" clears it at once.
/// librdkafka's logs and errors go out with the config's secrets masked.
struct BrokerLink {
    up: Arc<AtomicBool>,
    log: RedactedLog,
    /// The broker's refusal of the credentials, once it came.
    refused: Arc<Mutex<Option<String>>>,
}

impl ClientContext for BrokerLink {
    fn stats(&self, statistics: Statistics) {
        // Bootstrap entries (node id -1) do not count: they only say where to ask for the
        // cluster, and a reachable bootstrap address with unreachable brokers publishes nothing.
        let up = statistics.brokers.values().any(|b| b.nodeid >= 0 && b.state == "UP");
        if self.up.swap(up, Ordering::Relaxed) != up {
            tracing::info!(up, "broker connectivity changed");
        }
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => self.up.store(false, Ordering::Relaxed),
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
                let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
                if refused.is_none() {
                    *refused = Some(refusal(&self.log.redact(reason)));
                }
            }
            _ => {}
        }
        self.log.error(&error, reason);
    }
}

/// What to say when the broker refused the credentials; `reason` (librdkafka's, redacted) names
/// the broker.
fn refusal(reason: &str) -> String {
    // librdkafka's "(after 315ms in state AUTH_REQ)" tells a person nothing.
    let reason = reason.split(" (after ").next().unwrap_or(reason);
    format!(
        "the Kafka broker refused sitemon's credentials ({reason}); check the user name and password \
         of `kafka.sasl` (or the client certificate of `kafka.tls`) and the broker's ACLs"
    )
}

pub struct KafkaPublisher {
    producer: FutureProducer<BrokerLink>,
    topic: String,
    up: Arc<AtomicBool>,
    refused: Arc<Mutex<Option<String>>>,
    /// The id a schema registry gave the current schema: records are written in its framing.
    schema_id: Option<u32>,
}

impl KafkaPublisher {
    /// Creates the producer; nothing connects yet. The error text holds no property value.
    pub fn new(k: &KafkaConfig) -> Result<Self, ClientSetupError> {
        let mut config = client_config(
            k,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("compression.type", "lz4"),
                ("linger.ms", "5"),
                ("message.timeout.ms", "30000"),
                ("statistics.interval.ms", STATISTICS_INTERVAL_MS),
            ],
        );
        if config.get("statistics.interval.ms") == Some("0") {
            tracing::warn!(
                "ignoring kafka property statistics.interval.ms=0: readiness follows the broker statistics"
            );
            config.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        }
        let up = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(Mutex::new(None));
        let link = BrokerLink { up: up.clone(), log: RedactedLog::new(k), refused: refused.clone() };
        let producer = config.create_with_context(link).map_err(|e| ClientSetupError::new(e, k))?;
        Ok(KafkaPublisher { producer, topic: k.topic.clone(), up, refused, schema_id: None })
    }

    /// Writes the Confluent schema-registry framing with this schema id instead of Avro
    /// single-object encoding.
    pub fn with_schema_id(mut self, id: u32) -> Self {
        self.schema_id = Some(id);
        self
    }
}

impl StatusPublisher for KafkaPublisher {
    async fn publish(&self, result: &CheckResult) -> Result<(), PublishError> {
        let payload = match self.schema_id {
            Some(id) => wire::encode_registered(result, id),
            None => wire::encode(result),
        };
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

    fn is_connected(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn refused(&self) -> Option<String> {
        self.refused.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
