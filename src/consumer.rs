//! The consumer runner: takes batches from a [`StatusFeed`], admits what each record carries,
//! stores the batch in one transaction through a [`StatusStore`], and acknowledges it only
//! after the store committed. After shutdown, the batch being stored has the grace period, and
//! an unavailable database is retried until it ends.
//! Records in the schema-registry framing are decoded with writer schemas fetched by id through
//! a [`SchemaLookup`] and cached.

use std::collections::HashMap;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::domain::{Admission, CheckResult};
use crate::error_chain::Chain;
use crate::health::Health;
use crate::ports::{
    DeadLetter, FeedBatch, FeedError, RawRecord, SchemaLookup, SchemaLookupError, StatusFeed, StatusStore,
    StoreError,
};
use crate::retry::{self, Failure, OnStop};
use crate::wire;

#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub batch_size: usize,
    pub batch_wait: Duration,
    /// Return once the feed is attached and nothing arrived for this long (tests, backfills).
    pub exit_when_idle: Option<Duration>,
    /// Delete history older than this, checked at start and then hourly; a record older than
    /// this is a dead letter (it would only be deleted again, after making its day's partition).
    pub retention: Option<Duration>,
    /// A record whose times lie further ahead of this consumer's clock is a dead letter.
    pub max_clock_skew: Duration,
    /// After shutdown is requested, how long the batch being stored may still take.
    pub grace: Duration,
}

const PRUNE_EVERY: Duration = Duration::from_secs(3600);

async fn prune<S: StatusStore>(store: &S, retention: Duration) {
    let Ok(age) = chrono::Duration::from_std(retention) else { return };
    match store.prune(chrono::Utc::now() - age).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "history past retention removed"),
        Err(e) => tracing::warn!(error = %Chain(&e), "removing history past retention failed; will retry"),
    }
}

/// The grace period after the stop: when it ends is fixed the first time it is asked for once
/// the stop came, so that every wait of the batch in hand ends at the same instant.
struct Grace<'a> {
    shutdown: &'a CancellationToken,
    grace: Duration,
    ends: OnceLock<Instant>,
}

impl<'a> Grace<'a> {
    fn new(shutdown: &'a CancellationToken, grace: Duration) -> Self {
        Grace { shutdown, grace, ends: OnceLock::new() }
    }

    /// When the grace period ends, or `None` before the stop.
    fn ends(&self) -> Option<Instant> {
        self.shutdown.is_cancelled().then(|| *self.ends.get_or_init(|| Instant::now() + self.grace))
    }

    /// Completes when the grace period is over.
    async fn over(&self) {
        self.shutdown.cancelled().await;
        if let Some(at) = self.ends() {
            tokio::time::sleep_until(at).await;
        }
    }
}

/// The shortest pause between two attempts to store once the stop came.
const MIN_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
pub struct ConsumerReport {
    pub stored: u64,
    pub dead_letters: u64,
    /// Records of a batch that shutdown interrupted: not acknowledged, so the group reads them
    /// again (storing is idempotent); reported so that an unclean stop is visible.
    pub unstored: u64,
}

impl ConsumerReport {
    /// True when every batch taken from the feed was stored and acknowledged.
    pub fn complete(&self) -> bool {
        self.unstored == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error(transparent)]
    Feed(#[from] FeedError),
}

/// A batch as the store takes it: the admitted results with the records they came from, and
/// the dead letters (undecodable or not admitted).
struct Admitted<'a> {
    results: Vec<(&'a CheckResult, &'a RawRecord)>,
    dead: Vec<DeadLetter>,
}

fn admit(batch: &FeedBatch, admission: Admission) -> Admitted<'_> {
    let mut a = Admitted { results: Vec::with_capacity(batch.len()), dead: Vec::new() };
    for rec in &batch.records {
        match &rec.decoded {
            Ok(r) => match admission.check(r) {
                Ok(()) => {
                    if r.scheduled_at > admission.now {
                        // Admitted, but its producer's clock runs ahead of this one.
                        metrics::counter!(crate::metric::RESULTS_AHEAD).increment(1);
                    }
                    a.results.push((r, &rec.raw))
                }
                Err(why) => {
                    let mut letter = DeadLetter::new(&rec.raw, &format!("not storable: {why}"));
                    // In-memory feeds keep no bytes; the record's own encoding stands in.
                    letter.payload = letter.payload.or_else(|| Some(wire::encode(r)));
                    a.dead.push(letter);
                }
            },
            Err(e) => a.dead.push(DeadLetter::new(&rec.raw, e)),
        }
    }
    a
}

