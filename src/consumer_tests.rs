//! Unit tests of the consumer runner (`consumer.rs`): a stop that falls into a database outage,
//! with a fake store and feed in paused time.

use std::borrow::Borrow;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::*;
use crate::domain::{CheckStatus, Incident, SiteStatus};
use crate::ports::{FeedPosition, NoRegistry, Received};

/// A database down from the first attempt until `down_for` after it, where the stop is
/// requested too: an outage that the stop falls into.
struct Outage {
    down_for: Duration,
    shutdown: CancellationToken,
    first: Mutex<Option<Instant>>,
    attempts: Mutex<u32>,
    stored: Mutex<usize>,
}

impl Outage {
    fn new(down_for: Duration, shutdown: &CancellationToken) -> Self {
        Outage {
            down_for,
            shutdown: shutdown.clone(),
            first: Mutex::default(),
            attempts: Mutex::default(),
            stored: Mutex::default(),
        }
    }
}

impl StatusStore for Outage {
    async fn store<R: Borrow<CheckResult> + Sync>(
        &self,
        results: &[R],
        _dead_letters: &[DeadLetter],
    ) -> Result<(), StoreError> {
        *self.attempts.lock().unwrap() += 1;
        let first = *self.first.lock().unwrap().get_or_insert_with(|| {
            self.shutdown.cancel();
            Instant::now()
        });
        if first.elapsed() < self.down_for {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        *self.stored.lock().unwrap() += results.len();
        Ok(())
    }

    async fn latest(&self) -> Result<Vec<SiteStatus>, StoreError> {
        Ok(Vec::new())
    }

    async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        Ok(Vec::new())
    }

