//! The batch core over the in-memory primitives: generated multi-region streams stored in random
//! batches (each slot's results shuffled, pieces replayed) give the incidents, events and tracks
//! that deriving the whole stream in one go gives, and a replay folds nothing again.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::batch::store_batch;
use super::memory_tx::{MemoryDb, MemoryTx};
use super::track_row::encode;
use crate::domain::{CheckResult, CheckStatus, FailureKind, Judging, SiteTracks, derive_incidents};

fn base() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 / 60 * 60, 0).unwrap()
}

/// One region: a status per slot (`None`: silent) and how many slots its clock runs ahead.
fn region() -> impl Strategy<Value = (Vec<Option<char>>, i64)> {
    let c = prop_oneof![6 => Just(Some('+')), 5 => Just(Some('x')), 1 => Just(Some('m')), 1 => Just(None)];
    (prop::collection::vec((c, any::<bool>()), 24), 0i64..10, 0usize..6, 10usize..25).prop_map(
        |(raw, ahead, join, leave)| {
            let mut out: Vec<Option<char>> = Vec::new();
            for (i, (c, repeat)) in raw.into_iter().enumerate() {
                let c = if repeat && i > 0 { out[i - 1] } else { c };
                out.push(if i < join || i >= leave { None } else { c });
            }
            (out, if ahead >= 7 { ahead } else { 0 })
        },
    )
}

/// The stream as a partition holds it: by the moment each result was checked. Slow successes
/// and certificates near their end make DEGRADED and CERT_EXPIRING incidents too.
fn stream(regions: &[(Vec<Option<char>>, i64)]) -> Vec<CheckResult> {
    let mut all: Vec<(i64, CheckResult)> = Vec::new();
    for (k, (slots, ahead)) in regions.iter().enumerate() {
        for (i, c) in slots.iter().enumerate() {
            let Some(c) = c else { continue };
            let t = base() + Duration::seconds(10 * (i as i64 + ahead));
            let status = match c {
                '+' => CheckStatus::Success,
                'x' => CheckStatus::Failure,
                _ => CheckStatus::Missed,
            };
            for site in ["p", "q"] {
                let mut r = CheckResult::new(site, "https://x/", &format!("r{k}"), t, t, status);
                if status == CheckStatus::Failure {
                    r.fail(FailureKind::Timeout, format!("slot {i}"));
                }
                (r.interval_ms, r.down_after, r.up_after) = (Some(10_000), Some(2), Some(1 + k as u32 % 2));
                if status == CheckStatus::Success {
                    r.total_us = Some(if (i / 4) % 2 == 0 { 900_000 } else { 10_000 });
                    r.degraded_above_ms = Some(500);
                    r.tls_not_after = Some(t + Duration::days(if i % 7 < 3 { 5 } else { 60 }));
                }
                all.push((i as i64, r));
            }
        }
    }
    all.sort_by(|a, b| (a.0, &a.1.site_id, &a.1.region).cmp(&(b.0, &b.1.site_id, &b.1.region)));
    all.into_iter().map(|(_, r)| r).collect()
}

/// The stream delivered: each moment's results of one site shuffled, random batches, each
/// replaying a random part of what came before.
fn batches(all: &[CheckResult], picks: &[u64]) -> Vec<Vec<CheckResult>> {
    let mut next = picks.iter().cycle();
    let mut below = |n: u64| next.next().copied().unwrap_or(0) % n.max(1);
    let mut s = all.to_vec();
    let mut i = 0;
    while i < s.len() {
        let mut k = i + 1;
        while k < s.len() && s[k].scheduled_at == s[i].scheduled_at && s[k].site_id == s[i].site_id {
            k += 1;
        }
        for a in (i + 1..k).rev() {
            let b = i + below((a - i + 1) as u64) as usize;
            s.swap(a, b);
        }
        i = k;
    }
    let mut out = Vec::new();
    let mut from = 0;
    while from < s.len() {
        let to = (from + 1 + below(25) as usize).min(s.len());
        let back = from.saturating_sub(below(10) as usize);
        out.push(s[back..to].to_vec());
        from = to;
    }
    out
}

/// Stores one batch in its own transaction: a copy of the database that replaces it on success.
fn store(db: &mut MemoryDb, batch: &[CheckResult]) {
    let mut work = db.clone();
    work.locked.clear();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(store_batch(&mut MemoryTx(&mut work), batch.iter().collect(), &[], &Judging::default()))
        .unwrap();
    *db = work;
}

/// Each site's tracks row as the whole-stream derivation would store it.
fn rows(tracks: &[SiteTracks]) -> BTreeMap<String, String> {
    tracks.iter().map(|s| (s.site_id.clone(), encode(s))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn incidents_events_and_tracks_do_not_depend_on_batches_or_replays(
        regions in prop::collection::vec(region(), 1..4),
        picks in prop::collection::vec(any::<u64>(), 1..64),
    ) {
        let all = stream(&regions);
        let mut whole: Vec<SiteTracks> = Vec::new();
        let refs: Vec<&CheckResult> = all.iter().collect();
        let want = derive_incidents(&mut whole, &refs, &Judging::default());

        let mut db = MemoryDb::default();
        for batch in batches(&all, &picks) {
            store(&mut db, &batch);
        }
        let mut incidents: Vec<_> = db.incidents.values().cloned().collect();
        incidents.sort_by_key(|i| i.incident_id);
        let mut expected = want.incidents.clone();
        expected.sort_by_key(|i| i.incident_id);
        prop_assert_eq!(incidents, expected);

        let mut events: Vec<_> = db.events.iter().map(|e| (e.event_id, e.kind.as_str())).collect();
        events.sort();
        let mut expected: Vec<_> = want.events.iter().map(|e| (e.event_id, e.kind.as_str())).collect();
        expected.sort();
        prop_assert_eq!(events, expected);
        // In the outbox an incident's opening comes before its closing.
        for (n, e) in db.events.iter().enumerate() {
            let opened = db.events.iter().position(|x| x.incident.incident_id == e.incident.incident_id);
            prop_assert!(opened <= Some(n));
        }

        prop_assert_eq!(&db.tracks, &rows(&whole), "tracks round-trip through their rows");
    }
}

#[test]
fn a_replayed_batch_folds_nothing_again() {
    let all = stream(&[(vec![Some('x'); 6], 0), (vec![Some('x'); 6], 0)]);
    let mut db = MemoryDb::default();
    store(&mut db, &all);
    assert!(!db.events.is_empty(), "two regions down make an incident");
    let before = db.clone();
    store(&mut db, &all);
    store(&mut db, &all[..all.len() / 2]);
    assert_eq!(db.latest_folded, before.latest_folded, "no row is folded into the latest status again");
    assert_eq!(db.events.len(), before.events.len());
    assert_eq!(db.tracks, before.tracks);
    assert_eq!(db.history.len(), all.len());
}
