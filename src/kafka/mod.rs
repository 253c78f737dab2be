//! Apache Kafka adapters (rdkafka): the publisher and the feed, plus shared client settings.

mod client;
mod feed;
mod publisher;
mod redacted_log;
mod security;
mod setup_error;

pub use client::property_problems;
pub use feed::KafkaFeed;
pub use publisher::KafkaPublisher;
pub use security::file_problems;
pub use setup_error::ClientSetupError;
