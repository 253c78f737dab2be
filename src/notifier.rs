//! `sitemon notify`'s loop: incident events from the feed become planned deliveries, recorded
//! before the batch is acknowledged (so a restart or a rebalance plans nothing twice and loses
//! nothing); one sender task per provider leases due deliveries and records each answer, so a
//! provider that is down or slow never holds up another's messages.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::domain::IncidentEvent;
use crate::error_chain::Chain;
use crate::health::Health;
use crate::notify::{Outcome, Outgoing, Planner};
use crate::ports::{DeliveryStore, EventSink, PublishError, Sender, StatusFeed, StoreError};
use crate::retry::{self, Failure, OnStop};

/// How often the silences are read again.
const SILENCES_EVERY: Duration = Duration::from_secs(5);

pub struct NotifyOptions {
    pub batch_size: usize,
    pub batch_wait: Duration,
    /// Return once the feed is attached, nothing arrived for this long and every delivery is
    /// finished (tests).
    pub exit_when_idle: Option<Duration>,
    /// How long a sender may hold a delivery before another may try it (longer than a request).
    pub lease: Duration,
    /// How often an idle sender looks for due deliveries.
    pub poll: Duration,
    /// The configured providers (deliveries to others are not waited for).
    pub providers: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NotifyReport {
    pub events: u64,
    pub planned: u64,
    pub unreadable: u64,
}

/// Records `planned`, retrying while the database is unavailable; false if stopped first.
async fn record<D: DeliveryStore>(store: &D, planned: &[Outgoing], stop: &CancellationToken) -> bool {
    let attempt = || async move { store.record(planned).await.map_err(Failure::Transient) };
    let warn = |e: &StoreError, _| tracing::warn!(error = %Chain(e), "recording deliveries failed; retrying");
    retry::until_stopped(stop, OnStop::FinishAttempt, attempt, warn).await.is_some()
}

/// Longest pause of a provider after it asked to wait or failed.
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// Sleeps `d` unless stopped first; false if stopped.
async fn pause(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// How a provider's sender goes about it.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// How long it may hold a delivery before another sender may try it (longer than a request).
    pub lease: Duration,
    /// How often it looks for due deliveries when there were none.
    pub poll: Duration,
    /// The provider's rate limit: the least time from one request's start to the next.
    pub spacing: Option<Duration>,
}

/// One provider's sender: leases one due delivery at a time (the lease, longer than a request,
/// never runs out under it), sends it and records the answer. A provider that asks to wait
/// (`Retry-After`) or fails is left alone that long (at most a minute) before its next message.
pub async fn send_loop<D: DeliveryStore, S: Sender>(
    provider: String,
    store: Arc<D>,
    sender: Arc<S>,
    pace: Pace,
    stop: CancellationToken,
) {
    let Pace { lease, poll, spacing } = pace;
    let mut last_start: Option<Instant> = None;
    while !stop.is_cancelled() {
        // The provider's rate limit: requests evenly spaced (waited out before the lease is
        // taken, so it never runs out while waiting).
        if let (Some(last), Some(spacing)) = (last_start, spacing)
            && !pause((last + spacing).saturating_duration_since(Instant::now()), &stop).await
        {
            return;
        }
        let claimed = match store.claim(&provider, 1, lease).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(provider, error = %crate::error_chain::Chain(&e), "cannot lease deliveries; retrying");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            if !pause(poll, &stop).await {
                return;
            }
            continue;
        }
        for d in claimed {
            last_start = Some(Instant::now());
            let outcome = sender.send(&d).await;
            match &outcome {
                Outcome::Sent { .. } => {
                    metrics::counter!(crate::metric::NOTIFY_SENT, "provider" => provider.clone()).increment(1)
                }
                Outcome::Retry { after, answer } => {
                    tracing::warn!(provider, delivery = %d.delivery_id, attempt = d.attempts, retry_in = ?after, answer, "delivery not accepted yet");
                    metrics::counter!(crate::metric::NOTIFY_RETRIES, "provider" => provider.clone())
                        .increment(1)
                }
                Outcome::Failed { answer } => {
                    tracing::error!(provider, delivery = %d.delivery_id, answer, "delivery refused for good");
                    metrics::counter!(crate::metric::NOTIFY_FAILED, "provider" => provider.clone())
                        .increment(1)
                }
            }
            // The answer is recorded, retried while the database is away: a lost one would let
            // the lease run out and the message be sent again (Slack and PagerDuty do not
            // deduplicate). Only a stop gives up on it.
            let (d, outcome, store) = (&d, &outcome, &store);
            let attempt = || async move { store.finish(d, outcome).await.map_err(Failure::Transient) };
            let warn = |e: &StoreError, _| tracing::warn!(provider, error = %Chain(e), "cannot record an answer; retrying");
            if retry::until_stopped(&stop, OnStop::FinishAttempt, attempt, warn).await.is_none() {
                return;
            }
            if let Outcome::Retry { after, .. } = &outcome
                && !pause((*after).min(MAX_PAUSE), &stop).await
            {
                return;
            }
        }
    }
}

