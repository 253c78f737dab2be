//! The compacted sites topic (`kafka.sites_topic`): its state read back — the newest value of
//! each site name, a tombstone (a record without a value) removing it —, the topic made on first
//! use, and changes published, each acknowledged by the broker before the command ends.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::client::client_config;
use super::redacted_log::RedactedLog;
use super::setup_error::ClientSetupError;
use crate::config::KafkaConfig;

/// Why the sites topic could not be read or written. No text holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum SitesTopicError {
    #[error(transparent)]
    Setup(#[from] ClientSetupError),
    #[error("reading the sites topic `{topic}` at {servers} ({CHECK})")]
    Read { topic: String, servers: String, source: Cause },
    #[error("reading the sites topic `{topic}` at {servers}: its end was not reached within {} s ({CHECK})", limit.as_secs())]
    Timeout { topic: String, servers: String, limit: Duration },
    #[error(
        "site `{name}` is in partitions {} and {} of the sites topic `{topic}`: its partition count was changed, \
         and a site's records no longer meet in one partition; delete the topic and apply the list again",
        partitions.0, partitions.1
    )]
    Moved { topic: String, name: String, partitions: (i32, i32) },
    #[error("creating the sites topic `{topic}` at {servers}")]
    Create { topic: String, servers: String, source: Cause },
    #[error(
        "publishing to the sites topic `{topic}` at {servers}: {failed} of {total} changes were not acknowledged"
    )]
    Publish { topic: String, servers: String, failed: usize, total: usize, source: Cause },
}

/// What to do when the brokers do not answer.
const CHECK: &str = "check that the brokers are running and that `kafka.bootstrap_servers` names them";

/// A Kafka failure as its error code says it (rdkafka's own text would repeat it), else whole.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Cause(String);

impl From<KafkaError> for Cause {
    fn from(e: KafkaError) -> Self {
        Cause(e.rdkafka_error_code().map_or_else(|| e.to_string(), |code| code.to_string()))
    }
}

/// One change: a site's new definition, or `None` to remove it (a tombstone).
pub type SiteRecord = (String, Option<Vec<u8>>);

/// The record header that says the value's format, so that a reader can tell a later one.
pub const FORMAT_HEADER: &str = "sitemon-format";
/// This format: a site's definition as JSON (the keys of a `sites_file` item), or none.
pub const FORMAT: &str = "site-definition-v1";

/// How long reading or writing the topic may take before the command gives up.
const LIMIT: Duration = Duration::from_secs(60);
/// How long the brokers may take to answer the first request (a cluster that is down).
const ANSWER: Duration = Duration::from_secs(15);

/// The sites topic of one cluster.
pub struct SitesTopic {
    kafka: KafkaConfig,
    topic: String,
}

impl SitesTopic {
    pub fn new(kafka: &KafkaConfig, topic: &str) -> Self {
        SitesTopic { kafka: kafka.clone(), topic: topic.to_owned() }
    }

    pub fn name(&self) -> &str {
        &self.topic
    }

    /// The newest value of every site on the topic, by name; `None` when the topic does not
    /// exist yet.
    pub async fn read(&self) -> Result<Option<BTreeMap<String, Vec<u8>>>, SitesTopicError> {
        let (kafka, topic) = (self.kafka.clone(), self.topic.clone());
        tokio::task::spawn_blocking(move || read_state(&kafka, &topic))
            .await
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
    }

