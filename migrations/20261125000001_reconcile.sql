-- Reconciliation: polling agreements whose webhooks may have been lost, per-agreement
-- webhooks, and per-provider webhook activity for silence detection.

-- Scheduling of the reconciler, claimed in the database so replicas never poll the
-- same agreement at once:
--   next_poll_at       set: poll at that time (backoff, fast polling, silence);
--                      NULL: poll once the last event or poll is older than
--                      SIGNHOOK_RECONCILE_STALE_AFTER
--   poll_locked_until  a replica is polling it until then (a crashed replica's
--                      claim lapses)
ALTER TABLE agreements
    ADD COLUMN next_poll_at       TIMESTAMPTZ,
    ADD COLUMN poll_locked_until  TIMESTAMPTZ,
    ADD COLUMN last_polled_at     TIMESTAMPTZ,
    ADD COLUMN poll_failures      INTEGER     NOT NULL DEFAULT 0,
    ADD COLUMN last_poll_error    TEXT,
    ADD COLUMN not_found_at       TIMESTAMPTZ,
    -- The provider's id of the per-agreement webhook registered for it.
    ADD COLUMN webhook_id         TEXT,
    -- Registering its webhook failed: polled every SIGNHOOK_RECONCILE_FAST_INTERVAL
    -- and the registration retried until it works.
    ADD COLUMN watch_pending      BOOLEAN     NOT NULL DEFAULT false;

-- The reconciler's claim: open agreements by due time...
CREATE INDEX agreements_open_due_idx
    ON agreements (provider, (coalesce(greatest(last_event_at, last_polled_at), created_at)))
    WHERE status IS NULL OR status NOT IN ('completed', 'declined', 'cancelled', 'expired');
CREATE INDEX agreements_next_poll_idx ON agreements (next_poll_at) WHERE next_poll_at IS NOT NULL;
-- ...and finished agreements whose webhook is still to be removed.
CREATE INDEX agreements_watched_idx ON agreements (provider) WHERE webhook_id IS NOT NULL OR watch_pending;

-- Last accepted webhook per provider, written by each replica at most once a second
-- (never per request), so every replica sees the same silence.
CREATE TABLE provider_activity (
    provider         TEXT        PRIMARY KEY,
    last_webhook_at  TIMESTAMPTZ,
    -- When signhook started tracking it: silence of a provider that never sent
    -- a webhook is counted from here.
    tracked_since    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set once, by the replica that first saw the silence; cleared by the next webhook.
    silent_since     TIMESTAMPTZ
);
