//! The producer runner: schedules every site on its slots, checks it through a [`SiteProbe`]
//! under a global and a per-host concurrency cap, and publishes each result through a
//! [`StatusPublisher`]. A slot that cannot start before the next one is due becomes a MISSED
//! record. Once stopped, every wait (window, permits, check, publish) ends by the end of the
//! grace period, and every slot is accounted for: published, failed or abandoned. Knows no
//! adapter.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::domain::{CheckResult, CheckStatus, Site, micros};
use crate::ports::{SiteProbe, StatusPublisher};
use crate::schedule::{Clock, next_slot_after, phase};

#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// Check every site once, publish, and return once every result is acknowledged.
    pub once: bool,
    /// Most checks running at the same time.
    pub max_concurrency: usize,
    /// Most checks running against one host at the same time.
    pub per_host_concurrency: usize,
    /// How long checks in flight and deliveries may take after the stop: shutdown, or with
    /// `once` the end of the round's checks.
    pub grace: Duration,
    pub region: String,
    /// Log one line per result (for `sitemon run` without a terminal).
    pub log_results: bool,
    /// Most results checked but not yet acknowledged; when full, the scheduler waits.
    pub max_in_flight: usize,
}

/// What the producer did, for the exit status and the last log line. Every slot the producer
/// took on ends in exactly one of `published`, `failed` or `abandoned`.
#[derive(Debug, Default)]
pub struct ProducerReport {
    /// Slots taken on: due before the stop (or, with `once`, one per site).
    pub slots: u64,
    /// Results the broker acknowledged (checks and MISSED records).
    pub published: u64,
    /// Results made but not acknowledged before the grace period ended.
    pub failed: u64,
    /// MISSED records made (a slot that never started); each is also published or failed.
    pub missed: u64,
    /// Slots that ended without a result: the grace period ended while the check ran or before
    /// the slot had a place in the in-flight window.
    pub abandoned: u64,
}

impl ProducerReport {
    /// True when every slot's result was acknowledged.
    pub fn complete(&self) -> bool {
        self.failed == 0 && self.abandoned == 0
    }
}

/// Why a MISSED record was made.
const NOT_IN_TIME: &str = "the slot could not start before the next one was due";
const STOPPED: &str = "the producer stopped before the check could start";

/// A result's place in the in-flight window, held until the broker acknowledged it (or it was
/// given up); `sitemon_results_in_flight` counts the places taken.
struct Place {
    _permit: OwnedSemaphorePermit,
}

impl Place {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        metrics::gauge!("sitemon_results_in_flight").increment(1.0);
        Place { _permit: permit }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        metrics::gauge!("sitemon_results_in_flight").decrement(1.0);
    }
}

/// Everything the per-slot tasks share.
struct Shared<P, S> {
    probe: Arc<P>,
    publisher: Arc<S>,
    global: Arc<Semaphore>,
    tracker: TaskTracker,
    /// Cancelled on SIGINT/SIGTERM: no check starts after it.
    shutdown: CancellationToken,
    /// Cancelled when the grace period is over: every wait ends, retries stop, and what is left
    /// counts as failed or abandoned.
    abandon: CancellationToken,
    in_flight: Arc<Semaphore>,
    clock: Clock,
    opts: ProducerOptions,
    slots: AtomicU64,
    published: AtomicU64,
    failed: AtomicU64,
    missed: AtomicU64,
    abandoned: AtomicU64,
}

impl<P: SiteProbe, S: StatusPublisher> Shared<P, S> {
    /// Waits for a place in the in-flight window (a slow broker pushes back on the scheduler),
    /// or gives up with `None` once `stop` is cancelled.
    async fn place(&self, stop: &CancellationToken) -> Option<Place> {
        tokio::select! {
            biased;
            _ = stop.cancelled() => None,
            p = self.in_flight.clone().acquire_owned() => Some(Place::new(p.expect("semaphores are never closed"))),
        }
    }

    /// Publishes `result` in the background; its window place is freed once that is done.
    fn spawn_publish(self: &Arc<Self>, result: CheckResult, place: Place) {
        let me = self.clone();
        self.tracker.spawn(async move {
            me.publish_now(result).await;
            drop(place);
        });
    }

