-- Silences added with `sitemon silence add` (as PostgreSQL's notify_silences): site patterns
-- (a JSON array; empty: every site), a time span (µs since the epoch) and a reason. While one
-- covers a site, `sitemon run` records that site's messages as SILENCED instead of sending them.
CREATE TABLE notify_silences (
    silence_id  TEXT    PRIMARY KEY,
    sites       TEXT    NOT NULL,
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    CHECK (starts_at < ends_at)
);
CREATE INDEX notify_silences_ends ON notify_silences (ends_at);
