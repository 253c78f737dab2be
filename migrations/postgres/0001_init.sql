-- sitemon storage: history (partitioned by day), latest status per site, quarantined records.

CREATE TABLE check_results (
    check_id        uuid        NOT NULL,
    site_id         text        NOT NULL,
    url             text        NOT NULL,
    region          text        NOT NULL,
    scheduled_at    timestamptz NOT NULL,
    started_at      timestamptz NOT NULL,
    status          text        NOT NULL CHECK (status IN ('SUCCESS', 'FAILURE', 'MISSED')),
    failure_kind    text,
    error           text,
    status_code     integer,
    http_version    text,
    remote_addr     text,
    dns_us          bigint,
    connect_us      bigint,
    tls_us          bigint,
    ttfb_us         bigint,
    total_us        bigint,
    body_bytes      bigint,
    pattern         text,
    pattern_matched boolean,
    tls_not_after   timestamptz,
    stored_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (check_id, scheduled_at)
) PARTITION BY RANGE (scheduled_at);

CREATE INDEX check_results_site_time ON check_results (site_id, scheduled_at DESC);

CREATE TABLE site_status (
    site_id              text        NOT NULL,
    region               text        NOT NULL,
    check_id             uuid        NOT NULL,
    url                  text        NOT NULL,
    scheduled_at         timestamptz NOT NULL,
    started_at           timestamptz NOT NULL,
    status               text        NOT NULL,
    failure_kind         text,
    error                text,
    status_code          integer,
    total_us             bigint,
    consecutive_failures integer     NOT NULL DEFAULT 0,
    status_since         timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, region)
);

CREATE TABLE dead_letters (
    id              bigserial   PRIMARY KEY,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    record_key      bytea,
    payload         bytea,
    error           text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, kafka_partition, kafka_offset)
);
