-- The assistance desk: disabled accounts, temporary passwords, assistance requests with
-- their notes, and proposed phone-call slots.

ALTER TABLE accounts ADD COLUMN disabled_at BIGINT;
-- set for a staff-issued temporary password: it stops working at this instant
ALTER TABLE accounts ADD COLUMN password_expires_at BIGINT;

CREATE TABLE assistance_requests (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    identifier TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL,
    address TEXT,
    state TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'in_progress', 'waiting', 'closed')),
    account_id BIGINT REFERENCES accounts (id) ON DELETE SET NULL,
    assignee_id BIGINT REFERENCES accounts (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX assistance_requests_by_state ON assistance_requests (state, created_at);
CREATE INDEX assistance_requests_by_address ON assistance_requests (address, created_at);

CREATE TABLE request_notes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id BIGINT NOT NULL REFERENCES assistance_requests (id) ON DELETE CASCADE,
    author_id BIGINT REFERENCES accounts (id) ON DELETE SET NULL,
    at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX request_notes_by_request ON request_notes (request_id, id);

CREATE TABLE call_slots (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id BIGINT NOT NULL REFERENCES assistance_requests (id) ON DELETE CASCADE,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    -- SHA-256 of the slot's link token, set when the proposal is mailed
    token_hash TEXT UNIQUE,
    proposed_by BIGINT REFERENCES accounts (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    -- another slot of the same proposal was confirmed
    withdrawn_at BIGINT
);
CREATE INDEX call_slots_by_request ON call_slots (request_id);
CREATE INDEX call_slots_by_start ON call_slots (confirmed_at, starts_at);

ALTER TABLE outbox ADD COLUMN subject_id BIGINT;
