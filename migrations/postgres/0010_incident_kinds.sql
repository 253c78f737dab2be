-- DEGRADED and CERT_EXPIRING incidents beside outages (DOWN): the kind of every incident and
-- event, and each site's conditions between batches (JSON, on its own track, region '').
ALTER TABLE incidents ADD COLUMN incident_kind text NOT NULL DEFAULT 'DOWN';
ALTER TABLE incident_events ADD COLUMN incident_kind text NOT NULL DEFAULT 'DOWN';
ALTER TABLE incident_tracks ADD COLUMN conditions text;
