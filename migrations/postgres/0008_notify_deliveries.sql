-- `sitemon notify`: every message planned for a provider, with what became of it. Written
-- before the events' offsets move, so a restart or a rebalance plans nothing twice (the id is a
-- UUIDv5 of the message, the route and the provider) and loses nothing.
CREATE TABLE notify_deliveries (
    seq           bigserial   PRIMARY KEY,
    delivery_id   uuid        NOT NULL UNIQUE,
    route         text        NOT NULL,
    provider      text        NOT NULL,
    subject       uuid        NOT NULL,               -- the incident or storm: sent in order
    site_id       text,
    kind          text        NOT NULL,               -- incident.opened, storm.started, …
    body          jsonb       NOT NULL,               -- the request body, without secrets
    state         text        NOT NULL,               -- PENDING, SENT, FAILED, SILENCED
    silenced_by   text,                               -- the maintenance window's reason
    attempts      integer     NOT NULL DEFAULT 0,
    due_at        timestamptz NOT NULL DEFAULT now(), -- next attempt not before
    leased_until  timestamptz,                        -- a sender is on it until then
    lease_token   uuid,                               -- which claim holds it
    answer        text,                               -- the provider's last answer
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz
);
CREATE INDEX notify_deliveries_pending ON notify_deliveries (provider, seq) WHERE state = 'PENDING';
CREATE INDEX notify_deliveries_subject ON notify_deliveries (provider, subject, seq) WHERE state = 'PENDING';
CREATE INDEX notify_deliveries_due ON notify_deliveries (provider, due_at) WHERE state = 'PENDING';
CREATE INDEX notify_deliveries_site ON notify_deliveries (site_id, created_at);
CREATE INDEX notify_deliveries_by_subject ON notify_deliveries (subject, seq);