    /// One scheduled slot: permits (until the next slot is due or the producer stops), check,
    /// publish; or MISSED. `place` is this result's place in the in-flight window.
    async fn run_slot(&self, e: &Scheduled, slot: DateTime<Utc>, next: DateTime<Utc>, place: Place) {
        let got = tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => Err(STOPPED),
            // Before the permits: a slot whose successor is already due is missed, not late.
            _ = tokio::time::sleep_until(self.clock.instant(next)) => Err(NOT_IN_TIME),
            p = permits(e.host.clone(), self.global.clone()) => Ok(p),
        };
        let result = match got {
            Ok(p) => {
                // Boxed: a slot waiting for permits then holds a pointer, not the whole check's
                // state, so an overloaded producer's waiting slots stay small.
                let r = Box::pin(self.check_or_abandon(&e.site, slot)).await;
                drop(p);
                r
            }
            Err(why) => Some(self.missed_result(&e.site, slot, why)),
        };
        // The site is free for its next slot once this one's check is over: delivery goes on
        // in the window, so a broker outage does not stop the checks (until the window is full).
        e.busy.store(false, Ordering::Release);
        let Some(result) = result else { return };
        self.publish_now(result).await;
        drop(place);
    }

    /// `--once`: one check of a site (or a MISSED record if the producer stops before it could
    /// start), then its delivery. `round` is held until the check is done.
    async fn run_once(&self, e: &Scheduled, round: TaskTrackerToken) {
        let got = tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => None,
            p = permits(e.host.clone(), self.global.clone()) => Some(p),
        };
        let result = match got {
            Some(p) => {
                let r = Box::pin(self.check_or_abandon(&e.site, self.clock.now())).await;
                drop(p);
                r
            }
            None => Some(self.missed_result(&e.site, self.clock.now(), STOPPED)),
        };
        drop(round);
        let Some(result) = result else { return };
        // The check is done; only its delivery waits for a place in the window.
        match self.place(&self.abandon).await {
            Some(place) => {
                self.publish_now(result).await;
                drop(place);
            }
            None => self.give_up(&result, "no place in the in-flight window before the grace period ended"),
        }
    }

    /// Publishes until the broker acknowledges, retrying with backoff; gives up only when the
    /// grace period after the stop is over.
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
                    self.give_up(&result, &e.to_string());
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

    /// A result that will not be published: counted as failed.
    fn give_up(&self, result: &CheckResult, why: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("sitemon_results_failed_total").increment(1);
        tracing::error!(site = %result.site_id, check_id = %result.check_id, error = why, "result not published before the grace period ended");
    }

    /// `n` slots that ended without a result.
    fn abandon_slots(&self, n: u64) {
        self.abandoned.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("sitemon_abandoned_slots_total").increment(n);
    }

    fn missed_result(&self, site: &Site, slot: DateTime<Utc>, why: &str) -> CheckResult {
        self.missed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("sitemon_missed_slots_total").increment(1);
        let now = self.clock.now();
        let mut r =
            CheckResult::new(&site.id, site.url.as_str(), &self.opts.region, slot, now, CheckStatus::Missed);
        r.error = Some(why.to_owned());
        tracing::warn!(site = %site.id, slot = %slot, reason = why, "missed slot");
        r
    }

    /// The check, unless the grace period ends first: then the slot is abandoned (`None`).
    async fn check_or_abandon(&self, site: &Site, slot: DateTime<Utc>) -> Option<CheckResult> {
        tokio::select! {
            r = self.check(site, slot) => Some(r),
            _ = self.abandon.cancelled() => {
                tracing::error!(site = %site.id, slot = %slot, "check still running when the grace period ended");
                self.abandon_slots(1);
                None
            }
        }
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
    /// A check of this site is under way (waiting for permits or checking; not delivering).
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
                    .entry(site.url.host())
                    .or_insert_with(|| Arc::new(Semaphore::new(opts.per_host_concurrency.max(1))))
                    .clone();
                Scheduled { phase: phase(&site.id, site.interval), site, host, busy: AtomicBool::new(false) }
            })
            .collect();
        Roster { sites }
    }
}

/// Runs the producer until shutdown (or, with `once`, until every site was checked once) and
/// the results are delivered. Once stopped — shutdown, or the end of the `once` round — the
/// producer has `grace` to finish checks in flight and deliver; then every wait ends and what is
/// left is counted (failed, abandoned), so this returns within `grace` of the stop.
pub async fn run<P: SiteProbe, S: StatusPublisher>(
    roster: Roster,
    probe: Arc<P>,
    publisher: Arc<S>,
    opts: ProducerOptions,
    shutdown: CancellationToken,
) -> ProducerReport {
    let scheduled = roster.sites;
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
        slots: AtomicU64::new(0),
        published: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        missed: AtomicU64::new(0),
        abandoned: AtomicU64::new(0),
    });
    // The grace period starts at the stop, whatever the scheduler is waiting for at that moment.
    let round_over = CancellationToken::new();
    let deadline = Arc::new(OnceLock::new());
    let timer = tokio::spawn({
        let (shutdown, round_over, abandon, deadline) =
            (shutdown.clone(), round_over.clone(), shared.abandon.clone(), deadline.clone());
        let grace = opts.grace;
        async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = round_over.cancelled() => {}
            }
            let at = *deadline.get_or_init(|| tokio::time::Instant::now() + grace);
            tokio::time::sleep_until(at).await;
            abandon.cancel();
        }
    });
    if opts.once {
        once(&shared, scheduled).await;
        round_over.cancel();
    } else {
        schedule(&shared, scheduled).await;
    }
    shared.tracker.close();
    tokio::select! {
        _ = shared.tracker.wait() => {}
        _ = shared.abandon.cancelled() => {
            // Every wait races `abandon`: the tasks end at once.
            if tokio::time::timeout(Duration::from_secs(1), shared.tracker.wait()).await.is_err() {
                tracing::error!("tasks still running after the grace period; their slots are not counted");
            }
        }
    }
    timer.abort();
    let left =
        deadline.get().map_or(opts.grace, |d| d.saturating_duration_since(tokio::time::Instant::now()));
    if let Err(e) = publisher.flush(left).await {
        tracing::error!(error = %e, "flushing the publisher failed");
    }
    let report = ProducerReport {
        slots: shared.slots.load(Ordering::Relaxed),
        published: shared.published.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        missed: shared.missed.load(Ordering::Relaxed),
        abandoned: shared.abandoned.load(Ordering::Relaxed),
    };
    if report.slots != report.published + report.failed + report.abandoned {
        tracing::error!(?report, "slots unaccounted for");
    }
    report
}

