//! The verdict is a function of the results, on both stores: generated multi-region streams
//! (outages, recoveries, MISSED slots, regions that join late, fall silent or run ahead) stored
//! in random batches, each slot's results in a random order, pieces replayed, give exactly the
//! incidents and events that deriving the whole stream in one go gives.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use sitemon::config::{PostgresConfig, Secret};
use sitemon::domain::{CheckResult, CheckStatus, FailureKind, Judging, SiteTracks, derive_incidents};
use sitemon::ports::StatusStore;
use sitemon::store::{PgStore, SqliteStore};

use crate::support;

/// (incident id, region, start, end, end reason, failed checks, regions)
type Row = (String, String, i64, Option<i64>, Option<String>, i64, String);

fn base() -> DateTime<Utc> {
    Utc.timestamp_opt(Utc::now().timestamp() / 60 * 60 - 3600, 0).unwrap()
}

/// One region: a status per slot (`None`: silent), and how many slots its clock runs ahead.
fn region() -> impl Strategy<Value = (Vec<Option<char>>, i64)> {
    let c = prop_oneof![6 => Just(Some('+')), 5 => Just(Some('x')), 1 => Just(Some('m')), 1 => Just(None)];
    (prop::collection::vec((c, any::<bool>()), 30), 0i64..10, 0usize..8, 12usize..31).prop_map(
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

/// The stream as a partition holds it: by the moment each result was checked.
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
                let mut r = CheckResult::new(site, "http://x/", &format!("r{k}"), t, t, status);
                if status == CheckStatus::Failure {
                    r.fail(FailureKind::Timeout, format!("slot {i}"));
                }
                (r.interval_ms, r.down_after, r.up_after) = (Some(10_000), Some(2), Some(1 + k as u32 % 2));
                all.push((i as i64, r));
            }
        }
    }
    all.sort_by(|a, b| (a.0, &a.1.site_id, &a.1.region).cmp(&(b.0, &b.1.site_id, &b.1.region)));
    all.into_iter().map(|(_, r)| r).collect()
}

fn oracle(all: &[CheckResult]) -> (Vec<Row>, Vec<(String, String)>) {
    let mut tracks: Vec<SiteTracks> = Vec::new();
    let refs: Vec<&CheckResult> = all.iter().collect();
    let d = derive_incidents(&mut tracks, &refs, &Judging::default());
    let mut rows: Vec<Row> = d
        .incidents
        .iter()
        .map(|i| {
            (
                i.incident_id.to_string(),
                i.region.clone().unwrap_or_default(),
                i.started_at.timestamp_micros(),
                i.ended_at.map(|t| t.timestamp_micros()),
                i.end_reason.map(|r| r.as_str().to_owned()),
                i.failed_checks,
                i.regions.join(","),
            )
        })
        .collect();
    rows.sort();
    let mut events: Vec<(String, String)> =
        d.events.iter().map(|e| (e.event_id.to_string(), e.kind.as_str().to_owned())).collect();
    events.sort();
    (rows, events)
}

/// The stream delivered: each moment's results of one slot shuffled, random batches, each
/// replaying a random part of what came before.
fn batches(all: &[CheckResult], seed: u64) -> Vec<Vec<CheckResult>> {
    let mut rng = support::Rng::new(seed);
    let mut s = all.to_vec();
    let mut i = 0;
    while i < s.len() {
        let mut k = i + 1;
        while k < s.len() && s[k].scheduled_at == s[i].scheduled_at && s[k].site_id == s[i].site_id {
            k += 1;
        }
        for a in (i + 1..k).rev() {
            let b = i + rng.below((a - i + 1) as u64) as usize;
            s.swap(a, b);
        }
        i = k;
    }
    let mut out = Vec::new();
    let mut from = 0;
    while from < s.len() {
        let to = (from + 1 + rng.below(25) as usize).min(s.len());
        let back = from.saturating_sub(rng.below(10) as usize);
        out.push(s[back..to].to_vec());
        from = to;
    }
    out
}

async fn stored_pg(url: &str) -> (Vec<Row>, Vec<(String, String)>) {
    let mut c = support::connect(url).await;
    let rows = sqlx::query_as(
        "SELECT incident_id::text, coalesce(region, ''), (extract(epoch FROM started_at) * 1000000)::bigint, \
         (extract(epoch FROM ended_at) * 1000000)::bigint, end_reason, failed_checks, \
         array_to_string(regions, ',') FROM incidents ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let events = sqlx::query_as("SELECT event_id::text, kind FROM incident_events ORDER BY 1")
        .fetch_all(&mut c)
        .await
        .unwrap();
    (rows, events)
}

async fn stored_sqlite(url: &str) -> (Vec<Row>, Vec<(String, String)>) {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    let rows = sqlx::query_as(
        "SELECT incident_id, coalesce(region, ''), started_at, ended_at, end_reason, failed_checks, \
         coalesce((SELECT group_concat(value, ',') FROM json_each(regions)), '') FROM incidents ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let events = sqlx::query_as("SELECT event_id, kind FROM incident_events ORDER BY 1")
        .fetch_all(&mut c)
        .await
        .unwrap();
    (rows, events)
}

async fn deliver<S: StatusStore>(store: &S, all: &[CheckResult], seed: u64) {
    for batch in batches(all, seed) {
        store.store(&batch, &[]).await.unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn incidents_and_events_do_not_depend_on_delivery_on_either_store(
        regions in prop::collection::vec(region(), 1..4),
        seed in any::<u64>(),
    ) {
        let all = stream(&regions);
        let want = oracle(&all);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (pg, lite) = rt.block_on(async {
            let url = support::fresh_database().await;
            let store = PgStore::connect(&PostgresConfig { url: Secret::new(url.clone()), max_connections: 2 })
                .unwrap();
            store.migrate().await.unwrap();
            deliver(&store, &all, seed).await;
            let pg = stored_pg(&url).await;
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.db");
            let store = SqliteStore::open(&path).await.unwrap();
            deliver(&store, &all, seed ^ 0x5eed).await;
            let lite = stored_sqlite(&format!("sqlite://{}", path.display())).await;
            (pg, lite)
        });
        prop_assert_eq!(&pg, &want, "PostgreSQL, seed {}", seed);
        prop_assert_eq!(&lite, &want, "SQLite, seed {}", seed);
    }
}
