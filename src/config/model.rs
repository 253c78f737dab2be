//! The validated configuration: what to check and where results go.

use std::path::PathBuf;
use std::time::Duration;

use super::Secret;
use super::kafka_security::{KafkaSasl, KafkaTls};
use crate::domain::Site;

/// A fully validated config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Producer location label stored with every result (default: the host name).
    pub region: String,
    /// True when `region` is the host name because the config set none.
    pub region_from_host: bool,
    /// The sites: the inline `sites:` list, then (when read with it) the `sites_file`'s.
    pub sites: Vec<Site>,
    /// The `sites_file`, resolved against the config file's directory.
    pub sites_file: Option<PathBuf>,
    pub kafka: Option<KafkaConfig>,
    pub postgres: Option<PostgresConfig>,
    /// The embedded store of `sitemon run` (and `sitemon status` without `postgres`).
    pub sqlite: SqliteConfig,
    pub consumer: ConsumerConfig,
    /// History older than this is deleted; `None` keeps everything.
    pub retention: Option<Duration>,
    pub producer: ProducerConfig,
    /// This producer's share of the site list when several producers split it.
    pub shard: Option<Shard>,
    /// A Confluent-compatible schema registry: the producer registers the schema and writes the
    /// Confluent framing; the consumer fetches writer schemas by id.
    pub schema_registry: Option<SchemaRegistryConfig>,
    /// Alerts: providers, routes, storms and maintenance windows of `sitemon notify`.
    pub notify: Option<super::NotifyConfig>,
}

impl Config {
    /// The sites this producer checks: all of them, or its shard's share. Takes them out of the
    /// config: a large site list is held once.
    pub fn take_own_sites(&mut self) -> Vec<Site> {
        let all = std::mem::take(&mut self.sites);
        match self.shard {
            Some(shard) => {
                let total = all.len();
                let mine: Vec<Site> = all.into_iter().filter(|s| shard.owns(&s.id)).collect();
                tracing::info!(
                    shard = shard.index,
                    of = shard.count,
                    sites = mine.len(),
                    total,
                    "checking this shard's sites"
                );
                mine
            }
            None => all,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SchemaRegistryConfig {
    /// Base URL of the Confluent-compatible REST API (e.g. `http://registry:8081`,
    /// Apicurio's `http://apicurio:8080/apis/ccompat/v7`), without a trailing slash.
    pub url: String,
    /// HTTP basic authentication, sent only to `url`.
    pub username: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Most checks in flight at once.
    pub max_concurrency: usize,
    /// Most checks in flight against one host at once.
    pub per_host_concurrency: usize,
    /// Most results awaiting the broker's acknowledgement; past it the scheduler waits.
    pub max_in_flight: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig { max_concurrency: 1024, per_host_concurrency: 32, max_in_flight: 100_000 }
    }
}

pub use crate::schedule::Shard;

#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub path: PathBuf,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig { path: PathBuf::from("sitemon.db") }
    }
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub topic: String,
    /// Where the consumer publishes incident events (opened, closed).
    pub events_topic: String,
    pub group_id: String,
    /// The compacted topic `sitemon sites apply` publishes the site list to (key: site name).
    pub sites_topic: Option<String>,
    /// TLS to the brokers (`kafka.tls`); with `sasl`, the channel SASL runs over.
    pub tls: Option<KafkaTls>,
    /// SASL authentication (`kafka.sasl`), over TLS.
    pub sasl: Option<KafkaSasl>,
    /// librdkafka properties passed through as they are (tuning, anything `tls` and `sasl` do
    /// not cover); set last, so they override what `tls` and `sasl` set.
    pub properties: Vec<(String, Secret)>,
}

#[cfg(test)]
impl KafkaConfig {
    /// For unit tests: brokers that are never there, topics `t` and `e`, group `g`, no security,
    /// these properties.
    pub fn unreachable(properties: &[(&str, &str)]) -> Self {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:1".to_owned(),
            topic: "t".to_owned(),
            events_topic: "e".to_owned(),
            sites_topic: None,
            group_id: "g".to_owned(),
            tls: None,
            sasl: None,
            properties: properties.iter().map(|(k, v)| (k.to_string(), Secret::new(*v))).collect(),
        }
    }
}

impl KafkaConfig {
    /// Every value that must not appear in a message: the `properties` values (any of them may
    /// be a credential), the key password and the SASL password.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        let key_password = self.tls.as_ref().and_then(|t| t.key_password.as_ref());
        let sasl_password = self.sasl.as_ref().map(|s| &s.password);
        self.properties.iter().map(|(_, v)| v).chain(key_password).chain(sasl_password).map(Secret::expose)
    }
}

#[derive(Debug, Clone)]
pub struct PostgresConfig {
    pub url: Secret,
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Most records stored in one transaction.
    pub batch_size: usize,
    /// Longest time a batch waits to fill up.
    pub batch_wait: Duration,
    /// How far in the future a record's times may lie before it is a dead letter.
    pub max_clock_skew: Duration,
    /// A region without a result for this long (in its site's own time) is retired.
    pub region_expiry: Duration,
}

impl ConsumerConfig {
    /// The time bounds incidents are judged with.
    pub fn judging(&self) -> crate::domain::Judging {
        crate::domain::Judging::new(self.max_clock_skew, self.region_expiry)
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            batch_size: 1000,
            batch_wait: Duration::from_millis(500),
            // Producers' clocks are NTP-synchronised: two minutes is plenty, and keeps a record
            // from the future from holding a site's latest status (or a partition) for long.
            max_clock_skew: Duration::from_secs(120),
            region_expiry: Duration::from_secs(3600),
        }
    }
}
