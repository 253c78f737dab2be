-- A run of a site's missed slots carried on the record after it (see the PostgreSQL migration of
-- the same name); times in µs since the epoch.
ALTER TABLE check_results ADD COLUMN missed_since INTEGER;
ALTER TABLE check_results ADD COLUMN missed_slots INTEGER;
