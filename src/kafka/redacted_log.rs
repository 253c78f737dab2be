//! [`RedactedLog`]: librdkafka's log lines and error callbacks, logged like rdkafka's defaults
//! (target `librdkafka`) but with every password and `kafka.properties` value of the config
//! masked, whatever librdkafka chose to quote.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

use super::setup_error::redact;
use crate::config::{KafkaConfig, Secret};

pub struct RedactedLog {
    secrets: Vec<Secret>,
    /// Lines logged lately: librdkafka reports most failures twice (a log line, then the same
    /// reason as an error event, at times once per client thread), and each is logged once.
    recent: Mutex<VecDeque<(Instant, String)>>,
}

/// How long a line logged keeps the same reason from being logged again.
const REPEAT_WINDOW: Duration = Duration::from_secs(10);

impl RedactedLog {
    pub fn new(k: &KafkaConfig) -> Self {
        RedactedLog { secrets: k.secrets().map(Secret::new).collect(), recent: Mutex::new(VecDeque::new()) }
    }

    /// Remembers `text`; true when a line logged within [`REPEAT_WINDOW`] already said `reason`.
    fn said(&self, reason: &str, text: &str) -> bool {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        while recent.front().is_some_and(|(at, _)| now.duration_since(*at) > REPEAT_WINDOW) {
            recent.pop_front();
        }
        let said = !reason.is_empty() && recent.iter().any(|(_, line)| line.contains(reason));
        // A suppressed event does not renew the window: a failure that keeps recurring is said
        // again every REPEAT_WINDOW.
        if !said {
            if recent.len() >= 64 {
                recent.pop_front();
            }
            recent.push_back((now, text.to_owned()));
        }
        said
    }

    pub(super) fn redact(&self, text: &str) -> String {
        redact(text, self.secrets.iter().map(Secret::expose))
    }

    /// For `ClientContext::log`.
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let text = self.redact(&format!("{fac} {message}"));
        // Only lines logged at WARN or above (never filtered out) stand for an error event.
        if matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
                | RDKafkaLogLevel::Warning
        ) {
            self.said("", &text);
        }
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

    /// For `ClientContext::error`: logged unless a line of the last [`REPEAT_WINDOW`] said the
    /// same reason.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        // The end of a partition (with `enable.partition.eof`) comes here too: it is news, not a
        // failure, and the reader acts on it.
        if matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        {
            return;
        }
        let reason = self.redact(reason);
        let text = format!("{error}: {reason}");
        if !self.said(&reason, &text) {
            tracing::error!("librdkafka: {text}");
        }
    }
}

/// A client of its own (a producer, an admin client, a plain consumer) logs through it.
impl rdkafka::ClientContext for RedactedLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        RedactedLog::log(self, level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        RedactedLog::error(self, &error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for RedactedLog {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_config_passwords() {
        let k = KafkaConfig {
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
            ..KafkaConfig::unreachable(&[("sasl.oauthbearer.config", "tok3n")])
        };
        let log = RedactedLog::new(&k);
        assert_eq!(log.redact("a k3y-pw b sasl-pw c tok3n d"), "a *** b *** c *** d");
    }

    #[test]
    fn a_reason_already_logged_is_not_logged_again() {
        let log = RedactedLog::new(&KafkaConfig::unreachable(&[]));
        let reason = "sasl_ssl://h:1/bootstrap: SASL authentication error: Authentication failed";
        assert!(!log.said("", &format!("FAIL [thrd:x]: {reason} (after 3ms in state AUTH_REQ)")));
        assert!(log.said(reason, &format!("Authentication: {reason}")), "the log line said it");
        assert!(!log.said("1/1 brokers are down", "AllBrokersDown: 1/1 brokers are down"));
        assert!(log.said("1/1 brokers are down", "AllBrokersDown: 1/1 brokers are down"), "said twice");
        // A line below WARN may be filtered out: it does not stand for an error event.
        log.log(RDKafkaLogLevel::Info, "FAIL", "x:1/bootstrap: boom");
        assert!(!log.said("x:1/bootstrap: boom", "BrokerTransportFailure: x:1/bootstrap: boom"));
    }
}
