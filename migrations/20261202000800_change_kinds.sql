-- Changes of more than one kind (issue 16, "Delivery"): besides an
-- agreement's status moving (`agreement.status_changed`, every row so far),
-- `document.available` says the completed agreement's signed copy (and audit
-- trail, where the provider has one) is stored. It is recorded in the
-- transaction that marks the document fetch job done, and delivered and fed
-- like the status changes, after them in the agreement's order.
ALTER TABLE changes
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'agreement.status_changed'
        CHECK (kind IN ('agreement.status_changed', 'document.available')),
    -- document.available: the documents stored when it was recorded
    -- ([{kind, sha256, size, content_type, source}]), kept with the change so
    -- every delivery attempt sends the same body whatever a later refetch stores.
    ADD COLUMN documents JSONB,
    -- A document change's source (and event_id) is `document`.
    DROP CONSTRAINT changes_source_check,
    ADD CONSTRAINT changes_source_check CHECK (source IN ('webhook', 'poll', 'refresh', 'document'));

-- No new index: an agreement's last document.available (what the next one is
-- compared with) is found through changes_agreement_idx, among its few changes.
