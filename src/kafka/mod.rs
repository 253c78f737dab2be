//! Apache Kafka adapters (rdkafka): the publisher and the feed, plus shared client settings.

mod client;
mod feed;
mod publisher;
mod setup_error;

pub use client::property_problems;
pub use feed::KafkaFeed;
pub use publisher::KafkaPublisher;
pub use setup_error::ClientSetupError;
