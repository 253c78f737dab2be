//! Apache Kafka adapters (rdkafka): the publisher and the feed, plus shared client settings.

mod client;
mod feed;
mod publisher;

pub use feed::KafkaFeed;
pub use publisher::KafkaPublisher;
