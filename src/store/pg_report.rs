//! PostgreSQL's report queries (`report.rs` runs them): one site's daily tallies (UTC days),
//! incidents and history pages over a window, read from the base tables.

use super::PgStore;
use super::report::{ReportSql, report_source};

const DAILY: &str = "SELECT (scheduled_at AT TIME ZONE 'UTC')::date AS day, \
     count(*) FILTER (WHERE status = 'SUCCESS') AS successes, \
     count(*) FILTER (WHERE status = 'FAILURE') AS failures, \
     count(*) FILTER (WHERE status = 'MISSED') + coalesce(sum(missed_slots), 0) AS missed \
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
     (extract(epoch FROM tls_not_after) * 1000000)::bigint AS tls_not_after, \
     (extract(epoch FROM missed_since) * 1000000)::bigint AS missed_since, missed_slots \
     FROM check_results WHERE site_id = $1 AND scheduled_at >= $2 AND scheduled_at < $3 \
     AND ($4::timestamptz IS NULL OR (scheduled_at, check_id) > ($4, $5::uuid)) \
     ORDER BY scheduled_at, check_id LIMIT $6";

const SQL: ReportSql = ReportSql { daily: DAILY, incidents: INCIDENTS, results: RESULTS };

report_source!(PgStore, SQL, super::pg_tx::classify, std::convert::identity, std::convert::identity);
