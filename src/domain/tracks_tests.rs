//! Unit and property tests of the incident derivation (`tracks.rs`): thresholds, quorum, the
//! operator scenarios of judged slots, and the verdict's independence from delivery.

use super::*;
use crate::domain::IncidentEvent;
use chrono::TimeZone;
use proptest::prelude::*;
use uuid::Uuid;

const T0: i64 = 1_800_000_000;

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(T0 + s, 0).unwrap()
}

/// `pattern`: one char per slot at 10 s spacing: `+` success, `x` failure, `m` missed, `.` none.
fn results(region: &str, pattern: &str, f: impl Fn(&mut CheckResult)) -> Vec<CheckResult> {
    pattern
        .chars()
        .enumerate()
        .filter(|(_, c)| *c != '.')
        .map(|(i, c)| {
            let t = at(i as i64 * 10);
            let status = match c {
                '+' => CheckStatus::Success,
                'x' => CheckStatus::Failure,
                _ => CheckStatus::Missed,
            };
            let mut r = CheckResult::new("s", "http://s/", region, t, t, status);
            if c == 'x' {
                r.fail(FailureKind::Connect, format!("refused at {i}"));
            }
            r.interval_ms = Some(10_000);
            f(&mut r);
            r
        })
        .collect()
}

/// In the order a partition holds them when every clock is right: by slot.
fn in_time_order(mut rs: Vec<CheckResult>) -> Vec<CheckResult> {
    rs.sort_by(|a, b| (a.scheduled_at, &a.region).cmp(&(b.scheduled_at, &b.region)));
    rs
}

fn fold_with(rs: &[CheckResult], j: &Judging) -> (SiteTracks, Derived) {
    let mut tracks = SiteTracks::new("s");
    let mut out = Derived::default();
    tracks.fold(rs, j, &mut out);
    (tracks, out)
}

fn fold(rs: &[CheckResult]) -> (SiteTracks, Derived) {
    fold_with(rs, &Judging::default())
}

fn kinds(d: &Derived) -> Vec<(EventKind, Option<&str>, i64)> {
    d.events.iter().map(|e| (e.kind, e.incident.region.as_deref(), (e.at.timestamp() - T0) / 10)).collect()
}

fn site_events(d: &Derived) -> Vec<(EventKind, i64)> {
    d.events
        .iter()
        .filter(|e| e.incident.region.is_none())
        .map(|e| (e.kind, (e.at.timestamp() - T0) / 10))
        .collect()
}

#[test]
fn down_after_failures_open_and_up_after_successes_close() {
    // The first result only makes the region known; it counts from its second.
    let rs = results("eu", "++xx+xxxmx++", |r| {
        r.down_after = Some(3);
        r.up_after = Some(2);
    });
    let (t, d) = fold(&rs);
    use EventKind::*;
    assert_eq!(
        kinds(&d),
        vec![(Opened, Some("eu"), 7), (Opened, None, 7), (Closed, Some("eu"), 11), (Closed, None, 11)]
    );
    let region = d.incidents.iter().find(|i| i.region.is_some()).unwrap();
    assert_eq!((region.started_at, region.confirmed_at, region.ended_at), (at(50), at(70), Some(at(100))));
    assert_eq!(region.failed_checks, 4, "x at 5, 6, 7 and 9; the MISSED slot is neither");
    assert_eq!(region.error.as_deref(), Some("refused at 5"));
    assert_eq!(region.failure_kind, Some(FailureKind::Connect));
    assert_eq!(region.end_reason, Some(EndReason::Recovered));
    let site = d.incidents.iter().find(|i| i.region.is_none()).unwrap();
    assert_eq!((site.started_at, site.ended_at, site.failed_checks), (at(50), Some(at(100)), 4));
    assert!(!t.site.down && t.site.incident.is_none() && t.site.pending.is_empty());
}

