//! The ports: what the producer and consumer need from the outside world, in domain terms only.
//! Adapters (hyper, rdkafka, sqlx, in-memory channels) implement these; only `app.rs` names them.

use std::borrow::Borrow;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::{CheckResult, DayTally, Incident, IncidentEvent, Site, SiteStatus, storable_text};
use crate::notify::{Claimed, LastDelivery, Outcome, Outgoing, Silence};

/// Performs one check. Infallible by design: every way a site can fail is data in the result.
pub trait SiteProbe: Send + Sync + 'static {
    fn check(&self, site: &Site, scheduled_at: DateTime<Utc>) -> impl Future<Output = CheckResult> + Send;
}

/// Why a publish did not complete.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the broker did not acknowledge the record")]
    Delivery(#[source] BoxError),
    #[error("flush did not finish before the deadline")]
    Flush(#[source] BoxError),
}

/// Ships results. `publish` returns only once the result is acknowledged (or failed for good).
pub trait StatusPublisher: Send + Sync + 'static {
    fn publish(&self, result: &CheckResult) -> impl Future<Output = Result<(), PublishError>> + Send;
    fn flush(&self, deadline: Duration) -> impl Future<Output = Result<(), PublishError>> + Send;
    /// True while the destination can be reached (e.g. a broker connection is up), so that a
    /// producer that could only queue its results reports itself not ready.
    fn is_connected(&self) -> bool;
    /// A refusal that waiting will not heal (the broker rejected the credentials), said so that a
    /// bounded run (`--once`) ends at once instead of waiting out its grace period.
    fn refused(&self) -> Option<String> {
        None
    }
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

/// Longest reason kept with a dead letter.
const MAX_REASON_BYTES: usize = 4096;

impl DeadLetter {
    /// A dead letter for `raw`; the reason is made storable (no NUL, bounded), since it may
    /// quote what the record carried.
    pub fn new(raw: &RawRecord, error: &str) -> Self {
        DeadLetter {
            position: raw.position.clone(),
            key: raw.key.clone(),
            payload: raw.payload.clone(),
            error: storable_text(error, MAX_REASON_BYTES),
        }
    }
}

/// One record of a batch: as it arrived, and what decoding it gave (a check result, or for
/// `sitemon notify` an incident event).
#[derive(Debug)]
pub struct Received<T = CheckResult> {
    pub raw: RawRecord,
    /// The decoded record, or why the bytes are not one.
    pub decoded: Result<T, String>,
}

/// One batch from the feed, in arrival order: every record of it is what `ack` acknowledges.
#[derive(Debug)]
pub struct FeedBatch<T = CheckResult> {
    pub records: Vec<Received<T>>,
}

impl<T> Default for FeedBatch<T> {
    fn default() -> Self {
        FeedBatch { records: Vec::new() }
    }
}

impl<T> FeedBatch<T> {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }
}

/// An adapter's own error, kept as the source of a port error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("acknowledging the batch failed")]
    Ack(#[source] BoxError),
    /// The feed has ended for good (an in-memory feed whose producer stopped).
    #[error("the feed has ended")]
    Closed,
}

