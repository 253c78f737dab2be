//! The producer runner: schedules every site on its slots, checks it through a [`SiteProbe`]
//! under a global and a per-host concurrency cap, and publishes each result through a
//! [`StatusPublisher`]. A slot that cannot start before the next one is due becomes a MISSED
//! record. Knows no adapter.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::{CheckResult, CheckStatus, Site};
use crate::ports::{SiteProbe, StatusPublisher};
use crate::schedule::{Clock, next_slot_after, phase, slots_between};

#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// Check every site once, publish, flush, and return.
    pub once: bool,
    /// Most checks running at the same time.
    pub max_concurrency: usize,
    /// Most checks running against one host at the same time.
    pub per_host_concurrency: usize,
    /// How long to wait for in-flight checks and deliveries after shutdown is requested.
    pub grace: Duration,
    pub region: String,
    /// Log one line per result (for `sitemon run` without a terminal).
    pub log_results: bool,
    /// Most results checked but not yet acknowledged; when full, the scheduler waits.
    pub max_in_flight: usize,
}

/// What the producer did, for the exit status and the last log line.
#[derive(Debug, Default)]
pub struct ProducerReport {
    pub published: u64,
    pub failed: u64,
    pub missed: u64,
}

impl ProducerReport {
    /// True when every result the producer made was acknowledged.
    pub fn complete(&self) -> bool {
        self.failed == 0
    }
}

/// Everything the per-site loops share.
struct Shared<P, S> {
    probe: Arc<P>,
    publisher: Arc<S>,
    global: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Cancelled when the grace period is over: retries stop and what is left counts as failed.
    abandon: CancellationToken,
    in_flight: Arc<Semaphore>,
    clock: Clock,
    opts: ProducerOptions,
    published: AtomicU64,
    failed: AtomicU64,
    missed: AtomicU64,
}

impl<P: SiteProbe, S: StatusPublisher> Shared<P, S> {
    /// Publishes in the background so the site loop can keep its schedule, but waits while
    /// `max_in_flight` results are unacknowledged: a slow broker pushes back on the scheduler.
    async fn publish(self: &Arc<Self>, result: CheckResult) {
        let permit = self.in_flight.clone().acquire_owned().await.expect("semaphores are never closed");
        let me = self.clone();
        self.tracker.spawn(async move {
            me.publish_now(result).await;
            drop(permit);
        });
    }

