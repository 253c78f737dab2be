//! The ports: what the producer and consumer need from the outside world, in domain terms only.
//! Adapters (hyper, rdkafka, sqlx, in-memory channels) implement these; only `app.rs` names them.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::{CheckResult, Site, SiteStatus};

/// Performs one check. Infallible by design: every way a site can fail is data in the result.
pub trait SiteProbe: Send + Sync + 'static {
    fn check(&self, site: &Site, scheduled_at: DateTime<Utc>) -> impl Future<Output = CheckResult> + Send;
}

/// Why a publish did not complete.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the broker did not acknowledge the result: {0}")]
    Delivery(String),
    #[error("flush did not finish before the deadline: {0}")]
    Flush(String),
}

/// Ships results. `publish` returns only once the result is acknowledged (or failed for good).
pub trait StatusPublisher: Send + Sync + 'static {
    fn publish(&self, result: &CheckResult) -> impl Future<Output = Result<(), PublishError>> + Send;
    fn flush(&self, deadline: Duration) -> impl Future<Output = Result<(), PublishError>> + Send;
    /// True while the destination can be reached (e.g. a broker connection is up), so that a
    /// producer that could only queue its results reports itself not ready.
    fn is_connected(&self) -> bool;
}

/// Where a record came from in the feed; enough to quarantine it and to acknowledge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A record as it arrived: position, key and payload bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    pub position: FeedPosition,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// A record that could not be decoded or stored, kept with its raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub position: FeedPosition,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub error: String,
}

/// One batch from the feed: decoded results plus poison records, and the positions to ack.
#[derive(Debug, Default)]
pub struct FeedBatch {
    pub results: Vec<CheckResult>,
    /// Where each of `results` came from, with its raw key and bytes (same order and length),
    /// so that a result the store rejects can be quarantined exactly as it arrived.
    pub result_sources: Vec<RawRecord>,
    pub dead_letters: Vec<DeadLetter>,
    /// Every record of the batch, decoded or not: what `ack` acknowledges.
    pub positions: Vec<FeedPosition>,
}

impl FeedBatch {
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    pub fn len(&self) -> usize {
        self.positions.len()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("acknowledging the batch failed: {0}")]
    Ack(String),
    /// The feed has ended for good (an in-memory feed whose producer stopped).
    #[error("the feed has ended")]
    Closed,
}

/// The consumer's source of results. `ack` only after the store committed the batch.
pub trait StatusFeed: Send + 'static {
    fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<FeedBatch, FeedError>> + Send;
    fn ack(&mut self, batch: &FeedBatch) -> impl Future<Output = Result<(), FeedError>> + Send;
    /// True once the feed is attached to its source (e.g. partitions assigned), so that an
    /// empty batch means "drained" rather than "not connected yet".
    fn is_attached(&self) -> bool;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or the transaction failed for a passing reason.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The database rejected the data itself.
    #[error("storage rejected the batch: {0}")]
    Rejected(String),
}

/// Keeps the latest status per site and the history. Idempotent: storing the same batch twice
/// changes nothing; an older result never overwrites a newer latest status.
pub trait StatusStore: Send + Sync + 'static {
    fn store(
        &self,
        results: &[CheckResult],
        dead_letters: &[DeadLetter],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The latest status of every site, ordered by site and region.
    fn latest(&self) -> impl Future<Output = Result<Vec<SiteStatus>, StoreError>> + Send;

    /// Deletes history scheduled before `cutoff`; returns how many rows (or partitions) went.
    fn prune(&self, cutoff: DateTime<Utc>) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
