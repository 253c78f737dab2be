//! [`KafkaFeed`]: a consumer-group member that hands out decoded batches and stores offsets
//! only when the batch is acknowledged (after the database commit).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use super::client::client_config;
use crate::config::KafkaConfig;
use crate::ports::{DeadLetter, FeedBatch, FeedError, FeedPosition, RawRecord, StatusFeed};
use crate::wire;

pub struct KafkaFeed {
    consumer: StreamConsumer<FeedContext>,
}

/// Commits the stored offsets (results already in the database) before partitions are
/// revoked, so the next owner starts where this consumer's commits ended.
pub struct FeedContext;

impl ClientContext for FeedContext {}

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
}

impl KafkaFeed {
    pub fn new(k: &KafkaConfig) -> Result<Self, rdkafka::error::KafkaError> {
        let consumer: StreamConsumer<FeedContext> = client_config(
            k,
            &[
                ("group.id", &k.group_id),
                ("enable.auto.commit", "true"),
                ("auto.commit.interval.ms", "1000"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
                // librdkafka prefetches up to 64 MB per partition by default; a consumer that
                // stores in batches needs far less buffered ahead.
                ("queued.max.messages.kbytes", "16384"),
            ],
        )
        .create_with_context(FeedContext)?;
        consumer.subscribe(&[&k.topic])?;
        Ok(KafkaFeed { consumer })
    }
}

impl StatusFeed for KafkaFeed {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<FeedBatch, FeedError> {
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
            let position = FeedPosition {
                topic: msg.topic().to_owned(),
                partition: msg.partition(),
                offset: msg.offset(),
            };
            let payload = msg.payload();
            match payload.map(wire::decode) {
                Some(Ok(result)) => {
                    batch.results.push(result);
                    batch.result_sources.push(RawRecord {
                        position: position.clone(),
                        key: msg.key().map(<[u8]>::to_vec),
                        payload: payload.map(<[u8]>::to_vec),
                    });
                }
                Some(Err(e)) => batch.dead_letters.push(DeadLetter {
                    position: position.clone(),
                    key: msg.key().map(<[u8]>::to_vec),
                    payload: payload.map(<[u8]>::to_vec),
                    error: e.to_string(),
                }),
                None => batch.dead_letters.push(DeadLetter {
                    position: position.clone(),
                    key: msg.key().map(<[u8]>::to_vec),
                    payload: None,
                    error: "record has no payload".to_owned(),
                }),
            }
            batch.positions.push(position);
        }
        Ok(batch)
    }

    async fn ack(&mut self, batch: &FeedBatch) -> Result<(), FeedError> {
        let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for p in &batch.positions {
            let e = next.entry((p.topic.as_str(), p.partition)).or_insert(p.offset + 1);
            *e = (*e).max(p.offset + 1);
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
                .map_err(|e| FeedError::Ack(e.to_string()))?;
        }
        // Stored offsets are committed by librdkafka's auto-commit (every second), before a
        // revocation (FeedContext) and when the consumer closes.
        self.consumer.store_offsets(&tpl).map_err(|e| FeedError::Ack(e.to_string()))
    }

    fn is_attached(&self) -> bool {
        self.consumer.assignment().map(|a| a.count() > 0).unwrap_or(false)
    }
}
