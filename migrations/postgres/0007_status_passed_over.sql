-- The latest status passes over a result from the future that arrived before present ones:
-- next_at is the date of the oldest non-MISSED result newer than the one shown (NULL when it is the newest),
-- so that a later result is not simply continued across it but recomputed from the history.
ALTER TABLE site_status ADD COLUMN next_at timestamptz;
