-- Every incident track of a site in one row: JSON text holding the site's own track first, then
-- its regions' by name (times as µs since the epoch, open incidents by id), and the longest
-- interval its regions say (`status` reads it to tell a stale site). A batch reads, locks and
-- writes one row per site instead of one per region and one for the site; the row is the site's
-- lock. The tracks stored so far move over unchanged.
CREATE TABLE site_tracks (
    site_id      text   PRIMARY KEY,
    interval_ms  bigint,
    tracks       text   NOT NULL
);

INSERT INTO site_tracks (site_id, interval_ms, tracks)
SELECT site_id,
       max(interval_ms) FILTER (WHERE region <> ''),
       json_agg(json_build_object(
           'region', region, 'down', down, 'run_up', run_up, 'run_len', run_len,
           'run_start', (extract(epoch FROM run_start) * 1000000)::bigint,
           'run_kind', run_kind, 'run_error', run_error,
           'last_at', (extract(epoch FROM last_at) * 1000000)::bigint,
           'interval_ms', interval_ms, 'down_after', down_after, 'up_after', up_after,
           'quorum', quorum, 'incident_id', incident_id,
           'seen_at', (extract(epoch FROM seen_at) * 1000000)::bigint,
           'pending', coalesce(pending, '[]')::json, 'conditions', conditions::json)
           ORDER BY region)::text
FROM incident_tracks
GROUP BY site_id;

DROP TABLE incident_tracks;
