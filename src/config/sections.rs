//! The sections that say where results go and how the processes run: kafka, postgres, sqlite,
//! consumer, producer, shard and schema_registry.

use serde_yaml_ng::Value;

use super::kafka_security::{read_sasl, read_tls};
use super::reader::{Reader, join};
use super::{
    ConsumerConfig, KafkaConfig, PostgresConfig, ProducerConfig, SchemaRegistryConfig, Secret, Shard,
    SqliteConfig,
};

const KAFKA: &[&str] =
    &["bootstrap_servers", "topic", "events_topic", "sites_topic", "group_id", "tls", "sasl", "properties"];
const POSTGRES: &[&str] = &["url", "max_connections"];
const CONSUMER: &[&str] = &["batch_size", "batch_wait", "max_clock_skew", "region_expiry"];
const SQLITE: &[&str] = &["path"];
const PRODUCER: &[&str] = &["max_concurrency", "per_host_concurrency", "max_in_flight"];
const SHARD: &[&str] = &["index", "count"];
const SCHEMA_REGISTRY: &[&str] = &["url", "username", "password"];

pub fn read_schema_registry(r: &mut Reader, v: &Value, path: &str) -> Option<SchemaRegistryConfig> {
    let f = r.fields(v, path, SCHEMA_REGISTRY)?;
    let url = match f.get("url") {
        Some((v, p)) => r.nonempty_string(v, &p).and_then(|u| match url::Url::parse(&u) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
                if parsed.password().is_some() || !parsed.username().is_empty() {
                    r.problem(&p, "put credentials in `username` and `password`, not in the url");
                    None
                } else {
                    Some(u.trim_end_matches('/').to_owned())
                }
            }
            _ => {
                r.problem(&p, "expected an http:// or https:// url, e.g. `http://localhost:8081`");
                None
            }
        }),
        None => {
            r.problem(&join(path, "url"), "missing: e.g. `http://localhost:8081`");
            None
        }
    };
    let username = f.get("username").map(|(v, p)| r.nonempty_string(v, &p));
    let password = f.get("password").map(|(v, p)| r.nonempty_string(v, &p).map(Secret::new));
    if password.is_some() && username.is_none() {
        r.problem(&join(path, "username"), "missing: `password` is sent with a username (HTTP basic auth)");
        return None;
    }
    Some(SchemaRegistryConfig {
        url: url?,
        username: username.map_or(Some(None), |u| u.map(Some))?,
        password: password.map_or(Some(None), |p| p.map(Some))?,
    })
}

pub fn read_kafka(r: &mut Reader, v: &Value, path: &str) -> Option<KafkaConfig> {
    let f = r.fields(v, path, KAFKA)?;
    let bootstrap = match f.get("bootstrap_servers") {
        Some((v, p)) => r.nonempty_string(v, &p),
        None => {
            r.problem(&join(path, "bootstrap_servers"), "missing: e.g. `localhost:9092`");
            None
        }
    };
    let topic = match f.get("topic") {
        Some((v, p)) => r.nonempty_string(v, &p).and_then(|t| topic_name(r, t, &p)),
        None => Some("sitemon.checks".to_owned()),
    };
    let events_topic = match f.get("events_topic") {
        Some((v, p)) => r.nonempty_string(v, &p).and_then(|t| topic_name(r, t, &p)),
        None => Some("sitemon.events".to_owned()),
    };
    // Kafka refuses two topics whose names differ only in `.` against `_` (metric names collide).
    if let (Some(t), Some(e)) = (&topic, &events_topic)
        && t.replace('.', "_") == e.replace('.', "_")
    {
        let (at, other) = match f.get("events_topic") {
            Some((_, p)) => (p, "kafka.topic"),
            None => (join(path, "topic"), "the default `kafka.events_topic`"),
        };
        r.problem(
            &at,
            format!("`{e}` is also {other} (Kafka treats `.` and `_` alike): incident events need a topic of their own"),
        );
    }
    let sites_topic = f.get("sites_topic").map(|(v, p)| {
        let t = r.nonempty_string(v, &p).and_then(|t| topic_name(r, t, &p))?;
        let same = |o: &Option<String>| o.as_ref().is_some_and(|o| o.replace('.', "_") == t.replace('.', "_"));
        if same(&topic) || same(&events_topic) {
            r.problem(&p, format!("`{t}` is also kafka.topic or kafka.events_topic (Kafka treats `.` and `_` alike): the site list needs a topic of its own"));
            return None;
        }
        Some(t)
    });
    let group_id = match f.get("group_id") {
        Some((v, p)) => r.nonempty_string(v, &p),
        None => Some("sitemon".to_owned()),
    };
    let tls = f.get("tls").map(|(v, p)| read_tls(r, v, &p));
    let sasl = f.get("sasl").map(|(v, p)| read_sasl(r, v, &p));
    let properties = match f.get("properties") {
        Some((v, p)) => read_properties(r, v, &p),
        None => Some(Vec::new()),
    };
    Some(KafkaConfig {
        bootstrap_servers: bootstrap?,
        topic: topic?,
        events_topic: events_topic?,
        sites_topic: sites_topic.map_or(Some(None), |t| t.map(Some))?,
        group_id: group_id?,
        tls: tls.map_or(Some(None), |t| t.map(Some))?,
        sasl: sasl.map_or(Some(None), |s| s.map(Some))?,
        properties: properties?,
    })
}

