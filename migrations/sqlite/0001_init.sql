-- sitemon embedded storage (sitemon run): the PostgreSQL tables without partitions.
-- Times are INTEGER microseconds since the Unix epoch (UTC) so that they compare exactly.

CREATE TABLE check_results (
    check_id        TEXT    NOT NULL,
    site_id         TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    region          TEXT    NOT NULL,
    scheduled_at    INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('SUCCESS', 'FAILURE', 'MISSED')),
    failure_kind    TEXT,
    error           TEXT,
    status_code     INTEGER,
    http_version    TEXT,
    remote_addr     TEXT,
    dns_us          INTEGER,
    connect_us      INTEGER,
    tls_us          INTEGER,
    ttfb_us         INTEGER,
    total_us        INTEGER,
    body_bytes      INTEGER,
    pattern         TEXT,
    pattern_matched INTEGER,
    tls_not_after   INTEGER,
    PRIMARY KEY (check_id, scheduled_at)
);

CREATE INDEX check_results_site_time ON check_results (site_id, scheduled_at DESC);
CREATE INDEX check_results_time ON check_results (scheduled_at);

CREATE TABLE site_status (
    site_id              TEXT    NOT NULL,
    region               TEXT    NOT NULL,
    check_id             TEXT    NOT NULL,
    url                  TEXT    NOT NULL,
    scheduled_at         INTEGER NOT NULL,
    started_at           INTEGER NOT NULL,
    status               TEXT    NOT NULL,
    failure_kind         TEXT,
    error                TEXT,
    status_code          INTEGER,
    total_us             INTEGER,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    status_since         INTEGER NOT NULL,
    PRIMARY KEY (site_id, region)
);

CREATE TABLE dead_letters (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    topic           TEXT    NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset    INTEGER NOT NULL,
    record_key      BLOB,
    payload         BLOB,
    error           TEXT    NOT NULL,
    received_at     INTEGER NOT NULL,
    UNIQUE (topic, kafka_partition, kafka_offset)
);
