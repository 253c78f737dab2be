//! librdkafka client settings shared by the publisher and the feed: our defaults first, then
//! the user's `kafka.properties` passed through (SSL, SASL, tuning).

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// Settings that must not be overridden, because the delivery guarantee rests on them.
const PINNED: &[&str] = &["enable.auto.offset.store", "enable.idempotence"];

pub fn client_config(k: &KafkaConfig, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.bootstrap_servers);
    c.set("client.id", format!("sitemon-{}", env!("CARGO_PKG_VERSION")));
    for (key, value) in defaults {
        c.set(*key, *value);
    }
    for (key, value) in &k.properties {
        if PINNED.contains(&key.as_str()) {
            tracing::warn!(property = %key, "ignoring kafka property: sitemon's delivery guarantee depends on its own value");
            continue;
        }
        c.set(key, value.expose());
    }
    c
}
