-- A run of a site's missed slots carried on the record after it (schema v5): the first missed
-- slot's time and how many were missed up to this row's slot. Rows before this keep NULL (no run).
ALTER TABLE check_results ADD COLUMN missed_since timestamptz, ADD COLUMN missed_slots integer;
