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

use crate::support::collect::{Collect, slots};

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
        progress: Default::default(),
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
    producer::run(roster, probe.clone(), publisher.clone(), opts, stop, producer::Reloads::none()).await;
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
    // A site's missed slots ride on its next record, not one record each.
    let records = results.len();
    assert!(results.iter().any(|r| r.missed_slots.is_some()), "no record carried a run");
    let results = slots(&results);
    let missed = results.iter().filter(|r| r.status == CheckStatus::Missed).count();
    let checked = results.len() - missed;
    assert!(missed > 0 && checked > 0, "checked {checked}, missed {missed}");
    assert_eq!(
        records,
        checked
            + results
                .iter()
                .filter(|r| r.status == CheckStatus::Missed
                    && r.error.as_deref() != Some("carried on a later record"))
                .count()
    );
    assert!(records < results.len(), "{records} records for {} slots", results.len());
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

/// Takes every result it is handed and never acknowledges one: a broker that accepts
/// connections but never answers.
#[derive(Default)]
struct Silent(Mutex<Vec<CheckResult>>);

impl StatusPublisher for Silent {
    async fn publish(&self, result: &CheckResult) -> Result<(), PublishError> {
        self.0.lock().unwrap().push(result.clone());
        std::future::pending().await
    }
    async fn flush(&self, _deadline: Duration) -> Result<(), PublishError> {
        Ok(())
    }
    fn is_connected(&self) -> bool {
        false
    }
}

/// Checks take `busy`, except those of sites named `hang…`, which take an hour.
struct Hangs {
    busy: Duration,
}

impl SiteProbe for Hangs {
    async fn check(&self, site: &Site, scheduled_at: DateTime<Utc>) -> CheckResult {
        let busy = if site.id.starts_with("hang") { Duration::from_secs(3600) } else { self.busy };
        // The behaviour under test: a check that takes this long, in paused time.
        tokio::time::sleep(busy).await;
        CheckResult::new(&site.id, site.url.as_str(), "test", scheduled_at, Utc::now(), CheckStatus::Success)
    }
}

/// Runs the producer, asks it to stop after `stop_after` of paused time, and returns its
/// report with the time it took to return after the stop.
async fn stop_after<P: SiteProbe, S: StatusPublisher>(
    sites: Vec<Site>,
    probe: P,
    publisher: Arc<S>,
    opts: ProducerOptions,
    stop_after: Duration,
) -> (producer::ProducerReport, Duration) {
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    let stopped_at = Arc::new(Mutex::new(None));
    let mark = stopped_at.clone();
    tokio::spawn(async move {
        // Paused time: this advances the virtual clock to the moment of the stop.
        tokio::time::sleep(stop_after).await;
        *mark.lock().unwrap() = Some(tokio::time::Instant::now());
        stopper.cancel();
    });
    let roster = producer::Roster::new(sites, &opts);
    // A producer that never returns fails here instead of hanging the test.
    let run = producer::run(roster, Arc::new(probe), publisher, opts, stop, producer::Reloads::none());
    let report = tokio::time::timeout(stop_after + Duration::from_secs(600), run)
        .await
        .expect("the producer did not return after the stop");
    let stopped = stopped_at.lock().unwrap().expect("the producer returned before it was stopped");
    (report, stopped.elapsed())
}

fn accounted(r: &producer::ProducerReport) {
    assert_eq!(r.slots, r.published + r.failed + r.abandoned, "every slot ends one way: {r:?}");
}

#[tokio::test(start_paused = true)]
async fn stop_with_a_full_window_and_a_silent_broker_returns_within_grace() {
    let grace = Duration::from_secs(5);
    let opts = ProducerOptions { grace, max_in_flight: 5, ..options(100, 1) };
    let publisher = Arc::new(Silent::default());
    let (report, took) = stop_after(
        sites(10, "1s", |_| "same.test".into()),
        Hangs { busy: Duration::from_millis(300) },
        publisher.clone(),
        opts,
        Duration::from_secs(30),
    )
    .await;
    assert!(took <= grace, "returned {took:?} after the stop; grace is {grace:?}");
    accounted(&report);
    assert_eq!(report.published, 0, "{report:?}");
    // Five results hold the window for good; the scheduler waits behind them from then on.
    assert_eq!(report.failed, 5, "the results in the window: {report:?}");
    // Ten sites for 30 s at 1 s: about 300 slots were due, and none is left out.
    assert!(report.slots >= 290, "{report:?}");
    assert_eq!(report.abandoned, report.slots - 5, "{report:?}");
    assert_eq!(publisher.0.lock().unwrap().len(), 5, "only the window's results reached the publisher");
    assert!(!report.complete());
}

