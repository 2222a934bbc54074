-- The work queue moves out of the events table into a narrow table of its own.
--
-- Why: the worker's claim needs an index of the events not yet applied, and
-- as a partial index of `events` it was written at every insert and made
-- every state change rewrite all of the table's indexes. Now the claim walks
-- this small table, and applying an event deletes its queue row. (Tried and
-- measured: a fillfactor of 60 on `events` made two thirds of the state
-- updates HOT, but PostgreSQL's CPU per event moved only from 54 to 52 µs,
-- within the run-to-run noise, for twice the space; left at the default.)
--
-- A queue row exists for every event not yet applied: pending, failed (with
-- its retry time) and dead (kept so dead events are listed without scanning
-- all events). `events.state` stays the state of record for the admin API.
--
-- Upgrading: stop replicas of earlier versions before starting this one;
-- they would store events without queue rows.
CREATE TABLE event_queue (
    id               BIGINT      PRIMARY KEY,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Mirrors of events.state, so the queue is counted by state on its own.
    failed           BOOLEAN     NOT NULL DEFAULT false,
    dead             BOOLEAN     NOT NULL DEFAULT false
);
-- The worker's claim walks this in id order, past nothing but retries that
-- are not due yet.
CREATE INDEX event_queue_runnable_idx ON event_queue (id) WHERE NOT dead;

-- Leases are gone (claims are row locks held by the applying transaction), so
-- rows left 'processing' by an older version are simply pending, and nothing
-- reads or writes locked_until any more.
UPDATE events SET state = 'pending' WHERE state = 'processing';
ALTER TABLE events DROP COLUMN locked_until;
INSERT INTO event_queue (id, next_attempt_at, failed, dead)
SELECT id, next_attempt_at, state = 'failed', state = 'dead' FROM events WHERE state IN ('pending', 'failed', 'dead');

DROP INDEX events_queue_idx;
DROP INDEX events_dead_idx;
-- Every stored event paid for this index; an agreement's events are found
-- through its history (applied) and the queue (not yet applied) instead.
DROP INDEX events_resource_idx;

-- Bodies up to ~2 KB stay inline again: storing every body out of line cost
-- a TOAST insert and index probe per event; larger ones still go out of line,
-- uncompressed (EXTERNAL).
ALTER TABLE events RESET (toast_tuple_target);

-- History rows are only written by the worker and the reconciler, in the
-- transaction that has just created or locked their agreement and claimed
-- their event; the foreign keys re-checked that with a query and a row lock
-- per history row.
ALTER TABLE agreement_history DROP CONSTRAINT agreement_history_event_ref_fkey;
ALTER TABLE agreement_history DROP CONSTRAINT agreement_history_provider_agreement_id_fkey;
