//! Site-list reloads in the scheduler, in paused time: no slot lost or repeated, checks under way
//! carried over, an invalid list changing nothing (`reload_signals.rs` drives the binary).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sitemon::config::{ConfigError, Problem};
use sitemon::domain::{CheckResult, CheckStatus, Site};
use sitemon::ports::SiteProbe;
use sitemon::producer::{self, ProducerOptions, ProducerReport, Roster};
use sitemon::reload::{self, Reloaded};
use sitemon::schedule::{next_slot_after, phase};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::collect::Collect;

/// Records each check's start and how many checks of a site ran at once; a check of a site in
/// `busy` takes that long (paused time), others 100 ms.
struct Recording {
    busy: HashMap<&'static str, Duration>,
    started: mpsc::UnboundedSender<(String, DateTime<Utc>)>,
    /// Per site: checks running now, and the most at once.
    running: Mutex<HashMap<String, (usize, usize)>>,
}

impl Recording {
    fn new(busy: &[(&'static str, Duration)]) -> (Arc<Self>, Starts) {
        let (started, rx) = mpsc::unbounded_channel();
        let probe = Recording { busy: busy.iter().copied().collect(), started, running: Mutex::default() };
        (Arc::new(probe), Starts { rx, seen: Vec::new() })
    }

    fn peak(&self, site: &str) -> usize {
        self.running.lock().unwrap().get(site).map_or(0, |r| r.1)
    }
}

impl SiteProbe for Recording {
    async fn check(&self, site: &Site, scheduled_at: DateTime<Utc>) -> CheckResult {
        {
            let mut running = self.running.lock().unwrap();
            let r = running.entry(site.id.clone()).or_default();
            r.0 += 1;
            r.1 = r.1.max(r.0);
        }
        let _ = self.started.send((site.id.clone(), scheduled_at));
        // The behaviour under test: a check that takes this long, in paused time.
        tokio::time::sleep(self.busy.get(site.id.as_str()).copied().unwrap_or(Duration::from_millis(100)))
            .await;
        self.running.lock().unwrap().get_mut(&site.id).expect("counted at the start").0 -= 1;
        CheckResult::new(&site.id, site.url.as_str(), "test", scheduled_at, Utc::now(), CheckStatus::Success)
    }
}

fn sites(items: &str) -> Vec<Site> {
    sitemon::config::parse(&format!("sites:\n{items}"), "s.yaml".as_ref(), &|_| None).unwrap().sites
}

fn options() -> ProducerOptions {
    ProducerOptions {
        once: false,
        max_concurrency: 100,
        per_host_concurrency: 100,
        grace: Duration::from_secs(30),
        region: "test".into(),
        log_results: false,
        max_in_flight: 10_000,
        progress: Default::default(),
    }
}

/// A producer running on `before`, taking new lists from the returned sender.
struct Running {
    publisher: Arc<Collect>,
    reloads: mpsc::Sender<producer::NewList>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<ProducerReport>,
    progress: Arc<producer::Progress>,
}

fn start(before: Vec<Site>, probe: Arc<Recording>) -> Running {
    let publisher = Arc::new(Collect::default());
    let (reloads, rx) = mpsc::channel(1);
    let stop = CancellationToken::new();
    let opts = options();
    let progress = opts.progress.clone();
    let roster = Roster::new(before, &opts);
    let task = tokio::spawn(producer::run(roster, probe, publisher.clone(), opts, stop.clone(), rx.into()));
    Running { publisher, reloads, stop, task, progress }
}

impl Running {
    /// Stops the producer and returns its report and every result it published, by site in
    /// slot order.
    async fn stop(self) -> (ProducerReport, BTreeMap<String, Vec<CheckResult>>) {
        self.stop.cancel();
        let report = tokio::time::timeout(Duration::from_secs(600), self.task)
            .await
            .expect("the producer did not return after the stop")
            .unwrap();
        // Every record is one the consumer admits (a run of missed slots included).
        let admission = sitemon::domain::Admission::new(Utc::now(), Duration::from_secs(86_400 * 3650));
        for r in self.publisher.0.lock().unwrap().iter() {
            if let Err(why) = admission.check(r) {
                panic!("a record the consumer refuses ({why}): {r:?}");
            }
        }
        let results = self.publisher.slots();
        assert_eq!(report.slots, report.published + report.failed + report.abandoned, "{report:?}");
        assert_eq!(report.published as usize, results.len(), "{report:?}");
        let ids: HashSet<_> = results.iter().map(|r| r.check_id).collect();
        assert_eq!(ids.len(), results.len(), "no slot was published twice");
        let mut by_site: BTreeMap<String, Vec<CheckResult>> = BTreeMap::new();
        for r in results {
            by_site.entry(r.site_id.clone()).or_default().push(r);
        }
        for rs in by_site.values_mut() {
            rs.sort_by_key(|r| r.scheduled_at);
        }
        (report, by_site)
    }
}

/// The checks started so far, as the probe reports them.
struct Starts {
    rx: mpsc::UnboundedReceiver<(String, DateTime<Utc>)>,
    seen: Vec<(String, DateTime<Utc>)>,
}

impl Starts {
    /// The slot of the `n`th check of `site` to start (1-based), once it started.
    async fn nth(&mut self, site: &str, n: usize) -> DateTime<Utc> {
        let wait = async {
            loop {
                let mut of_site = self.seen.iter().filter(|(id, _)| id == site);
                if let Some((_, slot)) = of_site.nth(n - 1) {
                    return *slot;
                }
                self.seen.push(self.rx.recv().await.expect("the probe is alive"));
            }
        };
        tokio::time::timeout(Duration::from_secs(3600), wait).await.expect("the check never started")
    }
}

/// Every pair of neighbouring slots is `every` apart: no gap, no repeat.
fn consecutive(rs: &[&CheckResult], every: Duration, what: &str) {
    for pair in rs.windows(2) {
        assert_eq!(
            (pair[1].scheduled_at - pair[0].scheduled_at).to_std().ok(),
            Some(every),
            "{what}: gap or repeat between {} and {}",
            pair[0].scheduled_at,
            pair[1].scheduled_at
        );
    }
}

fn on_grid(rs: &[&CheckResult], id: &str, every: Duration, what: &str) {
    let p = phase(id, every);
    let us = every.as_micros() as i64;
    for r in rs {
        assert_eq!(
            (r.scheduled_at.timestamp_micros() - p).rem_euclid(us),
            0,
            "{what}: {} off the grid",
            r.scheduled_at
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_reload_adds_removes_and_changes_sites_without_losing_or_repeating_a_slot() {
    let before = sites(
        "  - {name: a, url: 'http://a.test/', interval: 10s, timeout: 5s}\n\
         \x20 - {name: b, url: 'http://b.test/old', interval: 10s, timeout: 1s}\n\
         \x20 - {name: c, url: 'http://c.test/', interval: 10s, timeout: 1s}\n",
    );
    let after = sites(
        "  - {name: d, url: 'http://d.test/', interval: 10s, timeout: 1s}\n\
         \x20 - {name: c, url: 'http://c.test/', interval: 7s, timeout: 1s}\n\
         \x20 - {name: b, url: 'http://b.test/new', interval: 10s, timeout: 2s}\n",
    );
    // a's checks take 3 s, so that one is under way at the reload.
    let (probe, mut started) = Recording::new(&[("a", Duration::from_secs(3))]);
    let run = start(before, probe.clone());
    // Paused time: the reload comes at the very instant a's third check starts.
    let reload_at = started.nth("a", 3).await;
    run.reloads.send(after.into()).await.unwrap();
    // Paused time: this is how long the producer runs on the new list.
    tokio::time::sleep(Duration::from_secs(70)).await;
    let (report, by_site) = run.stop().await;
    assert_eq!((report.missed, report.failed, report.abandoned), (0, 0, 0), "{report:?}");
    let ten = Duration::from_secs(10);
    let seven = Duration::from_secs(7);

    // a: removed. Its check under way at the reload ends normally and is published; no slot after.
    let a: Vec<_> = by_site["a"].iter().collect();
    assert_eq!(a.len(), 3, "a's slots up to the reload, the one under way included");
    assert_eq!(a[2].scheduled_at, reload_at);
    assert_eq!(a[2].status, CheckStatus::Success);
    consecutive(&a, ten, "a");

    // b: same interval, new url. Its slots run on across the reload, then with the new url.
    let b: Vec<_> = by_site["b"].iter().collect();
    consecutive(&b, ten, "b");
    on_grid(&b, "b", ten, "b");
    let (b_old, b_new): (Vec<&CheckResult>, Vec<&CheckResult>) =
        b.iter().copied().partition(|r| r.scheduled_at <= reload_at);
    assert!(b_old.len() >= 2 && b_new.len() >= 6, "b: {} before, {} after", b_old.len(), b_new.len());
    assert!(b_old.iter().all(|r| r.url == "http://b.test/old"), "b before the reload");
    assert!(b_new.iter().all(|r| r.url == "http://b.test/new"), "b after the reload");
    assert!(
        b_new[0].scheduled_at - reload_at <= chrono::Duration::seconds(10),
        "b: first slot after the reload"
    );

    // c: 10 s → 7 s. The old grid up to the reload, the new one from its first slot after it.
    let c: Vec<_> = by_site["c"].iter().collect();
    let (c_old, c_new): (Vec<&CheckResult>, Vec<&CheckResult>) =
        c.iter().copied().partition(|r| r.scheduled_at <= reload_at);
    assert!(c_old.len() >= 2 && c_new.len() >= 9, "c: {} before, {} after", c_old.len(), c_new.len());
    consecutive(&c_old, ten, "c before");
    on_grid(&c_old, "c", ten, "c before");
    assert_eq!(c_new[0].scheduled_at, next_slot_after(reload_at, seven, phase("c", seven)));
    consecutive(&c_new, seven, "c after");
    on_grid(&c_new, "c", seven, "c after");

    // d: added. From its first phase slot after the reload.
    let d: Vec<_> = by_site["d"].iter().collect();
    assert_eq!(d[0].scheduled_at, next_slot_after(reload_at, ten, phase("d", ten)));
    assert!(d.len() >= 6, "d: {} slots", d.len());
    consecutive(&d, ten, "d");
    assert!(by_site.values().flatten().all(|r| r.status == CheckStatus::Success));
}

/// A site taken over from another producer (its region's group on the sites topic) starts at the
/// first slot that producer did not publish: the slots already followed by the next one at the
/// takeover are MISSED records, the last one is checked late, and no slot is skipped. How far
/// back is bounded; a site without a previous owner starts as an added one. The progress a group
/// member commits never passes a slot in flight.
#[tokio::test(start_paused = true)]
async fn a_taken_over_site_starts_where_its_last_owner_stopped_and_the_gap_is_missed() {
    let (probe, mut started) = Recording::new(&[("a", Duration::from_secs(3))]);
    let a = "  - {name: a, url: 'http://a.test/', interval: 10s, timeout: 5s}\n";
    let run = start(sites(a), probe.clone());
    let a1 = started.nth("a", 1).await;
    assert_eq!(run.progress.checked_through(), Some(a1.timestamp_micros()), "a's first check is in flight");
    let from = a1 - chrono::Duration::milliseconds(4500);
    let list = sites(&format!(
        "{a}  - {{name: b, url: 'http://b.test/', interval: 1s, timeout: 500ms}}\n\
         \x20 - {{name: c, url: 'http://c.test/', interval: 10s, timeout: 1s}}\n\
         \x20 - {{name: d, url: 'http://d.test/', interval: 1s, timeout: 500ms}}\n"
    ));
    let resume = HashMap::from([
        ("b".to_owned(), from.timestamp_micros()),
        ("c".to_owned(), (a1 - chrono::Duration::hours(2)).timestamp_micros()),
    ]);
    let (tx, applied) = tokio::sync::oneshot::channel();
    run.reloads.send(producer::NewList { sites: list, resume, applied: Some(tx) }).await.unwrap();
    let applied = DateTime::from_timestamp_micros(applied.await.expect("the list took effect")).unwrap();
    // Paused time: this is how long the producer runs on the new list.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let progress = run.progress.clone();
    let (report, by_site) = run.stop().await;
    let second = Duration::from_secs(1);
    let b: Vec<_> = by_site["b"].iter().collect();
    consecutive(&b, second, "b");
    let first = next_slot_after(from - chrono::Duration::microseconds(1), second, phase("b", second));
    assert_eq!(b[0].scheduled_at, first, "b starts at the first slot its last owner did not publish");
    for r in &b {
        let missed = r.scheduled_at + chrono::Duration::seconds(1) <= applied;
        let expected = if missed { CheckStatus::Missed } else { CheckStatus::Success };
        assert_eq!(r.status, expected, "b's slot {} (taken over at {applied})", r.scheduled_at);
    }
    assert!(b.iter().filter(|r| r.status == CheckStatus::Missed).count() >= 4, "b's gap");
    let ten = Duration::from_secs(10);
    let c: Vec<_> = by_site["c"].iter().collect();
    let oldest = applied - chrono::Duration::from_std(producer::TAKEOVER_LOOKBACK).unwrap();
    assert_eq!(
        c[0].scheduled_at,
        next_slot_after(oldest - chrono::Duration::microseconds(1), ten, phase("c", ten))
    );
    consecutive(&c, ten, "c");
    for r in &c {
        let missed = r.scheduled_at + chrono::Duration::seconds(10) <= applied;
        assert_eq!(
            r.status == CheckStatus::Missed,
            missed,
            "c's slot {} (taken over at {applied})",
            r.scheduled_at
        );
    }
    let missed = c.iter().filter(|r| r.status == CheckStatus::Missed).count();
    assert!((59..=60).contains(&missed), "c's lookback of 600 s, not two hours: {missed}");
    let d: Vec<_> = by_site["d"].iter().collect();
    assert_eq!(d[0].scheduled_at, next_slot_after(applied, second, phase("d", second)), "no previous owner");
    assert!(d.iter().all(|r| r.status == CheckStatus::Success));
    assert_eq!((report.failed, report.abandoned), (0, 0), "{report:?}");
    let through = progress.checked_through().expect("known");
    assert!(by_site.values().flatten().all(|r| r.scheduled_at.timestamp_micros() < through));
}

/// A check the grace period cut off was never published: the progress a group member commits
/// stays before its slot, so the next owner records it.
#[tokio::test(start_paused = true)]
async fn a_check_abandoned_at_the_end_of_the_grace_period_holds_the_progress_back() {
    let (probe, mut started) = Recording::new(&[("h", Duration::from_secs(3600))]);
    let run =
        start(sites("  - {name: h, url: 'http://h.test/', interval: 50m, timeout: 40m}\n"), probe.clone());
    let slot = started.nth("h", 1).await;
    let progress = run.progress.clone();
    let (report, _) = run.stop().await;
    assert_eq!(report.abandoned, 1, "{report:?}");
    let through = progress.checked_through().expect("known");
    assert!(through <= slot.timestamp_micros(), "the progress passed the abandoned slot {slot}");
}

#[tokio::test(start_paused = true)]
async fn a_check_under_way_at_a_reload_keeps_its_site_busy() {
    // s and t: a slot every 2 s, checks of 5 s, so a check spans the next two slots. The reload
    // changes s's url and t's interval while the first check of each is under way.
    let before = sites(
        "  - {name: s, url: 'http://s.test/old', interval: 2s, timeout: 1s}\n\
         \x20 - {name: t, url: 'http://t.test/', interval: 2s, timeout: 1s}\n",
    );
    let after = sites(
        "  - {name: s, url: 'http://s.test/new', interval: 2s, timeout: 1s}\n\
         \x20 - {name: t, url: 'http://t.test/', interval: 3s, timeout: 1s}\n",
    );
    let five = Duration::from_secs(5);
    let (probe, mut started) = Recording::new(&[("s", five), ("t", five)]);
    let run = start(before, probe.clone());
    let s_first = started.nth("s", 1).await;
    let t_first = started.nth("t", 1).await;
    let reload_at = s_first.max(t_first);
    run.reloads.send(after.into()).await.unwrap();
    // Paused time: this is how long the producer runs on the new list.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (report, by_site) = run.stop().await;
    assert_eq!(probe.peak("s"), 1, "a second check of s overlapped the one from before the reload");
    assert_eq!(probe.peak("t"), 1, "a second check of t overlapped the one from before the reload");
    assert!(report.missed > 0, "{report:?}");

    let s: Vec<_> = by_site["s"].iter().collect();
    consecutive(&s, Duration::from_secs(2), "s");
    let first = s.iter().position(|r| r.scheduled_at == s_first).expect("s's first check was published");
    let statuses: Vec<_> = s[first..first + 4].iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [CheckStatus::Success, CheckStatus::Missed, CheckStatus::Missed, CheckStatus::Success],
        "the check from before the reload (0–5 s) makes the slots at 2 s and 4 s MISSED"
    );
    assert_eq!(s[first].url, "http://s.test/old");
    assert_eq!(s[first + 3].url, "http://s.test/new");

    // t: its new grid starts after the reload; its first slots there find the old check running.
    let t: Vec<_> = by_site["t"].iter().collect();
    let t_new: Vec<_> = t.iter().copied().filter(|r| r.scheduled_at > reload_at).collect();
    let three = Duration::from_secs(3);
    assert_eq!(t_new[0].scheduled_at, next_slot_after(reload_at, three, phase("t", three)));
    consecutive(&t_new, three, "t after");
    let t_first_end = t_first + chrono::Duration::seconds(5);
    assert!(t_new[0].scheduled_at < t_first_end, "t's first new slot falls within the check from before");
    for r in &t_new {
        if r.scheduled_at < t_first_end {
            assert_eq!(
                r.status,
                CheckStatus::Missed,
                "t's slot at {} overlaps the check from before",
                r.scheduled_at
            );
        }
    }
    assert!(t_new.iter().any(|r| r.status == CheckStatus::Success));
}

/// Counts the counters incremented while it is the thread's recorder.
#[derive(Default)]
struct Counters(Mutex<HashMap<String, Arc<AtomicU64>>>);

impl Counters {
    fn get(&self, name: &str) -> u64 {
        self.0.lock().unwrap().get(name).map_or(0, |c| c.load(std::sync::atomic::Ordering::Relaxed))
    }
}

impl metrics::Recorder for Counters {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.0.lock().unwrap().entry(key.name().to_owned()).or_default().clone())
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

#[tokio::test(start_paused = true)]
async fn an_invalid_list_keeps_the_running_one_and_counts_a_failure() {
    // The test runtime has one thread: every task increments this recorder's counters.
    let counters = Counters::default();
    let _recorder = metrics::set_default_local_recorder(&counters);
    let two = "  - {name: a, url: 'http://a.test/', interval: 5s, timeout: 1s}\n  - {name: b, url: 'http://b.test/', interval: 5s, timeout: 1s}\n";
    let (probe, mut started) = Recording::new(&[]);
    let run = start(sites(two), probe);
    started.nth("b", 2).await;
    let bad = Arc::new(|| {
        let mut p = Problem::new("sites[2].interval", "`soon` is not a duration");
        p.at = Some((4, 40));
        Err(ConfigError { file: "sites.yaml".into(), problems: vec![p] })
    });
    assert_eq!(reload::reload(bad, &run.reloads).await, Reloaded::Failed);
    assert_eq!(counters.get("sitemon_config_reload_failures_total"), 1);
    assert_eq!(counters.get("sitemon_config_reloads_total"), 0);
    // Paused time: the producer runs on for a while after the failed reload.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let three = format!("{two}  - {{name: c, url: 'http://c.test/', interval: 5s, timeout: 1s}}\n");
    let good = Arc::new(move || Ok(reload::Loaded { sites: sites(&three), files: Vec::new() }));
    assert_eq!(reload::reload(good, &run.reloads).await, Reloaded::Sent);
    assert_eq!(counters.get("sitemon_config_reloads_total"), 1);
    assert_eq!(counters.get("sitemon_config_reload_failures_total"), 1);
    let c_first = started.nth("c", 1).await;
    // Paused time: and for a while on the new list (the stop falls between c's slots).
    tokio::time::sleep(Duration::from_secs(32)).await;
    let (report, by_site) = run.stop().await;
    let missed: Vec<_> = by_site.values().flatten().filter(|r| r.status == CheckStatus::Missed).collect();
    assert_eq!(report.missed, 0, "{report:?} {missed:#?}");
    let five = Duration::from_secs(5);
    for id in ["a", "b"] {
        let rs: Vec<_> = by_site[id].iter().collect();
        assert!(rs.len() >= 12, "{id}: {} slots in over a minute", rs.len());
        consecutive(&rs, five, id);
    }
    let c: Vec<_> = by_site["c"].iter().collect();
    assert_eq!(c[0].scheduled_at, c_first, "c starts only with the list that loaded");
    assert!(c.len() >= 6, "c: {} slots", c.len());
}

/// A run of missed slots is one interval apart: a reload that changes the site's interval
/// publishes the run gathered on the old grid (a record the consumer admits) rather than carry it
/// onto the new one, and no slot of either grid is left out.
#[tokio::test(start_paused = true)]
async fn a_run_of_missed_slots_is_published_when_its_sites_interval_changes() {
    let (probe, mut started) = Recording::new(&[("t", Duration::from_millis(5_500))]);
    let run =
        start(sites("  - {name: t, url: 'http://t.test/', interval: 1s, timeout: 1s}\n"), probe.clone());
    let first = started.nth("t", 1).await;
    // Paused time: the first check runs 5.5 s, so the slots after it are missed meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    run.reloads
        .send(sites("  - {name: t, url: 'http://t.test/', interval: 10s, timeout: 1s}\n").into())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(40)).await;
    // `stop` checks that the consumer admits every record.
    let (report, by_site) = run.stop().await;
    assert!(report.missed >= 3, "{report:?}");
    let t = &by_site["t"];
    let old: Vec<_> = t.iter().filter(|r| r.scheduled_at >= first && r.interval_ms == Some(1_000)).collect();
    assert!(old.len() >= 4, "the 1 s grid: {old:#?}");
    consecutive(&old, Duration::from_secs(1), "t on the 1 s grid");
    assert!(old[1..].iter().all(|r| r.status == CheckStatus::Missed), "{old:#?}");
    let new: Vec<_> = t.iter().filter(|r| r.interval_ms == Some(10_000)).collect();
    assert!(new.len() >= 3, "the 10 s grid: {new:#?}");
    consecutive(&new, Duration::from_secs(10), "t on the 10 s grid");
}

/// A new list publishes the runs of missed slots waiting, a kept site's too: a group member
/// handing sites on waits for the checks in flight, not for the next record of every site it
/// keeps (which an overloaded site gets only after its next check).
#[tokio::test(start_paused = true)]
async fn a_new_list_publishes_the_runs_waiting_so_the_progress_passes_it() {
    let (probe, mut started) = Recording::new(&[("k", Duration::from_millis(5_500))]);
    let two = "  - {name: k, url: 'http://k.test/', interval: 1s, timeout: 1s}\n\
               \x20 - {name: r, url: 'http://r.test/', interval: 1s, timeout: 1s}\n";
    let run = start(sites(two), probe.clone());
    started.nth("k", 1).await;
    // Paused time: k's first check runs 5.5 s; the slots meanwhile wait in its run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let list = producer::NewList {
        sites: sites("  - {name: k, url: 'http://k.test/', interval: 1s, timeout: 1s}\n"),
        applied: Some(tx),
        ..Default::default()
    };
    run.reloads.send(list).await.unwrap();
    let applied = rx.await.unwrap();
    // The check under way ends 2.5 s later; the run taken with the list is published at once.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let through = run.progress.checked_through().unwrap();
    assert!(through >= applied, "the progress {through} is still before the list ({applied})");
    let (report, by_site) = run.stop().await;
    assert!(report.missed >= 3, "{report:?}");
    let k: Vec<_> = by_site["k"].iter().collect();
    consecutive(&k, Duration::from_secs(1), "k");
}
