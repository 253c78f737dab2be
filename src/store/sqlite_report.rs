//! SQLite's report queries (`report.rs` runs them): those of `pg_report.rs` over the embedded
//! tables (times in µs since the epoch, UTC days).

use super::SqliteStore;
use super::report::{ReportSql, report_source};

const DAILY: &str = "SELECT date(scheduled_at / 1000000, 'unixepoch') AS day, \
     count(*) FILTER (WHERE status = 'SUCCESS') AS successes, \
     count(*) FILTER (WHERE status = 'FAILURE') AS failures, \
     count(*) FILTER (WHERE status = 'MISSED') + coalesce(sum(missed_slots), 0) AS missed \
     FROM check_results WHERE site_id = ?1 AND scheduled_at >= ?2 AND scheduled_at < ?3 \
     GROUP BY 1 ORDER BY 1";

const INCIDENTS: &str = "SELECT incident_id, site_id, region, url, started_at, confirmed_at, ended_at, \
     regions, failure_kind, error, failed_checks, end_reason, incident_kind \
     FROM incidents WHERE site_id = ?1 AND started_at < ?3 AND (ended_at IS NULL OR ended_at > ?2) \
     ORDER BY started_at, region IS NOT NULL, region";

const RESULTS: &str = "SELECT check_id, site_id, url, region, scheduled_at, started_at, status, \
     failure_kind, error, status_code, http_version, remote_addr, dns_us, connect_us, tls_us, \
     ttfb_us, total_us, body_bytes, pattern, pattern_matched, tls_not_after, missed_since, missed_slots \
     FROM check_results WHERE site_id = ?1 AND scheduled_at >= ?2 AND scheduled_at < ?3 \
     AND (?4 IS NULL OR (scheduled_at, check_id) > (?4, ?5)) \
     ORDER BY scheduled_at, check_id LIMIT ?6";

const SQL: ReportSql = ReportSql { daily: DAILY, incidents: INCIDENTS, results: RESULTS };

report_source!(SqliteStore, SQL, super::sqlite_tx::classify, super::sqlite_tx::us, |id: uuid::Uuid| id
    .to_string());