pub async fn run<F: StatusFeed, S: StatusStore, L: SchemaLookup>(
    feed: &mut F,
    store: &S,
    registry: &L,
    opts: &ConsumerOptions,
    health: &Health,
    shutdown: CancellationToken,
) -> Result<ConsumerReport, ConsumerError> {
    let mut report = ConsumerReport::default();
    let mut idle_since: Option<Instant> = None;
    let mut next_prune = Instant::now();
    let mut writer_schemas = wire::WriterSchemas::new();
    // While one batch is being stored, the next one is read and decoded.
    let mut prefetched: Option<Result<FeedBatch, FeedError>> = None;
    let grace = Grace::new(&shutdown, opts.grace);
    let grace_over = grace.over();
    tokio::pin!(grace_over);
    loop {
        // Checked before every batch: under steady traffic a batch is always prefetched.
        if shutdown.is_cancelled() {
            break;
        }
        if let Some(retention) = opts.retention
            && Instant::now() >= next_prune
        {
            // Dropping partitions can wait on readers of the table: never past a shutdown.
            tokio::select! {
                _ = prune(store, retention) => {}
                _ = shutdown.cancelled() => break,
            }
            next_prune = Instant::now() + PRUNE_EVERY;
        }
        let batch = match prefetched.take() {
            Some(b) => b,
            None => tokio::select! {
                b = feed.next_batch(opts.batch_size, opts.batch_wait) => b,
                _ = shutdown.cancelled() => break,
            },
        };
        let mut batch = match batch {
            Ok(b) => b,
            Err(FeedError::Closed) => break,
            Err(e) => return Err(e.into()),
        };
        if batch.is_empty() {
            if feed.is_attached() {
                health.ready();
            } else {
                health.not_ready("waiting for the feed (e.g. partition assignment)");
            }
            if let Some(limit) = opts.exit_when_idle
                && feed.is_attached()
            {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= limit {
                    tracing::info!("feed drained: exiting as asked");
                    break;
                }
            }
            continue;
        }
        idle_since = None;
        let started = Instant::now();
        if !decode_registered(&mut batch, registry, &mut writer_schemas, health, &shutdown).await {
            tracing::warn!(
                records = batch.len(),
                "shutdown while the schema registry was unavailable: not acknowledged, the group reads it again"
            );
            report.unstored += batch.len() as u64;
            break;
        }
        let admission =
            Admission::new(chrono::Utc::now(), opts.max_clock_skew).with_retention(opts.retention);
        let admitted = admit(&batch, admission);
        let fetch = async {
            tokio::select! {
                b = feed.next_batch(opts.batch_size, opts.batch_wait) => Some(b),
                _ = shutdown.cancelled() => None,
            }
        };
        let (stored, next) = tokio::select! {
            both = async { tokio::join!(store_in_lanes(store, &admitted, health, &grace), fetch) } => both,
            _ = &mut grace_over => (None, None),
        };
        let Some(dead) = stored else {
            tracing::warn!(
                records = batch.len(),
                "shutdown interrupted storing a batch: not acknowledged, the group reads it again"
            );
            report.unstored += batch.len() as u64;
            break;
        };
        feed.ack(&batch).await?;
        prefetched = next;
        let results = admitted.results.len() as u64;
        report.stored += results;
        report.dead_letters += dead as u64;
        metrics::counter!(crate::metric::STORED_RESULTS).increment(results);
        metrics::counter!(crate::metric::DEAD_LETTERS).increment(dead as u64);
        metrics::histogram!(crate::metric::BATCH_STORE_SECONDS).record(started.elapsed().as_secs_f64());
        tracing::debug!(records = batch.len(), "batch stored and acknowledged");
    }
    Ok(report)
}

