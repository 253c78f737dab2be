//! Upgrading a database whose incident tracks are one row per region (migrations before
//! `site_tracks`): the tracks move into one row per site unchanged, so a stream stored half
//! before the upgrade and half after gives the incidents and events of the whole stream, on both
//! stores — open incidents, conditions under way and results waiting for their slot included.

use sitemon::ports::StatusStore;
use sitemon::store::SqliteStore;

use crate::incidents::{Db, oracle, pg, sqlite, stream};
use crate::support;

/// The old table, as migrations 0004, 0006 and 0010 (PostgreSQL) left it, filled back from the
/// new rows; then the new table and its migration's record are removed.
const PG_DOWNGRADE: [&str; 4] = [
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
    "DELETE FROM _sqlx_migrations WHERE description = 'site tracks'",
];

/// The same for SQLite (migrations 0002, 0004 and 0007).
const SQLITE_DOWNGRADE: [&str; 4] = [
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
    "DELETE FROM _sqlx_migrations WHERE description = 'site tracks'",
];

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
        store_in_chunks(&store, &all[cut..]).await;
        let (rows, events) = db.incidents().await;
        assert_eq!(rows, want_rows, "SQLite, cut at {cut}");
        assert_eq!(events, want_events, "SQLite, cut at {cut}");
    }
}
