-- Provider API calls as the providers allow them (issue 15), shared by every
-- replica: one budget per provider account, the last identical GET per
-- request (Adobe Sign's minimum object polling interval), and OAuth refresh
-- tokens that a provider rotated.
--
-- One API account per provider per deployment: `account` is the provider's
-- path name (`adobe-sign`, `boldsign`, `fusesign`).

-- A token bucket per account: `tokens` as of `refilled_at`, refilled at the
-- configured rate up to one minute's worth, so calls spread over the hour
-- instead of bursting. A 429 (or a 503 with Retry-After) sets `paused_until`:
-- every replica then sends nothing to that account until it has passed.
CREATE TABLE provider_budgets (
    account       TEXT             PRIMARY KEY,
    tokens        DOUBLE PRECISION NOT NULL,
    refilled_at   TIMESTAMPTZ      NOT NULL DEFAULT now(),
    paused_until  TIMESTAMPTZ,
    pause_reason  TEXT,
    -- Throttling answers (429, 503 with Retry-After) received, ever.
    throttled     BIGINT           NOT NULL DEFAULT 0
);

-- The last time each GET (method, path and query) was sent, with the ETag and
-- body of its last 2xx answer: a repeat inside the account's minimum interval
-- is not sent, and a repeat after it asks `If-None-Match` (304 = unchanged,
-- answered from `body`).
CREATE TABLE provider_requests (
    account    TEXT        NOT NULL,
    request    TEXT        NOT NULL,
    called_at  TIMESTAMPTZ NOT NULL,
    etag       TEXT,
    body       BYTEA,
    PRIMARY KEY (account, request)
);

-- The newest refresh token of an OAuth grant, when the provider's refresh
-- answer gave a new one (FuseSign does). `granted_sha256` is the SHA-256 of
-- the configured refresh token the chain started from: configuring another
-- grant starts a new chain. Never logged.
CREATE TABLE provider_oauth_tokens (
    account         TEXT        PRIMARY KEY,
    granted_sha256  TEXT        NOT NULL,
    refresh_token   TEXT        NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Admits one call to `p_account`, atomically for every replica: refused while
-- the account is paused, while its bucket is empty, or (for a GET that names
-- `p_request`, with a minimum interval) while the same GET was sent less than
-- `p_min_interval` ago. Returns how long to wait (0: admitted, the token is
-- taken and the GET recorded as sent now), why (`paused`, `budget`,
-- `interval`) and the ETag and body of the request's last answer.
CREATE FUNCTION signhook_admit_call(p_account TEXT, p_per_sec DOUBLE PRECISION, p_capacity DOUBLE PRECISION,
                                    p_request TEXT, p_min_interval INTERVAL)
RETURNS TABLE (wait_secs DOUBLE PRECISION, reason TEXT, etag TEXT, body BYTEA)
LANGUAGE plpgsql AS $$
DECLARE
    budget provider_budgets%ROWTYPE;
    last   provider_requests%ROWTYPE;
    avail  DOUBLE PRECISION;
BEGIN
    INSERT INTO provider_budgets (account, tokens) VALUES (p_account, p_capacity) ON CONFLICT DO NOTHING;
    SELECT * INTO budget FROM provider_budgets b WHERE b.account = p_account FOR UPDATE;
    IF p_request IS NOT NULL THEN
        INSERT INTO provider_requests (account, request, called_at) VALUES (p_account, p_request, '-infinity')
        ON CONFLICT DO NOTHING;
        SELECT * INTO last FROM provider_requests r WHERE r.account = p_account AND r.request = p_request FOR UPDATE;
    END IF;
    IF budget.paused_until > now() THEN
        RETURN QUERY SELECT extract(epoch FROM budget.paused_until - now())::DOUBLE PRECISION, 'paused'::TEXT,
                            last.etag, last.body;
        RETURN;
    END IF;
    IF p_request IS NOT NULL AND p_min_interval > INTERVAL '0' AND last.called_at + p_min_interval > now() THEN
        RETURN QUERY SELECT extract(epoch FROM last.called_at + p_min_interval - now())::DOUBLE PRECISION,
                            'interval'::TEXT, last.etag, last.body;
        RETURN;
    END IF;
    avail := least(p_capacity, budget.tokens + greatest(0, extract(epoch FROM now() - budget.refilled_at)) * p_per_sec);
    IF avail < 1 THEN
        UPDATE provider_budgets b SET tokens = avail, refilled_at = now() WHERE b.account = p_account;
        RETURN QUERY SELECT (1 - avail) / p_per_sec, 'budget'::TEXT, last.etag, last.body;
        RETURN;
    END IF;
    UPDATE provider_budgets b SET tokens = avail - 1, refilled_at = now() WHERE b.account = p_account;
    IF p_request IS NOT NULL THEN
        UPDATE provider_requests r SET called_at = now() WHERE r.account = p_account AND r.request = p_request;
    END IF;
    RETURN QUERY SELECT 0::DOUBLE PRECISION, NULL::TEXT, last.etag, last.body;
END
$$;
