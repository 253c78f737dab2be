//! The scheduler in paused time: exact slots without drift, even spreading, missed slots as
//! records (never gaps), and concurrency caps. Fake probe and publisher; tokio's clock is paused,
//! so hours of schedule run in milliseconds and every instant is exact.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sitemon::domain::{CheckResult, CheckStatus, Site};
use sitemon::ports::{PublishError, SiteProbe, StatusPublisher};
use sitemon::producer::{self, ProducerOptions};
use sitemon::schedule::phase;
use tokio_util::sync::CancellationToken;

/// Takes `busy` of (paused) time per check and remembers the peak concurrency.
struct FakeProbe {
    busy: Duration,
    running: Mutex<(usize, usize)>,
}

impl SiteProbe for FakeProbe {
    async fn check(&self, site: &Site, scheduled_at: DateTime<Utc>) -> CheckResult {
        {
            let mut r = self.running.lock().unwrap();
            r.0 += 1;
            r.1 = r.1.max(r.0);
        }
        // The behaviour under test: a check that takes this long, in paused time.
        tokio::time::sleep(self.busy).await;
        self.running.lock().unwrap().0 -= 1;
        CheckResult::new(&site.id, site.url.as_str(), "test", scheduled_at, Utc::now(), CheckStatus::Success)
    }
}

#[derive(Default)]
struct Collect(Mutex<Vec<CheckResult>>);

impl StatusPublisher for Collect {
    async fn publish(&self, result: &CheckResult) -> Result<(), PublishError> {
        self.0.lock().unwrap().push(result.clone());
        Ok(())
    }
    async fn flush(&self, _deadline: Duration) -> Result<(), PublishError> {
        Ok(())
    }
    fn is_connected(&self) -> bool {
        true
    }
}

fn sites(n: usize, interval: &str, host: impl Fn(usize) -> String) -> Vec<Site> {
    let mut text = String::from("sites:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  - {{name: site-{i}, url: 'http://{}/', interval: {interval}, timeout: 1s}}\n",
            host(i)
        ));
    }
    sitemon::config::parse(&text, "s.yaml".as_ref(), &|_| None).unwrap().sites
}

fn options(max: usize, per_host: usize) -> ProducerOptions {
    ProducerOptions {
        once: false,
        max_concurrency: max,
        per_host_concurrency: per_host,
        grace: Duration::from_secs(30),
        region: "test".into(),
        log_results: false,
        max_in_flight: 10_000,
    }
}

/// Runs the producer for `span` of paused time and returns everything it published.
async fn run_for(
    sites: Vec<Site>,
    busy: Duration,
    opts: ProducerOptions,
    span: Duration,
) -> (Vec<CheckResult>, usize) {
    let probe = Arc::new(FakeProbe { busy, running: Mutex::new((0, 0)) });
    let publisher = Arc::new(Collect::default());
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        // Paused time: this advances the virtual clock by `span` at once; it is the run's length.
        tokio::time::sleep(span).await;
        stopper.cancel();
    });
    let roster = producer::Roster::new(sites, &opts);
    producer::run(roster, probe.clone(), publisher.clone(), opts, stop).await;
    let results = publisher.0.lock().unwrap().clone();
    let peak = probe.running.lock().unwrap().1;
    (results, peak)
}

fn by_site(results: &[CheckResult]) -> BTreeMap<String, Vec<&CheckResult>> {
    let mut m: BTreeMap<String, Vec<&CheckResult>> = BTreeMap::new();
    for r in results {
        m.entry(r.site_id.clone()).or_default().push(r);
    }
    for v in m.values_mut() {
        v.sort_by_key(|r| r.scheduled_at);
    }
    m
}

#[tokio::test(start_paused = true)]
async fn slots_sit_on_the_phase_and_never_drift() {
    let interval = Duration::from_secs(10);
    let (results, _) = run_for(
        sites(3, "10s", |_| "a.test".into()),
        Duration::from_millis(250),
        options(100, 100),
        Duration::from_secs(10_000),
    )
    .await;
    let per_site = by_site(&results);
    assert_eq!(per_site.len(), 3);
    for (id, rs) in per_site {
        assert!(rs.len() >= 998, "{id}: {} checks in 1000 intervals", rs.len());
        let p = phase(&id, interval);
        for pair in rs.windows(2) {
            assert_eq!(
                pair[1].scheduled_at - pair[0].scheduled_at,
                chrono::Duration::seconds(10),
                "{id}: drift"
            );
        }
        for r in &rs {
            assert_eq!(r.status, CheckStatus::Success);
            assert_eq!((r.scheduled_at.timestamp_micros() - p).rem_euclid(10_000_000), 0, "{id}: off phase");
            let lag = (r.started_at - r.scheduled_at).num_microseconds().unwrap();
            assert!((0..1_000).contains(&lag), "{id}: started {lag} µs after its slot");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn sites_with_one_interval_spread_over_it() {
    let n = 200;
    let (results, peak) = run_for(
        sites(n, "1m", |i| format!("h{i}.test")),
        Duration::from_millis(10),
        options(1000, 1000),
        Duration::from_secs(61),
    )
    .await;
    let mut offsets: Vec<i64> = by_site(&results)
        .values()
        .map(|rs| rs[0].scheduled_at.timestamp_micros().rem_euclid(60_000_000))
        .collect();
    assert_eq!(offsets.len(), n);
    offsets.sort();
    // With even spreading no quarter of the minute holds more than about a quarter of the sites.
    for q in 0..4 {
        let in_q = offsets.iter().filter(|o| **o / 15_000_000 == q).count();
        assert!((30..=70).contains(&in_q), "quarter {q} has {in_q} of {n} sites: {offsets:?}");
    }
    assert!(peak <= 10, "spread checks rarely overlap; peak was {peak}");
}

#[tokio::test(start_paused = true)]
async fn slots_that_cannot_start_in_time_become_missed_records() {
    // One permit, four sites wanting 4 s of it every 5 s: most slots cannot start in time.
    let (results, peak) = run_for(
        sites(4, "5s", |i| format!("h{i}.test")),
        Duration::from_secs(4),
        options(1, 10),
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(peak, 1, "the global cap holds");
    let missed = results.iter().filter(|r| r.status == CheckStatus::Missed).count();
    let checked = results.len() - missed;
    assert!(missed > 0 && checked > 0, "checked {checked}, missed {missed}");
    // No silent gaps: every slot of every site, from its first to its last, has exactly one record.
    for (id, rs) in by_site(&results) {
        for pair in rs.windows(2) {
            assert_eq!(
                pair[1].scheduled_at - pair[0].scheduled_at,
                chrono::Duration::seconds(5),
                "{id}: gap or duplicate"
            );
        }
        assert!(rs.len() >= 55, "{id}: {} records for 60 slots", rs.len());
    }
    let ids: HashMap<_, usize> = results.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r.check_id).or_default() += 1;
        m
    });
    assert!(ids.values().all(|n| *n == 1), "check ids are unique per slot");
}

#[tokio::test(start_paused = true)]
async fn per_host_cap_limits_checks_against_one_host() {
    let (_, peak) = run_for(
        sites(20, "1s", |_| "same.test".into()),
        Duration::from_millis(900),
        options(100, 3),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(peak, 3);
}
