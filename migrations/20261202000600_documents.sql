-- Copies of completed agreements (issue 16): the signed PDF and, where the
-- provider has one, the audit trail.
--
-- A fetch job is recorded in the transaction that makes an agreement
-- `completed` (a webhook batch, a poll or a refresh), so a completion is
-- never without its job. Workers claim due jobs with FOR UPDATE SKIP LOCKED
-- and hold them by a lease (`locked_until`), so a replica killed mid-fetch
-- leaves its job to the next claim once the lease has passed.
CREATE TABLE document_jobs (
    provider        TEXT        NOT NULL,
    agreement_id    TEXT        NOT NULL,
    -- pending: to fetch (now or at next_attempt_at); done; dead: gave up
    -- after the last attempt (last_error says why; refetch queues it again).
    state           TEXT        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'dead')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_until    TIMESTAMPTZ,
    last_error      TEXT,
    -- Documents stored before this instant are fetched again (a refetch);
    -- NULL: only the missing ones are fetched.
    refetch_before  TIMESTAMPTZ,
    -- When the agreement was found completed (the job was recorded).
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at         TIMESTAMPTZ,
    PRIMARY KEY (provider, agreement_id),
    FOREIGN KEY (provider, agreement_id) REFERENCES agreements (provider, agreement_id)
);
CREATE INDEX document_jobs_due ON document_jobs (next_attempt_at) WHERE state = 'pending';

-- The documents kept for an agreement, one row per kind (`signed`,
-- `audit_trail`, and `signed_2`… for the further documents of a FuseSign
-- bundle). The bytes are in the document store, addressed by `sha256`.
CREATE TABLE documents (
    provider      TEXT        NOT NULL,
    agreement_id  TEXT        NOT NULL,
    kind          TEXT        NOT NULL,
    sha256        TEXT        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size          BIGINT      NOT NULL CHECK (size >= 0),
    content_type  TEXT        NOT NULL,
    file_name     TEXT        NOT NULL,
    -- webhook: taken from the notification's body (Adobe's signedDocumentInfo);
    -- api: downloaded from the provider's API.
    source        TEXT        NOT NULL CHECK (source IN ('webhook', 'api')),
    fetched_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, agreement_id, kind),
    FOREIGN KEY (provider, agreement_id) REFERENCES agreements (provider, agreement_id)
);

-- The PostgreSQL document store (SIGNHOOK_DOCUMENT_STORE=postgres): each
-- content once, by SHA-256, its bytes in chunks of at most 1 MiB so that
-- neither writing nor reading holds a whole document in memory.
CREATE SEQUENCE document_blob_ids;
CREATE TABLE document_chunks (
    blob_id  BIGINT  NOT NULL,
    seq      INTEGER NOT NULL,
    data     BYTEA   NOT NULL,
    PRIMARY KEY (blob_id, seq)
);
CREATE TABLE document_blobs (
    sha256     TEXT        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    blob_id    BIGINT      NOT NULL UNIQUE,
    size       BIGINT      NOT NULL,
    chunks     INTEGER     NOT NULL,
    stored_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
