-- The server's key (shared by every instance), CSRF tokens derived from it instead of
-- stored, and device cookies: their failed attempts, and when an account's earlier
-- device cookies stopped counting.

CREATE TABLE server_keys (
    name TEXT PRIMARY KEY,
    -- hex of 32 random bytes, made on the first start
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

ALTER TABLE sessions DROP COLUMN csrf_token;

-- device cookies issued before this instant no longer exempt from the lock
ALTER TABLE accounts ADD COLUMN devices_trusted_after INTEGER NOT NULL DEFAULT 0;

CREATE TABLE device_attempts (
    -- the device cookie's nonce
    device TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    attempts INTEGER NOT NULL,
    window_start INTEGER NOT NULL
);
CREATE INDEX device_attempts_by_window ON device_attempts (window_start);
