-- Every incident track of a site in one row (see the PostgreSQL migration of the same name).
CREATE TABLE site_tracks (
    site_id      TEXT    PRIMARY KEY,
    interval_ms  INTEGER,
    tracks       TEXT    NOT NULL
);

INSERT INTO site_tracks (site_id, interval_ms, tracks)
SELECT site_id,
       max(CASE WHEN region <> '' THEN interval_ms END),
       json_group_array(json_object(
           'region', region,
           'down', json(CASE WHEN down THEN 'true' ELSE 'false' END),
           'run_up', json(CASE WHEN run_up THEN 'true' ELSE 'false' END),
           'run_len', run_len, 'run_start', run_start, 'run_kind', run_kind, 'run_error', run_error,
           'last_at', last_at, 'interval_ms', interval_ms, 'down_after', down_after,
           'up_after', up_after, 'quorum', quorum, 'incident_id', incident_id, 'seen_at', seen_at,
           'pending', json(coalesce(pending, '[]')), 'conditions', json(conditions)))
FROM (SELECT * FROM incident_tracks ORDER BY site_id, region)
GROUP BY site_id;

DROP TABLE incident_tracks;
