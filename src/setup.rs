//! One typed setup per subcommand: what the command uses from the config file, present and
//! checked (with every problem at once, exit 64) before anything starts. A command asks only
//! for what it uses: `consumer` and `migrate` need no sites (a `sites_file` is not even read),
//! `producer` no database, `status` and `report` only their store.

use std::path::{Path, PathBuf};

use crate::config::{self, Config, ConfigError, KafkaConfig, NotifyConfig, PostgresConfig, Problem, Sites};
use crate::kafka;

/// `sitemon producer`: sites and Kafka.
pub struct Producer {
    pub config: Config,
    pub kafka: KafkaConfig,
}

/// `sitemon consumer`: Kafka and PostgreSQL.
pub struct Consumer {
    pub config: Config,
    pub kafka: KafkaConfig,
    pub postgres: PostgresConfig,
}

/// `sitemon notify`: Kafka (its events topic), PostgreSQL (the deliveries) and `notify`.
pub struct Notify {
    pub kafka: KafkaConfig,
    pub postgres: PostgresConfig,
    pub notify: NotifyConfig,
}

/// `sitemon migrate`: PostgreSQL only.
pub struct Migrate {
    pub postgres: PostgresConfig,
}

/// `sitemon run`: sites (the store is the embedded SQLite).
pub struct Embedded {
    pub config: Config,
}

/// `sitemon status`: the store it reads, PostgreSQL when configured, else the embedded SQLite.
pub enum Status {
    Postgres(PostgresConfig),
    Sqlite { path: PathBuf },
}

/// `sitemon report`: the store it reads, chosen as for `status`.
pub struct Report {
    pub store: Status,
}

/// `sitemon config check`: everything, the sites file included.
pub struct Checked {
    pub config: Config,
}

/// What one command found missing or wrong beyond the YAML, gathered while it takes its parts.
struct Needs<'a> {
    command: &'a str,
    problems: Vec<Problem>,
}

impl Needs<'_> {
    fn section<T>(&mut self, name: &str, v: Option<T>) -> Option<T> {
        if v.is_none() {
            self.problems
                .push(Problem::new(name, format!("missing: `sitemon {}` needs this section", self.command)));
        }
        v
    }

    fn sites(&mut self, c: &Config) {
        if c.sites.is_empty() {
            self.problems.push(Problem::new(
                "sites",
                format!("missing: `sitemon {}` needs `sites:` or `sites_file:`", self.command),
            ));
        }
    }

    /// A producer in its region's group on `kafka.sites_topic` takes its sites from there.
    fn group_member(&mut self, c: &Config) {
        let also = "the producer takes its sites from `kafka.sites_topic` (shared by its region's group of producers)";
        if !c.sites.is_empty() || c.sites_file.is_some() {
            self.problems.push(Problem::new(
                if c.sites_file.is_some() { "sites_file" } else { "sites" },
                format!("{also}: remove this, or `kafka.sites_topic` to check the config's own list"),
            ));
        }
        if c.region_from_host {
            self.problems.push(Problem::new(
                "region",
                "missing: the region names the group of producers that share the sites (a host name would make \
                 every host, and every new container, a group of its own)",
            ));
        }
        if c.shard.is_some() {
            self.problems
                .push(Problem::new("shard", format!("{also}, and the group splits them: remove `shard`")));
        }
    }

    /// librdkafka's view of `kafka.properties` and the `kafka.tls` files.
    fn kafka_client(&mut self, k: &KafkaConfig) {
        self.problems.extend(kafka::file_problems(k));
        self.problems.extend(kafka::property_problems(k));
    }

    fn done<T>(self, path: &Path, v: Option<T>) -> Result<T, ConfigError> {
        match v {
            Some(v) if self.problems.is_empty() => Ok(v),
            _ => {
                let mut problems = self.problems;
                config::locate(path, &mut problems);
                Err(ConfigError { file: path.to_owned(), problems })
            }
        }
    }
}

fn load<T>(
    path: &Path,
    command: &str,
    site_file: Sites,
    take: impl FnOnce(Config, &mut Needs) -> Option<T>,
) -> Result<T, ConfigError> {
    let cfg = config::load_file(path, site_file)?;
    let mut needs = Needs { command, problems: Vec::new() };
    let v = take(cfg, &mut needs);
    needs.done(path, v)
}

impl Producer {
    /// With `kafka.sites_topic`, the sites come from the topic (the region's group of producers
    /// shares them): the config lists none, and no `shard`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load(path, "producer", Sites::All, |mut config, n| {
            let kafka = n.section("kafka", config.kafka.take());
            match kafka.as_ref().and_then(|k| k.sites_topic.as_ref()) {
                None => n.sites(&config),
                Some(_) => n.group_member(&config),
            }
            let kafka = kafka?;
            n.kafka_client(&kafka);
            Some(Producer { config, kafka })
        })
    }
}

impl Consumer {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load(path, "consumer", Sites::Skip, |mut config, n| {
            let kafka = n.section("kafka", config.kafka.take());
            let postgres = n.section("postgres", config.postgres.take());
            if let Some(k) = &kafka {
                n.kafka_client(k);
            }
            Some(Consumer { config, kafka: kafka?, postgres: postgres? })
        })
    }
}

/// `sitemon notify test`: the `notify` section only.
pub struct NotifyTest {
    pub notify: NotifyConfig,
}

