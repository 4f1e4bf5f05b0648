-- guichet as an OpenID Connect provider: registered clients, authorization codes and
-- the access tokens issued from them. Its RS256 signing key is kept in server_keys
-- (name 'oidc-rs256', PKCS#1 PEM), made on first use.

CREATE TABLE oidc_clients (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- SHA-256 (hex) of the secret; NULL for a public client
    secret_hash TEXT,
    -- one URI per line, compared exactly
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL DEFAULT '',
    -- group names separated by commas; empty: every member
    group_names TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);

CREATE TABLE oidc_codes (
    -- SHA-256 (hex) of the code
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oidc_clients (client_id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    auth_time INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    -- set when it is presented again: grants made from it are born revoked
    reused_at INTEGER
);

CREATE TABLE oidc_grants (
    -- the access token's jti
    jti TEXT PRIMARY KEY,
    code_hash TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES oidc_clients (client_id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX oidc_grants_by_code ON oidc_grants (code_hash);
