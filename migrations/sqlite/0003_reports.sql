-- Report views (see the PostgreSQL migration of the same name): the same names and columns.
-- Times are INTEGER µs since the epoch (UTC): `day`, `month` and `hour` are the period's start;
-- `ongoing` is 0/1; `regions` is comma-separated text as in PostgreSQL.
--
-- MISSED slots are counted apart (`missed`) and left out of `checks` and of the uptime
-- denominator; uptime_pct is NULL when a period holds only MISSED slots.

CREATE VIEW site_daily AS
SELECT
    site_id,
    region,
    scheduled_at - scheduled_at % 86400000000 AS day,
    count(*) FILTER (WHERE status <> 'MISSED') AS checks,
    count(*) FILTER (WHERE status = 'SUCCESS') AS successes,
    count(*) FILTER (WHERE status = 'FAILURE') AS failures,
    count(*) FILTER (WHERE status = 'MISSED') AS missed,
    round(100.0 * count(*) FILTER (WHERE status = 'SUCCESS')
          / nullif(count(*) FILTER (WHERE status <> 'MISSED'), 0), 3) AS uptime_pct
FROM check_results
GROUP BY site_id, region, scheduled_at - scheduled_at % 86400000000;

CREATE VIEW site_monthly AS
SELECT
    site_id,
    region,
    CAST(strftime('%s', scheduled_at / 1000000, 'unixepoch', 'start of month') AS INTEGER) * 1000000
        AS month,
    count(*) FILTER (WHERE status <> 'MISSED') AS checks,
    count(*) FILTER (WHERE status = 'SUCCESS') AS successes,
    count(*) FILTER (WHERE status = 'FAILURE') AS failures,
    count(*) FILTER (WHERE status = 'MISSED') AS missed,
    round(100.0 * count(*) FILTER (WHERE status = 'SUCCESS')
          / nullif(count(*) FILTER (WHERE status <> 'MISSED'), 0), 3) AS uptime_pct
FROM check_results
GROUP BY site_id, region, 3;

-- SQLite has no percentile function: nearest rank by window functions. Within each hour the
-- non-NULL total_us are numbered in ascending order; the p-th percentile is the value ranked
-- ceil(p × n), computed in integers as (100p × n + 99) / 100. PostgreSQL's percentile_disc
-- gives the same values.
CREATE VIEW site_latency_hourly AS
WITH ranked AS (
    SELECT
        site_id,
        region,
        scheduled_at - scheduled_at % 3600000000 AS hour,
        total_us,
        row_number() OVER w AS rank,
        count(total_us) OVER (PARTITION BY site_id, region, scheduled_at - scheduled_at % 3600000000) AS n
    FROM check_results
    WHERE status <> 'MISSED'
    WINDOW w AS (PARTITION BY site_id, region, scheduled_at - scheduled_at % 3600000000
                 ORDER BY total_us IS NULL, total_us)
)
SELECT
    site_id,
    region,
    hour,
    count(*) AS checks,
    max(CASE WHEN rank = (50 * n + 99) / 100 THEN total_us END) AS p50_total_us,
    max(CASE WHEN rank = (95 * n + 99) / 100 THEN total_us END) AS p95_total_us,
    max(CASE WHEN rank = (99 * n + 99) / 100 THEN total_us END) AS p99_total_us
FROM ranked
GROUP BY site_id, region, hour;

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
    (coalesce(ended_at, CAST(strftime('%s', 'now') AS INTEGER) * 1000000) - started_at) / 1000000
        AS duration_s,
    (SELECT group_concat(value, ',') FROM json_each(incidents.regions)) AS regions,
    failure_kind,
    error,
    failed_checks
FROM incidents;

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