#[test]
fn defaults_are_three_failures_and_one_success() {
    let (_, d) = fold(&results("eu", "+xx+xx+", |_| {}));
    assert!(d.events.is_empty(), "two failures are not an outage: {d:?}");
    let (_, d) = fold(&results("eu", "+xxx+", |_| {}));
    assert_eq!(d.events.len(), 4);
    let (_, d) = fold(&results("eu", "xxx+", |_| {}));
    assert!(d.events.is_empty(), "a region's first result only makes it known: {d:?}");
}

#[test]
fn one_region_of_three_opens_no_site_incident_two_do() {
    let mut rs = results("eu", "++xxxxxx++", |_| {});
    rs.extend(results("us", "++++++++++", |_| {}));
    rs.extend(results("ap", "++++++++++", |_| {}));
    let (_, d) = fold(&in_time_order(rs));
    assert!(d.incidents.iter().all(|i| i.region.is_some()), "{d:?}");
    assert_eq!(d.incidents.len(), 1);

    let mut rs = results("eu", "++xxxxxx++", |_| {});
    rs.extend(results("us", "+++xxxxx++", |_| {}));
    rs.extend(results("ap", "++++++++++", |_| {}));
    let (_, d) = fold(&in_time_order(rs));
    let site: Vec<&Incident> = d.incidents.iter().filter(|i| i.region.is_none()).collect();
    assert_eq!(site.len(), 1, "{d:?}");
    let site = site[0];
    assert_eq!(site.regions, vec!["eu".to_owned(), "us".to_owned()]);
    assert_eq!(site.started_at, at(30), "down since both were failing");
    assert_eq!(site.confirmed_at, at(50), "us confirmed at its third failure");
    assert_eq!(site.ended_at, Some(at(80)));
}

#[test]
fn a_quorum_override_and_a_silent_region() {
    // quorum 1: one region is enough.
    let mut rs = results("eu", "+xxx+", |r| r.quorum = Some(1));
    rs.extend(results("us", "+++++", |r| r.quorum = Some(1)));
    let (_, d) = fold(&in_time_order(rs));
    assert_eq!(d.incidents.iter().filter(|i| i.region.is_none()).count(), 1);

    // us stops reporting after its first results: from 3 intervals on it is unknown, not up,
    // so eu alone is the majority of the regions that report. (A slot waits for us until the
    // newest result is max_skew plus 3 intervals past it; then it is judged without us.)
    let mut rs = results("eu", "+xxxxxxxxxx+++", |_| {});
    rs.extend(results("us", "++", |_| {}));
    let j = Judging { max_skew: TimeDelta::seconds(10), ..Judging::default() };
    let (_, d) = fold_with(&in_time_order(rs), &j);
    let site = d.incidents.iter().find(|i| i.region.is_none()).expect("site incident");
    assert_eq!(site.confirmed_at, at(50), "us went silent after 3 intervals");
    assert_eq!(site.regions, vec!["eu".to_owned()]);
}

#[test]
fn a_down_region_that_goes_silent_keeps_the_site_down_until_a_recovery() {
    // eu and us fail from slot 1, ap is up; eu's producer stops after slot 5: unknown is not up,
    // so the site stays down until us recovers at slot 13.
    let mut rs = results("eu", "+xxxxx", |_| {});
    rs.extend(results("us", "+xxxxxxxxxxxx++++", |_| {}));
    rs.extend(results("ap", "+++++++++++++++++", |_| {}));
    let j = Judging { max_skew: TimeDelta::seconds(10), ..Judging::default() };
    let (_, d) = fold_with(&in_time_order(rs), &j);
    assert_eq!(site_events(&d), vec![(EventKind::Opened, 3), (EventKind::Closed, 13)], "{d:?}");
}

