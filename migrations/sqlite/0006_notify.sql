-- `sitemon run`'s alerts (see the PostgreSQL migrations 0008 and 0009): every message planned for
-- a provider with what became of it, and silences. Times are µs since the epoch; ids are text.
CREATE TABLE notify_deliveries (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id   TEXT    NOT NULL UNIQUE,
    route         TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    site_id       TEXT,
    kind          TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    silenced_by   TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    due_at        INTEGER NOT NULL,
    leased_until  INTEGER,
    lease_token   TEXT,
    answer        TEXT,
    created_at    INTEGER NOT NULL,
    sent_at       INTEGER
);
CREATE INDEX notify_deliveries_pending ON notify_deliveries (provider, seq) WHERE state = 'PENDING';
CREATE INDEX notify_deliveries_by_subject ON notify_deliveries (subject, seq);
