//! [`ReportSource`] for [`SqliteStore`]: the PostgreSQL queries of `pg_report.rs` over the
//! embedded tables (times in µs since the epoch, UTC days).

use chrono::{DateTime, Utc};

use super::SqliteStore;
use super::day_row::DayRow;
use super::incident_row::IncidentRow;
use super::result_row::ResultRow;
use super::sqlite_tx::classify;
use crate::domain::{CheckResult, DayTally, Incident};
use crate::ports::{ReportSource, ResultKey, StoreError};

const DAILY: &str = "SELECT date(scheduled_at / 1000000, 'unixepoch') AS day, \
     count(*) FILTER (WHERE status = 'SUCCESS') AS successes, \
     count(*) FILTER (WHERE status = 'FAILURE') AS failures, \
     count(*) FILTER (WHERE status = 'MISSED') AS missed \
     FROM check_results WHERE site_id = ?1 AND scheduled_at >= ?2 AND scheduled_at < ?3 \
     GROUP BY 1 ORDER BY 1";

const INCIDENTS: &str = "SELECT incident_id, site_id, region, url, started_at, confirmed_at, ended_at, \
     regions, failure_kind, error, failed_checks, end_reason, incident_kind \
     FROM incidents WHERE site_id = ?1 AND started_at < ?3 AND (ended_at IS NULL OR ended_at > ?2) \
     ORDER BY started_at, region IS NOT NULL, region";

const RESULTS: &str = "SELECT check_id, site_id, url, region, scheduled_at, started_at, status, \
     failure_kind, error, status_code, http_version, remote_addr, dns_us, connect_us, tls_us, \
     ttfb_us, total_us, body_bytes, pattern, pattern_matched, tls_not_after \
     FROM check_results WHERE site_id = ?1 AND scheduled_at >= ?2 AND scheduled_at < ?3 \
     AND (?4 IS NULL OR (scheduled_at, check_id) > (?4, ?5)) \
     ORDER BY scheduled_at, check_id LIMIT ?6";

fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

impl ReportSource for SqliteStore {
    async fn daily(
        &self,
        site_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DayTally>, StoreError> {
        let rows: Vec<DayRow> = sqlx::query_as(DAILY)
            .bind(site_id)
            .bind(us(from))
            .bind(us(to))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        Ok(rows.into_iter().map(DayTally::from).collect())
    }

    async fn incidents(
        &self,
        site_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Incident>, StoreError> {
        let rows: Vec<IncidentRow> = sqlx::query_as(INCIDENTS)
            .bind(site_id)
            .bind(us(from))
            .bind(us(to))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        Ok(rows.into_iter().map(Incident::from).collect())
    }

    async fn results(
        &self,
        site_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<ResultKey>,
        limit: u32,
    ) -> Result<Vec<CheckResult>, StoreError> {
        let rows: Vec<ResultRow> = sqlx::query_as(RESULTS)
            .bind(site_id)
            .bind(us(from))
            .bind(us(to))
            .bind(after.map(|k| us(k.scheduled_at)))
            .bind(after.map(|k| k.check_id.to_string()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        Ok(rows.into_iter().map(CheckResult::from).collect())
    }
}