#[test]
fn a_silent_region_is_retired_after_the_expiry_and_its_incident_closes_as_retired() {
    // eu fails, is down, and its producer goes away; us reports on. With a 60 s expiry, eu is
    // retired at the first slot judged more than 60 s after its last result.
    let mut rs = results("eu", "+xxxx", |_| {});
    rs.extend(results("us", "++++++++++++++", |_| {}));
    let j = Judging { max_skew: TimeDelta::seconds(10), region_expiry: TimeDelta::seconds(60) };
    let (t, d) = fold_with(&in_time_order(rs), &j);
    let eu: Vec<&IncidentEvent> =
        d.events.iter().filter(|e| e.incident.region.as_deref() == Some("eu")).collect();
    assert_eq!(eu.len(), 2, "{d:?}");
    assert_eq!(eu[1].kind, EventKind::Closed);
    assert_eq!(eu[1].incident.end_reason, Some(EndReason::Retired));
    assert_eq!(eu[1].incident.ended_at, Some(at(40)), "at its last result");
    assert_eq!((eu[1].at.timestamp() - T0) / 10, 11, "the first slot more than 60 s after it");
    assert!(t.regions.iter().all(|r| r.region != "eu"), "retired: no longer tracked");
    assert_eq!(d.retired, 1);
}

/// The first scenario: three regions at one slot, where `a` tips the site down, `b`
/// recovers and `c` fails. Judged as a slot, in any order of arrival, it is one verdict.
#[test]
fn three_regions_at_one_slot_are_one_verdict_in_any_order() {
    let mut rs = results("a", "++xxx", |_| {});
    rs.extend(results("b", "+xxx+", |_| {}));
    rs.extend(results("c", "++xxx", |_| {}));
    let rs = in_time_order(rs);
    let (last, before) = rs.split_at(rs.len() - 3);
    let mut want = None;
    for order in [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
        let mut stream = last.to_vec();
        stream.extend(order.iter().map(|&i| before[i].clone()));
        let (_, d) = fold(&stream);
        let ids: Vec<Uuid> = d.events.iter().map(|e| e.event_id).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "every event its own id: {d:?}");
        assert_eq!(site_events(&d), vec![(EventKind::Opened, 4)], "order {order:?}: {d:?}");
        match &want {
            None => want = Some(d.events),
            Some(w) => assert_eq!(&d.events, w, "order {order:?}"),
        }
    }
}

/// Regions eu, us, ap; only ap fails, and its producer's clock is 10 minutes ahead (admitted by
/// a 1 h bound). One region of three never opens a site-wide incident, whatever the batches.
#[test]
fn one_skewed_failing_region_of_three_never_opens_the_site() {
    let ahead = 60; // slots of 10 s
    let mut rs = results("eu", &"+".repeat(200), |_| {});
    rs.extend(results("us", &"+".repeat(200), |_| {}));
    let mut ap = results("ap", &format!("+{}", "x".repeat(199)), |_| {});
    for r in &mut ap {
        r.scheduled_at += TimeDelta::seconds(ahead * 10);
        r.started_at = r.scheduled_at;
    }
    // Arrival order: by the real time each was checked.
    let mut stream: Vec<(i64, CheckResult)> =
        rs.into_iter().map(|r| (r.scheduled_at.timestamp(), r)).collect();
    stream.extend(ap.into_iter().map(|r| (r.scheduled_at.timestamp() - ahead * 10, r)));
    stream.sort_by(|a, b| (a.0, &a.1.region).cmp(&(b.0, &b.1.region)));
    let stream: Vec<CheckResult> = stream.into_iter().map(|(_, r)| r).collect();
    let j = Judging { max_skew: TimeDelta::hours(1), ..Judging::default() };
    for batch in [1, 7, 500] {
        let mut t = SiteTracks::new("s");
        let mut d = Derived::default();
        for chunk in stream.chunks(batch) {
            t.fold(chunk, &j, &mut d);
        }
        assert!(d.incidents.iter().all(|i| i.region.as_deref() == Some("ap")), "batch {batch}: {d:?}");
        assert_eq!(d.events.len(), 1, "ap's own incident, opened once: {d:?}");
        assert!(t.site.pending.len() <= 3 * (ahead as usize + 1), "waiting results stay bounded");
    }
}