    /// Publishes until the broker acknowledges, retrying with backoff; gives up only when the
    /// grace period after shutdown is over.
    async fn publish_now(&self, result: CheckResult) {
        if self.opts.log_results {
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
        let mut backoff = crate::retry::backoff();
        loop {
            let attempt = tokio::select! {
                r = self.publisher.publish(&result) => r,
                _ = self.abandon.cancelled() => Err(crate::ports::PublishError::Delivery("grace period over".into())),
            };
            match attempt {
                Ok(()) => {
                    self.published.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("sitemon_results_published_total", "status" => result.status.as_str())
                        .increment(1);
                    return;
                }
                Err(e) if self.abandon.is_cancelled() => {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(site = %result.site_id, check_id = %result.check_id, error = %e, "result not published before the grace period ended");
                    return;
                }
                Err(e) => {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                    metrics::counter!("sitemon_publish_retries_total").increment(1);
                    tracing::warn!(site = %result.site_id, error = %e, retry_in = ?delay, "publish failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.abandon.cancelled() => {}
                    }
                }
            }
        }
    }

    async fn missed(self: &Arc<Self>, site: &Site, slot: DateTime<Utc>) {
        self.missed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("sitemon_missed_slots_total").increment(1);
        let mut r = CheckResult::new(
            &site.id,
            site.url.as_str(),
            &self.opts.region,
            slot,
            self.clock.now(),
            CheckStatus::Missed,
        );
        r.error = Some("the slot could not start before the next one was due".to_owned());
        tracing::warn!(site = %site.id, slot = %slot, "missed slot");
        self.publish(r).await;
    }

    /// One check with the caller's permits held; `started_at` is the scheduler's clock reading.
    async fn check(&self, site: &Site, slot: DateTime<Utc>) -> CheckResult {
        let started = self.clock.now();
        let mut result = self.probe.check(site, slot).await;
        result.started_at = started;
        let lag = (started - slot).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
        metrics::histogram!("sitemon_schedule_lag_seconds").record(lag);
        if let Some(us) = result.total_us {
            metrics::histogram!("sitemon_check_seconds").record(us as f64 / 1e6);
        }
        result
    }
}

async fn permits(
    host: Arc<Semaphore>,
    global: Arc<Semaphore>,
) -> (OwnedSemaphorePermit, OwnedSemaphorePermit) {
    let h = host.acquire_owned().await.expect("semaphores are never closed");
    let g = global.acquire_owned().await.expect("semaphores are never closed");
    (h, g)
}

pub async fn run<P: SiteProbe, S: StatusPublisher>(
    sites: Vec<Site>,
    probe: Arc<P>,
    publisher: Arc<S>,
    opts: ProducerOptions,
    shutdown: CancellationToken,
) -> ProducerReport {
    let mut hosts: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let sites_timeout = sites.iter().map(|s| s.timeout).max().unwrap_or_default();
    let shared = Arc::new(Shared {
        probe,
        publisher: publisher.clone(),
        global: Arc::new(Semaphore::new(opts.max_concurrency.max(1))),
        tracker: TaskTracker::new(),
        shutdown: shutdown.clone(),
        abandon: CancellationToken::new(),
        in_flight: Arc::new(Semaphore::new(opts.max_in_flight.max(1))),
        clock: Clock::start(),
        opts: opts.clone(),
        published: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        missed: AtomicU64::new(0),
    });
    for site in sites {
        let host = site.url.host_str().unwrap_or_default().to_owned();
        let host_limit = hosts
            .entry(host)
            .or_insert_with(|| Arc::new(Semaphore::new(opts.per_host_concurrency.max(1))))
            .clone();
        let s = shared.clone();
        shared.tracker.spawn(async move {
            if s.opts.once {
                let _p = permits(host_limit, s.global.clone()).await;
                let result = s.check(&site, s.clock.now()).await;
                drop(_p);
                s.publish(result).await;
            } else {
                site_loop(&s, &site, host_limit).await;
            }
        });
    }
    shared.tracker.close();
    // Continuous: run until shutdown, then allow `grace`. Once: allow the longest check plus `grace`.
    let allowance = if opts.once {
        sites_timeout + opts.grace
    } else {
        shutdown.cancelled().await;
        opts.grace
    };
    if tokio::time::timeout(allowance, shared.tracker.wait()).await.is_err() {
        tracing::warn!(allowance = ?allowance, "in-flight checks and deliveries did not finish in time");
        shared.abandon.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), shared.tracker.wait()).await;
    }
    if let Err(e) = publisher.flush(opts.grace).await {
        tracing::error!(error = %e, "flushing the publisher failed");
    }
    ProducerReport {
        published: shared.published.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        missed: shared.missed.load(Ordering::Relaxed),
    }
}

async fn site_loop<P: SiteProbe, S: StatusPublisher>(
    s: &Arc<Shared<P, S>>,
    site: &Site,
    host: Arc<Semaphore>,
) {
    let phase = phase(&site.id, site.interval);
    let step = chrono::Duration::from_std(site.interval).expect("intervals are validated");
    let mut slot = next_slot_after(s.clock.now(), site.interval, phase);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(s.clock.instant(slot)) => {}
            _ = s.shutdown.cancelled() => return,
        }
        let got = tokio::select! {
            p = permits(host.clone(), s.global.clone()) => Some(p),
            _ = tokio::time::sleep_until(s.clock.instant(slot + step)) => None,
            _ = s.shutdown.cancelled() => return,
        };
        match got {
            Some(p) => {
                let result = s.check(site, slot).await;
                drop(p);
                s.publish(result).await;
            }
            None => s.missed(site, slot).await,
        }
        // The first slot at or after now: one that is due right now still gets its check.
        let next = next_slot_after(s.clock.now() - chrono::Duration::microseconds(1), site.interval, phase);
        for skipped in slots_between(slot, next, site.interval) {
            s.missed(site, skipped).await;
        }
        slot = next;
    }
}
