-- What the receiving replica read from the body, kept with the event so the
-- worker applies it without loading and parsing the body a second time
-- (callgrind: the worker's parse was 18% of the server's instructions, and
-- each body was sent back by PostgreSQL once more).
--
-- `parsed` is false for events stored before this version and for replayed
-- events: the worker then parses the body, with the parser it runs.
-- (resource_type, resource_id) already hold the subject's kind and id.
ALTER TABLE events
    ADD COLUMN parsed          BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN subject_status  TEXT,
    ADD COLUMN provider_status TEXT,
    ADD COLUMN subject_name    TEXT;
