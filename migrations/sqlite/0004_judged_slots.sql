-- Incidents judged slot by slot (see the PostgreSQL migration of the same name).
ALTER TABLE incident_tracks ADD COLUMN seen_at INTEGER;
ALTER TABLE incident_tracks ADD COLUMN pending TEXT;
ALTER TABLE incidents ADD COLUMN end_reason TEXT;
ALTER TABLE incident_events ADD COLUMN end_reason TEXT;
