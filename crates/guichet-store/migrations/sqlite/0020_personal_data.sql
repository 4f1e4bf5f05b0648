-- Personal data (issue 21): what the retention rounds, the erasure and the member's own
-- change of address need.

-- When the account is to be erased (the member or an administrator asked; cancelled by
-- setting it back to NULL).
ALTER TABLE accounts ADD COLUMN erase_at INTEGER;
CREATE INDEX accounts_by_erasure ON accounts (erase_at);
-- A new address the member proposed, waiting for the code mailed to it (by hash).
ALTER TABLE accounts ADD COLUMN email_pending TEXT;
ALTER TABLE accounts ADD COLUMN email_code_hash TEXT;
ALTER TABLE accounts ADD COLUMN email_code_expires_at INTEGER;

-- 1 once the line's network address was cut to its network (/24, /48) and its browser
-- forgotten.
ALTER TABLE audit_events ADD COLUMN address_truncated INTEGER NOT NULL DEFAULT 0;
CREATE INDEX audit_events_by_truncation ON audit_events (address_truncated, at);
-- What an erased account's lines keep in its place: a pseudonym, the same on each line.
ALTER TABLE audit_events ADD COLUMN pseudonym TEXT;
ALTER TABLE assistance_requests ADD COLUMN address_truncated INTEGER NOT NULL DEFAULT 0;
