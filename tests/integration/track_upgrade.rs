//! Upgrading a database whose incident tracks are one row per region (migrations before
//! `site_tracks`): the tracks move into one row per site unchanged, so a stream stored half
//! before the upgrade and half after gives the incidents and events of the whole stream, on both
//! stores — open incidents, conditions under way and results waiting for their slot included.

use sitemon::ports::StatusStore;
use sitemon::store::SqliteStore;

use crate::incidents::{Db, oracle, pg, results, sqlite, stream};
use crate::support;

/// The old table, as migrations 0004, 0006 and 0010 (PostgreSQL) left it, filled back from the
/// new rows; then the new table and its migration's record are removed.
const PG_DOWNGRADE: [&str; 5] = [
    "CREATE TABLE incident_tracks (site_id text NOT NULL, region text NOT NULL, \
       down boolean NOT NULL DEFAULT false, run_up boolean NOT NULL DEFAULT true, \
       run_len integer NOT NULL DEFAULT 0, run_start timestamptz, run_kind text, run_error text, \
       last_at timestamptz, interval_ms bigint, down_after integer, up_after integer, quorum integer, \
       incident_id uuid, seen_at timestamptz, pending text, conditions text, PRIMARY KEY (site_id, region))",
    "INSERT INTO incident_tracks SELECT t.site_id, e->>'region', (e->>'down')::bool, (e->>'run_up')::bool, \
       (e->>'run_len')::int, timestamptz 'epoch' + (e->>'run_start')::bigint * interval '1 microsecond', \
       e->>'run_kind', e->>'run_error', \
       timestamptz 'epoch' + (e->>'last_at')::bigint * interval '1 microsecond', (e->>'interval_ms')::bigint, \
       (e->>'down_after')::int, (e->>'up_after')::int, (e->>'quorum')::int, (e->>'incident_id')::uuid, \
       timestamptz 'epoch' + (e->>'seen_at')::bigint * interval '1 microsecond', \
       (e->'pending')::text, (e->'conditions')::text \
     FROM site_tracks t, json_array_elements(t.tracks::json) AS e",
    "DROP TABLE site_tracks",
    "ALTER TABLE site_status DROP COLUMN interval_ms",
    "DELETE FROM _sqlx_migrations WHERE description = 'site tracks'",
];

/// The same for SQLite (migrations 0002, 0004 and 0007).
const SQLITE_DOWNGRADE: [&str; 5] = [
    "CREATE TABLE incident_tracks (site_id TEXT NOT NULL, region TEXT NOT NULL, \
       down INTEGER NOT NULL DEFAULT 0, run_up INTEGER NOT NULL DEFAULT 1, run_len INTEGER NOT NULL DEFAULT 0, \
       run_start INTEGER, run_kind TEXT, run_error TEXT, last_at INTEGER, interval_ms INTEGER, \
       down_after INTEGER, up_after INTEGER, quorum INTEGER, incident_id TEXT, seen_at INTEGER, \
       pending TEXT, conditions TEXT, PRIMARY KEY (site_id, region))",
    "INSERT INTO incident_tracks SELECT t.site_id, json_extract(e.value, '$.region'), \
       json_extract(e.value, '$.down'), json_extract(e.value, '$.run_up'), json_extract(e.value, '$.run_len'), \
       json_extract(e.value, '$.run_start'), json_extract(e.value, '$.run_kind'), \
       json_extract(e.value, '$.run_error'), json_extract(e.value, '$.last_at'), \
       json_extract(e.value, '$.interval_ms'), json_extract(e.value, '$.down_after'), \
       json_extract(e.value, '$.up_after'), json_extract(e.value, '$.quorum'), \
       json_extract(e.value, '$.incident_id'), json_extract(e.value, '$.seen_at'), \
       json_extract(e.value, '$.pending'), json_extract(e.value, '$.conditions') \
     FROM site_tracks t, json_each(t.tracks) AS e",
    "DROP TABLE site_tracks",
    "ALTER TABLE site_status DROP COLUMN interval_ms",
    "DELETE FROM _sqlx_migrations WHERE description = 'site tracks'",
];

/// Every region's interval moved to its status row (`status` tells a stale row by it).
async fn assert_intervals<S: StatusStore>(store: &S) {
    let latest = store.latest().await.unwrap();
    assert_eq!(latest.len(), 6);
    assert!(latest.iter().all(|s| s.interval_ms == Some(10_000)), "{latest:?}");
}

