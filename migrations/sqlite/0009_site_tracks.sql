-- Every incident track of a site in one row, and each region's interval on its `site_status`
-- row (see the PostgreSQL migration of the same name).
ALTER TABLE site_status ADD COLUMN interval_ms INTEGER;
UPDATE site_status SET interval_ms = (SELECT t.interval_ms FROM incident_tracks t
    WHERE t.site_id = site_status.site_id AND t.region = site_status.region);

CREATE TABLE site_tracks (
    site_id  TEXT  PRIMARY KEY,
    tracks   TEXT  NOT NULL
);

INSERT INTO site_tracks (site_id, tracks)
SELECT site_id,
       json_group_array(json_object(
           'region', region,
           'down', json(CASE WHEN down THEN 'true' ELSE 'false' END),
           'run_up', json(CASE WHEN run_up THEN 'true' ELSE 'false' END),
           'run_len', run_len, 'run_start', run_start, 'run_kind', run_kind, 'run_error', run_error,
           'last_at', last_at, 'interval_ms', interval_ms, 'down_after', down_after,
           'up_after', up_after, 'quorum', quorum, 'incident_id', incident_id, 'seen_at', seen_at,
           'pending', CASE WHEN json_valid(pending) THEN json(pending) END,
           'conditions', CASE WHEN json_valid(conditions) THEN json(conditions) END))
FROM (SELECT * FROM incident_tracks ORDER BY site_id, region)
GROUP BY site_id;

DROP TABLE incident_tracks;