/// Decodes the batch's records in the schema-registry framing, fetching the writer schemas of
/// ids not seen before. While the registry cannot be reached the batch waits with backoff,
/// neither acknowledged nor dead-lettered (as during a database outage); an id the registry does
/// not have is a dead letter. Returns `false` when shutdown came first.
async fn decode_registered<L: SchemaLookup>(
    batch: &mut FeedBatch,
    registry: &L,
    schemas: &mut wire::WriterSchemas,
    health: &Health,
    shutdown: &CancellationToken,
) -> bool {
    // Unknown ids are remembered for this batch only: a registry restored later may know them.
    let mut unknown: HashMap<u32, String> = HashMap::new();
    for rec in &mut batch.records {
        let Some(bytes) = rec.raw.payload.as_deref() else { continue };
        let Some(id) = wire::registry_id(bytes) else { continue };
        if !schemas.knows(id) && !unknown.contains_key(&id) {
            // A registry that accepts the connection and never answers must not hold a shutdown.
            let attempt = || async move {
                match registry.schema_by_id(id).await {
                    Ok(json) => Ok(Some(json)),
                    Err(SchemaLookupError::NotConfigured) => Ok(None),
                    Err(e @ SchemaLookupError::Unknown { .. }) => Err(Failure::Permanent(e)),
                    Err(e) => Err(Failure::Transient(e)),
                }
            };
            let on_retry = |e: &SchemaLookupError, retry_in: Duration| {
                health.not_ready(format!("cannot fetch schema {id}: {}", Chain(e)));
                metrics::counter!(crate::metric::REGISTRY_RETRIES).increment(1);
                tracing::warn!(error = %Chain(e), schema_id = id, ?retry_in, "fetching a writer schema failed; offsets stay put");
            };
            match retry::until_stopped(shutdown, OnStop::CutAttempt, attempt, on_retry).await {
                None => return false,
                Some(Ok(Some(json))) => {
                    tracing::info!(schema_id = id, "writer schema fetched from the registry");
                    schemas.learn(id, &json);
                }
                Some(Ok(None)) => {}
                Some(Err(e)) => {
                    unknown.insert(id, e.to_string());
                }
            }
        }
        if let Some(why) = unknown.get(&id) {
            rec.decoded = Err(why.clone());
        } else if schemas.knows(id) {
            rec.decoded = schemas.decode(bytes).map_err(|e| e.to_string());
        }
    }
    true
}

/// How many transactions store one batch side by side: its sites are split into this many
/// groups, each stored in a transaction of its own, at the same time, so that the database works
/// on one while the other waits on a round trip.
const LANES: usize = 2;

/// Stores a batch as [`LANES`] groups of sites at once, each with [`store_with_retry`] (the dead
/// letters go with the first). The groups' sites are disjoint, so one never waits on the other's
/// locks. The batch counts as stored once every group committed: a group committed before the
/// other failed or a stop came is stored again, harmlessly, when the batch is read again.
async fn store_in_lanes<S: StatusStore>(
    store: &S,
    batch: &Admitted<'_>,
    health: &Health,
    grace: &Grace<'_>,
) -> Option<usize> {
    let lane = |site: &str| {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        BuildHasherDefault::<DefaultHasher>::default().hash_one(site) as usize % LANES
    };
    let mut lanes: Vec<Admitted> =
        (0..LANES).map(|_| Admitted { results: Vec::new(), dead: Vec::new() }).collect();
    for &(r, raw) in &batch.results {
        lanes[lane(&r.site_id)].results.push((r, raw));
    }
    lanes[0].dead = batch.dead.clone();
    lanes.retain(|l| !l.results.is_empty() || !l.dead.is_empty());
    if lanes.len() < 2 {
        return store_with_retry(store, batch, health, grace).await;
    }
    let stored =
        futures::future::join_all(lanes.iter().map(|l| store_with_retry(store, l, health, grace))).await;
    stored.into_iter().sum()
}