fn at(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).expect("slots stay within chrono's range")
}

/// `--once`: a task per site, each checked as soon as its permits allow. Returns when every
/// check is done (their deliveries may still be under way), or at shutdown.
async fn once<P: SiteProbe, S: StatusPublisher>(s: &Arc<Shared<P, S>>, sites: Arc<[Scheduled]>) {
    let round = TaskTracker::new();
    s.slots.fetch_add(sites.len() as u64, Ordering::Relaxed);
    for i in 0..sites.len() {
        let (s2, all, token) = (s.clone(), sites.clone(), round.token());
        s.tracker.spawn(async move { s2.run_once(&all[i], token).await });
    }
    round.close();
    tokio::select! {
        _ = round.wait() => {}
        _ = s.shutdown.cancelled() => {}
    }
}

/// One timer for all sites: a heap of (next slot, site) pairs, one slot taken at a time. A due
/// slot takes a place in the in-flight window (waiting while it is full), then gets a task that
/// waits for its permits until the site's next slot, checks and publishes; a slot whose site is
/// still busy, or that the scheduler reaches only after the next one is due, is a MISSED record.
/// At shutdown, the slots due by then that no check took are drained as MISSED records.
async fn schedule<P: SiteProbe, S: StatusPublisher>(s: &Arc<Shared<P, S>>, sites: Arc<[Scheduled]>) {
    let now = s.clock.now();
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = sites
        .iter()
        .enumerate()
        .map(|(i, e)| Reverse((next_slot_after(now, e.site.interval, e.phase).timestamp_micros(), i)))
        .collect();
    'ticks: loop {
        let Some(&Reverse((due, _))) = heap.peek() else {
            s.shutdown.cancelled().await;
            break;
        };
        tokio::select! {
            biased;
            _ = s.shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(s.clock.instant(at(due))) => {}
        }
        let now = s.clock.now().timestamp_micros();
        while let Some(&Reverse((due, i))) = heap.peek() {
            if due > now {
                break;
            }
            // Taken before the slot, so a full window holds the scheduler back instead of
            // piling up tasks; shutdown ends the wait and the slot is drained below.
            let Some(place) = s.place(&s.shutdown).await else { break 'ticks };
            // The wait for a place may have been long: judge the slot by the clock as it is now.
            let now = s.clock.now().timestamp_micros();
            heap.pop();
            s.slots.fetch_add(1, Ordering::Relaxed);
            let e = &sites[i];
            let next = due + micros(e.site.interval);
            heap.push(Reverse((next, i)));
            // A slot whose successor is already due was never started; nor was one whose site
            // is still busy with the previous slot.
            if next <= now || e.busy.swap(true, Ordering::AcqRel) {
                let r = s.missed_result(&e.site, at(due), NOT_IN_TIME);
                s.spawn_publish(r, place);
                continue;
            }
            let (s2, all) = (s.clone(), sites.clone());
            s.tracker.spawn(async move {
                let e = &all[i];
                s2.run_slot(e, at(due), at(next), place).await;
            });
        }
    }
    drain(s, &sites, heap, s.clock.now().timestamp_micros()).await;
}

/// After shutdown at `stopped`: every slot due by then that no check took becomes a MISSED
/// record, each with its place in the in-flight window; if the grace period ends first, the
/// slots still without a record are counted as abandoned.
async fn drain<P: SiteProbe, S: StatusPublisher>(
    s: &Arc<Shared<P, S>>,
    sites: &[Scheduled],
    mut heap: BinaryHeap<Reverse<(i64, usize)>>,
    stopped: i64,
) {
    while let Some(&Reverse((due, i))) = heap.peek() {
        if due > stopped {
            return;
        }
        let Some(place) = s.place(&s.abandon).await else {
            let left: u64 = heap
                .iter()
                .filter(|Reverse((due, _))| *due <= stopped)
                .map(|Reverse((due, i))| {
                    ((stopped - due) / micros(sites[*i].site.interval).max(1) + 1) as u64
                })
                .sum();
            tracing::error!(
                slots = left,
                "grace period over before these slots had a place in the in-flight window"
            );
            s.slots.fetch_add(left, Ordering::Relaxed);
            s.abandon_slots(left);
            return;
        };
        heap.pop();
        s.slots.fetch_add(1, Ordering::Relaxed);
        let e = &sites[i];
        heap.push(Reverse((due + micros(e.site.interval), i)));
        let r = s.missed_result(&e.site, at(due), STOPPED);
        s.spawn_publish(r, place);
    }
}
