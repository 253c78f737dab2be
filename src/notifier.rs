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
use crate::health::Health;
use crate::notify::{Outcome, Outgoing, Planner};
use crate::ports::{DeliveryStore, EventSink, PublishError, Sender, StatusFeed, StoreError};

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
    let mut waits = crate::retry::backoff();
    loop {
        match store.record(planned).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %crate::error_chain::Chain(&e), "recording deliveries failed; retrying");
                let wait = waits.next().unwrap_or(Duration::from_secs(5));
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
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
                    metrics::counter!("sitemon_notify_sent_total", "provider" => provider.clone())
                        .increment(1)
                }
                Outcome::Retry { after, answer } => {
                    tracing::warn!(provider, delivery = %d.delivery_id, attempt = d.attempts, retry_in = ?after, answer, "delivery not accepted yet");
                    metrics::counter!("sitemon_notify_retries_total", "provider" => provider.clone())
                        .increment(1)
                }
                Outcome::Failed { answer } => {
                    tracing::error!(provider, delivery = %d.delivery_id, answer, "delivery refused for good");
                    metrics::counter!("sitemon_notify_failed_total", "provider" => provider.clone())
                        .increment(1)
                }
            }
            // The answer is recorded, retried while the database is away: a lost one would let
            // the lease run out and the message be sent again (Slack and PagerDuty do not
            // deduplicate). Only a stop gives up on it.
            let mut waits = crate::retry::backoff();
            while let Err(e) = store.finish(&d, &outcome).await {
                tracing::warn!(provider, error = %crate::error_chain::Chain(&e), "cannot record an answer; retrying");
                if !pause(waits.next().unwrap_or(Duration::from_secs(5)), &stop).await {
                    return;
                }
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
    let mut waits = crate::retry::backoff();
    loop {
        match store.told(ids).await {
            Ok(told) => {
                planner.learn(&told);
                return true;
            }
            Err(e) => {
                tracing::warn!(error = %crate::error_chain::Chain(&e), "cannot read which openings were told; retrying");
                if !pause(waits.next().unwrap_or(Duration::from_secs(5)), stop).await {
                    return false;
                }
            }
        }
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
                    metrics::counter!("sitemon_notify_unreadable_events_total").increment(1);
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
mod tests {
    use super::*;
    use crate::domain::EventKind;
    use crate::notify::fixtures::{event, planner};
    use crate::notify::{Claimed, LastDelivery, Silence, StormPolicy};
    use std::sync::Mutex;

    /// A delivery store that keeps what it records, refusing the `fail_at`-th recording, and
    /// leases what `due` holds, one at a time.
    #[derive(Default)]
    struct Flaky {
        fail_at: usize,
        calls: Mutex<usize>,
        kept: Mutex<Vec<Outgoing>>,
        due: Mutex<std::collections::VecDeque<Claimed>>,
    }

    impl DeliveryStore for Flaky {
        async fn record(&self, planned: &[Outgoing]) -> Result<(), StoreError> {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            if *calls == self.fail_at {
                return Err(StoreError::Unavailable("the database went away".into()));
            }
            let mut kept = self.kept.lock().unwrap();
            for o in planned {
                if !kept.iter().any(|k| k.delivery_id == o.delivery_id) {
                    kept.push(o.clone());
                }
            }
            Ok(())
        }
        async fn claim(&self, _: &str, _: usize, _: Duration) -> Result<Vec<Claimed>, StoreError> {
            Ok(self.due.lock().unwrap().pop_front().into_iter().collect())
        }
        async fn finish(&self, _: &Claimed, _: &Outcome) -> Result<(), StoreError> {
            Ok(())
        }
        async fn unfinished(&self, _: &[String]) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn still_open(&self, ids: &[uuid::Uuid]) -> Result<Vec<uuid::Uuid>, StoreError> {
            Ok(ids.to_vec())
        }
        async fn told(&self, ids: &[uuid::Uuid]) -> Result<Vec<(String, uuid::Uuid)>, StoreError> {
            let kept = self.kept.lock().unwrap();
            Ok(kept
                .iter()
                .filter(|o| o.kind == "incident.opened" && ids.contains(&o.subject))
                .map(|o| (o.route.clone(), o.subject))
                .collect())
        }
        async fn last_deliveries(&self, _: &[uuid::Uuid]) -> Result<Vec<LastDelivery>, StoreError> {
            Ok(vec![])
        }
        async fn silences(&self, _: chrono::DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
            Ok(vec![])
        }
        async fn add_silence(
            &self,
            _: &[crate::notify::Pattern],
            _: (chrono::DateTime<Utc>, chrono::DateTime<Utc>),
            _: &str,
        ) -> Result<uuid::Uuid, StoreError> {
            Err(StoreError::Rejected("not kept here".into()))
        }
        async fn remove_silence(&self, _: uuid::Uuid) -> Result<bool, StoreError> {
            Ok(false)
        }
    }

    struct Passed(Mutex<Vec<uuid::Uuid>>);

    impl EventSink for Arc<Passed> {
        async fn publish(&self, e: &IncidentEvent) -> Result<(), PublishError> {
            self.0.lock().unwrap().push(e.event_id);
            Ok(())
        }
    }

    /// `sitemon run`: the recording of the event that starts a storm fails, and the publisher
    /// hands the event again. The planner saw it already (it plans nothing new for it), yet the
    /// storm's message is recorded, and the event is passed on only once recorded.
    #[tokio::test]
    async fn a_recording_that_failed_is_made_when_the_event_comes_again() {
        let storm = StormPolicy { threshold: 1, ..StormPolicy::default() };
        let planner = Arc::new(tokio::sync::Mutex::new(planner(&["hook"], storm, vec![])));
        let store = Arc::new(Flaky { fail_at: 2, ..Flaky::default() });
        let passed = Arc::new(Passed(Mutex::new(vec![])));
        let sink = PlanningSink::new(planner, store.clone(), passed.clone());
        let (a, b) = (event("a", None, EventKind::Opened, 1), event("b", None, EventKind::Opened, 2));
        sink.publish(&a).await.unwrap();
        assert!(sink.publish(&b).await.is_err(), "the recording failed");
        assert_eq!(*passed.0.lock().unwrap(), [a.event_id], "not passed on unrecorded");
        sink.publish(&b).await.unwrap();
        let kinds: Vec<&str> = store.kept.lock().unwrap().iter().map(|o| o.kind).collect();
        assert_eq!(kinds, ["incident.opened", "storm.started"]);
        assert_eq!(*passed.0.lock().unwrap(), [a.event_id, b.event_id]);
    }

    /// When each request started.
    struct Clock(Mutex<Vec<Instant>>);

    impl Sender for Clock {
        async fn send(&self, _: &Claimed) -> Outcome {
            self.0.lock().unwrap().push(Instant::now());
            Outcome::Sent { answer: "200".into() }
        }
    }

    /// `rate_limit: 1/s`: five deliveries due at once go out a second apart, not at once.
    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_spaces_the_requests() {
        let store = Arc::new(Flaky::default());
        store.due.lock().unwrap().extend((0..5).map(|i| Claimed {
            seq: i,
            delivery_id: uuid::Uuid::from_u128(i as u128),
            provider: "hook".into(),
            body: serde_json::json!({}),
            attempts: 1,
            lease: uuid::Uuid::nil(),
        }));
        let clock = Arc::new(Clock(Mutex::new(vec![])));
        let stop = CancellationToken::new();
        let pace = Pace {
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(100),
            spacing: Some(Duration::from_secs(1)),
        };
        let began = Instant::now();
        let task = tokio::spawn(send_loop("hook".into(), store, clock.clone(), pace, stop.clone()));
        while clock.0.lock().unwrap().len() < 5 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        task.await.unwrap();
        let starts = clock.0.lock().unwrap().clone();
        let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g >= Duration::from_secs(1)), "{gaps:?}");
        assert!(starts[0] - began < Duration::from_secs(1), "the first goes out at once");
    }

    /// A restart (a fresh planner over the same deliveries) in the middle of a storm: the
    /// closings of the storm's incidents, which it never read opening, are not sent one by one;
    /// the closing of an incident told on its own before the restart is.
    #[tokio::test]
    async fn after_a_restart_a_forgotten_storm_sends_no_flood_of_closings() {
        let storm = StormPolicy { threshold: 1, ..StormPolicy::default() };
        let store = Arc::new(Flaky::default());
        let passed = Arc::new(Passed(Mutex::new(vec![])));
        let before = Arc::new(tokio::sync::Mutex::new(planner(&["hook"], storm, vec![])));
        let sink = PlanningSink::new(before, store.clone(), passed.clone());
        let opened: Vec<IncidentEvent> =
            ["alone", "b", "c", "d", "e"].iter().map(|s| event(s, None, EventKind::Opened, 1)).collect();
        for e in &opened {
            sink.publish(e).await.unwrap();
        }
        let after = Arc::new(tokio::sync::Mutex::new(planner(&["hook"], storm, vec![])));
        let sink = PlanningSink::new(after, store.clone(), passed);
        for s in ["alone", "b", "c", "d", "e"] {
            sink.publish(&event(s, None, EventKind::Closed, 100)).await.unwrap();
        }
        let kept = store.kept.lock().unwrap();
        let closings: Vec<&str> = kept
            .iter()
            .filter(|o| o.kind == "incident.closed")
            .map(|o| o.site_id.as_deref().unwrap())
            .collect();
        assert_eq!(
            closings,
            ["alone"],
            "{:?}",
            kept.iter().map(|o| (o.kind, &o.site_id)).collect::<Vec<_>>()
        );
    }
}
