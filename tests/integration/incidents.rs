//! Incidents derived by both stores in the batch's transaction: thresholds, a quorum of three
//! regions, and each incident and event exactly once under replays, other batch boundaries and
//! two writers at once — compared with the derivation over the whole stream in one go.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sitemon::config::{PostgresConfig, Secret};
use sitemon::domain::{CheckResult, CheckStatus, FailureKind, SiteTracks, derive_incidents};
use sitemon::ports::StatusStore;
use sitemon::store::{PgStore, SqliteStore};

use crate::support;

/// One incident as stored: (id, kind, region or "", start µs, end µs, failed checks, regions).
pub(crate) type Row = (String, String, String, i64, Option<i64>, i64, String);
/// One outbox event: (event id, kind, incident id).
pub(crate) type Event = (String, String, String);

/// Reads every incident and event back from one database.
pub(crate) enum Db {
    Pg(String),
    Sqlite(String),
}

impl Db {
    pub(crate) async fn incidents(&self) -> (Vec<Row>, Vec<Event>) {
        let (inc, ev) = match self {
            Db::Pg(_) => (
                "SELECT incident_id::text, incident_kind, coalesce(region, ''), (extract(epoch FROM started_at) * 1000000)::bigint, \
                 (extract(epoch FROM ended_at) * 1000000)::bigint, failed_checks, array_to_string(regions, ',') \
                 FROM incidents ORDER BY 1",
                "SELECT event_id::text, kind, incident_id::text FROM incident_events ORDER BY 1",
            ),
            Db::Sqlite(_) => (
                "SELECT incident_id, incident_kind, coalesce(region, ''), started_at, ended_at, failed_checks, \
                 (SELECT group_concat(value, ',') FROM json_each(regions)) FROM incidents ORDER BY 1",
                "SELECT event_id, kind, incident_id FROM incident_events ORDER BY 1",
            ),
        };
        match self {
            Db::Pg(url) => {
                let mut c = support::connect(url).await;
                (
                    sqlx::query_as(inc).fetch_all(&mut c).await.unwrap(),
                    sqlx::query_as(ev).fetch_all(&mut c).await.unwrap(),
                )
            }
            Db::Sqlite(url) => {
                use sqlx::Connection;
                let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
                (
                    sqlx::query_as(inc).fetch_all(&mut c).await.unwrap(),
                    sqlx::query_as(ev).fetch_all(&mut c).await.unwrap(),
                )
            }
        }
    }
}

pub(crate) async fn pg() -> (PgStore, Db) {
    let url = support::fresh_database().await;
    let cfg = PostgresConfig { url: Secret::new(url.clone()), max_connections: 2 };
    let store = PgStore::connect(&cfg).unwrap();
    store.migrate().await.unwrap();
    (store, Db::Pg(url))
}

pub(crate) async fn sqlite(dir: &tempfile::TempDir, name: &str) -> (SqliteStore, Db) {
    let path = dir.path().join(name);
    let store = SqliteStore::open(&path).await.unwrap();
    (store, Db::Sqlite(format!("sqlite://{}", path.display())))
}

fn base() -> DateTime<Utc> {
    // Recent whole seconds (the history keeps daily partitions around now), the same for every
    // test of this file.
    static BASE: std::sync::OnceLock<DateTime<Utc>> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| Utc.timestamp_opt(Utc::now().timestamp() - 3600, 0).unwrap())
}

/// `pattern`: one char per 10 s slot — `+` success, `x` failure, `m` missed.
pub(crate) fn results(
    site: &str,
    region: &str,
    pattern: &str,
    f: impl Fn(&mut CheckResult),
) -> Vec<CheckResult> {
    let t0 = base();
    pattern
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let t = t0 + Duration::seconds(10 * i as i64);
            let status = match c {
                '+' => CheckStatus::Success,
                'x' => CheckStatus::Failure,
                _ => CheckStatus::Missed,
            };
            let mut r = CheckResult::new(site, "http://x/", region, t, t, status);
            if c == 'x' {
                r.fail(FailureKind::Connect, "refused");
            }
            r.interval_ms = Some(10_000);
            f(&mut r);
            r
        })
        .collect()
}

fn secs(us: i64) -> i64 {
    (us - base().timestamp_micros()) / 1_000_000
}

