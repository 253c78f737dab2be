//! One slot's work: a place in the in-flight window, the permits (global and per host), the
//! check, and the publish retried until acknowledged or the grace period ends; a slot that
//! cannot start joins its site's run of missed slots (see `missed_run.rs`), which the site's next
//! record carries. [`Shared`] is what all slot tasks share, counters included.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::instruments::Instruments;
use super::missed_run::Run;
use super::progress::Progress;
use super::roster::Scheduled;
use super::{ProducerOptions, ProducerReport};
use crate::domain::{CheckResult, CheckStatus, Site};
use crate::ports::{PublishError, SiteProbe, StatusPublisher};
use crate::retry::{self, Failure, OnStop};
use crate::schedule::Clock;

/// Why a MISSED record was made.
pub(super) const NOT_IN_TIME: &str = "the slot could not start before the next one was due";
pub(super) const STOPPED: &str = "the producer stopped before the check could start";

/// A result's place in the in-flight window, held until the broker acknowledged it (or it was
/// given up); `sitemon_results_in_flight` counts the places taken.
pub(super) struct Place {
    _permit: OwnedSemaphorePermit,
    /// The slot it holds in the producer's [`Progress`], once the scheduler gave it one.
    slot: Option<(Arc<Progress>, i64)>,
    /// The run of missed slots its record carries (held in the progress as well).
    run: Option<Run>,
}

impl Place {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        metrics::gauge!(crate::metric::RESULTS_IN_FLIGHT).increment(1.0);
        Place { _permit: permit, slot: None, run: None }
    }

    /// This place's record carries `run`: its slots are let go with the record.
    pub(super) fn carrying(mut self, run: Option<Run>) -> Self {
        self.run = run;
        self
    }

    /// This place is slot `slot`'s (µs): the producer's progress waits for it until it is let go.
    pub(super) fn holding(mut self, progress: &Arc<Progress>, slot: i64) -> Self {
        progress.hold(slot);
        self.slot = Some((progress.clone(), slot));
        self
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        metrics::gauge!(crate::metric::RESULTS_IN_FLIGHT).decrement(1.0);
        if let Some((progress, slot)) = self.slot.take() {
            progress.release(slot);
        }
        drop(self.run.take());
    }
}

/// Everything the per-slot tasks share.
pub(super) struct Shared<P, S> {
    pub(super) probe: Arc<P>,
    pub(super) publisher: Arc<S>,
    pub(super) global: Arc<Semaphore>,
    pub(super) tracker: TaskTracker,
    /// Cancelled on SIGINT/SIGTERM: no check starts after it.
    pub(super) shutdown: CancellationToken,
    /// Cancelled when the grace period is over: every wait ends, retries stop, and what is left
    /// counts as failed or abandoned.
    pub(super) abandon: CancellationToken,
    pub(super) in_flight: Arc<Semaphore>,
    pub(super) instruments: Instruments,
    pub(super) progress: Arc<Progress>,
    pub(super) clock: Clock,
    pub(super) opts: ProducerOptions,
    pub(super) slots: AtomicU64,
    pub(super) published: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) missed: AtomicU64,
    pub(super) abandoned: AtomicU64,
    /// When a missed slot was last logged, and how many were missed since.
    missed_said: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

/// How often, at most, missed slots are logged.
const MISSED_LOG_EVERY: Duration = Duration::from_secs(10);

impl<P, S> Shared<P, S> {
    pub(super) fn new(
        probe: Arc<P>,
        publisher: Arc<S>,
        opts: ProducerOptions,
        shutdown: CancellationToken,
    ) -> Self {
        Shared {
            probe,
            publisher,
            global: Arc::new(Semaphore::new(opts.max_concurrency.max(1))),
            tracker: TaskTracker::new(),
            shutdown,
            abandon: CancellationToken::new(),
            in_flight: Arc::new(Semaphore::new(opts.max_in_flight.max(1))),
            instruments: Instruments::new(&opts.region, opts.max_concurrency),
            progress: opts.progress.clone(),
            clock: Clock::start(),
            opts,
            slots: AtomicU64::new(0),
            published: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            missed_said: Default::default(),
        }
    }

    /// The counts so far.
    pub(super) fn report(&self) -> ProducerReport {
        ProducerReport {
            slots: self.slots.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            missed: self.missed.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
            refused: None,
        }
    }
}

