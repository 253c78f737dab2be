//! librdkafka client settings shared by the publisher and the feed: our defaults first, then
//! `kafka.tls` and `kafka.sasl`, then the user's `kafka.properties` passed through (tuning,
//! overrides).

use rdkafka::ClientConfig;

use super::security;
use super::setup_error::ClientSetupError;
use crate::config::{KafkaConfig, Problem};

/// Settings that must not be overridden, because the delivery guarantee rests on them.
const PINNED: &[&str] = &["enable.auto.offset.store", "enable.idempotence"];

pub fn client_config(k: &KafkaConfig, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.bootstrap_servers);
    c.set("client.id", format!("sitemon-{}", env!("CARGO_PKG_VERSION")));
    for (key, value) in defaults {
        c.set(*key, *value);
    }
    security::apply(&mut c, k);
    for (key, value) in &k.properties {
        if PINNED.contains(&key.as_str()) {
            tracing::warn!(property = %key, "ignoring kafka property: sitemon's delivery guarantee depends on its own value");
            continue;
        }
        c.set(key, value.expose());
    }
    c
}

/// Every `kafka.properties` entry librdkafka refuses (unknown name, invalid value), each at its
/// path `kafka.properties.<name>`, with no property value in the messages. Pure: librdkafka
/// checks each property as it is set, before any client exists, so this runs with the other
/// config checks and reports all of them at once.
pub fn property_problems(k: &KafkaConfig) -> Vec<Problem> {
    k.properties
        .iter()
        .filter(|(key, _)| !PINNED.contains(&key.as_str()))
        .filter_map(|(key, value)| {
            let e = ClientConfig::new().set(key, value.expose()).create_native_config().err()?;
            let message = match ClientSetupError::new(e, k) {
                ClientSetupError::Property { message, .. } => message,
                ClientSetupError::Creation(message) => message,
            };
            Some(Problem::new(format!("kafka.properties.{key}"), format!("librdkafka refuses it: {message}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_properties_are_all_reported_without_their_values() {
        let k = KafkaConfig::unreachable(&[
            ("sasl.pasword", "hunter2-s3cret"),
            ("security.protocol", "SASL_SSL"),
            ("linger.ms", "w0rd-s3cret"),
            ("enable.idempotence", "false"),
        ]);
        let problems = property_problems(&k);
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["kafka.properties.sasl.pasword", "kafka.properties.linger.ms"], "{problems:?}");
        for p in &problems {
            assert!(!p.message.contains("s3cret"), "{p:?}");
        }
        assert!(problems[0].message.contains("No such configuration property"), "{problems:?}");
    }
}
