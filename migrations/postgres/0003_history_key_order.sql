-- History arrives in time order while check_id is a hash: a primary key led by scheduled_at
-- appends at the right edge of the index instead of touching a random page per row.
-- Same columns, so the same uniqueness; lookups go by time (and by site with the other index).
ALTER TABLE check_results DROP CONSTRAINT check_results_pkey;
ALTER TABLE check_results ADD PRIMARY KEY (scheduled_at, check_id);
