-- Views for operators: availability and latency per site and hour.
-- MISSED slots say nothing about the site and are left out of both.

CREATE VIEW site_hourly AS
SELECT
    site_id,
    region,
    date_trunc('hour', scheduled_at) AS hour,
    count(*) AS checks,
    count(*) FILTER (WHERE status = 'SUCCESS') AS successes,
    round(100.0 * count(*) FILTER (WHERE status = 'SUCCESS') / count(*), 3) AS uptime_pct,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY total_us) AS p50_total_us,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY total_us) AS p95_total_us
FROM check_results
WHERE status <> 'MISSED'
GROUP BY site_id, region, date_trunc('hour', scheduled_at);

COMMENT ON VIEW site_hourly IS 'uptime % and p50/p95 total check time per site, region and hour';
