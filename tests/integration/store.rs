//! The StatusStore contract, run against both adapters (PostgreSQL and SQLite): idempotent
//! history, a latest status that never moves backwards, failure runs, and retention.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sitemon::config::{PostgresConfig, Secret};
use sitemon::domain::{CheckResult, CheckStatus, FailureKind};
use sitemon::ports::StatusStore;
use sitemon::store::{PgStore, SqliteStore};

use crate::support;

fn at(secs_ago: i64, now: DateTime<Utc>, up: bool) -> CheckResult {
    let t = now - Duration::seconds(secs_ago);
    let mut r = CheckResult::new("site", "http://x/", "r", t, t, CheckStatus::Success);
    if !up {
        r.fail(FailureKind::Connect, "refused");
    }
    r
}

async fn contract<S: StatusStore>(store: &S, history: impl AsyncFn() -> i64) {
    let now = Utc.timestamp_opt(Utc::now().timestamp(), 0).unwrap();
    let (f1, f2, ok3, f4, f5) =
        (at(50, now, false), at(40, now, false), at(30, now, true), at(20, now, false), at(10, now, false));

    store.store(std::slice::from_ref(&f1), &[]).await.unwrap();
    store.store(std::slice::from_ref(&f2), &[]).await.unwrap();
    let s = &store.latest().await.unwrap()[0];
    assert_eq!(
        (s.status, s.consecutive_failures, s.status_since),
        (CheckStatus::Failure, 2, f1.scheduled_at)
    );

    store.store(std::slice::from_ref(&ok3), &[]).await.unwrap();
    // A duplicate and an out-of-order older result change nothing.
    store.store(&[f2.clone(), ok3.clone()], &[]).await.unwrap();
    store.store(std::slice::from_ref(&f1), &[]).await.unwrap();
    let s = &store.latest().await.unwrap()[0];
    assert_eq!(
        (s.status, s.consecutive_failures, s.status_since),
        (CheckStatus::Success, 0, ok3.scheduled_at)
    );
    assert_eq!(history().await, 3, "history is idempotent");

    // Two failures in one batch, delivered newest first.
    store.store(&[f5.clone(), f4.clone()], &[]).await.unwrap();
    let s = &store.latest().await.unwrap()[0];
    assert_eq!(
        (s.status, s.consecutive_failures, s.status_since),
        (CheckStatus::Failure, 2, f4.scheduled_at)
    );
    assert_eq!(s.scheduled_at, f5.scheduled_at);
    assert_eq!(s.failure_kind, Some(FailureKind::Connect));

    // Retention: a result from 40 days ago goes, recent ones stay.
    let mut old = at(40 * 86_400, now, true);
    old.site_id = "old".into();
    old.check_id = sitemon::domain::check_id("old", "r", old.scheduled_at);
    store.store(&[old], &[]).await.unwrap();
    assert_eq!(history().await, 6);
    let removed = store.prune(now - Duration::days(30)).await.unwrap();
    assert!(removed >= 1);
    assert_eq!(history().await, 5);
}

/// A PgStore with a pool of `connections` on a fresh, migrated database, and that database's URL.
async fn migrated_pg_store(connections: u32) -> (PgStore, String) {
    let url = support::fresh_database().await;
    let cfg = PostgresConfig { url: Secret::new(url.clone()), max_connections: connections };
    let store = PgStore::connect(&cfg).unwrap();
    store.migrate().await.unwrap();
    (store, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_store_keeps_the_contract() {
    let (store, url) = migrated_pg_store(2).await;
    contract(&store, async || {
        let mut c = support::connect(&url).await;
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM check_results").fetch_one(&mut c).await.unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let url = format!("sqlite://{}", path.display());
    contract(&store, async || {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM check_results").fetch_one(&mut c).await.unwrap()
    })
    .await;
}

/// Every history column as stored by the COPY path (new rows) and by the INSERT path (a batch
/// that repeats a stored row falls back to it), read back as the database holds it. One pool
/// connection: history and latest status share one transaction (the contract above runs with two).
#[tokio::test(flavor = "multi_thread")]
async fn postgres_history_keeps_every_field() {
    let (store, url) = migrated_pg_store(1).await;
    let t = Utc.timestamp_micros(Utc::now().timestamp_micros() - 1_234_567).unwrap();
    let full = |site: &str| {
        let mut r = CheckResult::new(
            site,
            "https://a.test/ä?q=1\t2",
            "eu-1",
            t,
            t + Duration::microseconds(7),
            CheckStatus::Success,
        );
        r.fail(FailureKind::PatternNotFound, "line 1\nline \\2");
        r.status_code = Some(503);
        r.http_version = Some("HTTP/1.1".into());
        r.remote_addr = Some("[::1]:443".into());
        (r.dns_us, r.connect_us, r.tls_us, r.ttfb_us, r.total_us, r.body_bytes) =
            (Some(1), Some(2), Some(3), Some(4), Some(i64::MAX), Some(0));
        r.pattern = Some("ok|fine".into());
        r.pattern_matched = Some(false);
        r.tls_not_after = Some(Utc.timestamp_micros(-1).unwrap());
        r
    };
    let (copied, inserted) = (full("copied"), full("inserted"));
    let bare = CheckResult::new("bare", "http://b/", "eu-1", t, t, CheckStatus::Missed);
    store.store(&[copied.clone(), bare.clone()], &[]).await.unwrap();
    store.store(&[copied.clone(), inserted.clone()], &[]).await.unwrap();

    let mut c = support::connect(&url).await;
    type Row = (
        uuid::Uuid,
        String,
        String,
        String,
        DateTime<Utc>,
        DateTime<Utc>,
        String,
        Option<String>,
        Option<String>,
        Option<i32>,
        Option<String>,
        Option<String>,
    );
    type Tail = (
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<bool>,
        Option<DateTime<Utc>>,
    );
    for want in [&copied, &inserted, &bare] {
        let head: Row = sqlx::query_as(
            "SELECT check_id, site_id, url, region, scheduled_at, started_at, status, failure_kind, error, \
             status_code, http_version, remote_addr FROM check_results WHERE site_id = $1",
        )
        .bind(&want.site_id)
        .fetch_one(&mut c)
        .await
        .unwrap();
        let tail: Tail = sqlx::query_as(
            "SELECT dns_us, connect_us, tls_us, ttfb_us, total_us, body_bytes, pattern, pattern_matched, \
             tls_not_after FROM check_results WHERE site_id = $1",
        )
        .bind(&want.site_id)
        .fetch_one(&mut c)
        .await
        .unwrap();
        let w = want;
        assert_eq!(
            head,
            (
                w.check_id,
                w.site_id.clone(),
                w.url.clone(),
                w.region.clone(),
                w.scheduled_at,
                w.started_at,
                w.status.as_str().to_owned(),
                w.failure_kind.map(|k| k.as_str().to_owned()),
                w.error.clone(),
                w.status_code.map(i32::from),
                w.http_version.clone(),
                w.remote_addr.clone(),
            )
        );
        assert_eq!(
            tail,
            (
                w.dns_us,
                w.connect_us,
                w.tls_us,
                w.ttfb_us,
                w.total_us,
                w.body_bytes,
                w.pattern.clone(),
                w.pattern_matched,
                w.tls_not_after
            )
        );
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM check_results").fetch_one(&mut c).await.unwrap();
    assert_eq!(rows, 3, "the repeated row is stored once");
}