async fn thresholds<S: StatusStore>(store: &S, db: &Db) {
    // down_after 2, up_after 2: one failure is no outage, the MISSED slot interrupts nothing,
    // and one success does not end it.
    let rs = results("shop", "eu", "+x+xmx+x++", |r| (r.down_after, r.up_after) = (Some(2), Some(2)));
    for r in &rs {
        store.store(std::slice::from_ref(r), &[]).await.unwrap();
    }
    let (incidents, events) = db.incidents().await;
    let got: Vec<(&str, i64, Option<i64>, i64)> =
        incidents.iter().map(|r| (r.2.as_str(), secs(r.3), r.4.map(secs), r.5)).collect();
    assert!(got.contains(&("eu", 30, Some(80), 3)), "{got:?}");
    assert!(got.contains(&("", 30, Some(80), 3)), "{got:?}");
    assert_eq!(incidents.len(), 2, "{got:?}");
    let mut kinds: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["CLOSED", "CLOSED", "OPENED", "OPENED"]);
    assert!(store.open_incidents().await.unwrap().is_empty());

    // Down again and still down: open, and `status` reads it.
    let more = results("shop", "eu", "++++++++++xxxx", |_| {});
    store.store(&more[10..], &[]).await.unwrap();
    let open = store.open_incidents().await.unwrap();
    assert_eq!(open.len(), 2, "{open:?}");
    assert_eq!((open[0].region.as_deref(), open[0].failed_checks), (None, 4), "site-wide first");
    assert_eq!(open[1].region.as_deref(), Some("eu"));
    let latest = store.latest().await.unwrap();
    assert_eq!(latest[0].interval_ms, Some(10_000), "status knows the interval (for STALE)");
}

#[tokio::test(flavor = "multi_thread")]
async fn thresholds_open_and_close_incidents_on_both_stores() {
    let (store, db) = pg().await;
    thresholds(&store, &db).await;
    let dir = tempfile::tempdir().unwrap();
    let (store, db) = sqlite(&dir, "t.db").await;
    thresholds(&store, &db).await;
}

