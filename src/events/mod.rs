//! The incident-event publisher: takes the events the store wrote to its outbox, oldest first,
//! publishes them through an [`EventSink`] (each acknowledged; the sites concurrently, a site's
//! events one at a time, each sent only after the one before it was acknowledged, so they reach
//! the topic in order), and only then marks them published. A failure (sink or store) is retried
//! with backoff, never skipped (a site's later events wait for its failed one); a crash between
//! publishing and marking publishes the same events again, which readers drop by `event_id`.
//! Asked to stop, it goes on until the outbox is empty or it is aborted (the end of the grace
//! period); whatever is left stays in the outbox for the next start.

mod handle;
mod log_sink;

pub use handle::EventPublisher;
pub use log_sink::LogSink;

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error_chain::Chain;
use crate::ports::{EventOutbox, EventSink, PendingEvent, PublishError, StoreError};

#[derive(Debug, Clone)]
pub struct EventOptions {
    /// Events taken from the outbox at a time (the sites' concurrently, each site's one at a time).
    pub batch: usize,
    /// How often an empty outbox is looked at again.
    pub poll: Duration,
}

impl Default for EventOptions {
    fn default() -> Self {
        EventOptions { batch: 500, poll: Duration::from_millis(250) }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EventReport {
    /// Events published and marked.
    pub published: u64,
    /// Events left in the outbox at the stop (published by the next start), if it could be read.
    pub left: Option<u64>,
}

/// How often the pending gauge is refreshed while nothing happens.
const GAUGE_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
enum CycleError {
    #[error("the outbox")]
    Store(#[source] StoreError),
    #[error("publishing an incident event")]
    Publish(#[source] PublishError),
}

/// Publishes what the outbox holds until `stop` (then drains it) or `abort` (then returns at once).
pub async fn run<O: EventOutbox, S: EventSink>(
    outbox: &O,
    sink: &S,
    opts: &EventOptions,
    stop: CancellationToken,
    abort: CancellationToken,
) -> EventReport {
    let mut report = EventReport::default();
    let mut backoff = crate::retry::backoff();
    let mut next_gauge = Instant::now();
    loop {
        let stopping = stop.is_cancelled();
        let cycle = tokio::select! {
            c = cycle(outbox, sink, opts.batch) => c,
            _ = abort.cancelled() => break,
        };
        match cycle {
            Ok(0) => {
                backoff = crate::retry::backoff();
                if stopping {
                    break;
                }
                if Instant::now() >= next_gauge {
                    tokio::select! {
                        _ = gauge(outbox) => {}
                        _ = abort.cancelled() => break,
                    }
                    next_gauge = Instant::now() + GAUGE_EVERY;
                }
                tokio::select! {
                    _ = tokio::time::sleep(opts.poll) => {}
                    _ = stop.cancelled() => {}
                    _ = abort.cancelled() => break,
                }
            }
            Ok(n) => {
                backoff = crate::retry::backoff();
                report.published += n as u64;
                metrics::counter!(crate::metric::EVENTS_PUBLISHED).increment(n as u64);
                // Stopping, and this took the rest of what was there: done, even if other
                // consumers keep storing events (the next publisher takes those).
                if stopping && n < opts.batch {
                    break;
                }
                tokio::select! {
                    _ = gauge(outbox) => {}
                    _ = abort.cancelled() => break,
                }
                next_gauge = Instant::now() + GAUGE_EVERY;
            }
            Err((done, e)) => {
                report.published += done as u64;
                metrics::counter!(crate::metric::EVENTS_PUBLISHED).increment(done as u64);
                metrics::counter!(crate::metric::EVENTS_RETRIES).increment(1);
                let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(error = %Chain(&e), retry_in = ?delay, "incident events not published yet; they stay in the outbox");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = abort.cancelled() => break,
                }
            }
        }
    }
    // Asked again on failure: each pooled connection the database dropped (a restart) fails its
    // first query.
    let count = async {
        loop {
            match outbox.unpublished().await {
                Ok(n) => break Some(n),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    };
    report.left = tokio::select! {
        n = count => n,
        _ = tokio::time::sleep(Duration::from_secs(1)) => None,
    };
    if let Some(n) = report.left {
        metrics::gauge!(crate::metric::EVENTS_PENDING).set(n as f64);
    }
    report
}

async fn gauge<O: EventOutbox>(outbox: &O) {
    if let Ok(n) = outbox.unpublished().await {
        metrics::gauge!(crate::metric::EVENTS_PENDING).set(n as f64);
    }
}

/// One batch: taken, published site by site, the acknowledged ones marked. Returns how many
/// were published and marked, with the first failure.
///
/// A site's events go out one at a time, in outbox order, each only after the one before it was
/// acknowledged: two sends in flight for one site could reach the topic out of order (the first
/// fails, the second is acknowledged, the first goes again after it). The sites proceed
/// concurrently. When one of a site's events fails, its later ones are not sent this round (they
/// go after it, in a later round); the other sites go on.
async fn cycle<O: EventOutbox, S: EventSink>(
    outbox: &O,
    sink: &S,
    max: usize,
) -> Result<usize, (usize, CycleError)> {
    let pending = outbox.pending(max).await.map_err(|e| (0, CycleError::Store(e)))?;
    if pending.is_empty() {
        return Ok(0);
    }
    let rounds = join_all(by_site(&pending).into_iter().map(|events| in_turn(sink, events))).await;
    let mut done = Vec::with_capacity(pending.len());
    let mut failure = None;
    for (acked, failed) in rounds {
        done.extend(acked);
        if let Some(e) = failed {
            failure.get_or_insert(e);
        }
    }
    // Unmarked after a publish, an event is published again: a repeat, never a loss.
    if !done.is_empty() {
        outbox.mark_published(&done).await.map_err(|e| (0, CycleError::Store(e)))?;
    }
    match failure {
        None => Ok(done.len()),
        Some(e) => Err((done.len(), CycleError::Publish(e))),
    }
}

/// The events of each site, in outbox order; the sites in the order of their first event.
fn by_site(pending: &[PendingEvent]) -> Vec<Vec<&PendingEvent>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut sites: Vec<Vec<&PendingEvent>> = Vec::new();
    for p in pending {
        let i = *index.entry(p.event.incident.site_id.as_str()).or_insert_with(|| {
            sites.push(Vec::new());
            sites.len() - 1
        });
        sites[i].push(p);
    }
    sites
}

/// One site's events, each sent once the one before it was acknowledged; stops at the first
/// failure. Returns the `seq`s acknowledged, and the failure.
async fn in_turn<S: EventSink>(sink: &S, events: Vec<&PendingEvent>) -> (Vec<i64>, Option<PublishError>) {
    let mut acked = Vec::with_capacity(events.len());
    for p in events {
        if let Err(e) = sink.publish(&p.event).await {
            return (acked, Some(e));
        }
        acked.push(p.seq);
    }
    (acked, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventKind, Incident, IncidentEvent};
    use crate::ports::BoxError;
    use chrono::{TimeZone, Utc};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn event(i: i64) -> IncidentEvent {
        let t = Utc.timestamp_opt(1_800_000_000 + i, 0).unwrap();
        IncidentEvent::new(EventKind::Opened, t, &Incident::sample(&format!("s{i}"), None, t))
    }

    /// An outbox in memory: rows with `published`; `fail_reads` next reads fail.
    #[derive(Default)]
    struct Outbox {
        rows: Mutex<Vec<(PendingEvent, bool)>>,
        fail_reads: AtomicUsize,
        fail_marks: AtomicUsize,
        /// Every `seq` marked, once per marking.
        marked: Mutex<Vec<i64>>,
    }

    impl Outbox {
        fn with(n: i64) -> Self {
            let o = Outbox::default();
            o.rows.lock().unwrap().extend((1..=n).map(|i| (PendingEvent { seq: i, event: event(i) }, false)));
            o
        }
        fn unpublished_seqs(&self) -> Vec<i64> {
            self.rows.lock().unwrap().iter().filter(|(_, p)| !p).map(|(e, _)| e.seq).collect()
        }
    }

    fn unavailable() -> StoreError {
        StoreError::Unavailable("down".into())
    }

    fn take_one(n: &AtomicUsize) -> bool {
        n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)).is_ok()
    }

    impl EventOutbox for Outbox {
        async fn pending(&self, max: usize) -> Result<Vec<PendingEvent>, StoreError> {
            if take_one(&self.fail_reads) {
                return Err(unavailable());
            }
            let rows = self.rows.lock().unwrap();
            Ok(rows.iter().filter(|(_, p)| !p).take(max).map(|(e, _)| e.clone()).collect())
        }
        async fn mark_published(&self, seqs: &[i64]) -> Result<(), StoreError> {
            if take_one(&self.fail_marks) {
                return Err(unavailable());
            }
            self.marked.lock().unwrap().extend_from_slice(seqs);
            for (e, p) in self.rows.lock().unwrap().iter_mut() {
                *p |= seqs.contains(&e.seq);
            }
            Ok(())
        }
        async fn unpublished(&self) -> Result<u64, StoreError> {
            Ok(self.unpublished_seqs().len() as u64)
        }
    }

    /// A sink that records what it acknowledged; `fail` next publishes fail; `hang` makes every
    /// publish wait forever (a broker that never answers).
    #[derive(Default)]
    struct Sink {
        acked: Mutex<Vec<uuid::Uuid>>,
        fail: AtomicUsize,
        hang: std::sync::atomic::AtomicBool,
    }

    impl EventSink for Sink {
        async fn publish(&self, e: &IncidentEvent) -> Result<(), PublishError> {
            if self.hang.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if take_one(&self.fail) {
                let e: BoxError = "no broker".into();
                return Err(PublishError::Delivery(e));
            }
            self.acked.lock().unwrap().push(e.event_id);
            Ok(())
        }
    }

    fn opts() -> EventOptions {
        EventOptions { batch: 3, poll: Duration::from_millis(250) }
    }

    #[tokio::test(start_paused = true)]
    async fn publishes_everything_in_order_and_marks_it_then_stops_when_drained() {
        let outbox = Outbox::with(7);
        let sink = Sink::default();
        let stop = CancellationToken::new();
        stop.cancel();
        let report = run(&outbox, &sink, &opts(), stop, CancellationToken::new()).await;
        assert_eq!(report, EventReport { published: 7, left: Some(0) });
        let want: Vec<uuid::Uuid> = (1..=7).map(|i| event(i).event_id).collect();
        assert_eq!(*sink.acked.lock().unwrap(), want, "each once, oldest first");
        assert!(outbox.unpublished_seqs().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_never_skipped_and_a_failed_mark_only_repeats() {
        let outbox = Outbox::with(5);
        outbox.fail_reads.store(2, Ordering::SeqCst);
        outbox.fail_marks.store(1, Ordering::SeqCst);
        let sink = Sink::default();
        sink.fail.store(4, Ordering::SeqCst);
        let stop = CancellationToken::new();
        stop.cancel();
        let report = run(&outbox, &sink, &opts(), stop, CancellationToken::new()).await;
        assert_eq!(report, EventReport { published: 5, left: Some(0) });
        let acked = sink.acked.lock().unwrap().clone();
        for i in 1..=5 {
            assert!(acked.contains(&event(i).event_id), "event {i} published: {acked:?}");
        }
        assert!(acked.len() > 5, "the batch whose marking failed was published again: {acked:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_failed_event_its_sites_later_events_wait_for_it() {
        // Events 1 and 2 of one site (OPENED, CLOSED), 3 of another; the first publish fails.
        let outbox = Outbox::with(3);
        {
            let mut rows = outbox.rows.lock().unwrap();
            let opened = rows[0].0.event.incident.clone();
            let mut closed = opened.clone();
            closed.ended_at = Some(closed.started_at);
            rows[1].0.event = IncidentEvent::new(EventKind::Closed, closed.started_at, &closed);
        }
        let sink = Sink::default();
        sink.fail.store(1, Ordering::SeqCst);
        let err = cycle(&outbox, &sink, 10).await.unwrap_err();
        assert_eq!(err.0, 1, "only the other site's event is marked");
        assert_eq!(outbox.unpublished_seqs(), [1, 2], "the site's CLOSED waits for its OPENED");
        assert_eq!(cycle(&outbox, &sink, 10).await.unwrap(), 2);
        assert!(outbox.unpublished_seqs().is_empty());
    }

    /// An event of `site`'s incident: OPENED, or CLOSED a minute later.
    fn site_event(site: &str, closed: bool) -> IncidentEvent {
        let mut incident = event(0).incident;
        incident.site_id = site.into();
        incident.incident_id = Incident::id_for(site, None, incident.started_at);
        if !closed {
            return IncidentEvent::new(EventKind::Opened, incident.confirmed_at, &incident);
        }
        let ended = incident.started_at + chrono::Duration::seconds(60);
        incident.ended_at = Some(ended);
        IncidentEvent::new(EventKind::Closed, ended, &incident)
    }

    /// What a broker saw, in order.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Step {
        Sent(uuid::Uuid),
        Acked(uuid::Uuid),
        Failed(uuid::Uuid),
    }

    /// A sink whose publishes are in flight for a moment (whatever else the publisher sends now
    /// is sent meanwhile), failing the first publish of each site in `fail_first` once.
    #[derive(Default)]
    struct Broker {
        log: Mutex<Vec<Step>>,
        fail_first: Mutex<std::collections::HashSet<String>>,
    }

    impl EventSink for Broker {
        async fn publish(&self, e: &IncidentEvent) -> Result<(), PublishError> {
            self.log.lock().unwrap().push(Step::Sent(e.event_id));
            tokio::task::yield_now().await;
            if self.fail_first.lock().unwrap().remove(&e.incident.site_id) {
                self.log.lock().unwrap().push(Step::Failed(e.event_id));
                return Err(PublishError::Delivery("not enough replicas".into()));
            }
            self.log.lock().unwrap().push(Step::Acked(e.event_id));
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_sites_next_event_is_sent_only_after_its_previous_one_was_acknowledged() {
        // Sites a and b opened and closed, c opened, interleaved as the consumer stored them.
        let stored: Vec<(i64, &str, IncidentEvent)> =
            [("a", false), ("b", false), ("a", true), ("c", false), ("b", true)]
                .into_iter()
                .zip(1..)
                .map(|((site, closed), seq)| (seq, site, site_event(site, closed)))
                .collect();
        let outbox = Outbox::default();
        outbox
            .rows
            .lock()
            .unwrap()
            .extend(stored.iter().map(|(seq, _, e)| (PendingEvent { seq: *seq, event: e.clone() }, false)));
        let id = |seq: i64| stored[seq as usize - 1].2.event_id;
        let broker = Broker::default();
        broker.fail_first.lock().unwrap().insert("a".into());

        // The first round: a's OPENED fails; b and c are not held back, a's CLOSED is not sent.
        let (done, err) = cycle(&outbox, &broker, 10).await.unwrap_err();
        assert!(matches!(err, CycleError::Publish(_)), "{err:?}");
        assert_eq!(done, 3, "b's and c's events published in the round a's failed");
        assert_eq!(outbox.unpublished_seqs(), [1, 3]);
        assert!(
            !broker.log.lock().unwrap().contains(&Step::Sent(id(3))),
            "a's CLOSED sent after its OPENED failed"
        );
        let first_end = broker.log.lock().unwrap().iter().position(|s| !matches!(s, Step::Sent(_)));
        assert_eq!(first_end, Some(3), "the three sites' first events in flight together");
        // The retry.
        assert_eq!(cycle(&outbox, &broker, 10).await.unwrap(), 2);

        let log = broker.log.lock().unwrap().clone();
        for (site, want) in [("a", [1, 3]), ("b", [2, 5])] {
            let acked: Vec<uuid::Uuid> = log
                .iter()
                .filter_map(|s| match s {
                    Step::Acked(i) if want.iter().any(|&q| id(q) == *i) => Some(*i),
                    _ => None,
                })
                .collect();
            assert_eq!(acked, [id(want[0]), id(want[1])], "site {site}: OPENED acknowledged, then CLOSED");
        }
        for (at, step) in log.iter().enumerate() {
            let Step::Sent(sent) = *step else { continue };
            let (seq, site, _) = stored.iter().find(|(_, _, e)| e.event_id == sent).unwrap();
            for (earlier, _, _) in stored.iter().filter(|(q, s, _)| q < seq && s == site) {
                assert!(
                    log[..at].contains(&Step::Acked(id(*earlier))),
                    "event {seq} of site {site} sent before event {earlier} was acknowledged: {log:?}"
                );
            }
        }
        let sends = |seq| log.iter().filter(|s| **s == Step::Sent(id(seq))).count();
        assert_eq!((1..=5).map(sends).collect::<Vec<_>>(), [2, 1, 1, 1, 1], "only the failed one again");
        let mut marked = outbox.marked.lock().unwrap().clone();
        marked.sort();
        assert_eq!(marked, [1, 2, 3, 4, 5], "each marked once, none skipped");
        assert!(outbox.unpublished_seqs().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_abort_leaves_the_unacknowledged_events_in_the_outbox() {
        let outbox = Outbox::with(4);
        let sink = Sink::default();
        sink.hang.store(true, Ordering::SeqCst);
        let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
        let task = {
            let (stop, abort) = (stop.clone(), abort.clone());
            async move { run(&outbox, &sink, &opts(), stop, abort).await }
        };
        let handle = tokio::spawn(task);
        stop.cancel();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!handle.is_finished(), "a stop waits for the batch in hand");
        abort.cancel();
        let report = tokio::time::timeout(Duration::from_secs(2), handle).await.unwrap().unwrap();
        assert_eq!(report, EventReport { published: 0, left: Some(4) });
    }

    #[tokio::test(start_paused = true)]
    async fn new_events_are_picked_up_while_running() {
        let outbox = std::sync::Arc::new(Outbox::with(0));
        let sink = std::sync::Arc::new(Sink::default());
        let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
        let handle = {
            let (o, s, stop, abort) = (outbox.clone(), sink.clone(), stop.clone(), abort.clone());
            tokio::spawn(async move { run(&*o, &*s, &opts(), stop, abort).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        outbox.rows.lock().unwrap().push((PendingEvent { seq: 1, event: event(1) }, false));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !outbox.unpublished_seqs().is_empty() {
            assert!(Instant::now() < deadline, "not published within a few polls");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        let report = handle.await.unwrap();
        assert_eq!(report, EventReport { published: 1, left: Some(0) });
    }
}
