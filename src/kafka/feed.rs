//! [`KafkaFeed`]: a consumer-group member that hands out decoded batches and stores offsets
//! only when the batch is acknowledged (after the database commit).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use super::client::client_config;
use super::redacted_log::RedactedLog;
use crate::config::KafkaConfig;
use crate::domain::{CheckResult, IncidentEvent};
use crate::ports::{FeedBatch, FeedError, FeedPosition, RawRecord, Received, StatusFeed};
use crate::wire;

/// A group member on one topic; `T` is what its records decode to (check results, or incident
/// events for `sitemon notify`).
pub struct KafkaFeed<T = CheckResult> {
    consumer: StreamConsumer<FeedContext>,
    decode: fn(&[u8]) -> Result<T, String>,
}

/// Commits the stored offsets (results already in the database) before partitions are
/// revoked, so the next owner starts where this consumer's commits ended. librdkafka's logs and
/// errors go out with the config's secrets masked.
pub struct FeedContext {
    log: RedactedLog,
}

impl ClientContext for FeedContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(&error, reason);
    }
}

impl ConsumerContext for FeedContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {
                    tracing::info!(partitions = tpl.count(), "committed stored offsets before revocation")
                }
                // Nothing stored yet is not a problem: there is nothing to lose.
                Err(e) => tracing::debug!(error = %e, "no offsets committed before revocation"),
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => tracing::info!(partitions = tpl.count(), "partitions assigned"),
            Rebalance::Revoke(tpl) => tracing::info!(partitions = tpl.count(), "partitions revoked"),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance failed; librdkafka retries"),
        }
    }
}

impl KafkaFeed {
    /// The consumer's feed of check results: `kafka.topic`, group `kafka.group_id`.
    pub fn new(k: &KafkaConfig) -> Result<Self, rdkafka::error::KafkaError> {
        KafkaFeed::on(k, &k.topic, &k.group_id, |b| wire::decode(b).map_err(|e| e.to_string()))
    }
}

impl KafkaFeed<IncidentEvent> {
    /// `sitemon notify`'s feed of incident events: `kafka.events_topic`, group `group_id`.
    pub fn events(k: &KafkaConfig, group_id: &str) -> Result<Self, rdkafka::error::KafkaError> {
        KafkaFeed::on(k, &k.events_topic, group_id, |b| wire::decode_event(b).map_err(|e| e.to_string()))
    }
}

impl<T: Send + 'static> KafkaFeed<T> {
    fn on(
        k: &KafkaConfig,
        topic: &str,
        group_id: &str,
        decode: fn(&[u8]) -> Result<T, String>,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let consumer: StreamConsumer<FeedContext> = client_config(
            k,
            &[
                ("group.id", group_id),
                ("enable.auto.commit", "true"),
                ("auto.commit.interval.ms", "1000"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
                // A member joining or leaving moves only the partitions that change owner; the
                // others keep being consumed through the rebalance.
                ("partition.assignment.strategy", "cooperative-sticky"),
                // librdkafka prefetches up to 64 MB per partition by default; a consumer that
                // stores in batches needs far less buffered ahead.
                ("queued.max.messages.kbytes", "16384"),
            ],
        )
        .create_with_context(FeedContext { log: RedactedLog::new(k) })?;
        consumer.subscribe(&[topic])?;
        Ok(KafkaFeed { consumer, decode })
    }
}

impl<T: Send + Sync + 'static> StatusFeed<T> for KafkaFeed<T> {
    /// Leaves the group (committing the stored offsets) on a thread of its own; true if that
    /// finished within `limit`. librdkafka's close waits for an unreachable broker for its own
    /// timeouts (up to a minute), longer than any grace period.
    fn close_within(self, limit: Duration) -> bool {
        let (done, closed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(self);
            let _ = done.send(());
        });
        closed.recv_timeout(limit).is_ok()
    }

    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<FeedBatch<T>, FeedError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut batch = FeedBatch::default();
        while batch.len() < max {
            // Buffered messages are ready at once, so without this the loop would decode a whole
            // batch in one poll while the batch before it waits to send its next statement.
            tokio::task::consume_budget().await;
            let msg = match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Err(_) => break,
                Ok(Ok(m)) => m,
                Ok(Err(e)) => {
                    // librdkafka recovers from these by itself (a topic not created yet, a broker
                    // restarting); the consumer keeps polling, and readiness shows it is not attached.
                    tracing::warn!(error = %e, "kafka consumer error; still polling");
                    if batch.is_empty() {
                        tokio::time::sleep_until(deadline).await;
                    }
                    break;
                }
            };
            let raw = RawRecord {
                position: FeedPosition {
                    topic: msg.topic().to_owned(),
                    partition: msg.partition(),
                    offset: msg.offset(),
                },
                key: msg.key().map(<[u8]>::to_vec),
                payload: msg.payload().map(<[u8]>::to_vec),
            };
            let decoded = match msg.payload() {
                Some(bytes) => (self.decode)(bytes),
                None => Err("record has no payload".to_owned()),
            };
            batch.records.push(Received { raw, decoded });
        }
        Ok(batch)
    }

    /// Stores the batch's next offsets for the partitions this member still owns. A partition
    /// revoked while its records were being stored is not acknowledged here: its new owner reads
    /// them again from the last commit, and storing is idempotent.
    async fn ack(&mut self, batch: &FeedBatch<T>) -> Result<(), FeedError> {
        let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for p in batch.records.iter().map(|r| &r.raw.position) {
            let e = next.entry((p.topic.as_str(), p.partition)).or_insert(p.offset + 1);
            *e = (*e).max(p.offset + 1);
        }
        let owned = self.consumer.assignment().map_err(|e| FeedError::Ack(e.into()))?;
        let mut tpl = TopicPartitionList::new();
        let mut revoked = 0;
        for ((topic, partition), offset) in next {
            if owned.find_partition(topic, partition).is_none() {
                revoked += 1;
                continue;
            }
            tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
                .map_err(|e| FeedError::Ack(e.into()))?;
        }
        if revoked > 0 {
            tracing::info!(
                partitions = revoked,
                "partitions revoked while their batch was stored: left to their new owner"
            );
            metrics::counter!(crate::metric::REVOKED_BATCHES).increment(1);
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        // Stored offsets are committed by librdkafka's auto-commit (every second), before a
        // revocation (FeedContext) and when the consumer closes.
        match self.consumer.store_offsets(&tpl) {
            Ok(()) => Ok(()),
            // Revoked between the assignment check and the store: the same as above.
            Err(KafkaError::StoreOffset(RDKafkaErrorCode::State | RDKafkaErrorCode::UnknownPartition)) => {
                tracing::info!("partitions revoked while their batch was stored: left to their new owner");
                metrics::counter!(crate::metric::REVOKED_BATCHES).increment(1);
                Ok(())
            }
            Err(e) => Err(FeedError::Ack(e.into())),
        }
    }

    fn is_attached(&self) -> bool {
        self.consumer.assignment().map(|a| a.count() > 0).unwrap_or(false)
    }
}
