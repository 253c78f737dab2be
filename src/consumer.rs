//! The consumer runner: takes batches from a [`StatusFeed`], stores each in one transaction
//! through a [`StatusStore`], and acknowledges the batch only after the store committed.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::ports::{DeadLetter, FeedBatch, StatusFeed, StatusStore, StoreError};
use crate::wire;

#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub batch_size: usize,
    pub batch_wait: Duration,
    /// Return once the feed is attached and nothing arrived for this long (tests, backfills).
    pub exit_when_idle: Option<Duration>,
    /// Delete history older than this, checked at start and then hourly.
    pub retention: Option<Duration>,
}

const PRUNE_EVERY: Duration = Duration::from_secs(3600);

async fn prune<S: StatusStore>(store: &S, retention: Duration) {
    let Ok(age) = chrono::Duration::from_std(retention) else { return };
    match store.prune(chrono::Utc::now() - age).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "history past retention removed"),
        Err(e) => tracing::warn!(error = %e, "removing history past retention failed; will retry"),
    }
}

#[derive(Debug, Default)]
pub struct ConsumerReport {
    pub stored: u64,
    pub dead_letters: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error(transparent)]
    Feed(#[from] crate::ports::FeedError),
}

pub async fn run<F: StatusFeed, S: StatusStore>(
    feed: &mut F,
    store: &S,
    opts: &ConsumerOptions,
    health: &Health,
    shutdown: CancellationToken,
) -> Result<ConsumerReport, ConsumerError> {
    let mut report = ConsumerReport::default();
    let mut idle_since: Option<Instant> = None;
    let mut next_prune = Instant::now();
    // While one batch is being stored, the next one is read and decoded.
    let mut prefetched: Option<Result<FeedBatch, crate::ports::FeedError>> = None;
    loop {
        if let Some(retention) = opts.retention
            && Instant::now() >= next_prune
        {
            prune(store, retention).await;
            next_prune = Instant::now() + PRUNE_EVERY;
        }
        let batch = match prefetched.take() {
            Some(b) => b,
            None => tokio::select! {
                b = feed.next_batch(opts.batch_size, opts.batch_wait) => b,
                _ = shutdown.cancelled() => break,
            },
        };
        let batch = match batch {
            Ok(b) => b,
            Err(crate::ports::FeedError::Closed) => break,
            Err(e) => return Err(e.into()),
        };
        if batch.is_empty() {
            if feed.is_attached() {
                health.ready();
            } else {
                health.not_ready("waiting for the feed (e.g. partition assignment)");
            }
            if let Some(limit) = opts.exit_when_idle {
                if feed.is_attached() {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= limit {
                        tracing::info!("feed drained: exiting as asked");
                        break;
                    }
                }
            }
            continue;
        }
        idle_since = None;
        let started = Instant::now();
        let (stored, next) = tokio::join!(
            store_with_retry(store, &batch, health, &shutdown),
            feed.next_batch(opts.batch_size, opts.batch_wait)
        );
        let Some(dead) = stored else {
            break;
        };
        feed.ack(&batch).await?;
        prefetched = Some(next);
        report.stored += batch.results.len() as u64;
        report.dead_letters += dead as u64;
        metrics::counter!("sitemon_stored_results_total").increment(batch.results.len() as u64);
        metrics::counter!("sitemon_dead_letters_total").increment(dead as u64);
        metrics::histogram!("sitemon_batch_store_seconds").record(started.elapsed().as_secs_f64());
        tracing::debug!(records = batch.len(), "batch stored and acknowledged");
    }
    Ok(report)
}

/// Stores a batch, waiting out an unavailable database with backoff. A batch the database
/// rejects is stored record by record, and the rejected records go to the dead letters.
/// Returns the number of dead letters, or `None` when shutdown came first.
async fn store_with_retry<S: StatusStore>(
    store: &S,
    batch: &FeedBatch,
    health: &Health,
    shutdown: &CancellationToken,
) -> Option<usize> {
    let mut backoff = crate::retry::backoff();
    loop {
        let attempt = match store.store(&batch.results, &batch.dead_letters).await {
            Err(StoreError::Rejected(e)) => {
                tracing::warn!(error = %e, "batch rejected: storing record by record");
                isolate_rejected(store, batch).await
            }
            other => other.map(|()| batch.dead_letters.len()),
        };
        match attempt {
            Ok(dead) => {
                health.ready();
                return Some(dead);
            }
            Err(e) => {
                health.not_ready(format!("cannot store: {e}"));
                metrics::counter!("sitemon_store_retries_total").increment(1);
                let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(error = %e, retry_in = ?delay, "storing the batch failed; offsets stay put");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
        }
    }
}

async fn isolate_rejected<S: StatusStore>(store: &S, batch: &FeedBatch) -> Result<usize, StoreError> {
    let mut dead: Vec<DeadLetter> = batch.dead_letters.clone();
    for (result, source) in batch.results.iter().zip(&batch.result_sources) {
        match store.store(std::slice::from_ref(result), &[]).await {
            Ok(()) => {}
            Err(StoreError::Rejected(e)) => {
                dead.push(DeadLetter {
                    position: source.position.clone(),
                    key: source.key.clone(),
                    // In-memory feeds keep no bytes; the record's own encoding stands in.
                    payload: source.payload.clone().or_else(|| Some(wire::encode(result))),
                    error: format!("rejected by the database: {e}"),
                });
            }
            Err(e) => return Err(e),
        }
    }
    store.store(&[], &dead).await?;
    Ok(dead.len())
}