/// One SUCCESS dated 50 minutes ahead, then present failures of the same region: the present is
/// judged as it comes; the future result waits for its slot and closes nothing before it.
#[test]
fn a_result_from_the_future_does_not_hide_the_present() {
    let mut future = results("eu", "+", |_| {});
    future[0].scheduled_at = at(3000);
    let present = results("eu", "++xxxxx", |_| {});
    let mut stream = vec![present[0].clone(), present[1].clone(), future[0].clone()];
    stream.extend(present[2..].iter().cloned());
    let j = Judging { max_skew: TimeDelta::hours(1), ..Judging::default() };
    let (t, d) = fold_with(&stream, &j);
    assert_eq!(kinds(&d), vec![(EventKind::Opened, Some("eu"), 4), (EventKind::Opened, None, 4)], "{d:?}");
    assert!(t.regions[0].incident.is_some(), "still open: the future success is not judged yet");
    assert_eq!(t.site.pending.len(), 1);
}

/// The default region is the host name, new with every container: 70 short-lived labels, then a
/// new label's outage opens its incident; a label that was down when it went away is retired.
#[test]
fn seventy_short_lived_labels_then_a_new_labels_outage() {
    let mut stream = Vec::new();
    for i in 0..70i64 {
        // Each label reports 3 slots (the 6th fails throughout), one after another.
        let pattern = if i == 5 { "+xxxx" } else { "+++" };
        for mut r in results(&format!("host-{i}"), pattern, |_| {}) {
            r.scheduled_at += TimeDelta::seconds(i * 50);
            stream.push(r);
        }
    }
    let start = 70 * 50;
    for mut r in results("host-new", "+xxxxxx", |_| {}) {
        r.scheduled_at += TimeDelta::seconds(start);
        stream.push(r);
    }
    let stream = in_time_order(stream);
    let j = Judging { max_skew: TimeDelta::seconds(10), region_expiry: TimeDelta::hours(1) };
    let (t, d) = fold_with(&stream, &j);
    assert!(t.regions.len() <= MAX_REGIONS);
    let new: Vec<&IncidentEvent> =
        d.events.iter().filter(|e| e.incident.region.as_deref() == Some("host-new")).collect();
    assert_eq!(new.len(), 1, "the new label's outage opens: {d:?}");
    assert_eq!(d.ignored, 0, "no label ignored");
    let old: Vec<&IncidentEvent> =
        d.events.iter().filter(|e| e.incident.region.as_deref() == Some("host-5")).collect();
    assert_eq!(old.iter().map(|e| e.kind).collect::<Vec<_>>(), vec![EventKind::Opened, EventKind::Closed]);
    assert_eq!(old[1].incident.end_reason, Some(EndReason::Retired));
}

#[test]
fn odd_tracks_and_invented_regions_do_not_break_the_fold() {
    // A track stored as down without its incident: a success only clears it.
    let mut t = SiteTracks::new("s");
    t.regions.push(Track { down: true, last_at: Some(at(-10)), ..Track::new("eu") });
    let mut d = Derived::default();
    t.fold(&results("eu", "++++", |_| {}), &Judging::default(), &mut d);
    assert!(d.events.is_empty() && !t.regions[0].down);
    // Interval 0 and thresholds past i32 are read as unknown and as large.
    let (t, _) = fold(&results("eu", &"x".repeat(25), |r| {
        (r.interval_ms, r.down_after) = (Some(0), Some(u32::MAX));
    }));
    assert_eq!(t.regions[0].down_after, Some(i32::MAX));
    // More live regions than MAX_REGIONS at once: the rest judge nothing.
    let mut rs = Vec::new();
    for i in 0..MAX_REGIONS + 6 {
        rs.extend(results(&format!("r{i}"), "x", |_| {}));
    }
    let (t, d) = fold(&rs);
    assert_eq!((t.regions.len(), d.ignored), (MAX_REGIONS, 6));
}

