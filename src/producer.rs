//! The producer runner: schedules every site on its slots, checks it through a [`SiteProbe`]
//! under a global and a per-host concurrency cap, and publishes each result through a
//! [`StatusPublisher`]. A slot that cannot start before the next one is due becomes a MISSED
//! record. Knows no adapter.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::{CheckResult, CheckStatus, Site};
use crate::ports::{SiteProbe, StatusPublisher};
use crate::schedule::{Clock, next_slot_after, phase};

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
    /// Publishes in the background, but first waits while `max_in_flight` results are
    /// unacknowledged: a slow broker pushes back on the scheduler.
    async fn publish(self: &Arc<Self>, result: CheckResult) {
        let permit = self.in_flight.clone().acquire_owned().await.expect("semaphores are never closed");
        let me = self.clone();
        self.tracker.spawn(async move {
            me.publish_now(result).await;
            drop(permit);
        });
    }

    /// One scheduled slot: permits (until the next slot is due), check, publish; or MISSED.
    /// `window` is this result's place in the in-flight window, held until it is acknowledged.
    async fn run_slot(
        &self,
        e: &Scheduled,
        slot: DateTime<Utc>,
        next: DateTime<Utc>,
        window: OwnedSemaphorePermit,
    ) {
        let got = tokio::select! {
            p = permits(e.host.clone(), self.global.clone()) => Some(p),
            _ = tokio::time::sleep_until(self.clock.instant(next)) => None,
        };
        let result = match got {
            Some(p) => {
                // Boxed: a slot waiting for permits then holds a pointer, not the whole check's
                // state, so an overloaded producer's waiting slots stay small.
                let r = Box::pin(self.check(&e.site, slot)).await;
                drop(p);
                r
            }
            None => self.missed_result(&e.site, slot),
        };
        self.publish_now(result).await;
        drop(window);
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

    fn missed_result(&self, site: &Site, slot: DateTime<Utc>) -> CheckResult {
        self.missed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("sitemon_missed_slots_total").increment(1);
        let now = self.clock.now();
        let mut r =
            CheckResult::new(&site.id, site.url.as_str(), &self.opts.region, slot, now, CheckStatus::Missed);
        r.error = Some("the slot could not start before the next one was due".to_owned());
        tracing::warn!(site = %site.id, slot = %slot, "missed slot");
        r
    }

    async fn missed(self: &Arc<Self>, site: &Site, slot: DateTime<Utc>) {
        let r = self.missed_result(site, slot);
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

/// A site with what the scheduler keeps for it.
struct Scheduled {
    site: Site,
    phase: i64,
    host: Arc<Semaphore>,
    /// A check of this site is under way (waiting for permits, checking or publishing).
    busy: AtomicBool,
}

/// The sites a producer checks, each with its phase and its host's permit pool, in one shared
/// allocation (a task holds it and an index): 100k sites take one block, not 100k.
pub struct Roster {
    sites: Arc<[Scheduled]>,
}

impl Roster {
    pub fn new(sites: Vec<Site>, opts: &ProducerOptions) -> Self {
        let mut hosts: HashMap<String, Arc<Semaphore>> = HashMap::new();
        let sites = sites
            .into_iter()
            .map(|site| {
                let host = hosts
                    .entry(site.url.host_str().unwrap_or_default().to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(opts.per_host_concurrency.max(1))))
                    .clone();
                Scheduled { phase: phase(&site.id, site.interval), site, host, busy: AtomicBool::new(false) }
            })
            .collect();
        Roster { sites }
    }
}

pub async fn run<P: SiteProbe, S: StatusPublisher>(
    roster: Roster,
    probe: Arc<P>,
    publisher: Arc<S>,
    opts: ProducerOptions,
    shutdown: CancellationToken,
) -> ProducerReport {
    let scheduled = roster.sites;
    let sites_timeout = scheduled.iter().map(|s| s.site.timeout).max().unwrap_or_default();
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
    if opts.once {
        for i in 0..scheduled.len() {
            let (s, all) = (shared.clone(), scheduled.clone());
            shared.tracker.spawn(async move {
                let e = &all[i];
                let p = permits(e.host.clone(), s.global.clone()).await;
                let result = s.check(&e.site, s.clock.now()).await;
                drop(p);
                s.publish(result).await;
            });
        }
    } else {
        schedule(&shared, scheduled).await;
    }
    shared.tracker.close();
    // Continuous: stopped by shutdown, then allow `grace`. Once: allow the longest check plus `grace`.
    let allowance = if opts.once { sites_timeout + opts.grace } else { opts.grace };
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

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn at(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).expect("slots stay within chrono's range")
}

/// One timer for all sites: a heap of (next slot, site) pairs. Each due slot gets a task that
/// waits for its permits until the site's next slot, checks and publishes; a slot whose site is
/// still busy, or that the scheduler reaches only after the next one is due, is a MISSED record.
/// Returns on shutdown.
async fn schedule<P: SiteProbe, S: StatusPublisher>(s: &Arc<Shared<P, S>>, sites: Arc<[Scheduled]>) {
    let now = s.clock.now();
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = sites
        .iter()
        .enumerate()
        .map(|(i, e)| Reverse((next_slot_after(now, e.site.interval, e.phase).timestamp_micros(), i)))
        .collect();
    while let Some(&Reverse((due, _))) = heap.peek() {
        tokio::select! {
            _ = tokio::time::sleep_until(s.clock.instant(at(due))) => {}
            _ = s.shutdown.cancelled() => return,
        }
        let now = s.clock.now().timestamp_micros();
        while let Some(&Reverse((due, i))) = heap.peek() {
            if due > now {
                break;
            }
            heap.pop();
            let e = &sites[i];
            let step = micros(e.site.interval);
            let mut slot = due;
            // Slots whose successor is already due were never started.
            while slot + step <= now {
                s.missed(&e.site, at(slot)).await;
                slot += step;
            }
            heap.push(Reverse((slot + step, i)));
            if e.busy.swap(true, Ordering::AcqRel) {
                s.missed(&e.site, at(slot)).await;
                continue;
            }
            // Taken here, so a full window holds the scheduler back instead of piling up tasks.
            let window = s.in_flight.clone().acquire_owned().await.expect("semaphores are never closed");
            let (s2, all) = (s.clone(), sites.clone());
            s.tracker.spawn(async move {
                let e = &all[i];
                s2.run_slot(e, at(slot), at(slot + step), window).await;
                e.busy.store(false, Ordering::Release);
            });
        }
    }
    s.shutdown.cancelled().await;
}