/// The consumer's source of results (and `sitemon notify`'s of incident events, with `T` =
/// `IncidentEvent`). `ack` only after the store committed the batch.
pub trait StatusFeed<T = CheckResult>: Send + 'static {
    fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<FeedBatch<T>, FeedError>> + Send;
    fn ack(&mut self, batch: &FeedBatch<T>) -> impl Future<Output = Result<(), FeedError>> + Send;
    /// True once the feed is attached to its source (e.g. partitions assigned), so that an
    /// empty batch means "drained" rather than "not connected yet".
    fn is_attached(&self) -> bool;
    /// Leaves the source (committing what was acknowledged), giving up after `limit`; false if
    /// that did not finish in time. Blocking: call it from a blocking thread.
    fn close_within(self, limit: Duration) -> bool
    where
        Self: Sized,
    {
        let _ = limit;
        true
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or the transaction failed for a passing reason.
    #[error("storage unavailable")]
    Unavailable(#[source] BoxError),
    /// The database rejected the data itself.
    #[error("storage rejected the batch")]
    Rejected(#[source] BoxError),
}

/// Keeps the latest status per site and the history. Idempotent: storing the same batch twice
/// changes nothing; an older result never overwrites a newer latest status.
pub trait StatusStore: Send + Sync + 'static {
    /// Stores a batch in one transaction: history, dead letters and the latest status. The
    /// latest status folds in only the results that were new to the history, so a replayed or
    /// overlapping batch changes nothing, and one that arrives out of order is recomputed.
    fn store<R: Borrow<CheckResult> + Sync>(
        &self,
        results: &[R],
        dead_letters: &[DeadLetter],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The latest status of every site, ordered by site and region.
    fn latest(&self) -> impl Future<Output = Result<Vec<SiteStatus>, StoreError>> + Send;

    /// The incidents still open: site-wide ones first, then by site and region.
    fn open_incidents(&self) -> impl Future<Output = Result<Vec<Incident>, StoreError>> + Send;

    /// Deletes history scheduled before `cutoff`; returns how many rows (or partitions) went.
    fn prune(&self, cutoff: DateTime<Utc>) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Where a page of a report's results ends: the next page starts after this result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultKey {
    pub scheduled_at: DateTime<Utc>,
    pub check_id: uuid::Uuid,
}

/// What `sitemon report` reads: one site's history over a window `[from, to)` of scheduled
/// times, every region together.
pub trait ReportSource: Send + Sync + 'static {
    /// Results per UTC day, days without a result left out, oldest first.
    fn daily(
        &self,
        site_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<DayTally>, StoreError>> + Send;

    /// The site's incidents (of the site as a whole and of each region) that overlap the
    /// window: started before `to`, not ended at or before `from`; oldest first.
    fn incidents(
        &self,
        site_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Incident>, StoreError>> + Send;

    /// Up to `limit` results of the window after `after`, ordered by scheduled time and check
    /// id: a page of the history.
    fn results(
        &self,
        site_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<ResultKey>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<CheckResult>, StoreError>> + Send;
}

/// Why a schema registry gave no schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaLookupError {
    /// The registry could not be reached or answered with a passing failure: ask again later.
    #[error("schema registry unavailable")]
    Unavailable(#[source] BoxError),
    /// The registry answered that it has no schema with this id.
    #[error("no schema with id {id} in the registry: {message}")]
    Unknown { id: u32, message: String },
    /// No registry is configured: records in its framing stay undecodable.
    #[error("no schema registry configured")]
    NotConfigured,
}

/// Writer schemas by the id a schema registry gave them (the Confluent framing carries the id).
pub trait SchemaLookup: Send + Sync + 'static {
    /// The schema's JSON text as the registry holds it.
    fn schema_by_id(&self, id: u32) -> impl Future<Output = Result<String, SchemaLookupError>> + Send;
}

/// No registry configured: Confluent-framed records are dead letters that say so.
pub struct NoRegistry;

impl SchemaLookup for NoRegistry {
    async fn schema_by_id(&self, _id: u32) -> Result<String, SchemaLookupError> {
        Err(SchemaLookupError::NotConfigured)
    }
}

/// An incident event stored in the outbox and not yet published: its place in the outbox
/// (increasing in the order the events were stored) and the event.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    pub seq: i64,
    pub event: IncidentEvent,
}

/// The incident events the store wrote with their batches, to be published and then marked.
/// Several processes may share one outbox: an adapter lets one of them publish at a time (the
/// others see nothing pending), so that an event is published twice only after a failure.
pub trait EventOutbox: Send + Sync + 'static {
    /// Up to `max` unpublished events, oldest first; none while another process publishes.
    fn pending(&self, max: usize) -> impl Future<Output = Result<Vec<PendingEvent>, StoreError>> + Send;
    /// Marks these events (by `seq`) published. Marking one twice changes nothing.
    fn mark_published(&self, seqs: &[i64]) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// How many events wait to be published, whoever publishes them.
    fn unpublished(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Where incident events go. `publish` returns once the event is acknowledged (or failed).
pub trait EventSink: Send + Sync + 'static {
    fn publish(&self, event: &IncidentEvent) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// A silence to add: its id (made by the caller), the sites it covers (none: every site), its
/// time span and why.
pub struct NewSilence<'a> {
    pub id: uuid::Uuid,
    pub sites: &'a [crate::notify::Pattern],
    pub window: (DateTime<Utc>, DateTime<Utc>),
    pub reason: &'a str,
}

/// `sitemon notify`'s record of deliveries. Several instances may share it: a delivery is
/// leased to one sender at a time, and a lease that ran out (its sender died) is claimed again.
pub trait DeliveryStore: Send + Sync + 'static {
    /// Records planned deliveries; one already recorded (by its id) changes nothing, so a batch
    /// of events read again plans nothing new.
    fn record(&self, planned: &[Outgoing]) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Leases up to `max` deliveries due for `provider`, oldest first, each the oldest unfinished
    /// one of its subject for that provider (so a closing never overtakes its opening).
    fn claim(
        &self,
        provider: &str,
        max: usize,
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<Claimed>, StoreError>> + Send;
    /// Records what the provider answered (and when to try again, for a retry) — if the claim
    /// still holds the delivery (a lease that ran out was taken over).
    fn finish(
        &self,
        delivery: &Claimed,
        outcome: &Outcome,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// How many deliveries to these providers are not finished (neither sent, failed nor silenced).
    fn unfinished(&self, providers: &[String]) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Which of these incidents the consumer's `incidents` table still has open.
    fn still_open(
        &self,
        incidents: &[uuid::Uuid],
    ) -> impl Future<Output = Result<Vec<uuid::Uuid>, StoreError>> + Send;
    /// The routes that recorded an opening of these incidents on its own, not held back:
    /// (route, incident). What a notifier that did not read those openings itself learns
    /// before it plans their closings.
    fn told(
        &self,
        incidents: &[uuid::Uuid],
    ) -> impl Future<Output = Result<Vec<(String, uuid::Uuid)>, StoreError>> + Send;
    /// The newest delivery about each of these incidents that has one.
    fn last_deliveries(
        &self,
        subjects: &[uuid::Uuid],
    ) -> impl Future<Output = Result<Vec<LastDelivery>, StoreError>> + Send;
    /// The silences that have not ended by `now` (`sitemon silence add`).
    fn silences(&self, now: DateTime<Utc>) -> impl Future<Output = Result<Vec<Silence>, StoreError>> + Send;
    /// Adds a silence (`sitemon silence add`).
    fn add_silence(&self, silence: &NewSilence<'_>) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes a silence; false if there was none with that id.
    fn remove_silence(&self, id: uuid::Uuid) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Sends one delivery to its provider. Infallible by design: every answer, and every way of
/// getting none, is an [`Outcome`].
pub trait Sender: Send + Sync + 'static {
    fn send(&self, delivery: &Claimed) -> impl Future<Output = Outcome> + Send;
}
