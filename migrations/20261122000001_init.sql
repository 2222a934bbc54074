-- Every notification received, kept byte for byte, doubling as the work queue.
CREATE TABLE events (
    id               BIGSERIAL PRIMARY KEY,
    provider         TEXT        NOT NULL,
    event_id         TEXT        NOT NULL,
    event_type       TEXT        NOT NULL,
    resource_type    TEXT,
    resource_id      TEXT,
    tenant           TEXT,
    occurred_at      TIMESTAMPTZ,
    received_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    content_type     TEXT,
    body             BYTEA       NOT NULL,
    state            TEXT        NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'processing', 'processed', 'failed', 'dead')),
    attempts         INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_until     TIMESTAMPTZ,
    last_error       TEXT,
    processed_at     TIMESTAMPTZ,
    -- Dedupe is this constraint, never a read-then-write check.
    CONSTRAINT events_provider_event_id_key UNIQUE (provider, event_id)
);

-- The worker's claim query: runnable events, and processing ones whose lease ran out.
CREATE INDEX events_runnable_idx ON events (next_attempt_at) WHERE state IN ('pending', 'failed');
CREATE INDEX events_leased_idx ON events (locked_until) WHERE state = 'processing';
CREATE INDEX events_resource_idx ON events (provider, resource_id, id);
CREATE INDEX events_state_idx ON events (state, id);

-- One row per agreement-like resource (agreement, widget, megaSign, document, bundle).
CREATE TABLE agreements (
    provider         TEXT        NOT NULL,
    agreement_id     TEXT        NOT NULL,
    resource_type    TEXT        NOT NULL,
    status           TEXT        CHECK (status IN ('draft', 'in_progress', 'completed', 'declined',
                                                   'cancelled', 'expired', 'failed')),
    provider_status  TEXT,
    name             TEXT,
    -- Time of the event that set `status`: what later events are compared with.
    status_at        TIMESTAMPTZ,
    last_event_at    TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, agreement_id)
);

CREATE INDEX agreements_status_idx ON agreements (status, last_event_at);

-- One row per event applied to an agreement; UNIQUE (event_ref) makes applying idempotent.
CREATE TABLE agreement_history (
    id               BIGSERIAL   PRIMARY KEY,
    provider         TEXT        NOT NULL,
    agreement_id     TEXT        NOT NULL,
    event_ref        BIGINT      NOT NULL REFERENCES events (id),
    event_id         TEXT        NOT NULL,
    event_type       TEXT        NOT NULL,
    status           TEXT,
    provider_status  TEXT,
    occurred_at      TIMESTAMPTZ NOT NULL,
    applied_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    source           TEXT        NOT NULL DEFAULT 'webhook',
    CONSTRAINT agreement_history_event_ref_key UNIQUE (event_ref),
    FOREIGN KEY (provider, agreement_id) REFERENCES agreements (provider, agreement_id)
);

CREATE INDEX agreement_history_agreement_idx ON agreement_history (provider, agreement_id, occurred_at);
