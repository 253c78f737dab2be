//! [`ReportSource`] for [`PgStore`]: one site's daily tallies, incidents and history pages over a
//! window, read from the base tables with bind parameters (days are UTC days).

use chrono::{DateTime, Utc};

use super::PgStore;
use super::day_row::DayRow;
use super::incident_row::IncidentRow;
use super::pg_tx::classify;
use super::result_row::ResultRow;
use crate::domain::{CheckResult, DayTally, Incident};
use crate::ports::{ReportSource, ResultKey, StoreError};

const DAILY: &str = "SELECT (scheduled_at AT TIME ZONE 'UTC')::date AS day, \
     count(*) FILTER (WHERE status = 'SUCCESS') AS successes, \
     count(*) FILTER (WHERE status = 'FAILURE') AS failures, \
     count(*) FILTER (WHERE status = 'MISSED') AS missed \
     FROM check_results WHERE site_id = $1 AND scheduled_at >= $2 AND scheduled_at < $3 \
     GROUP BY 1 ORDER BY 1";

const INCIDENTS: &str = "SELECT incident_id::text AS incident_id, site_id, region, url, \
     (extract(epoch FROM started_at) * 1000000)::bigint AS started_at, \
     (extract(epoch FROM confirmed_at) * 1000000)::bigint AS confirmed_at, \
     (extract(epoch FROM ended_at) * 1000000)::bigint AS ended_at, \
     array_to_json(regions)::text AS regions, failure_kind, error, failed_checks, end_reason, incident_kind \
     FROM incidents WHERE site_id = $1 AND started_at < $3 AND (ended_at IS NULL OR ended_at > $2) \
     ORDER BY started_at, region NULLS FIRST";

const RESULTS: &str = "SELECT check_id::text AS check_id, site_id, url, region, \
     (extract(epoch FROM scheduled_at) * 1000000)::bigint AS scheduled_at, \
     (extract(epoch FROM started_at) * 1000000)::bigint AS started_at, \
     status, failure_kind, error, status_code, http_version, remote_addr, dns_us, connect_us, \
     tls_us, ttfb_us, total_us, body_bytes, pattern, pattern_matched, \
     (extract(epoch FROM tls_not_after) * 1000000)::bigint AS tls_not_after \
     FROM check_results WHERE site_id = $1 AND scheduled_at >= $2 AND scheduled_at < $3 \
     AND ($4::timestamptz IS NULL OR (scheduled_at, check_id) > ($4, $5::uuid)) \
     ORDER BY scheduled_at, check_id LIMIT $6";

impl ReportSource for PgStore {
    async fn daily(
        &self,
        site_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DayTally>, StoreError> {
        let rows: Vec<DayRow> = sqlx::query_as(DAILY)
            .bind(site_id)
            .bind(from)
            .bind(to)
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
            .bind(from)
            .bind(to)
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
            .bind(from)
            .bind(to)
            .bind(after.map(|k| k.scheduled_at))
            .bind(after.map(|k| k.check_id))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        Ok(rows.into_iter().map(CheckResult::from).collect())
    }
}