async fn quorum<S: StatusStore>(store: &S, db: &Db, two_down: bool) {
    let us = if two_down { "+++xxxxx++" } else { "++++++++++" };
    let mut rs = results("api", "eu", "++xxxxxx++", |_| {});
    rs.extend(results("api", "us", us, |_| {}));
    rs.extend(results("api", "ap", "++++++++++", |_| {}));
    rs.sort_by_key(|r| (r.scheduled_at, r.region.clone()));
    for chunk in rs.chunks(4) {
        store.store(chunk, &[]).await.unwrap();
    }
    let (incidents, _) = db.incidents().await;
    let site: Vec<&Row> = incidents.iter().filter(|r| r.2.is_empty()).collect();
    let regions: Vec<&str> = incidents.iter().filter(|r| !r.2.is_empty()).map(|r| r.2.as_str()).collect();
    if two_down {
        assert_eq!(site.len(), 1, "two regions of three agree: {incidents:?}");
        assert_eq!(site[0].6, "eu,us");
        assert_eq!((secs(site[0].3), site[0].4.map(secs)), (30, Some(80)));
        assert_eq!(regions.len(), 2);
    } else {
        assert!(site.is_empty(), "one region of three is no site-wide incident: {incidents:?}");
        assert_eq!(regions, ["eu"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quorum_of_three_regions_decides_on_both_stores() {
    let dir = tempfile::tempdir().unwrap();
    for two_down in [false, true] {
        let (store, db) = pg().await;
        quorum(&store, &db, two_down).await;
        let (store, db) = sqlite(&dir, &format!("q{two_down}.db")).await;
        quorum(&store, &db, two_down).await;
    }
}

/// A stream of three sites in two regions with outages, as a partition holds it.
pub(crate) fn stream(seed: u64) -> Vec<CheckResult> {
    let mut rng = support::Rng::new(seed);
    let mut all = Vec::new();
    for site in ["a", "b", "c"] {
        for region in ["eu", "us"] {
            let pattern: String = (0..120)
                .map(|i| {
                    // Outages of a few slots now and then, single failures in between.
                    let block = (i / 8) % 3 == 0 && rng.below(3) > 0;
                    if block || rng.below(12) == 0 {
                        'x'
                    } else if rng.below(30) == 0 {
                        'm'
                    } else {
                        '+'
                    }
                })
                .collect();
            // Slow stretches and a certificate near its expiry now and then, on a phase of each
            // site and region: DEGRADED and CERT_EXPIRING incidents too.
            let phase = (site.as_bytes()[0] + region.as_bytes()[0]) as i64;
            all.extend(results(site, region, &pattern, |r| {
                let slot = (r.scheduled_at - base()).num_seconds() / 10 + phase;
                r.down_after = Some(2);
                r.degraded_above_ms = Some(500);
                r.total_us = Some(if (slot / 7) % 3 == 0 { 900_000 } else { 100_000 });
                let days = if (slot / 11) % 2 == 0 { 5 } else { 60 };
                r.tls_not_after = Some(r.scheduled_at + Duration::days(days));
            }));
        }
    }
    all.sort_by_key(|r| (r.scheduled_at, r.site_id.clone(), r.region.clone()));
    all
}

/// The incidents and events of the whole stream derived in one go, in the shape the database
/// returns them.
pub(crate) fn oracle(all: &[CheckResult]) -> (Vec<Row>, Vec<Event>) {
    let mut tracks: Vec<SiteTracks> = Vec::new();
    let refs: Vec<&CheckResult> = all.iter().collect();
    let d = derive_incidents(&mut tracks, &refs, &sitemon::domain::Judging::default());
    let mut rows: Vec<Row> = d
        .incidents
        .iter()
        .map(|i| {
            (
                i.incident_id.to_string(),
                i.kind.as_str().to_owned(),
                i.region.clone().unwrap_or_default(),
                i.started_at.timestamp_micros(),
                i.ended_at.map(|t| t.timestamp_micros()),
                i.failed_checks,
                i.regions.join(","),
            )
        })
        .collect();
    rows.sort();
    let mut events: Vec<Event> = d
        .events
        .iter()
        .map(|e| (e.event_id.to_string(), e.kind.as_str().to_owned(), e.incident.incident_id.to_string()))
        .collect();
    events.sort();
    (rows, events)
}

/// Batches of random sizes, each replaying part of the one before (a consumer restarted after
/// storing but before acknowledging), then the whole stream again.
async fn replays<S: StatusStore>(store: &S, db: &Db, all: &[CheckResult], seed: u64) {
    let mut rng = support::Rng::new(seed);
    let mut from = 0;
    while from < all.len() {
        let to = (from + 1 + rng.below(40) as usize).min(all.len());
        let back = from.saturating_sub(rng.below(20) as usize);
        store.store(&all[back..to], &[]).await.unwrap();
        from = to;
    }
    store.store(all, &[]).await.unwrap();
    let (want_rows, want_events) = oracle(all);
    assert!(want_events.len() >= 10, "the stream has outages: {}", want_events.len());
    for kind in ["DOWN", "DEGRADED", "CERT_EXPIRING"] {
        assert!(want_rows.iter().any(|r| r.1 == kind), "the stream has {kind} incidents");
    }
    let (rows, events) = db.incidents().await;
    assert_eq!(rows, want_rows, "seed {seed}");
    assert_eq!(events, want_events, "seed {seed}: every state change once, by its deterministic id");
}

#[tokio::test(flavor = "multi_thread")]
async fn incidents_and_events_exactly_once_under_replays_on_both_stores() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [3, 11] {
        let all = stream(seed);
        let (store, db) = pg().await;
        replays(&store, &db, &all, seed).await;
        let (store, db) = sqlite(&dir, &format!("r{seed}.db")).await;
        replays(&store, &db, &all, seed).await;
    }
}

/// Two consumers storing overlapping batches of the same partition at once (a rebalance): the
/// second starts behind the first and replays what the first stored.
#[tokio::test(flavor = "multi_thread")]
async fn incidents_and_events_exactly_once_with_two_writers() {
    let (one, db) = pg().await;
    let Db::Pg(url) = &db else { unreachable!() };
    let two =
        PgStore::connect(&PostgresConfig { url: Secret::new(url.clone()), max_connections: 2 }).unwrap();
    let all = stream(5);
    let first = async {
        for chunk in all.chunks(7) {
            support::store_retrying(&one, chunk).await;
        }
    };
    let second = async {
        for chunk in all.chunks(13) {
            support::store_retrying(&two, chunk).await;
        }
    };
    tokio::join!(first, second);
    assert_eq!(db.incidents().await, oracle(&all));
}

/// A consumer whose batch waits for the lock of a site's tracks while another transaction opens
/// an incident on them reads that incident once it may go on (not the state from before it
/// waited), and leaves the other region's track as the other transaction wrote it.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_that_waited_for_the_tracks_reads_what_the_other_writer_committed() {
    use sqlx::Connection;
    let (store, db) = pg().await;
    let Db::Pg(url) = &db else { unreachable!() };
    // Four slots of both regions: the site's slots are being judged.
    let first = |region: &str| results("race", region, "++++", |_| {});
    store.store(&[first("eu"), first("us")].concat(), &[]).await.unwrap();

    // Another writer opens an incident for eu and holds its transaction open.
    let mut other = sqlx::PgConnection::connect(url).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    let id = uuid::Uuid::new_v4();
    let t = base() + Duration::seconds(35);
    sqlx::query("SELECT 1 FROM site_tracks WHERE site_id = 'race' FOR UPDATE")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO incidents (incident_id, site_id, region, url, started_at, confirmed_at, regions, failed_checks) \
         VALUES ($1, 'race', 'eu', 'http://x/', $2, $2, ARRAY['eu'], 3)",
    )
    .bind(id)
    .bind(t)
    .execute(&mut *tx)
    .await
    .unwrap();
    // (eu's track inside the site's row: down, a run of 3 failures, the incident open.)
    sqlx::query(
        "UPDATE site_tracks SET tracks = (SELECT json_agg(CASE WHEN e->>'region' = 'eu' THEN \
           (e::jsonb || jsonb_build_object('down', true, 'run_up', false, 'run_len', 3, 'last_at', $2::bigint, \
             'incident_id', $1::text))::json ELSE e END ORDER BY n) \
           FROM json_array_elements(tracks::json) WITH ORDINALITY AS x(e, n))::text \
         WHERE site_id = 'race'",
    )
    .bind(id)
    .bind(t.timestamp_micros())
    .execute(&mut *tx)
    .await
    .unwrap();

    // Meanwhile a batch with a success of us and another failure of eu: it waits for the lock.
    let batch =
        [&results("race", "us", "+++++", |_| {})[4..], &results("race", "eu", "++++x", |_| {})[4..]].concat();
    let waiting = tokio::spawn({
        let url = url.clone();
        async move {
            let cfg = PostgresConfig { url: Secret::new(url), max_connections: 1 };
            let store = PgStore::connect(&cfg).unwrap();
            store.store(&batch, &[]).await
        }
    });
    let blocked = support::wait_for_a_lock_wait(url).await;
    assert!(blocked.is_some(), "the batch waits for the tracks' lock");
    tx.commit().await.unwrap();
    waiting.await.unwrap().unwrap();

    let mut c = support::connect(url).await;
    let (down, incident): (bool, Option<uuid::Uuid>) = sqlx::query_as(
        "SELECT (e->>'down')::bool, (e->>'incident_id')::uuid \
         FROM site_tracks, json_array_elements(tracks::json) AS e WHERE site_id = 'race' AND e->>'region' = 'eu'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!((down, incident), (true, Some(id)), "eu's track continues the other writer's");
    let eu: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
        "SELECT incident_id, failed_checks FROM incidents WHERE site_id = 'race' AND region = 'eu'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(eu, [(id, 4)], "the failure counted in the open incident, not a second one opened");
    // And eu's recovery closes that incident (a stale read would have had none to close).
    let up = [&results("race", "eu", "++++++", |_| {})[5..], &results("race", "us", "++++++", |_| {})[5..]]
        .concat();
    store.store(&up, &[]).await.unwrap();
    let ended: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT ended_at FROM incidents WHERE incident_id = $1")
            .bind(id)
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(ended, Some(up[0].scheduled_at));
}

/// A client inventing region labels for one site: at most `MAX_REGIONS` tracks are kept for it
/// (the rest of its results are history only), on both stores.
#[tokio::test(flavor = "multi_thread")]
async fn invented_regions_add_at_most_the_cap_of_tracks() {
    let extra = 6;
    let batch: Vec<CheckResult> = (0..sitemon::domain::MAX_REGIONS + extra)
        .flat_map(|i| results("many", &format!("r{i:03}"), "x", |_| {}))
        .collect();
    let tracks = "SELECT json_array_length(tracks::json)::bigint FROM site_tracks WHERE site_id = 'many'";
    let history = "SELECT count(*) FROM check_results WHERE site_id = 'many'";
    let (store, db) = pg().await;
    store.store(&batch, &[]).await.unwrap();
    let Db::Pg(url) = &db else { unreachable!() };
    let mut c = support::connect(url).await;
    let n: i64 = sqlx::query_scalar(tracks).fetch_one(&mut c).await.unwrap();
    assert_eq!(n, sitemon::domain::MAX_REGIONS as i64 + 1, "the site's own track and the cap's");
    let n: i64 = sqlx::query_scalar(history).fetch_one(&mut c).await.unwrap();
    assert_eq!(n, batch.len() as i64, "every result in the history");

    let dir = tempfile::tempdir().unwrap();
    let (store, db) = sqlite(&dir, "many.db").await;
    store.store(&batch, &[]).await.unwrap();
    let Db::Sqlite(url) = &db else { unreachable!() };
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    let tracks = "SELECT json_array_length(tracks) FROM site_tracks WHERE site_id = 'many'";
    let n: i64 = sqlx::query_scalar(tracks).fetch_one(&mut c).await.unwrap();
    assert_eq!(n, sitemon::domain::MAX_REGIONS as i64 + 1);
}

async fn retirement<S: StatusStore>(store: &S, db: &Db, tracks_sql: &str, count: impl AsyncFn(&str) -> i64) {
    // eu goes down and its producer goes away; us reports on. Past the 60 s expiry eu is
    // retired: its incident closes as RETIRED and its track is deleted, once.
    let mut rs = results("gone", "eu", "+xxxx", |_| {});
    rs.extend(results("gone", "us", &"+".repeat(20), |_| {}));
    rs.sort_by_key(|r| (r.scheduled_at, r.region.clone()));
    for chunk in rs.chunks(3) {
        store.store(chunk, &[]).await.unwrap();
    }
    store.store(&rs, &[]).await.unwrap();
    let (incidents, events) = db.incidents().await;
    let eu: Vec<&Row> = incidents.iter().filter(|r| r.2 == "eu").collect();
    assert_eq!(eu.len(), 1, "{incidents:?}");
    assert_eq!(eu[0].4.map(secs), Some(40), "ended at its last result: {incidents:?}");
    assert_eq!(events.iter().filter(|e| e.2 == eu[0].0).count(), 2, "opened and closed once: {events:?}");
    assert_eq!(count(tracks_sql).await, 2, "the site's own track and us's");
    let reason = match db {
        Db::Pg(url) => {
            let mut c = support::connect(url).await;
            sqlx::query_scalar::<_, Option<String>>("SELECT end_reason FROM incidents WHERE region = 'eu'")
                .fetch_one(&mut c)
                .await
                .unwrap()
        }
        Db::Sqlite(url) => {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query_scalar::<_, Option<String>>("SELECT end_reason FROM incidents WHERE region = 'eu'")
                .fetch_one(&mut c)
                .await
                .unwrap()
        }
    };
    assert_eq!(reason.as_deref(), Some("RETIRED"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_region_silent_past_the_expiry_is_retired_on_both_stores() {
    let j = sitemon::domain::Judging {
        max_skew: chrono::TimeDelta::seconds(10),
        region_expiry: chrono::TimeDelta::seconds(60),
    };
    let tracks = "SELECT json_array_length(tracks::json)::bigint FROM site_tracks WHERE site_id = 'gone'";
    let (store, db) = pg().await;
    let store = store.judging(j);
    let Db::Pg(url) = &db else { unreachable!() };
    let url = url.clone();
    retirement(&store, &db, tracks, async |sql: &str| {
        sqlx::query_scalar(sql).fetch_one(&mut support::connect(&url).await).await.unwrap()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (store, db) = sqlite(&dir, "gone.db").await;
    let store = store.judging(j);
    let Db::Sqlite(url) = &db else { unreachable!() };
    let url = url.clone();
    let tracks = "SELECT json_array_length(tracks) FROM site_tracks WHERE site_id = 'gone'";
    retirement(&store, &db, tracks, async |sql: &str| {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    })
    .await;
}
