//! The consumer runner: takes batches from a [`StatusFeed`], stores each in one transaction
//! through a [`StatusStore`], and acknowledges the batch only after the store committed.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
    shutdown: CancellationToken,
) -> Result<ConsumerReport, ConsumerError> {
    let mut report = ConsumerReport::default();
    let mut idle_since: Option<Instant> = None;
    let mut next_prune = Instant::now();
    loop {
        if let Some(retention) = opts.retention
            && Instant::now() >= next_prune
        {
            prune(store, retention).await;
            next_prune = Instant::now() + PRUNE_EVERY;
        }
        let batch = tokio::select! {
            b = feed.next_batch(opts.batch_size, opts.batch_wait) => b,
            _ = shutdown.cancelled() => break,
        };
        let batch = match batch {
            Ok(b) => b,
            Err(crate::ports::FeedError::Closed) => break,
            Err(e) => return Err(e.into()),
        };
        if batch.is_empty() {
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
        let Some(dead) = store_with_retry(store, &batch, &shutdown).await else {
            break;
        };
        feed.ack(&batch).await?;
        report.stored += batch.results.len() as u64;
        report.dead_letters += dead as u64;
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
    shutdown: &CancellationToken,
) -> Option<usize> {
    let mut backoff = backoff();
    loop {
        let attempt = match store.store(&batch.results, &batch.dead_letters).await {
            Err(StoreError::Rejected(e)) => {
                tracing::warn!(error = %e, "batch rejected: storing record by record");
                isolate_rejected(store, batch).await
            }
            other => other.map(|()| batch.dead_letters.len()),
        };
        match attempt {
            Ok(dead) => return Some(dead),
            Err(e) => {
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

fn backoff() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

async fn isolate_rejected<S: StatusStore>(store: &S, batch: &FeedBatch) -> Result<usize, StoreError> {
    let mut dead: Vec<DeadLetter> = batch.dead_letters.clone();
    for (result, position) in batch.results.iter().zip(&batch.result_positions) {
        match store.store(std::slice::from_ref(result), &[]).await {
            Ok(()) => {}
            Err(StoreError::Rejected(e)) => {
                dead.push(DeadLetter {
                    position: position.clone(),
                    key: Some(result.site_id.clone().into_bytes()),
                    payload: wire::encode(result).ok(),
                    error: format!("rejected by the database: {e}"),
                });
            }
            Err(e) => return Err(e),
        }
    }
    store.store(&[], &dead).await?;
    Ok(dead.len())
}