async fn store_in_chunks<S: StatusStore>(store: &S, results: &[sitemon::domain::CheckResult]) {
    for chunk in results.chunks(5) {
        store.store(chunk, &[]).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tracks_stored_before_the_upgrade_continue_after_it_on_both_stores() {
    let all = stream(7);
    let (want_rows, want_events) = oracle(&all);
    let dir = tempfile::tempdir().unwrap();
    // Cuts inside a slot (results waiting) and between slots, with incidents open or not.
    for cut in [97, 250, 361, 500] {
        let (store, db) = pg().await;
        store_in_chunks(&store, &all[..cut]).await;
        let Db::Pg(url) = &db else { unreachable!() };
        let mut c = support::connect(url).await;
        for sql in PG_DOWNGRADE {
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        let old: i64 =
            sqlx::query_scalar("SELECT count(*) FROM incident_tracks").fetch_one(&mut c).await.unwrap();
        assert_eq!(old, 9, "three sites, each with its own track and two regions'");
        store.migrate().await.unwrap();
        assert_intervals(&store).await;
        store_in_chunks(&store, &all[cut..]).await;
        let (rows, events) = db.incidents().await;
        assert_eq!(rows, want_rows, "PostgreSQL, cut at {cut}");
        assert_eq!(events, want_events, "PostgreSQL, cut at {cut}");

        let path = dir.path().join(format!("u{cut}.db"));
        let (store, db) = sqlite(&dir, &format!("u{cut}.db")).await;
        store_in_chunks(&store, &all[..cut]).await;
        drop(store);
        {
            use sqlx::Connection;
            let Db::Sqlite(url) = &db else { unreachable!() };
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            for sql in SQLITE_DOWNGRADE {
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
        }
        let store = SqliteStore::open(&path).await.unwrap();
        assert_intervals(&store).await;
        store_in_chunks(&store, &all[cut..]).await;
        let (rows, events) = db.incidents().await;
        assert_eq!(rows, want_rows, "SQLite, cut at {cut}");
        assert_eq!(events, want_events, "SQLite, cut at {cut}");
    }
}

/// The migration waits for a transaction of an older consumer that is writing tracks, and
/// carries what it committed; a waiting-results or conditions value that is not JSON (a hand
/// edit) does not stop it and is dropped.
#[tokio::test(flavor = "multi_thread")]
async fn the_upgrade_waits_for_an_old_writer_and_reads_past_hand_edits() {
    use sqlx::Connection;
    let (store, db) = pg().await;
    store_in_chunks(&store, &stream(3)[..40]).await;
    let Db::Pg(url) = &db else { unreachable!() };
    let mut c = support::connect(url).await;
    for sql in PG_DOWNGRADE {
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO incident_tracks (site_id, region, pending, conditions) VALUES ('z', '', 'x', '{')",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let mut old = sqlx::PgConnection::connect(url).await.unwrap();
    let mut tx = old.begin().await.unwrap();
    sqlx::query("UPDATE incident_tracks SET run_len = 77 WHERE site_id = 'z'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let migrating = tokio::spawn(async move { store.migrate().await });
    let blocked = support::wait_for_a_lock_wait(url).await;
    assert!(blocked.is_some(), "the migration waits for the old writer");
    tx.commit().await.unwrap();
    migrating.await.unwrap().unwrap();
    let (run_len, pending, conditions): (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT e->>'run_len', e->>'pending', e->>'conditions' FROM site_tracks, json_array_elements(tracks::json) AS e \
         WHERE site_id = 'z'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!((run_len.as_str(), pending, conditions), ("77", None, None));
}

/// Each region's status row says its own interval (`status` tells a stale row by it), and a
/// result that says none (schema v1/v2) keeps the one known.
async fn own_intervals<S: StatusStore>(store: &S) {
    let mut rs = results("i", "eu", "++", |_| {});
    rs.extend(results("i", "us", "++", |r| r.interval_ms = Some(600_000)));
    store.store(&rs, &[]).await.unwrap();
    store.store(&results("i", "eu", "+++", |r| r.interval_ms = None)[2..], &[]).await.unwrap();
    let got: Vec<(String, Option<i64>)> =
        store.latest().await.unwrap().into_iter().map(|s| (s.region, s.interval_ms)).collect();
    assert_eq!(got, [("eu".to_owned(), Some(10_000)), ("us".to_owned(), Some(600_000))]);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_region_keeps_its_own_interval_on_both_stores() {
    own_intervals(&pg().await.0).await;
    let dir = tempfile::tempdir().unwrap();
    own_intervals(&sqlite(&dir, "i.db").await.0).await;
}
