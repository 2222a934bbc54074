-- Events anyone could have sent no longer decide an agreement on their own
-- (issue 11).
--
-- stated_occurred_at: the time an event stated when it lay too far after its
-- receipt; the entry's occurred_at is then its receipt, the time it is ordered
-- by (NULL: occurred_at is the stated time, or the event stated none).
--
-- confirmation: a final status from a weakly authenticated webhook, held until
-- the provider's API is read: 'pending', then 'confirmed' (applied) or
-- 'unconfirmed' (the provider said otherwise; its answer was applied).
-- NULL: no confirmation was needed. confirmation_at: when it was held, then
-- when it was resolved.
ALTER TABLE agreement_history
    ADD COLUMN stated_occurred_at TIMESTAMPTZ,
    ADD COLUMN confirmation       TEXT CHECK (confirmation IN ('pending', 'confirmed', 'unconfirmed')),
    ADD COLUMN confirmation_at    TIMESTAMPTZ;

-- Some history entry of the agreement is 'pending': the reconciler polls it
-- first, drafts too.
ALTER TABLE agreements ADD COLUMN confirm_pending BOOLEAN NOT NULL DEFAULT false;