#[test]
fn waiting_results_survive_a_round_trip_through_json() {
    let mut t = SiteTracks::new("s");
    let mut d = Derived::default();
    let mut rs = results("eu", "+++x", |r| r.quorum = Some(2));
    rs.extend(results("us", "+++", |_| {}));
    t.fold(&in_time_order(rs), &Judging::default(), &mut d);
    assert_eq!(t.site.pending.len(), 1, "eu's failure waits for us");
    let json = serde_json::to_string(&t.site.pending).unwrap();
    let back: Vec<Sample> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t.site.pending);
}

// --- The verdict is a function of the results, not of their delivery ---------------------

/// A region of a generated stream: its statuses per slot (`None`: silent), how many slots its
/// clock runs ahead (its results arrive that much earlier) and its thresholds.
#[derive(Debug, Clone)]
struct GenRegion {
    slots: Vec<Option<CheckStatus>>,
    ahead: i64,
    down_after: u32,
    up_after: u32,
}

fn gen_region(n: usize) -> impl Strategy<Value = GenRegion> {
    let status = prop_oneof![
        6 => Just(Some(CheckStatus::Success)),
        5 => Just(Some(CheckStatus::Failure)),
        1 => Just(Some(CheckStatus::Missed)),
        1 => Just(None),
    ];
    // Runs, so that outages happen: each slot repeats the previous one with some chance.
    (prop::collection::vec((status, any::<bool>()), n), 0i64..8, 1u32..4, 1u32..3, 0usize..n, 0usize..n + 1)
        .prop_map(move |(raw, ahead, down_after, up_after, join, leave)| {
            let mut slots = Vec::with_capacity(raw.len());
            for (i, (s, repeat)) in raw.into_iter().enumerate() {
                let s = if repeat && i > 0 { slots[i - 1] } else { s };
                slots.push(s);
            }
            // Joins late and/or leaves early: a silent region.
            for (i, s) in slots.iter_mut().enumerate() {
                if i < join.min(n / 3) || i >= leave.max(join + 1) {
                    *s = None;
                }
            }
            GenRegion { slots, ahead: if ahead >= 6 { ahead } else { 0 }, down_after, up_after }
        })
}

/// The stream as the partition holds it: by the real time each result was checked (a region
/// ahead has its `scheduled_at` that many slots later), results of one moment in region order.
fn stream_of(regions: &[GenRegion], quorum: Option<u32>) -> Vec<CheckResult> {
    let mut out: Vec<(i64, CheckResult)> = Vec::new();
    for (k, g) in regions.iter().enumerate() {
        for (i, s) in g.slots.iter().enumerate() {
            let Some(status) = *s else { continue };
            let t = at((i as i64 + g.ahead) * 10);
            let mut r = CheckResult::new("s", "http://s/", &format!("r{k}"), t, t, status);
            if status == CheckStatus::Failure {
                r.fail(FailureKind::Timeout, format!("slot {i}"));
            }
            (r.interval_ms, r.down_after, r.up_after, r.quorum) =
                (Some(10_000), Some(g.down_after), Some(g.up_after), quorum);
            // Slow and fast stretches, and a certificate near and far from its expiry, each
            // region on its own phase: the DEGRADED and CERT_EXPIRING conditions too.
            r.degraded_above_ms = Some(500);
            r.total_us = Some(if (i / 4 + k) % 3 == 0 { 900_000 } else { 100_000 });
            r.cert_warn_days = Some(14);
            r.tls_not_after = Some(t + TimeDelta::days(if (i / 6 + k) % 2 == 0 { 5 } else { 60 }));
            out.push((i as i64, r));
        }
    }
    out.sort_by(|a, b| (a.0, &a.1.region).cmp(&(b.0, &b.1.region)));
    out.into_iter().map(|(_, r)| r).collect()
}

