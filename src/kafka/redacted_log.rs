//! [`RedactedLog`]: librdkafka's log lines and error callbacks, logged like rdkafka's defaults
//! (target `librdkafka`) but with every password and `kafka.properties` value of the config
//! masked, whatever librdkafka chose to quote.

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

use super::setup_error::redact;
use crate::config::{KafkaConfig, Secret};

pub struct RedactedLog {
    secrets: Vec<Secret>,
}

impl RedactedLog {
    pub fn new(k: &KafkaConfig) -> Self {
        RedactedLog { secrets: k.secrets().map(Secret::new).collect() }
    }

    fn redact(&self, text: &str) -> String {
        redact(text, self.secrets.iter().map(Secret::expose))
    }

    /// For `ClientContext::log`.
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let text = self.redact(&format!("{fac} {message}"));
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "librdkafka: {text}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "librdkafka: {text}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "librdkafka: {text}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "librdkafka: {text}"),
        }
    }

    /// For `ClientContext::error`.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        let text = self.redact(&format!("{error}: {reason}"));
        tracing::error!("librdkafka: {text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_config_passwords() {
        let k = KafkaConfig {
            bootstrap_servers: "h:1".to_owned(),
            topic: "t".to_owned(),
            events_topic: "e".to_owned(),
            group_id: "g".to_owned(),
            tls: Some(crate::config::KafkaTls {
                key_file: Some("/k".into()),
                cert_file: Some("/c".into()),
                key_password: Some(Secret::new("k3y-pw")),
                ..Default::default()
            }),
            sasl: Some(crate::config::KafkaSasl {
                mechanism: crate::config::SaslMechanism::Plain,
                username: "u".to_owned(),
                password: Secret::new("sasl-pw"),
            }),
            properties: vec![("sasl.oauthbearer.config".to_owned(), Secret::new("tok3n"))],
        };
        let log = RedactedLog::new(&k);
        assert_eq!(log.redact("a k3y-pw b sasl-pw c tok3n d"), "a *** b *** c *** d");
    }
}