/// The closings among `events` of incidents the planner knows nothing of.
fn unknown_closings<'a>(
    planner: &Planner,
    events: impl IntoIterator<Item = &'a IncidentEvent>,
) -> Vec<uuid::Uuid> {
    let mut ids: Vec<uuid::Uuid> = events
        .into_iter()
        .filter(|e| e.kind == crate::domain::EventKind::Closed && !planner.knows(&e.incident.incident_id))
        .map(|e| e.incident.incident_id)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Teaches the planner which routes told the openings of `ids` (recorded before a restart, or by
/// another instance before a rebalance), retrying while the database is unavailable; false if
/// stopped first.
async fn learn<D: DeliveryStore>(
    store: &D,
    planner: &mut Planner,
    ids: &[uuid::Uuid],
    stop: &CancellationToken,
) -> bool {
    if ids.is_empty() {
        return true;
    }
    let attempt = || async move { store.told(ids).await.map_err(Failure::Transient) };
    let warn = |e: &StoreError, _| tracing::warn!(error = %Chain(e), "cannot read which openings were told; retrying");
    match retry::until_stopped(stop, OnStop::CutAttempt, attempt, warn).await {
        Some(Ok(told)) => {
            planner.learn(&told);
            true
        }
        _ => false,
    }
}

/// Drops the reminders of incidents the consumer has closed (their closing went to another
/// instance of the group, after a rebalance) and forgets them; keeps them all if it cannot tell.
async fn reminders_of_open<D: DeliveryStore>(
    store: &D,
    planned: Vec<Outgoing>,
    planner: &mut Planner,
) -> Vec<Outgoing> {
    let asked: Vec<uuid::Uuid> =
        planned.iter().filter(|o| o.kind == "incident.reminder").map(|o| o.subject).collect();
    if asked.is_empty() {
        return planned;
    }
    let open = match store.still_open(&asked).await {
        Ok(open) => open,
        Err(e) => {
            tracing::warn!(error = %crate::error_chain::Chain(&e), "cannot tell which incidents are still open; reminding anyway");
            return planned;
        }
    };
    let closed: Vec<uuid::Uuid> = asked.into_iter().filter(|id| !open.contains(id)).collect();
    planner.forget(&closed);
    planned.into_iter().filter(|o| o.kind != "incident.reminder" || !closed.contains(&o.subject)).collect()
}

/// Reads events until `stop` (or idle, with `exit_when_idle`), recording their deliveries
/// before acknowledging them.
pub async fn run<F, D>(
    feed: &mut F,
    store: &D,
    planner: &mut Planner,
    opts: &NotifyOptions,
    health: &Health,
    stop: CancellationToken,
) -> Result<NotifyReport, StoreError>
where
    F: StatusFeed<IncidentEvent>,
    D: DeliveryStore,
{
    let mut report = NotifyReport::default();
    let mut idle_since = Instant::now();
    let mut silences_read: Option<Instant> = None;
    while !stop.is_cancelled() {
        // Silences added with `sitemon silence add` take effect within SILENCES_EVERY.
        if silences_read.is_none_or(|t| t.elapsed() >= SILENCES_EVERY) {
            silences_read = Some(Instant::now());
            match store.silences(Utc::now()).await {
                Ok(s) => planner.set_silences(s.into_iter().map(|s| s.maintenance).collect()),
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain::Chain(&e), "cannot read the silences; keeping the last read")
                }
            }
        }
        let batch = tokio::select! {
            _ = stop.cancelled() => break,
            b = feed.next_batch(opts.batch_size, opts.batch_wait) => match b {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain::Chain(&e), "reading events failed");
                    continue;
                }
            },
        };
        if feed.is_attached() {
            health.ready();
        }
        let now = Utc::now();
        let unknown = unknown_closings(planner, batch.records.iter().filter_map(|r| r.decoded.as_ref().ok()));
        if !learn(store, planner, &unknown, &stop).await {
            break;
        }
        let mut planned = Vec::new();
        for r in &batch.records {
            match &r.decoded {
                Ok(e) => {
                    report.events += 1;
                    planned.extend(planner.event(e, now));
                }
                Err(why) => {
                    report.unreadable += 1;
                    metrics::counter!(crate::metric::NOTIFY_UNREADABLE_EVENTS).increment(1);
                    tracing::warn!(
                        partition = r.raw.position.partition,
                        offset = r.raw.position.offset,
                        why,
                        "an events record that is not an incident event: skipped"
                    );
                }
            }
        }
        planned.extend(reminders_of_open(store, planner.tick(now), planner).await);
        if !record(store, &planned, &stop).await {
            break;
        }
        report.planned += planned.len() as u64;
        if !batch.is_empty() {
            idle_since = Instant::now();
            if let Err(e) = feed.ack(&batch).await {
                tracing::warn!(error = %crate::error_chain::Chain(&e), "acknowledging events failed; they are read again");
            }
        }
        if let Some(idle) = opts.exit_when_idle
            && feed.is_attached()
            && idle_since.elapsed() >= idle
            && !planner.is_raging()
            && store.unfinished(&opts.providers).await.is_ok_and(|n| n == 0)
        {
            break;
        }
    }
    Ok(report)
}

