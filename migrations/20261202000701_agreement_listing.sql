-- GET /api/agreements (issue 14): newest first by updated_at, keyset-paginated
-- on (updated_at, provider, agreement_id), filtered by provider or status, and
-- searched by id or name prefix, each through an index.
CREATE INDEX agreements_updated_idx ON agreements (updated_at, provider, agreement_id);
CREATE INDEX agreements_provider_updated_idx ON agreements (provider, updated_at, agreement_id);
CREATE INDEX agreements_status_updated_idx ON agreements (status, updated_at, provider, agreement_id);
CREATE INDEX agreements_id_prefix_idx ON agreements (agreement_id text_pattern_ops);
CREATE INDEX agreements_name_prefix_idx ON agreements (lower(name) text_pattern_ops);
