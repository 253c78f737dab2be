//! A small known history for the report views, `sitemon report` and the dashboard: site `a`
//! in regions `r1` and `r2` across a UTC day and month boundary (2026-01-31 → 2026-02-01), with
//! MISSED slots, a result without a total time, and incidents; site `b` as a neighbour that must
//! not leak into `a`'s numbers.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sitemon::domain::{CheckResult, CheckStatus, FailureKind};
use sqlx::{PgConnection, SqliteConnection};

pub fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn result(
    site: &str,
    region: &str,
    at: DateTime<Utc>,
    status: CheckStatus,
    total_us: Option<i64>,
) -> CheckResult {
    let mut r = CheckResult::new(site, &format!("http://{site}.test/"), region, at, at, status);
    if status == CheckStatus::Failure {
        r.fail(FailureKind::Connect, "refused");
    }
    r.total_us = total_us;
    r
}

/// Site `a`, region `r1`: on 2026-01-31 (hour 23) 2 successes, 2 failures (one without a total
/// time) and 1 MISSED; on 2026-02-01 (hour 0) 21 checks a minute apart, total times 10…210 µs in
/// shuffled order, the first a failure, and 2 MISSED (one a MISSED record carrying the other as
/// its run). Region `r2`: one MISSED on 2026-02-01.
/// Site `b`: one success on 2026-02-01.
pub fn results() -> Vec<CheckResult> {
    use CheckStatus::{Failure, Missed, Success};
    let mut carrying = result("a", "r1", t(2026, 2, 1, 0, 45, 30), Missed, None);
    (carrying.missed_since, carrying.missed_slots) = (Some(t(2026, 2, 1, 0, 30, 30)), Some(1));
    let mut v = vec![
        result("a", "r1", t(2026, 1, 31, 23, 10, 0), Success, Some(5)),
        result("a", "r1", t(2026, 1, 31, 23, 20, 0), Failure, Some(7)),
        result("a", "r1", t(2026, 1, 31, 23, 30, 0), Failure, None),
        result("a", "r1", t(2026, 1, 31, 23, 40, 0), Missed, None),
        result("a", "r1", t(2026, 1, 31, 23, 59, 59), Success, Some(9)),
        carrying,
        result("a", "r2", t(2026, 2, 1, 12, 0, 0), Missed, None),
        result("b", "r1", t(2026, 2, 1, 6, 0, 0), Success, Some(1_000_000)),
    ];
    for i in 0..21_i64 {
        let at = t(2026, 2, 1, 0, 0, 0) + Duration::minutes(i);
        let total = ((i * 5) % 21 + 1) * 10;
        v.push(result("a", "r1", at, if i == 0 { Failure } else { Success }, Some(total)));
    }
    v
}

/// The results of site `a` (every region) in the dataset.
pub const A_RESULTS: usize = 28;

/// An incident row: id, site, region, started, ended, regions, failure kind, failed checks.
pub struct Row {
    pub id: uuid::Uuid,
    pub site: &'static str,
    pub region: Option<&'static str>,
    pub started: DateTime<Utc>,
    pub ended: Option<DateTime<Utc>>,
    pub regions: &'static [&'static str],
    pub kind: &'static str,
    pub failed: i64,
}

/// A whole-site incident on 2026-02-01 00:00–00:05 (in the report window), an older one of
/// site `a` (2026-01-10, one hour), one of `r1` still open since an hour before `now`, and one
/// of site `b`.
pub fn incidents(now: DateTime<Utc>) -> Vec<Row> {
    let open_since = Utc.timestamp_opt(now.timestamp() - 3600, 0).unwrap();
    let row = |n: u128, site, region, started, ended, regions, kind, failed| Row {
        id: uuid::Uuid::from_u128(n),
        site,
        region,
        started,
        ended,
        regions,
        kind,
        failed,
    };
    vec![
        row(1, "a", None, t(2026, 2, 1, 0, 0, 0), Some(t(2026, 2, 1, 0, 5, 0)), &["r1", "r2"], "CONNECT", 3),
        row(2, "a", None, t(2026, 1, 10, 0, 0, 0), Some(t(2026, 1, 10, 1, 0, 0)), &["r1", "r2"], "DNS", 60),
        row(3, "a", Some("r1"), open_since, None, &["r1"], "TIMEOUT", 5),
        row(4, "b", None, t(2026, 2, 1, 6, 0, 0), Some(t(2026, 2, 1, 7, 0, 0)), &["r1"], "TLS", 9),
    ]
}

pub async fn insert_pg_incidents(c: &mut PgConnection, now: DateTime<Utc>) {
    for i in incidents(now) {
        sqlx::query(
            "INSERT INTO incidents (incident_id, site_id, region, url, started_at, confirmed_at, ended_at, \
             regions, failure_kind, error, failed_checks) VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, 'x', $9)",
        )
        .bind(i.id)
        .bind(i.site)
        .bind(i.region)
        .bind(format!("http://{}.test/", i.site))
        .bind(i.started)
        .bind(i.ended)
        .bind(i.regions.iter().map(|r| r.to_string()).collect::<Vec<_>>())
        .bind(i.kind)
        .bind(i.failed)
        .execute(&mut *c)
        .await
        .unwrap();
    }
}

pub async fn insert_sqlite_incidents(c: &mut SqliteConnection, now: DateTime<Utc>) {
    for i in incidents(now) {
        sqlx::query(
            "INSERT INTO incidents (incident_id, site_id, region, url, started_at, confirmed_at, ended_at, \
             regions, failure_kind, error, failed_checks) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, 'x', ?9)",
        )
        .bind(i.id.to_string())
        .bind(i.site)
        .bind(i.region)
        .bind(format!("http://{}.test/", i.site))
        .bind(i.started.timestamp_micros())
        .bind(i.ended.map(|t| t.timestamp_micros()))
        .bind(serde_json::to_string(i.regions).unwrap())
        .bind(i.kind)
        .bind(i.failed)
        .execute(&mut *c)
        .await
        .unwrap();
    }
}

/// A fresh, migrated PostgreSQL database holding the dataset; its URL.
pub async fn seeded_pg(now: DateTime<Utc>) -> String {
    use sitemon::ports::StatusStore;
    let url = super::fresh_database().await;
    let cfg = sitemon::config::PostgresConfig {
        url: sitemon::config::Secret::new(url.clone()),
        max_connections: 2,
    };
    let store = sitemon::store::PgStore::connect(&cfg).unwrap();
    store.migrate().await.unwrap();
    store.store(&results(), &[]).await.unwrap();
    insert_pg_incidents(&mut super::connect(&url).await, now).await;
    url
}

/// A new SQLite database at `path` holding the dataset; its URL.
pub async fn seeded_sqlite(path: &std::path::Path, now: DateTime<Utc>) -> String {
    use sitemon::ports::StatusStore;
    use sqlx::Connection;
    let store = sitemon::store::SqliteStore::open(path).await.unwrap();
    store.store(&results(), &[]).await.unwrap();
    let url = format!("sqlite://{}", path.display());
    insert_sqlite_incidents(&mut SqliteConnection::connect(&url).await.unwrap(), now).await;
    url
}
