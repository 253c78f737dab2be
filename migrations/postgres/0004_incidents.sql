-- Incidents: outages derived by the consumer, in the batch's transaction, from the results that
-- were new to the history (thresholds per site, a quorum of regions for the site as a whole).

-- What the derivation remembers between batches: one row per site and region, and one per
-- site with region '' for the site as a whole.
CREATE TABLE incident_tracks (
    site_id      text        NOT NULL,
    region       text        NOT NULL,
    down         boolean     NOT NULL DEFAULT false,
    run_up       boolean     NOT NULL DEFAULT true,   -- the current run is of successes
    run_len      integer     NOT NULL DEFAULT 0,
    run_start    timestamptz,
    run_kind     text,                                -- first failure of the current failure run
    run_error    text,
    last_at      timestamptz,                         -- newest result folded (scheduled_at)
    interval_ms  bigint,
    down_after   integer,
    up_after     integer,
    quorum       integer,
    incident_id  uuid,                                -- the open incident, if any
    PRIMARY KEY (site_id, region)
);

-- One row per outage per site (region NULL: the site as a whole, agreed by a quorum of
-- regions) and per region. The id is a UUIDv5 of site, region and start, so a replay, a second
-- consumer or a restart finds the same row.
CREATE TABLE incidents (
    incident_id   uuid        PRIMARY KEY,
    site_id       text        NOT NULL,
    region        text,
    url           text        NOT NULL,
    started_at    timestamptz NOT NULL,   -- scheduled_at of the first failed check
    confirmed_at  timestamptz NOT NULL,   -- scheduled_at of the check that opened it
    ended_at      timestamptz,            -- scheduled_at of the first successful check after it
    regions       text[]      NOT NULL,   -- the regions that agreed
    failure_kind  text,
    error         text,
    failed_checks bigint      NOT NULL
);

CREATE INDEX incidents_site_time ON incidents (site_id, started_at DESC);
CREATE INDEX incidents_open ON incidents (site_id) WHERE ended_at IS NULL;

-- The outbox: every opening and closing, written with the incident, published to Kafka from
-- here and marked. event_id is a UUIDv5 of the incident id and the kind.
CREATE TABLE incident_events (
    seq           bigserial   UNIQUE,
    event_id      uuid        PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('OPENED', 'CLOSED')),
    at            timestamptz NOT NULL,
    incident_id   uuid        NOT NULL,
    site_id       text        NOT NULL,
    region        text,
    url           text        NOT NULL,
    started_at    timestamptz NOT NULL,
    confirmed_at  timestamptz NOT NULL,
    ended_at      timestamptz,
    regions       text[]      NOT NULL,
    failure_kind  text,
    error         text,
    failed_checks bigint      NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);

CREATE INDEX incident_events_unpublished ON incident_events (seq) WHERE published_at IS NULL;
