-- Incidents (see the PostgreSQL migration of the same name). Times are INTEGER microseconds
-- since the Unix epoch (UTC); regions is a JSON array of text.

CREATE TABLE incident_tracks (
    site_id      TEXT    NOT NULL,
    region       TEXT    NOT NULL,
    down         INTEGER NOT NULL DEFAULT 0,
    run_up       INTEGER NOT NULL DEFAULT 1,
    run_len      INTEGER NOT NULL DEFAULT 0,
    run_start    INTEGER,
    run_kind     TEXT,
    run_error    TEXT,
    last_at      INTEGER,
    interval_ms  INTEGER,
    down_after   INTEGER,
    up_after     INTEGER,
    quorum       INTEGER,
    incident_id  TEXT,
    PRIMARY KEY (site_id, region)
);

CREATE TABLE incidents (
    incident_id   TEXT    PRIMARY KEY,
    site_id       TEXT    NOT NULL,
    region        TEXT,
    url           TEXT    NOT NULL,
    started_at    INTEGER NOT NULL,
    confirmed_at  INTEGER NOT NULL,
    ended_at      INTEGER,
    regions       TEXT    NOT NULL,
    failure_kind  TEXT,
    error         TEXT,
    failed_checks INTEGER NOT NULL
);

CREATE INDEX incidents_site_time ON incidents (site_id, started_at DESC);

CREATE TABLE incident_events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      TEXT    NOT NULL UNIQUE,
    kind          TEXT    NOT NULL CHECK (kind IN ('OPENED', 'CLOSED')),
    at            INTEGER NOT NULL,
    incident_id   TEXT    NOT NULL,
    site_id       TEXT    NOT NULL,
    region        TEXT,
    url           TEXT    NOT NULL,
    started_at    INTEGER NOT NULL,
    confirmed_at  INTEGER NOT NULL,
    ended_at      INTEGER,
    regions       TEXT    NOT NULL,
    failure_kind  TEXT,
    error         TEXT,
    failed_checks INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    published_at  INTEGER
);