/// A delivery of the stream: results of one moment and one slot shuffled among themselves,
/// cut into batches, pieces delivered again (replays: the store passes on only rows new to the
/// history), and the tracks stored and read back between batches (a restart, another consumer).
fn deliver(stream: &[CheckResult], seed: u64, j: &Judging) -> Derived {
    let mut rng = seed;
    let mut next = move |n: usize| {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((rng >> 33) as usize) % n.max(1)
    };
    // Shuffle within groups of equal scheduled_at that are adjacent (one moment, one slot).
    let mut s: Vec<CheckResult> = stream.to_vec();
    let mut i = 0;
    while i < s.len() {
        let mut k = i + 1;
        while k < s.len() && s[k].scheduled_at == s[i].scheduled_at {
            k += 1;
        }
        for a in (i + 1..k).rev() {
            let b = i + next(a - i + 1);
            s.swap(a, b);
        }
        i = k;
    }
    let mut seen = std::collections::HashSet::new();
    let mut stored = SiteTracks::new("s");
    let mut out = Derived::default();
    let mut pos = 0;
    while pos < s.len() {
        let end = (pos + 1 + next(9)).min(s.len());
        // A replay of what came before, then the batch.
        let from = pos.saturating_sub(next(6));
        let batch: Vec<&CheckResult> = s[from..end].iter().collect();
        let new: Vec<&CheckResult> =
            batch.into_iter().filter(|r| seen.insert((r.scheduled_at, r.region.clone()))).collect();
        let mut tracks = vec![stored.clone()];
        let d = derive_incidents(&mut tracks, &new, j);
        out.events.extend(d.events);
        for i in d.incidents {
            out.touch(&i);
        }
        stored = tracks.remove(0);
        let json = serde_json::to_string(&stored.site.pending).unwrap();
        stored.site.pending = serde_json::from_str(&json).unwrap();
        pos = end;
    }
    out
}

fn assert_sound(d: &Derived) -> Result<(), TestCaseError> {
    let mut ids: Vec<Uuid> = d.events.iter().map(|e| e.event_id).collect();
    ids.sort();
    ids.dedup();
    prop_assert_eq!(ids.len(), d.events.len(), "every event its own id");
    for kind in IncidentKind::ALL {
        let mut site: Vec<&Incident> =
            d.incidents.iter().filter(|i| i.region.is_none() && i.kind == kind).collect();
        site.sort_by_key(|i| i.started_at);
        for w in site.windows(2) {
            let end = w[0].ended_at.expect("only the last one may be open");
            prop_assert!(end <= w[1].started_at, "site-wide incidents overlap: {:?}", w);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_verdict_does_not_depend_on_delivery(
        regions in (1usize..5, 8usize..40).prop_flat_map(|(k, n)| prop::collection::vec(gen_region(n), k)),
        quorum in prop_oneof![Just(None), (1u32..3).prop_map(Some)],
        seeds in prop::collection::vec(any::<u64>(), 3),
    ) {
        let j = Judging { max_skew: TimeDelta::seconds(90), region_expiry: TimeDelta::seconds(150) };
        let stream = stream_of(&regions, quorum);
        // One result at a time, in stream order: the reference.
        let (_, want) = fold_with(&stream, &j);
        assert_sound(&want)?;
        for seed in seeds {
            let got = deliver(&stream, seed, &j);
            prop_assert_eq!(&got.events, &want.events, "seed {}", seed);
            let key = |d: &Derived| {
                let mut v = d.incidents.clone();
                v.sort_by_key(|i| i.incident_id);
                v
            };
            prop_assert_eq!(key(&got), key(&want), "seed {}", seed);
        }
    }
}
