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

#[tokio::test(flavor = "multi_thread")]
async fn postgres_store_keeps_the_contract() {
    let url = support::fresh_database().await;
    let store =
        PgStore::connect(&PostgresConfig { url: Secret::new(url.clone()), max_connections: 2 }).unwrap();
    store.migrate().await.unwrap();
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