impl NotifyTest {
    /// The route must exist.
    pub fn load(path: &Path, route: &str) -> Result<Self, ConfigError> {
        load(path, "notify test", Sites::Skip, |mut config, n| {
            let notify = n.section("notify", config.notify.take())?;
            if !notify.routes.iter().any(|r| r.name == route) {
                let names: Vec<&str> = notify.routes.iter().map(|r| r.name.as_str()).collect();
                n.problems.push(Problem::new(
                    "--route",
                    format!("no route named `{route}`; the routes: {}", names.join(", ")),
                ));
            }
            Some(NotifyTest { notify })
        })
    }
}

impl Notify {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load(path, "notify", Sites::Skip, |mut config, n| {
            let kafka = n.section("kafka", config.kafka.take());
            let postgres = n.section("postgres", config.postgres.take());
            let notify = n.section("notify", config.notify.take());
            if let Some(k) = &kafka {
                n.kafka_client(k);
            }
            Some(Notify { kafka: kafka?, postgres: postgres?, notify: notify? })
        })
    }
}

impl Migrate {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Migrate::load_for(path, "migrate")
    }

    /// PostgreSQL only, for `command` (`migrate`).
    pub fn load_for(path: &Path, command: &str) -> Result<Self, ConfigError> {
        load(path, command, Sites::Skip, |config, n| {
            Some(Migrate { postgres: n.section("postgres", config.postgres)? })
        })
    }
}

impl Embedded {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load(path, "run", Sites::All, |config, n| {
            n.sites(&config);
            Some(Embedded { config })
        })
    }
}

impl Status {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Status::load_for(path, "status")
    }

    /// The store of a command that reads or writes what `status` does (`silence`).
    pub fn load_for(path: &Path, command: &str) -> Result<Self, ConfigError> {
        load(path, command, Sites::Skip, |config, _| {
            Some(match config.postgres {
                Some(pg) => Status::Postgres(pg),
                None => Status::Sqlite { path: config.sqlite.path },
            })
        })
    }
}

impl Report {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load(path, "report", Sites::Skip, |config, _| {
            Some(Report {
                store: match config.postgres {
                    Some(pg) => Status::Postgres(pg),
                    None => Status::Sqlite { path: config.sqlite.path },
                },
            })
        })
    }
}

impl Checked {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load(path, "config check", Sites::All, |config, n| {
            if let Some(k) = &config.kafka {
                n.kafka_client(k);
                if k.sites_topic.is_some() {
                    n.group_member(&config);
                }
            }
            Some(Checked { config })
        })
    }
}

/// `sitemon status`'s view of a region's group of producers: the config's Kafka, its
/// `sites_topic` and `region`, when it has them.
pub struct Fleet {
    pub kafka: KafkaConfig,
    pub topic: String,
    pub region: String,
}

impl Fleet {
    pub fn load(path: &Path) -> Result<Option<Self>, ConfigError> {
        load(path, "status", Sites::Skip, |mut config, _| {
            let kafka = config.kafka.take();
            Some(kafka.and_then(|kafka| {
                let topic = kafka.sites_topic.clone()?;
                Some(Fleet { kafka, topic, region: config.region })
            }))
        })
    }
}

/// `sitemon sites`: Kafka and its `sites_topic`.
pub struct SitesTopic {
    pub kafka: KafkaConfig,
    pub topic: String,
}

impl SitesTopic {
    pub fn load(path: &Path, command: &str) -> Result<Self, ConfigError> {
        load(path, command, Sites::Skip, |mut config, n| {
            let kafka = n.section("kafka", config.kafka.take())?;
            n.kafka_client(&kafka);
            if kafka.sites_topic.is_none() {
                n.problems.push(Problem::new(
                    "kafka.sites_topic",
                    format!("missing: `sitemon {}` keeps the site list on this compacted topic, e.g. `sitemon.sites`", n.command),
                ));
            }
            let topic = kafka.sites_topic.clone()?;
            Some(SitesTopic { kafka, topic })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn producer(text: &str) -> Result<Producer, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, text).unwrap();
        Producer::load(&path)
    }

    #[test]
    fn a_group_member_names_its_region_and_lists_no_sites_of_its_own() {
        let kafka = "kafka: {bootstrap_servers: 'k:9092', sites_topic: sitemon.sites}\n";
        let e = producer(&format!(
            "{kafka}sites:\n  - {{name: a, url: 'http://a/'}}\nshard: {{index: 0, count: 2}}\n"
        ))
        .err()
        .expect("refused");
        let paths: Vec<&str> = e.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["sites", "region", "shard"], "{:?}", e.problems);
        let ok = producer(&format!("region: eu\n{kafka}")).expect("a member needs no sites");
        assert_eq!(ok.kafka.sites_topic.as_deref(), Some("sitemon.sites"));
        let e = producer("region: eu\nkafka: {bootstrap_servers: 'k:9092'}\n").err().expect("no sites");
        assert!(e.problems.iter().any(|p| p.path == "sites"), "{:?}", e.problems);
        // `config check` says so too, rather than pass what `producer` refuses.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, kafka).unwrap();
        let e = Checked::load(&path).err().expect("refused by config check");
        assert!(e.problems.iter().any(|p| p.path == "region"), "{:?}", e.problems);
    }
}
