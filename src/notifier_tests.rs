//! Tests of `sitemon notify`'s loop with a delivery store held in memory: recordings that fail,
//! a restart in a storm, a provider's rate limit.

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
    async fn add_silence(&self, _: &crate::ports::NewSilence<'_>) -> Result<(), StoreError> {
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
    let closings: Vec<&str> =
        kept.iter().filter(|o| o.kind == "incident.closed").map(|o| o.site_id.as_deref().unwrap()).collect();
    assert_eq!(closings, ["alone"], "{:?}", kept.iter().map(|o| (o.kind, &o.site_id)).collect::<Vec<_>>());
}