#[tokio::test(start_paused = true)]
async fn stop_ends_permit_waits_and_hung_checks_within_grace() {
    let grace = Duration::from_secs(5);
    // At the stop, slots wait for the one permit of their host, one check is under way, and
    // one check hangs past the grace period.
    let opts = ProducerOptions { grace, ..options(100, 1) };
    let mut all = sites(8, "2s", |_| "same.test".into());
    all.extend(sites(1, "10s", |_| "elsewhere.test".into()).into_iter().map(|mut s| {
        s.id = "hang".into();
        s
    }));
    let publisher = Arc::new(Collect::default());
    let (report, took) = stop_after(
        all,
        Hangs { busy: Duration::from_millis(700) },
        publisher.clone(),
        opts,
        Duration::from_secs(20),
    )
    .await;
    // The hung check holds the producer until the grace period ends, and not longer.
    assert_eq!(took, grace);
    accounted(&report);
    assert_eq!((report.abandoned, report.failed), (1, 0), "the hung check: {report:?}");
    let results = publisher.slots();
    let stopped = results
        .iter()
        .filter(|r| {
            r.status == CheckStatus::Missed && r.error.as_deref().is_some_and(|e| e.contains("stopped"))
        })
        .count();
    assert!(stopped > 0, "slots waiting for permits at the stop become MISSED records");
    // No silent gap: each busy site's records cover its slots one after another.
    for (id, rs) in by_site(&results) {
        if id == "hang" {
            continue;
        }
        for pair in rs.windows(2) {
            assert_eq!(
                pair[1].scheduled_at - pair[0].scheduled_at,
                chrono::Duration::seconds(2),
                "{id}: gap"
            );
        }
        assert!(rs.len() >= 9, "{id}: {} records for 10 slots", rs.len());
    }
}

#[tokio::test(start_paused = true)]
async fn once_checks_every_site_behind_a_one_permit_host() {
    let opts = ProducerOptions { once: true, grace: Duration::from_secs(1), ..options(100, 1) };
    let publisher = Arc::new(Collect::default());
    let roster = producer::Roster::new(sites(20, "1m", |_| "same.test".into()), &opts);
    let probe = Arc::new(FakeProbe { busy: Duration::from_millis(300), running: Mutex::new((0, 0)) });
    let started = tokio::time::Instant::now();
    let report = producer::run(
        roster,
        probe,
        publisher.clone(),
        opts,
        CancellationToken::new(),
        producer::Reloads::none(),
    )
    .await;
    // 20 checks one after another: 6 s, far past the longest timeout plus the grace period.
    assert_eq!(started.elapsed(), Duration::from_secs(6));
    assert_eq!((report.slots, report.published, report.missed), (20, 20, 0), "{report:?}");
    assert!(report.complete());
    assert_eq!(by_site(&publisher.0.lock().unwrap()).len(), 20);
}

#[tokio::test(start_paused = true)]
async fn once_stopped_midway_publishes_the_rest_as_missed() {
    let opts = ProducerOptions { once: true, grace: Duration::from_secs(5), ..options(100, 1) };
    let publisher = Arc::new(Collect::default());
    let (report, took) = stop_after(
        sites(20, "1m", |_| "same.test".into()),
        Hangs { busy: Duration::from_millis(300) },
        publisher.clone(),
        opts,
        Duration::from_millis(1_450),
    )
    .await;
    // The fifth check, under way at the stop, finishes 50 ms later and is published.
    assert_eq!(took, Duration::from_millis(50));
    accounted(&report);
    assert_eq!((report.slots, report.published, report.missed), (20, 20, 15), "{report:?}");
    assert!(report.complete());
    let results = publisher.0.lock().unwrap().clone();
    assert_eq!(results.iter().filter(|r| r.status == CheckStatus::Success).count(), 5);
}

/// A broker that stops acknowledging does not stop the checks: a site is free for its next slot
/// once its check is over, while delivery waits in the in-flight window.
#[tokio::test(start_paused = true)]
async fn checks_go_on_while_the_broker_does_not_acknowledge() {
    let opts = ProducerOptions { grace: Duration::from_secs(1), ..options(100, 10) };
    let publisher = Arc::new(Silent::default());
    let (report, _) = stop_after(
        sites(3, "1s", |i| format!("h{i}.test")),
        Hangs { busy: Duration::from_millis(100) },
        publisher.clone(),
        opts,
        Duration::from_secs(20),
    )
    .await;
    let handed = publisher.0.lock().unwrap().clone();
    assert!(handed.len() >= 3 * 19, "every slot was checked and handed over: {} ({report:?})", handed.len());
    let missed = handed.iter().filter(|r| r.status == CheckStatus::Missed).count();
    assert_eq!(missed, 0, "no slot was missed for want of an acknowledgement: {report:?}");
}
