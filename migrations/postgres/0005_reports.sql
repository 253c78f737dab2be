-- Report views: availability per site and region per UTC day and month, latency percentiles per
-- hour, incidents with their duration, and the latest status. The Grafana dashboard in
-- grafana/ reads only these views; SQLite has the same views with the same columns
-- (times there are INTEGER µs since the epoch).
--
-- MISSED slots say nothing about the site: they are counted apart (`missed`) and left out of
-- `checks` and of the uptime denominator. uptime_pct = 100 × successes / (successes + failures),
-- NULL when a period holds only MISSED slots.

CREATE VIEW site_daily AS
SELECT
    site_id,
    region,
    date_trunc('day', scheduled_at, 'UTC') AS day,
    count(*) FILTER (WHERE status <> 'MISSED') AS checks,
    count(*) FILTER (WHERE status = 'SUCCESS') AS successes,
    count(*) FILTER (WHERE status = 'FAILURE') AS failures,
    count(*) FILTER (WHERE status = 'MISSED') AS missed,
    round(100.0 * count(*) FILTER (WHERE status = 'SUCCESS')
          / nullif(count(*) FILTER (WHERE status <> 'MISSED'), 0), 3) AS uptime_pct
FROM check_results
GROUP BY site_id, region, date_trunc('day', scheduled_at, 'UTC');

COMMENT ON VIEW site_daily IS 'checks, successes, failures, missed and uptime % per site, region and UTC day';

CREATE VIEW site_monthly AS
SELECT
    site_id,
    region,
    date_trunc('month', scheduled_at, 'UTC') AS month,
    count(*) FILTER (WHERE status <> 'MISSED') AS checks,
    count(*) FILTER (WHERE status = 'SUCCESS') AS successes,
    count(*) FILTER (WHERE status = 'FAILURE') AS failures,
    count(*) FILTER (WHERE status = 'MISSED') AS missed,
    round(100.0 * count(*) FILTER (WHERE status = 'SUCCESS')
          / nullif(count(*) FILTER (WHERE status <> 'MISSED'), 0), 3) AS uptime_pct
FROM check_results
GROUP BY site_id, region, date_trunc('month', scheduled_at, 'UTC');

COMMENT ON VIEW site_monthly IS 'checks, successes, failures, missed and uptime % per site, region and UTC month';

-- Nearest-rank percentiles (percentile_disc: the smallest total_us with at least p of the
-- hour's values at or below it), the same values SQLite's view computes.
CREATE VIEW site_latency_hourly AS
SELECT
    site_id,
    region,
    date_trunc('hour', scheduled_at, 'UTC') AS hour,
    count(*) AS checks,
    percentile_disc(0.50) WITHIN GROUP (ORDER BY total_us) AS p50_total_us,
    percentile_disc(0.95) WITHIN GROUP (ORDER BY total_us) AS p95_total_us,
    percentile_disc(0.99) WITHIN GROUP (ORDER BY total_us) AS p99_total_us
FROM check_results
WHERE status <> 'MISSED'
GROUP BY site_id, region, date_trunc('hour', scheduled_at, 'UTC');

COMMENT ON VIEW site_latency_hourly IS 'p50/p95/p99 total check time (nearest rank) per site, region and UTC hour';

-- region NULL: the site as a whole. duration_s runs to now while the incident is open.
CREATE VIEW incident_report AS
SELECT
    incident_id,
    site_id,
    region,
    url,
    started_at,
    confirmed_at,
    ended_at,
    ended_at IS NULL AS ongoing,
    floor(extract(epoch FROM coalesce(ended_at, now()) - started_at))::bigint AS duration_s,
    array_to_string(regions, ',') AS regions,
    failure_kind,
    error,
    failed_checks
FROM incidents;

COMMENT ON VIEW incident_report IS 'incidents with their duration (to now while open); region NULL = the whole site';

CREATE VIEW site_latest AS
SELECT
    site_id,
    region,
    url,
    status,
    failure_kind,
    error,
    status_code,
    total_us,
    consecutive_failures,
    status_since,
    scheduled_at
FROM site_status;

COMMENT ON VIEW site_latest IS 'the latest status per site and region';
