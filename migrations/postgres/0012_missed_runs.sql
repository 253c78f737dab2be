-- A run of a site's missed slots carried on the record after it (schema v5): the first missed
-- slot's time and how many were missed up to this row's slot. Rows before this keep NULL (no run).
ALTER TABLE check_results ADD COLUMN missed_since timestamptz, ADD COLUMN missed_slots integer;

-- `missed` counts the slots of the runs rows carry as well (the run counts in its record's period).
CREATE OR REPLACE VIEW site_daily AS
SELECT
    site_id,
    region,
    date_trunc('day', scheduled_at, 'UTC') AS day,
    count(*) FILTER (WHERE status <> 'MISSED') AS checks,
    count(*) FILTER (WHERE status = 'SUCCESS') AS successes,
    count(*) FILTER (WHERE status = 'FAILURE') AS failures,
    count(*) FILTER (WHERE status = 'MISSED') + coalesce(sum(missed_slots), 0) AS missed,
    round(100.0 * count(*) FILTER (WHERE status = 'SUCCESS')
          / nullif(count(*) FILTER (WHERE status <> 'MISSED'), 0), 3) AS uptime_pct
FROM check_results
GROUP BY site_id, region, date_trunc('day', scheduled_at, 'UTC');

COMMENT ON VIEW site_daily IS 'checks, successes, failures, missed and uptime % per site, region and UTC day';

CREATE OR REPLACE VIEW site_monthly AS
SELECT
    site_id,
    region,
    date_trunc('month', scheduled_at, 'UTC') AS month,
    count(*) FILTER (WHERE status <> 'MISSED') AS checks,
    count(*) FILTER (WHERE status = 'SUCCESS') AS successes,
    count(*) FILTER (WHERE status = 'FAILURE') AS failures,
    count(*) FILTER (WHERE status = 'MISSED') + coalesce(sum(missed_slots), 0) AS missed,
    round(100.0 * count(*) FILTER (WHERE status = 'SUCCESS')
          / nullif(count(*) FILTER (WHERE status <> 'MISSED'), 0), 3) AS uptime_pct
FROM check_results
GROUP BY site_id, region, date_trunc('month', scheduled_at, 'UTC');

COMMENT ON VIEW site_monthly IS 'checks, successes, failures, missed and uptime % per site, region and UTC month';
