//! The producer runner: schedules every site on its slots, checks it through a [`SiteProbe`]
//! under a global and a per-host concurrency cap, and publishes each result through a
//! [`StatusPublisher`]. A slot that cannot start before the next one is due becomes a MISSED
//! record. A new site list (see [`Reloads`]) replaces the running one between ticks without
//! losing or repeating a slot. Once stopped, every wait (window, permits, check, publish) ends by
//! the end of the grace period, and every slot is accounted for: published, failed or
//! abandoned. Knows no adapter.
//!
//! `roster.rs` holds the sites and how a new list replaces them, `timer.rs` the slot heap,
//! `once.rs` the `--once` round, `slot.rs` one slot's check and delivery.

mod instruments;
mod missed_run;
mod once;
mod progress;
mod roster;
mod slot;
mod timer;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::domain::Site;
use crate::ports::{SiteProbe, StatusPublisher};
pub use progress::Progress;
pub use roster::{Changes, Roster};
use slot::Shared;

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
    /// Where the producer says how far its schedule is done (see [`Progress`]).
    pub progress: Arc<Progress>,
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
    /// Why a `once` round ended before its grace period: the publisher's refusal.
    pub refused: Option<String>,
}

impl ProducerReport {
    /// True when every slot's result was acknowledged.
    pub fn complete(&self) -> bool {
        self.failed == 0 && self.abandoned == 0
    }
}

/// With `once`, ends the round's waits as soon as the publisher says it was refused for good:
/// the deadline becomes now and every wait is abandoned.
async fn end_on_refusal<S: StatusPublisher>(
    publisher: &S,
    deadline: &OnceLock<tokio::time::Instant>,
    abandon: &CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_millis(100));
    while publisher.refused().is_none() {
        every.tick().await;
    }
    let _ = deadline.set(tokio::time::Instant::now());
    abandon.cancel();
}

/// A new site list for a running producer: this producer's share, all of it.
#[derive(Debug, Default)]
pub struct NewList {
    pub sites: Vec<Site>,
    /// Added sites taken over from another producer, by id, with the moment (µs since the epoch)
    /// before which that producer had published every slot: their slots from then on until now
    /// are MISSED records (those the other producer did publish after all are repeats downstream,
    /// with the same check id), then they are checked as usual. Bounded by [`TAKEOVER_LOOKBACK`].
    pub resume: HashMap<String, i64>,
    /// Told the moment (µs) the list took effect: every slot due before it was taken by then, and
    /// none of a removed site after it.
    pub applied: Option<oneshot::Sender<i64>>,
}

impl From<Vec<Site>> for NewList {
    fn from(sites: Vec<Site>) -> Self {
        NewList { sites, ..NewList::default() }
    }
}

/// How far back a taken-over site's missed slots are made up as MISSED records, at most: a
/// region left without producers for longer shows as STALE, not as a flood of records.
pub const TAKEOVER_LOOKBACK: Duration = Duration::from_secs(600);

/// New site lists for a running producer, each already this producer's share. Each one
/// replaces the roster: see [`run`]. `--once` takes none.
pub struct Reloads(Option<mpsc::Receiver<NewList>>);

impl Reloads {
    /// No reloads: the roster given at start is the one checked.
    pub fn none() -> Self {
        Reloads(None)
    }

    /// The next list; never ready once the sender is gone.
    async fn next(&mut self) -> NewList {
        if let Some(rx) = &mut self.0 {
            match rx.recv().await {
                Some(list) => return list,
                None => self.0 = None,
            }
        }
        std::future::pending().await
    }
}

impl From<mpsc::Receiver<NewList>> for Reloads {
    fn from(rx: mpsc::Receiver<NewList>) -> Self {
        Reloads(Some(rx))
    }
}

/// Runs the producer until shutdown (or, with `once`, until every site was checked once) and
/// the results are delivered. Once stopped — shutdown, or the end of the `once` round — the
/// producer has `grace` to finish checks in flight and deliver; then every wait ends and what is
/// left is counted (failed, abandoned), so this returns within `grace` of the stop.
///
/// Each list from `reloads` replaces the roster (sites matched by id) once the slots due by then
/// are taken: a site kept with the same interval keeps its next slot and is checked by its new
/// definition from then on; an added site, or one whose interval changed, starts at its first
/// slot after that moment; a removed site's check under way ends normally and is published and
/// counted. A kept site's check under way from before makes its next slots MISSED until it is
/// over, as without a reload. A site taken over from another producer (see [`NewList::resume`])
/// starts at its first slot that producer did not publish. With `once`, reloads are not read.
pub async fn run<P: SiteProbe, S: StatusPublisher>(
    roster: Roster,
    probe: Arc<P>,
    publisher: Arc<S>,
    opts: ProducerOptions,
    shutdown: CancellationToken,
    mut reloads: Reloads,
) -> ProducerReport {
    let shared = Arc::new(Shared::new(probe, publisher.clone(), opts.clone(), shutdown.clone()));
    // The grace period starts at the stop, whatever the scheduler is waiting for at that moment.
    let round_over = CancellationToken::new();
    let deadline = Arc::new(OnceLock::new());
    let grace_timer = tokio::spawn({
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
    let refusal = opts.once.then(|| {
        let (publisher, deadline, abandon) = (publisher.clone(), deadline.clone(), shared.abandon.clone());
        tokio::spawn(async move { end_on_refusal(&*publisher, &deadline, &abandon).await })
    });
    if opts.once {
        once::once(&shared, roster.sites).await;
        round_over.cancel();
    } else {
        timer::schedule(&shared, roster, &mut reloads).await;
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
    grace_timer.abort();
    // Read from the publisher itself: the watcher may have cancelled the round a moment before
    // it is marked finished.
    let refused = refusal.and_then(|task| {
        task.abort();
        publisher.refused()
    });
    let left =
        deadline.get().map_or(opts.grace, |d| d.saturating_duration_since(tokio::time::Instant::now()));
    if refused.is_none()
        && let Err(e) = publisher.flush(left).await
    {
        tracing::error!(error = %e, "flushing the publisher failed");
    }
    let mut report = shared.report();
    report.refused = refused;
    if report.slots != report.published + report.failed + report.abandoned {
        tracing::error!(?report, "slots unaccounted for");
    }
    report
}
