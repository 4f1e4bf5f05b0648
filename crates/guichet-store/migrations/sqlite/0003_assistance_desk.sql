-- The assistance desk: disabled accounts, temporary passwords, assistance requests with
-- their notes, and proposed phone-call slots.

ALTER TABLE accounts ADD COLUMN disabled_at INTEGER;
-- set for a staff-issued temporary password: it stops working at this instant
ALTER TABLE accounts ADD COLUMN password_expires_at INTEGER;

CREATE TABLE assistance_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reference TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    identifier TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL,
    address TEXT,
    state TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'in_progress', 'waiting', 'closed')),
    account_id INTEGER REFERENCES accounts (id) ON DELETE SET NULL,
    assignee_id INTEGER REFERENCES accounts (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX assistance_requests_by_state ON assistance_requests (state, created_at);
CREATE INDEX assistance_requests_by_address ON assistance_requests (address, created_at);

CREATE TABLE request_notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES assistance_requests (id) ON DELETE CASCADE,
    author_id INTEGER REFERENCES accounts (id) ON DELETE SET NULL,
    at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX request_notes_by_request ON request_notes (request_id, id);

CREATE TABLE call_slots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES assistance_requests (id) ON DELETE CASCADE,
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    -- SHA-256 of the slot's link token, set when the proposal is mailed
    token_hash TEXT UNIQUE,
    proposed_by INTEGER REFERENCES accounts (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    confirmed_at INTEGER,
    -- another slot of the same proposal was confirmed
    withdrawn_at INTEGER
);
CREATE INDEX call_slots_by_request ON call_slots (request_id);
CREATE INDEX call_slots_by_start ON call_slots (confirmed_at, starts_at);

ALTER TABLE outbox ADD COLUMN subject_id INTEGER;
