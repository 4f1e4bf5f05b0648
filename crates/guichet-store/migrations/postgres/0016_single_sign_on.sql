-- Single sign-on that applications can live with (issue 18): which applications each
-- guichet session signed in to, the logouts to tell them (back channel), refresh tokens,
-- and what a client registers for them.

ALTER TABLE oidc_clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE oidc_clients ADD COLUMN frontchannel_logout_uri TEXT;
-- 1: may hold offline_access refresh tokens, which outlive the session
ALTER TABLE oidc_clients ADD COLUMN offline BIGINT NOT NULL DEFAULT 0;

-- The session a code was issued in (NULL for codes issued before this migration).
ALTER TABLE oidc_codes ADD COLUMN session_hash TEXT;
-- An access token's session (NULL: an offline one). A refreshed one keeps the code_hash
-- of the exchange that began its family, so that the code's reuse revokes it too.
ALTER TABLE oidc_grants ADD COLUMN session_hash TEXT;

-- The applications a session signed in to, with the session's sid as they know it.
CREATE TABLE oidc_session_clients (
    session_hash TEXT NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES oidc_clients (client_id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL,
    sid TEXT NOT NULL,
    PRIMARY KEY (session_hash, client_id)
);

-- Refresh tokens, by SHA-256. Bound to their session (they end with it) unless offline
-- (session_hash NULL). A family is every token rotated from one code exchange, named by
-- that code's hash.
CREATE TABLE oidc_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES oidc_clients (client_id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    session_hash TEXT REFERENCES sessions (token_hash) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    sid TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX oidc_refresh_by_family ON oidc_refresh_tokens (family);
CREATE INDEX oidc_refresh_by_account ON oidc_refresh_tokens (account_id);
CREATE INDEX oidc_refresh_by_session ON oidc_refresh_tokens (session_hash);

-- Back-channel logouts to deliver, sent by the messenger like the outbox's mail. Queued
-- in the transaction that ends a session, however it ends (but expiry), one per
-- application the session signed in to that has a back channel.
CREATE TABLE oidc_logouts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oidc_clients (client_id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL,
    sid TEXT NOT NULL,
    ended_at BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_answer TEXT,
    finished_at BIGINT
);
CREATE INDEX oidc_logouts_due ON oidc_logouts (state, next_attempt_at);
