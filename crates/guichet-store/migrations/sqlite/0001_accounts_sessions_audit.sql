-- Accounts, sessions, the audit trail and the per-address failure counter.
-- Times are Unix milliseconds (BIGINT), written by the application's clock.

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identifier TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL CHECK (role IN ('member', 'assistance', 'admin')),
    password_hash TEXT,
    must_change_password INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    -- failed logins with an audit id at or below this one no longer count
    failures_cleared_after INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_login_at INTEGER
);

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    account_id INTEGER REFERENCES accounts (id) ON DELETE SET NULL,
    kind TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id INTEGER,
    address TEXT,
    user_agent TEXT,
    detail TEXT
);
CREATE INDEX audit_events_by_account ON audit_events (account_id, kind, id);
CREATE INDEX audit_events_by_time ON audit_events (at);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    address TEXT,
    user_agent TEXT
);
CREATE INDEX sessions_by_account ON sessions (account_id);
CREATE INDEX sessions_by_expiry ON sessions (idle_expires_at);

CREATE TABLE address_failures (
    address_key TEXT NOT NULL,
    minute INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    PRIMARY KEY (address_key, minute)
);
