-- The outbox (messages queued with what caused them, sent by the postman), the log of
-- sending attempts, and recovery/invitation codes stored by SHA-256 only.

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    -- NULL for requests typed by a visitor: matched to an account when sent
    account_id INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
    recipient TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_answer TEXT,
    finished_at INTEGER
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_account ON outbox (account_id, kind, finished_at);

CREATE TABLE mail_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('sent', 'temporary', 'permanent')),
    answer TEXT NOT NULL
);
CREATE INDEX mail_attempts_by_message ON mail_attempts (outbox_id);

CREATE TABLE recovery_codes (
    code_hash TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('reset', 'invitation')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX recovery_codes_by_account ON recovery_codes (account_id);