    async fn prune(&self, _cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// One batch of one result, then nothing; counts what was acknowledged.
#[derive(Default)]
struct OneBatch {
    given: bool,
    acked: usize,
}

impl StatusFeed for OneBatch {
    async fn next_batch(&mut self, _max: usize, wait: Duration) -> Result<FeedBatch, FeedError> {
        if std::mem::replace(&mut self.given, true) {
            tokio::time::sleep(wait).await;
            return Ok(FeedBatch::default());
        }
        let now = Utc::now();
        let result = CheckResult::new("a", "http://a/", "eu", now, now, CheckStatus::Success);
        let position = FeedPosition { topic: "t".into(), partition: 0, offset: 0 };
        let raw = RawRecord { position, key: None, payload: None };
        Ok(FeedBatch { records: vec![Received { raw, decoded: Ok(result) }] })
    }

    async fn ack(&mut self, batch: &FeedBatch) -> Result<(), FeedError> {
        self.acked += batch.len();
        Ok(())
    }

    fn is_attached(&self) -> bool {
        true
    }
}

/// What a consumer stopped during an outage came to.
struct Outcome {
    report: ConsumerReport,
    /// Records the feed acknowledged, and the store stored.
    acked: usize,
    stored: usize,
    /// Calls to the store, failed ones included.
    attempts: u32,
    /// From the stop to the consumer's return.
    since_stop: Duration,
}

/// Runs the consumer on one batch while the database is down for `down_for` from the stop.
async fn stop_during_an_outage(down_for: Duration, grace: Duration) -> Outcome {
    let shutdown = CancellationToken::new();
    let store = Outage::new(down_for, &shutdown);
    let mut feed = OneBatch::default();
    let opts = ConsumerOptions {
        batch_size: 100,
        batch_wait: Duration::from_millis(100),
        exit_when_idle: None,
        retention: None,
        max_clock_skew: Duration::from_secs(120),
        grace,
    };
    let health = Health::starting("test");
    let report = run(&mut feed, &store, &NoRegistry, &opts, &health, shutdown).await.unwrap();
    let since_stop = store.first.lock().unwrap().expect("the store was tried").elapsed();
    let stored = *store.stored.lock().unwrap();
    let attempts = *store.attempts.lock().unwrap();
    Outcome { report, acked: feed.acked, stored, attempts, since_stop }
}

#[tokio::test(start_paused = true)]
async fn a_short_outage_during_the_stop_is_retried_within_the_grace_period() {
    let o = stop_during_an_outage(Duration::from_secs(2), Duration::from_secs(10)).await;
    assert_eq!((o.report.stored, o.report.unstored, o.acked, o.stored), (1, 0, 1, 1), "{:?}", o.report);
    assert!(o.report.complete());
    let (two, ten) = (Duration::from_secs(2), Duration::from_secs(10));
    assert!(o.since_stop >= two && o.since_stop < ten, "{:?}", o.since_stop);
}

#[tokio::test(start_paused = true)]
async fn the_last_attempt_before_the_end_of_the_grace_period_is_made() {
    // Backoff pauses grow to 5 s (with jitter): alone, the attempt after about 6 s would fall
    // past the end of the grace period.
    let o = stop_during_an_outage(Duration::from_millis(9_500), Duration::from_secs(10)).await;
    assert_eq!((o.report.stored, o.report.unstored, o.acked, o.stored), (1, 0, 1, 1), "{:?}", o.report);
    assert!(o.since_stop < Duration::from_secs(10), "{:?}", o.since_stop);
}

#[tokio::test(start_paused = true)]
async fn an_outage_longer_than_the_grace_period_leaves_the_batch_unacknowledged() {
    let o = stop_during_an_outage(Duration::from_secs(60), Duration::from_secs(10)).await;
    assert_eq!((o.report.stored, o.report.unstored, o.acked, o.stored), (0, 1, 0, 0), "{:?}", o.report);
    assert!(!o.report.complete());
    assert!(o.attempts > 5, "tried {} times within the grace period", o.attempts);
    let ten = Duration::from_secs(10);
    assert!(o.since_stop >= ten && o.since_stop < ten + Duration::from_millis(50), "{:?}", o.since_stop);
}

/// A store that takes 100 ms per call and fails the first call whose sites include `fails`;
/// records the sites of each call and the most calls at once.
#[derive(Default)]
struct Lanes {
    fails: &'static str,
    failed: Mutex<bool>,
    calls: Mutex<Vec<Vec<String>>>,
    in_flight: Mutex<(u32, u32)>,
}

impl StatusStore for Lanes {
    async fn store<R: Borrow<CheckResult> + Sync>(
        &self,
        results: &[R],
        _: &[DeadLetter],
    ) -> Result<(), StoreError> {
        let sites: Vec<String> = results.iter().map(|r| r.borrow().site_id.clone()).collect();
        {
            let mut n = self.in_flight.lock().unwrap();
            n.0 += 1;
            n.1 = n.1.max(n.0);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.in_flight.lock().unwrap().0 -= 1;
        let fail = sites.iter().any(|s| s == self.fails)
            && !std::mem::replace(&mut *self.failed.lock().unwrap(), true);
        self.calls.lock().unwrap().push(sites);
        if fail { Err(StoreError::Unavailable("connection reset".into())) } else { Ok(()) }
    }

    async fn latest(&self) -> Result<Vec<SiteStatus>, StoreError> {
        Ok(Vec::new())
    }

    async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        Ok(Vec::new())
    }

    async fn prune(&self, _cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// One batch of two results each for sixteen sites, then nothing.
#[derive(Default)]
struct Sites {
    given: bool,
    acked: Vec<usize>,
}

impl StatusFeed for Sites {
    async fn next_batch(&mut self, _max: usize, wait: Duration) -> Result<FeedBatch, FeedError> {
        if std::mem::replace(&mut self.given, true) {
            tokio::time::sleep(wait).await;
            return Ok(FeedBatch::default());
        }
        let now = Utc::now();
        let records = (0..32)
            .map(|i| {
                let t = now - chrono::Duration::seconds(60 * (i / 16));
                let result =
                    CheckResult::new(&format!("s{}", i % 16), "http://a/", "eu", t, t, CheckStatus::Success);
                let position = FeedPosition { topic: "t".into(), partition: (i % 3) as i32, offset: i };
                Received { raw: RawRecord { position, key: None, payload: None }, decoded: Ok(result) }
            })
            .collect();
        Ok(FeedBatch { records })
    }

    async fn ack(&mut self, batch: &FeedBatch) -> Result<(), FeedError> {
        self.acked.push(batch.len());
        Ok(())
    }

    fn is_attached(&self) -> bool {
        true
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_stored_as_site_disjoint_groups_at_once_and_acked_once_all_committed() {
    let store = Lanes { fails: "s3", ..Lanes::default() };
    let mut feed = Sites::default();
    let opts = ConsumerOptions {
        batch_size: 100,
        batch_wait: Duration::from_millis(100),
        exit_when_idle: Some(Duration::from_secs(1)),
        retention: None,
        max_clock_skew: Duration::from_secs(120),
        grace: Duration::from_secs(10),
    };
    let health = Health::starting("test");
    let report = run(&mut feed, &store, &NoRegistry, &opts, &health, CancellationToken::new()).await.unwrap();
    assert_eq!((report.stored, report.unstored), (32, 0));
    assert_eq!(feed.acked, [32], "acknowledged once, whole");
    let calls = store.calls.lock().unwrap().clone();
    assert_eq!(store.in_flight.lock().unwrap().1, 2, "two groups stored at the same time");
    // Each site's results all in one group, the groups disjoint; the failed group (the one with
    // s3) tried again on its own.
    let group_of = |site: &str| calls.iter().position(|c| c.iter().any(|s| s == site)).unwrap();
    assert_eq!(calls.len(), 3, "{calls:?}");
    for c in &calls[..2] {
        for s in c {
            assert_eq!(c.iter().filter(|x| *x == s).count(), 2, "both results of {s} together: {calls:?}");
        }
    }
    assert!(calls[0].iter().all(|s| !calls[1].contains(s)), "{calls:?}");
    assert_eq!(calls[0].len() + calls[1].len(), 32);
    assert_eq!(calls[2], calls[group_of("s3")], "the failed group again, alone");
}