/// `sitemon run`'s alerts (no Kafka there): each incident event the outbox hands out is planned
/// and its deliveries recorded before it counts as published — one that cannot be recorded is
/// handed out again, and planning it twice records nothing twice — then passed on to `then`.
pub struct PlanningSink<D, S> {
    planner: Arc<tokio::sync::Mutex<Planner>>,
    store: Arc<D>,
    then: S,
    /// Deliveries planned for an event whose recording failed: the planner has moved on (the
    /// event handed again plans nothing new), so they are recorded first the next time.
    unrecorded: tokio::sync::Mutex<Vec<Outgoing>>,
}

impl<D, S> PlanningSink<D, S> {
    pub fn new(planner: Arc<tokio::sync::Mutex<Planner>>, store: Arc<D>, then: S) -> Self {
        PlanningSink { planner, store, then, unrecorded: Default::default() }
    }
}

impl<D: DeliveryStore, S: EventSink> EventSink for PlanningSink<D, S> {
    async fn publish(&self, e: &IncidentEvent) -> Result<(), PublishError> {
        let mut unrecorded = self.unrecorded.lock().await;
        let mut planner = self.planner.lock().await;
        let unknown = unknown_closings(&planner, [e]);
        if !unknown.is_empty() {
            let told = self.store.told(&unknown).await.map_err(|err| PublishError::Delivery(err.into()))?;
            planner.learn(&told);
        }
        unrecorded.extend(planner.event(e, Utc::now()));
        drop(planner);
        self.store.record(&unrecorded).await.map_err(|err| PublishError::Delivery(err.into()))?;
        unrecorded.clear();
        drop(unrecorded);
        self.then.publish(e).await
    }
}

/// The storms' updates and ends and the reminders of `sitemon run`, planned every second until
/// `stop`; the silences read again every few seconds.
pub async fn tick_loop<D: DeliveryStore>(
    planner: Arc<tokio::sync::Mutex<Planner>>,
    store: Arc<D>,
    stop: CancellationToken,
) {
    let mut silences_read: Option<Instant> = None;
    loop {
        if silences_read.is_none_or(|t| t.elapsed() >= SILENCES_EVERY) {
            silences_read = Some(Instant::now());
            match store.silences(Utc::now()).await {
                Ok(s) => planner.lock().await.set_silences(s.into_iter().map(|s| s.maintenance).collect()),
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain::Chain(&e), "cannot read the silences; keeping the last read")
                }
            }
        }
        if !pause(Duration::from_secs(1), &stop).await {
            return;
        }
        let planned = {
            let mut p = planner.lock().await;
            let due = p.tick(Utc::now());
            reminders_of_open(&*store, due, &mut p).await
        };
        if !record(&*store, &planned, &stop).await {
            return;
        }
    }
}

#[cfg(test)]
#[path = "notifier_tests.rs"]
mod tests;
