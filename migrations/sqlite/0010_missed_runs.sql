-- A run of a site's missed slots carried on the record after it (see the PostgreSQL migration of
-- the same name); times in µs since the epoch.
ALTER TABLE check_results ADD COLUMN missed_since INTEGER;
ALTER TABLE check_results ADD COLUMN missed_slots INTEGER;

-- `missed` counts the slots of the runs rows carry as well (the run counts in its record's period).
DROP VIEW site_daily;
DROP VIEW site_monthly;
CREATE VIEW site_daily AS
SELECT
    site_id,
    region,
    scheduled_at - scheduled_at % 86400000000 AS day,
    count(*) FILTER (WHERE status <> 'MISSED') AS checks,
    count(*) FILTER (WHERE status = 'SUCCESS') AS successes,
    count(*) FILTER (WHERE status = 'FAILURE') AS failures,
    count(*) FILTER (WHERE status = 'MISSED') + coalesce(sum(missed_slots), 0) AS missed,
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
    count(*) FILTER (WHERE status = 'MISSED') + coalesce(sum(missed_slots), 0) AS missed,
    round(100.0 * count(*) FILTER (WHERE status = 'SUCCESS')
          / nullif(count(*) FILTER (WHERE status <> 'MISSED'), 0), 3) AS uptime_pct
FROM check_results
GROUP BY site_id, region, 3;
