-- Incidents judged slot by slot: a region's newest result received (judged or waiting), the
-- site's results whose slot is not judged yet (JSON, on the site's own track), and why an
-- incident closed (RECOVERED, or RETIRED: its region fell silent past consumer.region_expiry).
ALTER TABLE incident_tracks ADD COLUMN seen_at timestamptz;
ALTER TABLE incident_tracks ADD COLUMN pending text;
ALTER TABLE incidents ADD COLUMN end_reason text;
ALTER TABLE incident_events ADD COLUMN end_reason text;
