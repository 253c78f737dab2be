//! In-memory adapters for `sitemon run`: a bounded channel joins the producer's
//! [`StatusPublisher`] to the consumer's [`StatusFeed`] inside one process.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::domain::CheckResult;
use crate::ports::{
    FeedBatch, FeedError, FeedPosition, PublishError, RawRecord, Received, StatusFeed, StatusPublisher,
};

/// The topic name that in-memory positions carry.
const TOPIC: &str = "memory";

/// A connected publisher/feed pair holding at most `capacity` results in between.
pub fn channel(capacity: usize) -> (ChannelPublisher, ChannelFeed) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    // Positions key the dead letters: starting at the clock's microseconds keeps them unique
    // across runs of `sitemon run` on the same database.
    let next_offset = chrono::Utc::now().timestamp_micros();
    (ChannelPublisher { tx }, ChannelFeed { rx, next_offset })
}

/// Publishes into the channel; waits while the channel is full (backpressure).
pub struct ChannelPublisher {
    tx: mpsc::Sender<CheckResult>,
}

impl StatusPublisher for ChannelPublisher {
    async fn publish(&self, result: &CheckResult) -> Result<(), PublishError> {
        self.tx
            .send(result.clone())
            .await
            .map_err(|_| PublishError::Delivery("the consumer has stopped".into()))
    }

    /// Results are handed over on publish; there is nothing buffered to flush.
    async fn flush(&self, _deadline: Duration) -> Result<(), PublishError> {
        Ok(())
    }

    /// The consumer is in this process: there is nothing to lose contact with.
    fn is_connected(&self) -> bool {
        true
    }
}

/// Reads the channel in batches; ends with [`FeedError::Closed`] once every publisher is gone
/// and the channel is drained.
pub struct ChannelFeed {
    rx: mpsc::Receiver<CheckResult>,
    next_offset: i64,
}

impl StatusFeed for ChannelFeed {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<FeedBatch, FeedError> {
        let mut batch = FeedBatch::default();
        let first = match tokio::time::timeout(wait, self.rx.recv()).await {
            Err(_) => return Ok(batch),
            Ok(None) => return Err(FeedError::Closed),
            Ok(Some(r)) => r,
        };
        let mut results = vec![first];
        while results.len() < max {
            match self.rx.try_recv() {
                Ok(r) => results.push(r),
                Err(_) => break,
            }
        }
        for r in results {
            let position = FeedPosition { topic: TOPIC.to_owned(), partition: 0, offset: self.next_offset };
            self.next_offset += 1;
            let raw = RawRecord { position, key: None, payload: None };
            batch.records.push(Received { raw, decoded: Ok(r) });
        }
        Ok(batch)
    }

    /// Nothing to acknowledge: a result leaves the channel when it is read.
    async fn ack(&mut self, _batch: &FeedBatch) -> Result<(), FeedError> {
        Ok(())
    }

    fn is_attached(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CheckStatus;
    use chrono::Utc;

    #[tokio::test]
    async fn batches_in_order_and_closes_when_the_publisher_is_gone() {
        let (publisher, mut feed) = channel(16);
        let now = Utc::now();
        for i in 0..5 {
            let r = CheckResult::new(&format!("s{i}"), "http://x/", "r", now, now, CheckStatus::Success);
            publisher.publish(&r).await.unwrap();
        }
        let b = feed.next_batch(3, Duration::from_millis(10)).await.unwrap();
        let sites: Vec<&str> =
            b.records.iter().map(|r| r.decoded.as_ref().unwrap().site_id.as_str()).collect();
        assert_eq!(sites, ["s0", "s1", "s2"]);
        let first = b.records[0].raw.position.offset;
        assert_eq!(b.records.iter().map(|r| r.raw.position.offset - first).collect::<Vec<_>>(), [0, 1, 2]);
        drop(publisher);
        assert_eq!(feed.next_batch(10, Duration::from_millis(10)).await.unwrap().len(), 2);
        assert!(matches!(feed.next_batch(10, Duration::from_millis(10)).await, Err(FeedError::Closed)));
    }
}
