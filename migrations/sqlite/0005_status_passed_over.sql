-- The latest status passes over a result from the future (see the PostgreSQL migration of the
-- same name): next_at, µs since the epoch, of the oldest non-MISSED result newer than the one shown.
ALTER TABLE site_status ADD COLUMN next_at INTEGER;
