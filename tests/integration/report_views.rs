//! The report views on both stores, pinned on a small known history: MISSED slots counted
//! apart and out of the uptime's denominator, UTC day and month boundaries, nearest-rank
//! percentiles equal on PostgreSQL and SQLite, incidents with their duration, the latest status.

use chrono::{DateTime, Utc};
use sqlx::{Connection, SqliteConnection};

use crate::support::report_data::{seeded_pg, seeded_sqlite, t};

type Day = (String, i64, i64, i64, i64, i64, Option<f64>);
type Hour = (String, i64, i64, Option<i64>, Option<i64>, Option<i64>);
type IncidentRow = (String, Option<String>, bool, i64, String, i64);

fn secs(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

fn expected_days() -> Vec<Day> {
    vec![
        ("r1".into(), secs(t(2026, 1, 31, 0, 0, 0)), 4, 2, 2, 1, Some(50.0)),
        ("r1".into(), secs(t(2026, 2, 1, 0, 0, 0)), 21, 20, 1, 2, Some(95.238)),
        // Only a MISSED slot: no check, no uptime.
        ("r2".into(), secs(t(2026, 2, 1, 0, 0, 0)), 0, 0, 0, 1, None),
    ]
}

fn expected_months() -> Vec<Day> {
    vec![
        ("r1".into(), secs(t(2026, 1, 1, 0, 0, 0)), 4, 2, 2, 1, Some(50.0)),
        ("r1".into(), secs(t(2026, 2, 1, 0, 0, 0)), 21, 20, 1, 2, Some(95.238)),
        ("r2".into(), secs(t(2026, 2, 1, 0, 0, 0)), 0, 0, 0, 1, None),
    ]
}

/// Nearest rank: of 21 values 10…210 the 11th, 20th and 21st; of 5, 7, 9 (a fourth check has no
/// total time) the 2nd, 3rd and 3rd. Hours of MISSED slots only have no row.
fn expected_hours() -> Vec<Hour> {
    vec![
        ("r1".into(), secs(t(2026, 1, 31, 23, 0, 0)), 4, Some(7), Some(9), Some(9)),
        ("r1".into(), secs(t(2026, 2, 1, 0, 0, 0)), 21, Some(110), Some(200), Some(210)),
    ]
}

/// (region or "site", ended?, ongoing, duration_s, regions, failed_checks) of site `a`'s
/// incidents, oldest first; the open one's duration is checked apart.
fn check_incidents(rows: &[IncidentRow]) {
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0], ("site".into(), Some("ended".into()), false, 3600, "r1,r2".into(), 60));
    assert_eq!(rows[1], ("site".into(), Some("ended".into()), false, 300, "r1,r2".into(), 3));
    let open = &rows[2];
    assert_eq!(
        (&open.0, &open.1, open.2, &open.4, open.5),
        (&"r1".to_owned(), &None, true, &"r1".to_owned(), 5)
    );
    assert!((3600..3700).contains(&open.3), "an open incident lasts until now: {open:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_report_views_count_missed_apart_and_pin_percentiles() {
    let url = seeded_pg(Utc::now()).await;
    let mut c = crate::support::connect(&url).await;
    let period = |view: &str, col: &str| {
        format!(
            "SELECT region, extract(epoch FROM {col})::bigint, checks, successes, failures, missed, \
             uptime_pct::float8 FROM {view} WHERE site_id = 'a' ORDER BY region, {col}"
        )
    };
    let days: Vec<Day> = sqlx::query_as(&period("site_daily", "day")).fetch_all(&mut c).await.unwrap();
    assert_eq!(days, expected_days());
    let months: Vec<Day> = sqlx::query_as(&period("site_monthly", "month")).fetch_all(&mut c).await.unwrap();
    assert_eq!(months, expected_months());
    let hours: Vec<Hour> = sqlx::query_as(
        "SELECT region, extract(epoch FROM hour)::bigint, checks, p50_total_us, p95_total_us, p99_total_us \
         FROM site_latency_hourly WHERE site_id = 'a' ORDER BY region, hour",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(hours, expected_hours());
    let incidents: Vec<IncidentRow> = sqlx::query_as(
        "SELECT coalesce(region, 'site'), CASE WHEN ended_at IS NOT NULL THEN 'ended' END, ongoing, \
         duration_s, regions, failed_checks FROM incident_report WHERE site_id = 'a' AND incident_kind = 'DOWN' \
         ORDER BY started_at",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    check_incidents(&incidents);
    let latest: (String, i64) = sqlx::query_as(
        "SELECT status, extract(epoch FROM scheduled_at)::bigint FROM site_latest \
         WHERE site_id = 'a' AND region = 'r1'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(latest, ("SUCCESS".into(), secs(t(2026, 2, 1, 0, 20, 0))));
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_report_views_match_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let url = seeded_sqlite(&dir.path().join("r.db"), Utc::now()).await;
    let mut c = SqliteConnection::connect(&url).await.unwrap();
    let period = |view: &str, col: &str| {
        format!(
            "SELECT region, {col} / 1000000, checks, successes, failures, missed, uptime_pct \
             FROM {view} WHERE site_id = 'a' ORDER BY region, {col}"
        )
    };
    let days: Vec<Day> = sqlx::query_as(&period("site_daily", "day")).fetch_all(&mut c).await.unwrap();
    assert_eq!(days, expected_days());
    let months: Vec<Day> = sqlx::query_as(&period("site_monthly", "month")).fetch_all(&mut c).await.unwrap();
    assert_eq!(months, expected_months());
    let hours: Vec<Hour> = sqlx::query_as(
        "SELECT region, hour / 1000000, checks, p50_total_us, p95_total_us, p99_total_us \
         FROM site_latency_hourly WHERE site_id = 'a' ORDER BY region, hour",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(hours, expected_hours());
    let incidents: Vec<IncidentRow> = sqlx::query_as(
        "SELECT coalesce(region, 'site'), CASE WHEN ended_at IS NOT NULL THEN 'ended' END, ongoing, \
         duration_s, regions, failed_checks FROM incident_report WHERE site_id = 'a' AND incident_kind = 'DOWN' \
         ORDER BY started_at",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    check_incidents(&incidents);
    let latest: (String, i64) = sqlx::query_as(
        "SELECT status, scheduled_at / 1000000 FROM site_latest WHERE site_id = 'a' AND region = 'r1'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(latest, ("SUCCESS".into(), secs(t(2026, 2, 1, 0, 20, 0))));
}