fn topic_name(r: &mut Reader, t: String, path: &str) -> Option<String> {
    let ok = t.len() <= 249
        && t != "."
        && t != ".."
        && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Some(t)
    } else {
        r.problem(path, format!("`{t}` is not a valid Kafka topic name (A-Z a-z 0-9 . _ -, at most 249)"));
        None
    }
}

fn read_properties(r: &mut Reader, v: &Value, path: &str) -> Option<Vec<(String, Secret)>> {
    r.secret_map(v, path, "librdkafka property", |_, _| Ok(()))
}

pub fn read_postgres(r: &mut Reader, v: &Value, path: &str) -> Option<PostgresConfig> {
    let f = r.fields(v, path, POSTGRES)?;
    let url = match f.get("url") {
        Some((v, p)) => r.nonempty_string(v, &p).and_then(|u| {
            if u.starts_with("postgres://") || u.starts_with("postgresql://") {
                Some(Secret::new(u))
            } else {
                r.problem(&p, "expected a postgres:// or postgresql:// url");
                None
            }
        }),
        None => {
            r.problem(&join(path, "url"), "missing: e.g. `${DATABASE_URL}`");
            None
        }
    };
    let max = match f.get("max_connections") {
        Some((v, p)) => r.uint(v, &p, 1, 1000).map(|n| n as u32),
        None => Some(4),
    };
    Some(PostgresConfig { url: url?, max_connections: max? })
}

pub fn read_consumer(r: &mut Reader, v: &Value, path: &str) -> Option<ConsumerConfig> {
    let f = r.fields(v, path, CONSUMER)?;
    let d = ConsumerConfig::default();
    let size = f.get("batch_size").map_or(Some(d.batch_size as u64), |(v, p)| r.uint(v, &p, 1, 100_000));
    let wait = f.get("batch_wait").map_or(Some(d.batch_wait), |(v, p)| r.duration(v, &p));
    let skew = f.get("max_clock_skew").map_or(Some(d.max_clock_skew), |(v, p)| r.duration(v, &p));
    let expiry = f.get("region_expiry").map_or(Some(d.region_expiry), |(v, p)| r.duration(v, &p));
    Some(ConsumerConfig {
        batch_size: size? as usize,
        batch_wait: wait?,
        max_clock_skew: skew?,
        region_expiry: expiry?,
    })
}

pub fn read_sqlite(r: &mut Reader, v: &Value, path: &str) -> Option<SqliteConfig> {
    let f = r.fields(v, path, SQLITE)?;
    match f.get("path") {
        Some((v, p)) => r.nonempty_string(v, &p).map(|s| SqliteConfig { path: s.into() }),
        None => Some(SqliteConfig::default()),
    }
}

pub fn read_producer(r: &mut Reader, v: &Value, path: &str) -> Option<ProducerConfig> {
    let f = r.fields(v, path, PRODUCER)?;
    let d = ProducerConfig::default();
    let max =
        f.get("max_concurrency").map_or(Some(d.max_concurrency as u64), |(v, p)| r.uint(v, &p, 1, 100_000));
    let per_host = f
        .get("per_host_concurrency")
        .map_or(Some(d.per_host_concurrency as u64), |(v, p)| r.uint(v, &p, 1, 100_000));
    let in_flight =
        f.get("max_in_flight").map_or(Some(d.max_in_flight as u64), |(v, p)| r.uint(v, &p, 1, 10_000_000));
    Some(ProducerConfig {
        max_concurrency: max? as usize,
        per_host_concurrency: per_host? as usize,
        max_in_flight: in_flight? as usize,
    })
}

pub fn read_shard(r: &mut Reader, v: &Value, path: &str) -> Option<Shard> {
    let f = r.fields(v, path, SHARD)?;
    let count = match f.get("count") {
        Some((v, p)) => r.uint(v, &p, 1, 10_000),
        None => {
            r.problem(&join(path, "count"), "missing: how many producers share the site list");
            None
        }
    };
    let index = match f.get("index") {
        Some((v, p)) => r.uint(v, &p, 0, 9_999).and_then(|i| match count {
            Some(c) if i >= c => {
                r.problem(&p, format!("index {i} must be below count {c}"));
                None
            }
            _ => Some(i),
        }),
        None => {
            r.problem(&join(path, "index"), "missing: this producer's place, from 0 to count - 1");
            None
        }
    };
    Some(Shard { index: index? as u32, count: count? as u32 })
}