impl<P: SiteProbe, S: StatusPublisher> Shared<P, S> {
    /// Waits for a place in the in-flight window (a slow broker pushes back on the scheduler),
    /// or gives up with `None` once `stop` is cancelled.
    pub(super) async fn place(&self, stop: &CancellationToken) -> Option<Place> {
        tokio::select! {
            biased;
            _ = stop.cancelled() => None,
            p = self.in_flight.clone().acquire_owned() => Some(Place::new(p.expect("semaphores are never closed"))),
        }
    }

    /// Publishes `result` in the background; its window place is freed once that is done.
    pub(super) fn spawn_publish(self: &Arc<Self>, result: CheckResult, place: Place) {
        let me = self.clone();
        self.tracker.spawn(async move {
            me.publish_now(result).await;
            drop(place);
        });
    }

    /// One scheduled slot: permits (until the next slot is due or the producer stops), check,
    /// publish, carrying `run` (the site's slots missed before this one); or missed. `place` is
    /// this result's place in the in-flight window.
    pub(super) async fn run_slot(
        &self,
        e: &Scheduled,
        slot: DateTime<Utc>,
        next: DateTime<Utc>,
        place: Place,
        run: Option<Run>,
    ) {
        let got = tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => Err(STOPPED),
            // Before the permits: a slot whose successor is already due is missed, not late.
            _ = tokio::time::sleep_until(self.clock.instant(next)) => Err(NOT_IN_TIME),
            p = permits(e.host.clone(), self.global.clone()) => Ok(p),
        };
        let result = match got {
            Ok(p) => {
                self.instruments.in_use(true);
                // Boxed: a slot waiting for permits then holds a pointer, not the whole check's
                // state, so an overloaded producer's waiting slots stay small.
                let r = Box::pin(self.check_or_abandon(&e.site, slot)).await;
                drop(p);
                self.instruments.in_use(false);
                r.map(|mut r| {
                    if let Some(run) = &run {
                        run.stamp(&mut r);
                    }
                    r
                })
            }
            Err(STOPPED) => Some(self.missed_result(&e.site, slot, STOPPED, run.as_ref())),
            // A taken-over site's catch-up slot is a record of its own (see `timer.rs`).
            Err(why) if e.is_catch_up(slot.timestamp_micros()) => {
                Some(self.missed_result(&e.site, slot, why, run.as_ref()))
            }
            Err(why) => {
                // Before the site is free: the scheduler's next slot of it sees this one in the run.
                self.note_missed(&e.site, slot, why);
                let run = Run::new(&self.progress, slot.timestamp_micros()).after(run);
                let publish = e.run.add(run, e.site.interval);
                e.busy.store(false, Ordering::Release);
                if let Some(run) = publish {
                    let r = self.run_record(&e.site, &run, why);
                    self.publish_now(r).await;
                    drop(run);
                }
                drop(place);
                return;
            }
        };
        // The site is free for its next slot once this one's check is over: delivery goes on
        // in the window, so a broker outage does not stop the checks (until the window is full).
        e.busy.store(false, Ordering::Release);
        let Some(result) = result else {
            // Abandoned: never published, so never counted as done, nor the run it carried.
            self.progress.lose(slot.timestamp_micros());
            if let Some(run) = run {
                self.abandon_run(run);
            }
            return;
        };
        self.publish_now(result).await;
        drop((place, run));
    }

    /// `--once`: one check of a site (or a MISSED record if the producer stops before it could
    /// start), then its delivery. `round` is held until the check is done.
    pub(super) async fn run_once(&self, e: &Scheduled, round: TaskTrackerToken) {
        let got = tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => None,
            p = permits(e.host.clone(), self.global.clone()) => Some(p),
        };
        let result = match got {
            Some(p) => {
                self.instruments.in_use(true);
                let r = Box::pin(self.check_or_abandon(&e.site, self.clock.now())).await;
                drop(p);
                self.instruments.in_use(false);
                r
            }
            None => Some(self.missed_result(&e.site, self.clock.now(), STOPPED, None)),
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
    pub(super) async fn publish_now(&self, result: CheckResult) {
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
        let (publisher, result) = (&self.publisher, &result);
        let attempt = || async move { publisher.publish(result).await.map_err(Failure::Transient) };
        let on_retry = |e: &PublishError, retry_in: Duration| {
            metrics::counter!(crate::metric::PUBLISH_RETRIES).increment(1);
            tracing::warn!(site = %result.site_id, error = %e, ?retry_in, "publish failed; retrying");
        };
        match retry::until_stopped(&self.abandon, OnStop::CutAttempt, attempt, on_retry).await {
            Some(Ok(())) => {
                self.published.fetch_add(slots_of(result), Ordering::Relaxed);
                metrics::counter!(crate::metric::RESULTS_PUBLISHED, "status" => result.status.as_str())
                    .increment(1);
            }
            Some(Err(e)) => self.give_up(result, &e.to_string()),
            // The grace period is over.
            None => self.give_up(result, &PublishError::Delivery("grace period over".into()).to_string()),
        }
    }

    /// A result that will not be published: counted as failed, with the run it carried.
    pub(super) fn give_up(&self, result: &CheckResult, why: &str) {
        self.failed.fetch_add(slots_of(result), Ordering::Relaxed);
        self.progress.lose(result.missed_since.unwrap_or(result.scheduled_at).timestamp_micros());
        metrics::counter!(crate::metric::RESULTS_FAILED).increment(1);
        tracing::error!(site = %result.site_id, check_id = %result.check_id, error = why, "result not published before the grace period ended");
    }

    /// `n` slots that ended without a result.
    pub(super) fn abandon_slots(&self, n: u64) {
        self.abandoned.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(crate::metric::ABANDONED_SLOTS).increment(n);
    }

    /// A run's slots that end without a result (the grace period is over).
    pub(super) fn abandon_run(&self, run: Run) {
        self.progress.lose(run.first);
        self.abandon_slots(u64::from(run.count));
    }

    /// The MISSED record of `slot`, which carries `run` (the site's slots missed before it).
    pub(super) fn missed_result(
        &self,
        site: &Site,
        slot: DateTime<Utc>,
        why: &str,
        run: Option<&Run>,
    ) -> CheckResult {
        self.note_missed(site, slot, why);
        let mut r = self.missed_record(site, slot, why);
        if let Some(run) = run {
            run.stamp(&mut r);
        }
        r
    }

    /// The MISSED record of a run published on its own: its last slot, carrying the others.
    pub(super) fn run_record(&self, site: &Site, run: &Run, why: &str) -> CheckResult {
        let mut r = self.missed_record(site, at(run.last), why);
        run.stamp_last(&mut r);
        r
    }

    fn missed_record(&self, site: &Site, slot: DateTime<Utc>, why: &str) -> CheckResult {
        let mut r = CheckResult::new(
            &site.id,
            site.url.as_str(),
            &self.opts.region,
            slot,
            self.clock.now(),
            CheckStatus::Missed,
        );
        r.error = Some(why.to_owned());
        site.stamp(&mut r);
        r
    }

    /// Counts and logs (at most every [`MISSED_LOG_EVERY`]) a slot that could not start.
    pub(super) fn note_missed(&self, site: &Site, slot: DateTime<Utc>, why: &str) {
        self.missed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metric::MISSED_SLOTS).increment(1);
        tracing::debug!(site = %site.id, slot = %slot, reason = why, "missed slot");
        // One line per slot would be a flood when a producer falls behind or takes sites over.
        let mut said = self.missed_said.lock().unwrap_or_else(|e| e.into_inner());
        said.1 += 1;
        if said.0.is_none_or(|at| at.elapsed() >= MISSED_LOG_EVERY) {
            tracing::warn!(site = %site.id, slot = %slot, reason = why, missed = said.1, "missed slots: this one and the others since the last such line (sitemon_missed_slots_total counts them all)");
            *said = (Some(std::time::Instant::now()), 0);
        }
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
        site.stamp(&mut result);
        let lag = (started - slot).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
        self.instruments.checked(lag, &result);
        result
    }
}

/// The slots a record accounts for: its own and the run it carries.
fn slots_of(r: &CheckResult) -> u64 {
    1 + u64::from(r.missed_slots.unwrap_or(0))
}

/// A slot's time from its µs since the epoch.
pub(super) fn at(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).expect("slots stay within chrono's range")
}

async fn permits(
    host: Arc<Semaphore>,
    global: Arc<Semaphore>,
) -> (OwnedSemaphorePermit, OwnedSemaphorePermit) {
    let h = host.acquire_owned().await.expect("semaphores are never closed");
    let g = global.acquire_owned().await.expect("semaphores are never closed");
    (h, g)
}
