-- Rescue paths that do not depend on the channel that failed.
--
-- A staff-issued temporary password no longer replaces the member's password: it sits
-- beside it (the SHA-256 of its canonical form: 100 random bits need no slow hash) until
-- the member chooses a new password, and the session it opens must do that first.
-- Temporary passwords pending from earlier versions had replaced the password: they are
-- voided (staff issue a new one), and the sessions they opened end.
ALTER TABLE accounts ADD COLUMN temporary_password_hash TEXT;
DELETE FROM sessions WHERE account_id IN (SELECT id FROM accounts WHERE must_change_password = 1);
UPDATE accounts SET password_hash = NULL WHERE password_expires_at IS NOT NULL;
UPDATE accounts SET password_expires_at = NULL, must_change_password = 0
WHERE password_expires_at IS NOT NULL OR must_change_password <> 0;
ALTER TABLE sessions ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;

-- A second ("secours") address, confirmed by a code mailed to it.
ALTER TABLE accounts ADD COLUMN recovery_email TEXT;
ALTER TABLE accounts ADD COLUMN recovery_email_pending TEXT;
ALTER TABLE accounts ADD COLUMN recovery_email_code_hash TEXT;
ALTER TABLE accounts ADD COLUMN recovery_email_code_expires_at INTEGER;
CREATE UNIQUE INDEX accounts_by_recovery_email ON accounts (recovery_email);

-- The copy of a message sent to the secours address: one per original.
ALTER TABLE outbox ADD COLUMN copy_of INTEGER REFERENCES outbox (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX outbox_copies ON outbox (copy_of);

-- The gate forgets a session whose forced password change is done.
CREATE TRIGGER gate_session_changed AFTER UPDATE OF must_change_password ON sessions
BEGIN UPDATE gate_epoch SET value = value + 1 WHERE id = 1; END;
