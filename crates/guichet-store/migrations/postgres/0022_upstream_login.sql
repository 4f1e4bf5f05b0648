-- Upstream login (issue 22): what waits between guichet's redirect to the provider and
-- its answer, and an upstream identity waiting to be linked by the member's password.
-- Each row is found by the SHA-256 of a token only the browser holds (the OAuth state,
-- or the pending link's cookie) and lives a few minutes.
CREATE TABLE upstream_requests (
    token_hash TEXT PRIMARY KEY,
    upstream TEXT NOT NULL,
    -- login: a login begun; link: a signed-in member linking (account_id set);
    -- pending: an identity no account is linked to yet, waiting for a password
    purpose TEXT NOT NULL CHECK (purpose IN ('login', 'link', 'pending')),
    account_id BIGINT REFERENCES accounts (id) ON DELETE CASCADE,
    -- JSON: the nonce, PKCE verifier and destination; or the identity waiting
    payload TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX upstream_requests_by_expiry ON upstream_requests (expires_at);

-- A session opened upstream names the provider and the person there (its back-channel
-- logout, or the link's removal, ends the sessions it opened) and keeps its ID token, the
-- hint its own logout asks for.
ALTER TABLE sessions ADD COLUMN upstream TEXT;
ALTER TABLE sessions ADD COLUMN upstream_subject TEXT;
ALTER TABLE sessions ADD COLUMN upstream_id_token TEXT;

-- A provider whose link a member removed from their account: the account's RPPS number no
-- longer links it again by itself (the member's password, or Mon espace, does, and clears
-- this).
CREATE TABLE upstream_refusals (
    upstream TEXT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (upstream, account_id)
);
