//! Configuration: the YAML model, its pure validation, and the error that lists every problem.

mod command_line;
mod interpolate;
mod kafka_security;
mod load;
mod locate;
mod model;
mod notify;
mod problem;
mod providers;
mod reader;
mod sections;
mod site_file;
mod site_list;
mod site_record;
mod sites;
mod sites_csv;
mod sites_yaml;

pub use crate::domain::Secret;
pub use command_line::command_line_site;
pub use kafka_security::{KafkaSasl, KafkaTls, SaslMechanism};
pub use load::{Sites, load_file, locate, parse, parse_with, release_parse_memory};
pub use model::{
    Config, ConsumerConfig, KafkaConfig, PostgresConfig, ProducerConfig, SchemaRegistryConfig, Shard,
    SqliteConfig,
};
pub use notify::NotifyConfig;
pub use problem::{COMMAND_LINE, ConfigError, Problem};
pub use providers::{EmailConfig, PAGERDUTY_URL, ProviderConfig, ProviderKind, SmtpTls};
pub use reader::Env;
pub use site_list::{SiteDefinition, read_site_list};
pub use site_record::SiteRecords;