/// Stores a batch, waiting out an unavailable database with backoff. A batch the database
/// rejects is stored record by record, and the rejected records go to the dead letters.
/// Returns the number of dead letters, or `None` when the grace period after a stop ended first.
///
/// A stop does not end the retries: they go on until the grace period ends (the caller also
/// cuts an attempt still under way then). After the stop, a pause never takes more than half
/// the time left, so an attempt is not skipped because the next backoff would cross the end.
async fn store_with_retry<S: StatusStore>(
    store: &S,
    batch: &Admitted<'_>,
    health: &Health,
    grace: &Grace<'_>,
) -> Option<usize> {
    let results: Vec<&CheckResult> = batch.results.iter().map(|(r, _)| *r).collect();
    let mut backoff = crate::retry::backoff();
    loop {
        let attempt = match store.store(&results, &batch.dead).await {
            Err(StoreError::Rejected(e)) => {
                tracing::warn!(error = %Chain(&*e), "batch rejected: storing record by record");
                isolate_rejected(store, batch).await
            }
            other => other.map(|()| batch.dead.len()),
        };
        match attempt {
            Ok(dead) => {
                health.ready();
                return Some(dead);
            }
            Err(e) => {
                health.not_ready(format!("cannot store: {}", Chain(&e)));
                metrics::counter!(crate::metric::STORE_RETRIES).increment(1);
                let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(error = %Chain(&e), retry_in = ?delay, "storing the batch failed; offsets stay put");
                let wake = Instant::now() + delay;
                if grace.ends().is_none() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(wake) => continue,
                        _ = grace.shutdown.cancelled() => {}
                    }
                }
                // Stopping: retry within the grace period, the pause capped by the time left.
                let ends = grace.ends()?;
                let now = Instant::now();
                let left = ends.saturating_duration_since(now);
                if left.is_zero() {
                    return None;
                }
                tokio::time::sleep_until(wake.min(now + (left / 2).max(MIN_PAUSE))).await;
            }
        }
    }
}

async fn isolate_rejected<S: StatusStore>(store: &S, batch: &Admitted<'_>) -> Result<usize, StoreError> {
    let mut dead: Vec<DeadLetter> = batch.dead.clone();
    for (result, raw) in &batch.results {
        match store.store(std::slice::from_ref(result), &[]).await {
            Ok(()) => {}
            Err(StoreError::Rejected(e)) => {
                let mut letter = DeadLetter::new(raw, &format!("rejected by the database: {}", Chain(&*e)));
                // In-memory feeds keep no bytes; the record's own encoding stands in.
                letter.payload = letter.payload.or_else(|| Some(wire::encode(result)));
                dead.push(letter);
            }
            Err(e) => return Err(e),
        }
    }
    store.store::<CheckResult>(&[], &dead).await?;
    Ok(dead.len())
}

#[cfg(test)]
#[path = "consumer_tests.rs"]
mod tests;

/// After [`run`]: leaves the feed while `alongside` (given the end of the grace period: `grace`
/// after the stop, or from now when the feed ran dry) finishes its own work, both by that end.
/// Leaving commits the stored offsets; with the broker gone librdkafka waits out its own
/// timeouts, so leaving is given up at the end (the group notices the member gone after its
/// session timeout, and nothing stored is lost: it was committed before).
pub async fn wind_down<T, F, Fut>(
    feed: F,
    stop: &CancellationToken,
    deadline: tokio::task::JoinHandle<Instant>,
    grace: Duration,
    alongside: impl FnOnce(Instant) -> Fut,
) -> anyhow::Result<()>
where
    F: StatusFeed<T>,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use anyhow::Context;
    let end = if stop.is_cancelled() {
        deadline.await.context("the shutdown deadline task failed")?
    } else {
        deadline.abort();
        Instant::now() + grace
    };
    let limit = end.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
    let (done, left) =
        tokio::join!(alongside(end), tokio::task::spawn_blocking(move || feed.close_within(limit)));
    if !left.context("closing the feed")? {
        tracing::warn!("leaving the consumer group did not finish within the grace period");
    }
    done
}
