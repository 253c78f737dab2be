-- Silences added with `sitemon silence add`: site patterns, a time span and a reason. While one
-- covers a site, `sitemon notify` records that site's messages as SILENCED instead of sending them.
CREATE TABLE notify_silences (
    silence_id  uuid        PRIMARY KEY,
    sites       text[]      NOT NULL,   -- glob patterns; empty: every site
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    reason      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (starts_at < ends_at)
);
CREATE INDEX notify_silences_ends ON notify_silences (ends_at);
