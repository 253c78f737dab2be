-- DEGRADED and CERT_EXPIRING incidents beside outages (DOWN): the kind of every incident and
-- event, and each site's conditions between batches (JSON, on its own track, region '').
ALTER TABLE incidents ADD COLUMN incident_kind text NOT NULL DEFAULT 'DOWN';
ALTER TABLE incident_events ADD COLUMN incident_kind text NOT NULL DEFAULT 'DOWN';
ALTER TABLE incident_tracks ADD COLUMN conditions text;

-- The report view with the kind (a new last column; the columns before it unchanged).
CREATE OR REPLACE VIEW incident_report AS
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
    failed_checks,
    incident_kind
FROM incidents;

COMMENT ON VIEW incident_report IS 'incidents with their duration (to now while open); region NULL = the whole site; incident_kind DOWN (an outage), DEGRADED or CERT_EXPIRING';
