-- Adobe Sign agreements made from a web form (widget) or a bulk send
-- (megaSign) name it in `eventResourceParentType` / `eventResourceParentId`.
-- The event keeps the link as parsed on receipt (like its subject, so the
-- worker needs no second parse), the agreement the first link it was given.
-- Nullable columns without a default: no table rewrite.
ALTER TABLE events
    ADD COLUMN parent_type TEXT,
    ADD COLUMN parent_id   TEXT;
ALTER TABLE agreements
    ADD COLUMN parent_type TEXT,
    ADD COLUMN parent_id   TEXT;
