//! The producer runner: schedules every site on its slots, checks it through a [`SiteProbe`],
//! and publishes each result through a [`StatusPublisher`]. Knows no adapter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::{CheckResult, CheckStatus, Site};
use crate::ports::{SiteProbe, StatusPublisher};
use crate::schedule::{next_slot_after, phase, slots_between};

#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// Check every site once, publish, flush, and return.
    pub once: bool,
    /// Most checks running at the same time.
    pub max_concurrency: usize,
    /// How long to wait for in-flight checks and deliveries after shutdown is requested.
    pub grace: Duration,
    pub region: String,
    /// Log one line per result (for `sitemon run` without a terminal).
    pub log_results: bool,
}

/// What the producer did, for the exit status and the last log line.
#[derive(Debug, Default)]
pub struct ProducerReport {
    pub published: u64,
    pub failed: u64,
}

struct Counters {
    published: AtomicU64,
    failed: AtomicU64,
}

async fn publish<P: StatusPublisher>(publisher: &P, counters: &Counters, result: CheckResult, log: bool) {
    if log {
        tracing::info!(
            site = %result.site_id,
            status = result.status.as_str(),
            code = result.status_code,
            total_ms = result.total_us.map(|us| us / 1000),
            failure = result.failure_kind.map(|k| k.as_str()),
            error = result.error.as_deref(),
            "check"
        );
    }
    match publisher.publish(&result).await {
        Ok(()) => {
            counters.published.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(site = %result.site_id, check_id = %result.check_id, error = %e, "result not published");
        }
    }
}

pub async fn run<P: SiteProbe, S: StatusPublisher>(
    sites: Vec<Site>,
    probe: Arc<P>,
    publisher: Arc<S>,
    opts: ProducerOptions,
    shutdown: CancellationToken,
) -> ProducerReport {
    let counters = Arc::new(Counters { published: AtomicU64::new(0), failed: AtomicU64::new(0) });
    let limit = Arc::new(Semaphore::new(opts.max_concurrency.max(1)));
    let tracker = TaskTracker::new();
    for site in sites {
        let (probe, publisher, counters, limit, tracker2, shutdown, opts) = (
            probe.clone(),
            publisher.clone(),
            counters.clone(),
            limit.clone(),
            tracker.clone(),
            shutdown.clone(),
            opts.clone(),
        );
        tracker.spawn(async move {
            if opts.once {
                let _permit = limit.acquire().await.expect("semaphore open");
                let result = probe.check(&site, Utc::now()).await;
                publish(&*publisher, &counters, result, opts.log_results).await;
            } else {
                site_loop(site, probe, publisher, counters, limit, tracker2, shutdown, opts).await;
            }
        });
    }
    tracker.close();
    if !opts.once {
        shutdown.cancelled().await;
    }
    if tokio::time::timeout(opts.grace, tracker.wait()).await.is_err() {
        tracing::warn!(grace = ?opts.grace, "in-flight checks did not finish within the grace period");
    }
    if let Err(e) = publisher.flush(opts.grace).await {
        tracing::error!(error = %e, "flushing the publisher failed");
    }
    ProducerReport {
        published: counters.published.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
    }
}

#[allow(clippy::too_many_arguments)]
async fn site_loop<P: SiteProbe, S: StatusPublisher>(
    site: Site,
    probe: Arc<P>,
    publisher: Arc<S>,
    counters: Arc<Counters>,
    limit: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    opts: ProducerOptions,
) {
    let phase = phase(&site.id, site.interval);
    let mut slot = next_slot_after(Utc::now(), site.interval, phase);
    loop {
        let wait = (slot - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("semaphore open"),
            _ = shutdown.cancelled() => return,
        };
        let result = probe.check(&site, slot).await;
        drop(permit);
        let (p, c, log) = (publisher.clone(), counters.clone(), opts.log_results);
        tracker.spawn(async move { publish(&*p, &c, result, log).await });

        let next = next_slot_after(Utc::now(), site.interval, phase);
        for missed in slots_between(slot, next, site.interval) {
            let now = Utc::now();
            let mut r =
                CheckResult::new(&site.id, site.url.as_str(), &opts.region, missed, now, CheckStatus::Missed);
            r.error = Some("the slot could not start before the next one was due".to_owned());
            tracing::warn!(site = %site.id, slot = %missed, "missed slot");
            let (p, c, log) = (publisher.clone(), counters.clone(), opts.log_results);
            tracker.spawn(async move { publish(&*p, &c, r, log).await });
        }
        slot = next;
    }
}
