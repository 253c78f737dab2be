//! The incident-event publisher: takes the events the store wrote to its outbox, oldest first,
//! publishes them through an [`EventSink`] (each acknowledged), and only then marks them
//! published. A failure (sink or store) is retried with backoff, never skipped; a crash between
//! publishing and marking publishes the same events again, which readers drop by `event_id`.
//! Asked to stop, it goes on until the outbox is empty or it is aborted (the end of the grace
//! period); whatever is left stays in the outbox for the next start.

use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error_chain::Chain;
use crate::ports::{EventOutbox, EventSink, PublishError, StoreError};

#[derive(Debug, Clone)]
pub struct EventOptions {
    /// Events taken from the outbox at a time (published concurrently, in order).
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
                metrics::counter!("sitemon_events_published_total").increment(n as u64);
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
                metrics::counter!("sitemon_events_published_total").increment(done as u64);
                metrics::counter!("sitemon_events_retries_total").increment(1);
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
        metrics::gauge!("sitemon_events_pending").set(n as f64);
    }
    report
}

async fn gauge<O: EventOutbox>(outbox: &O) {
    if let Ok(n) = outbox.unpublished().await {
        metrics::gauge!("sitemon_events_pending").set(n as f64);
    }
}

/// One batch: taken, published (all at once: the sink keeps their order per site), the
/// acknowledged ones marked. Returns how many were published and marked, with the first failure.
async fn cycle<O: EventOutbox, S: EventSink>(
    outbox: &O,
    sink: &S,
    max: usize,
) -> Result<usize, (usize, CycleError)> {
    let pending = outbox.pending(max).await.map_err(|e| (0, CycleError::Store(e)))?;
    if pending.is_empty() {
        return Ok(0);
    }
    let acks = join_all(pending.iter().map(|p| sink.publish(&p.event))).await;
    let mut done = Vec::with_capacity(pending.len());
    let mut failure = None;
    // A site's events after one of its failed stay unmarked too: published again after it, so
    // that a reader dropping repeats sees each site's events in order (OPENED before CLOSED).
    let mut failed_sites: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (p, ack) in pending.iter().zip(acks) {
        let site = p.event.incident.site_id.as_str();
        match ack {
            Ok(()) if !failed_sites.contains(site) => done.push(p.seq),
            Ok(()) => {}
            Err(e) => {
                failed_sites.insert(site);
                failure.get_or_insert(e);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventKind, Incident, IncidentEvent};
    use crate::ports::{BoxError, PendingEvent};
    use chrono::{TimeZone, Utc};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn event(i: i64) -> IncidentEvent {
        let t = Utc.timestamp_opt(1_800_000_000 + i, 0).unwrap();
        let incident = Incident {
            incident_id: Incident::id_for(&format!("s{i}"), None, t),
            site_id: format!("s{i}"),
            region: None,
            url: "http://x/".into(),
            started_at: t,
            confirmed_at: t,
            ended_at: None,
            end_reason: None,
            regions: vec!["eu".into()],
            failure_kind: None,
            error: None,
            failed_checks: 3,
        };
        IncidentEvent::new(EventKind::Opened, t, &incident)
    }

    /// An outbox in memory: rows with `published`; `fail_reads` next reads fail.
    #[derive(Default)]
    struct Outbox {
        rows: Mutex<Vec<(PendingEvent, bool)>>,
        fail_reads: AtomicUsize,
        fail_marks: AtomicUsize,
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
