-- Every incident track of a site in one row: JSON text holding the site's own track first, then
-- its regions' by name (times as µs since the epoch, open incidents by id). A batch reads, locks
-- and writes one row per site instead of one per region and one for the site; the row is the
-- site's lock. The tracks stored so far move over unchanged; a waiting-results or conditions
-- value that is not JSON (only a hand edit makes one) is dropped, as reading it always did.
-- The interval a region's results say moves to its `site_status` row (`status` reads it to tell a
-- stale row). Consumers of an older version must be stopped first: this waits for their
-- transactions and keeps them out until it commits, after which their table is gone.
LOCK TABLE incident_tracks IN SHARE ROW EXCLUSIVE MODE;

ALTER TABLE site_status ADD COLUMN interval_ms bigint;
UPDATE site_status s SET interval_ms = t.interval_ms
FROM incident_tracks t WHERE t.site_id = s.site_id AND t.region = s.region AND t.interval_ms IS NOT NULL;

CREATE TABLE site_tracks (
    site_id  text  PRIMARY KEY,
    tracks   text  NOT NULL
);

CREATE OR REPLACE FUNCTION pg_temp.sitemon_json(t text) RETURNS json LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::json;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

INSERT INTO site_tracks (site_id, tracks)
SELECT site_id,
       json_agg(json_build_object(
           'region', region, 'down', down, 'run_up', run_up, 'run_len', run_len,
           'run_start', (extract(epoch FROM run_start) * 1000000)::bigint,
           'run_kind', run_kind, 'run_error', run_error,
           'last_at', (extract(epoch FROM last_at) * 1000000)::bigint,
           'interval_ms', interval_ms, 'down_after', down_after, 'up_after', up_after,
           'quorum', quorum, 'incident_id', incident_id,
           'seen_at', (extract(epoch FROM seen_at) * 1000000)::bigint,
           'pending', pg_temp.sitemon_json(pending), 'conditions', pg_temp.sitemon_json(conditions))
           ORDER BY region)::text
FROM incident_tracks
GROUP BY site_id;

DROP TABLE incident_tracks;
DROP FUNCTION pg_temp.sitemon_json(text);
