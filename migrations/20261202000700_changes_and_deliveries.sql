-- Delivering agreement status changes to the application (issue 14).

-- One row per change of an agreement's normalized or provider status, written
-- in the transaction that moves the agreement (webhook batch, poll, refresh).
-- `id` orders the changes of one agreement (its row lock serializes them);
-- `seq` is the change feed's cursor, assigned after commit by one sequencer at
-- a time (in commit order), so a reader never skips a change that commits late.
CREATE TABLE changes (
    id                        BIGSERIAL   PRIMARY KEY,
    seq                       BIGINT      UNIQUE,
    provider                  TEXT        NOT NULL,
    agreement_id              TEXT        NOT NULL,
    resource_type             TEXT        NOT NULL,
    name                      TEXT,
    previous_status           TEXT,
    status                    TEXT,
    previous_provider_status  TEXT,
    provider_status           TEXT,
    -- The time the provider stamped the event (or the poll's instant).
    occurred_at               TIMESTAMPTZ NOT NULL,
    -- The provider's event id, or `poll` / `refresh`.
    event_id                  TEXT        NOT NULL,
    source                    TEXT        NOT NULL CHECK (source IN ('webhook', 'poll', 'refresh')),
    created_at                TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The sequencer's work, the feed filtered by provider, recover-since, an agreement's changes.
CREATE INDEX changes_unsequenced_idx ON changes (id) WHERE seq IS NULL;
CREATE INDEX changes_provider_seq_idx ON changes (provider, seq);
CREATE INDEX changes_created_idx ON changes (created_at, id);
CREATE INDEX changes_agreement_idx ON changes (provider, agreement_id, id);

-- The application's webhook endpoints, as configured (SIGNHOOK_DELIVERY_URL or
-- [[destinations]] in the file), written by each replica at start. A destination
-- no longer configured is kept, `configured = false`: nothing new is queued for it.
CREATE TABLE delivery_destinations (
    name           TEXT        PRIMARY KEY,
    url            TEXT        NOT NULL,
    -- Empty: every provider / every status.
    providers      TEXT[]      NOT NULL DEFAULT '{}',
    statuses       TEXT[]      NOT NULL DEFAULT '{}',
    configured     BOOLEAN     NOT NULL DEFAULT true,
    -- Since when every attempt failed (cleared by any 2xx).
    failing_since  TIMESTAMPTZ,
    -- Set after failing for SIGNHOOK_DELIVERY_DISABLE_AFTER; cleared by the enable API.
    disabled_at    TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per change and destination, queued with the change. A delivery is
-- claimed with a lease (`locked_until`), sent outside any transaction, and its
-- outcome recorded only while the lease is still the claimer's; a replica that
-- dies mid-send leaves it to be sent again after the lease, under the same
-- webhook-id. A delivery waits while an earlier one of the same agreement to
-- the same destination is pending (per-agreement order).
CREATE TABLE deliveries (
    id               BIGSERIAL   PRIMARY KEY,
    destination      TEXT        NOT NULL REFERENCES delivery_destinations (name),
    change_id        BIGINT      NOT NULL REFERENCES changes (id),
    provider         TEXT        NOT NULL,
    agreement_id     TEXT        NOT NULL,
    state            TEXT        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_until     TIMESTAMPTZ,
    last_attempt_at  TIMESTAMPTZ,
    -- HTTP status of the last attempt; NULL when there was no answer (timeout, refused).
    last_status      INTEGER,
    -- The last failure: the start of the answer's body, or the transport error.
    last_error       TEXT,
    delivered_at     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The claim (due deliveries per destination), the per-agreement order check,
-- and the admin API's listings.
CREATE INDEX deliveries_due_idx ON deliveries (destination, next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_lane_idx ON deliveries (destination, provider, agreement_id, change_id, id)
    WHERE state = 'pending';
CREATE INDEX deliveries_change_idx ON deliveries (change_id);
CREATE INDEX deliveries_destination_idx ON deliveries (destination, id);
CREATE INDEX deliveries_agreement_idx ON deliveries (provider, agreement_id, id);
CREATE INDEX deliveries_state_idx ON deliveries (state, id);