    /// Makes the topic, compacted, with `partitions` partitions and the brokers' replication
    /// factor; one that exists already is left as it is.
    pub async fn create(&self, partitions: i32) -> Result<(), SitesTopicError> {
        let admin: AdminClient<RedactedLog> = client_config(&self.kafka, &[])
            .create_with_context(RedactedLog::new(&self.kafka))
            .map_err(|e| ClientSetupError::new(e, &self.kafka))?;
        let topic = NewTopic::new(&self.topic, partitions, TopicReplication::Fixed(-1))
            .set("cleanup.policy", "compact");
        let options = AdminOptions::new().operation_timeout(Some(Timeout::After(LIMIT)));
        let failed = |e: KafkaError| SitesTopicError::Create {
            topic: self.topic.clone(),
            servers: self.kafka.bootstrap_servers.clone(),
            source: e.into(),
        };
        let results = admin.create_topics([&topic], &options).await.map_err(failed)?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(failed(KafkaError::AdminOp(code))),
            }
        }
        Ok(())
    }

    /// Publishes the changes, keyed by site name, and waits for every acknowledgement.
    pub async fn publish(&self, changes: &[SiteRecord]) -> Result<(), SitesTopicError> {
        let producer: FutureProducer<RedactedLog> = client_config(
            &self.kafka,
            &[("enable.idempotence", "true"), ("acks", "all"), ("message.timeout.ms", "60000")],
        )
        .create_with_context(RedactedLog::new(&self.kafka))
        .map_err(|e| ClientSetupError::new(e, &self.kafka))?;
        let mut deliveries = Vec::with_capacity(changes.len());
        let mut refused = None;
        for (name, value) in changes {
            let format = Header { key: FORMAT_HEADER, value: Some(FORMAT) };
            let mut record = FutureRecord::<str, [u8]>::to(&self.topic)
                .key(name.as_str())
                .headers(OwnedHeaders::new().insert(format));
            if let Some(v) = value {
                record = record.payload(v.as_slice());
            }
            // A full local queue empties as the broker acknowledges; anything else is final.
            deliveries.push(loop {
                match producer.send_result(record) {
                    Ok(delivery) => break Some(delivery),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err((source, _)) => {
                        refused = Some(source);
                        break None;
                    }
                }
            });
            if refused.is_some() {
                break;
            }
        }
        // (What was sent before a refusal may still land: it is waited for and counted.)
        let mut failed = (changes.len() - deliveries.len() + usize::from(refused.is_some()), refused);
        for d in deliveries.into_iter().flatten() {
            let outcome = match d.await {
                Ok(Ok(_)) => None,
                Ok(Err((e, _))) => Some(e),
                Err(_) => Some(KafkaError::Canceled),
            };
            if let Some(e) = outcome {
                failed = (failed.0 + 1, failed.1.or(Some(e)));
            }
        }
        let _ = producer.flush(Timeout::After(LIMIT));
        match failed {
            (0, _) | (_, None) => Ok(()),
            (n, Some(source)) => Err(self.unpublished(n, changes.len(), source)),
        }
    }

    fn unpublished(&self, failed: usize, total: usize, source: KafkaError) -> SitesTopicError {
        let (topic, servers) = (self.topic.clone(), self.kafka.bootstrap_servers.clone());
        SitesTopicError::Publish { topic, servers, failed, total, source: source.into() }
    }
}

/// Reads every partition from its beginning to the end it had when the read began.
fn read_state(k: &KafkaConfig, topic: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, SitesTopicError> {
    let servers = || k.bootstrap_servers.clone();
    let failed = |e: KafkaError| SitesTopicError::Read {
        topic: topic.to_owned(),
        servers: servers(),
        source: e.into(),
    };
    let consumer: BaseConsumer<RedactedLog> = client_config(
        k,
        &[
            ("group.id", "sitemon-sites-reader"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
            // librdkafka pauses a partition's fetches this long once its queue is full: a second
            // by default, which made reading a million sites wait more than it worked.
            ("fetch.queue.backoff.ms", "10"),
        ],
    )
    .create_with_context(RedactedLog::new(k))
    .map_err(|e| ClientSetupError::new(e, k))?;
    let metadata = consumer.fetch_metadata(Some(topic), Timeout::After(ANSWER)).map_err(failed)?;
    let timeout = Timeout::After(LIMIT);
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else { return Ok(None) };
    match t.error().map(RDKafkaErrorCode::from) {
        None if !t.partitions().is_empty() => {}
        None | Some(RDKafkaErrorCode::UnknownTopicOrPartition) => return Ok(None),
        Some(code) => return Err(failed(KafkaError::MetadataFetch(code))),
    }
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in t.partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout).map_err(failed)?;
        if high > low {
            ends.insert(p.id(), high);
            assignment.add_partition_offset(topic, p.id(), Offset::Beginning).map_err(failed)?;
        }
    }
    let mut state = BTreeMap::new();
    if ends.is_empty() {
        return Ok(Some(state));
    }
    consumer.assign(&assignment).map_err(failed)?;
    let deadline = Instant::now() + LIMIT;
    // Where each name was read: a name in two partitions means the count changed under the list.
    let mut home: HashMap<String, i32> = HashMap::new();
    let mut last_error = None;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(match last_error {
                Some(e) => failed(e),
                None => {
                    SitesTopicError::Timeout { topic: topic.to_owned(), servers: servers(), limit: LIMIT }
                }
            });
        }
        let m = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            // The end of a partition as it is now (a compacted one may end before `high`).
            Some(Err(KafkaError::PartitionEOF(p))) => {
                ends.remove(&p);
                continue;
            }
            // librdkafka retries what can pass (a broker restarting); the deadline bounds it.
            Some(Err(e)) => {
                tracing::warn!(error = %e, "reading the sites topic; still trying");
                last_error = Some(e);
                continue;
            }
            Some(Ok(m)) => m,
        };
        if let Some(key) = m.key() {
            let name = String::from_utf8_lossy(key).into_owned();
            if let Some(other) = home.insert(name.clone(), m.partition()).filter(|p| *p != m.partition()) {
                return Err(SitesTopicError::Moved {
                    topic: topic.to_owned(),
                    name,
                    partitions: (other, m.partition()),
                });
            }
            match m.payload() {
                Some(v) => state.insert(name, v.to_vec()),
                None => state.remove(&name),
            };
        }
        if ends.get(&m.partition()).is_some_and(|end| m.offset() + 1 >= *end) {
            ends.remove(&m.partition());
        }
    }
    Ok(Some(state))
}
