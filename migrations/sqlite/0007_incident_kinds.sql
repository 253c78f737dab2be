-- DEGRADED and CERT_EXPIRING incidents beside outages (DOWN): the kind of every incident and
-- event, and each site's conditions between batches (JSON, on its own track, region '').
ALTER TABLE incidents ADD COLUMN incident_kind TEXT NOT NULL DEFAULT 'DOWN';
ALTER TABLE incident_events ADD COLUMN incident_kind TEXT NOT NULL DEFAULT 'DOWN';
ALTER TABLE incident_tracks ADD COLUMN conditions TEXT;

-- The report view with the kind (a new last column; the columns before it unchanged).
DROP VIEW incident_report;
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
    failed_checks,
    incident_kind
FROM incidents;
