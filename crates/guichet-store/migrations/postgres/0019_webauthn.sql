-- WebAuthn (issue 19): security keys and passkeys, and the ceremonies between their two
-- requests (any instance may answer the second).

-- One row per credential; credential_id is base64url, unique across accounts.
CREATE TABLE webauthn_credentials (
    credential_id TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- the credential as webauthn-rs keeps it (public key, counter…), JSON
    passkey TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX webauthn_credentials_by_account ON webauthn_credentials (account_id);

-- A ceremony begun and not finished: its state, by the SHA-256 of the token the browser
-- holds; taken (deleted) by the request that finishes it, so it serves once.
CREATE TABLE webauthn_ceremonies (
    token_hash TEXT PRIMARY KEY,
    purpose TEXT NOT NULL CHECK (purpose IN ('register', 'second_factor', 'login')),
    account_id BIGINT REFERENCES accounts (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_by_expiry ON webauthn_ceremonies (expires_at);
