//! Apache Kafka adapters (rdkafka): the publisher, the feed and the incident-event sink, plus
//! shared client settings.

mod client;
mod events;
mod feed;
mod group_members;
mod publisher;
mod redacted_log;
mod security;
mod setup_error;
mod site_group;
mod site_reader;
mod site_share;
mod sites_topic;

pub use client::property_problems;
pub use events::KafkaEventSink;
pub use feed::KafkaFeed;
pub use group_members::{Member, group_members};
pub use publisher::KafkaPublisher;
pub use security::file_problems;
pub use setup_error::ClientSetupError;
pub use site_group::SiteGroup;
pub use sites_topic::{SiteRecord, SitesTopic, SitesTopicError};
