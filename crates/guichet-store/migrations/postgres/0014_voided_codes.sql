-- A code voided (by a newer code used, a new address, a new password) rather than used:
-- the member is told which, since "already used" misleads someone who never used it.
ALTER TABLE recovery_codes ADD COLUMN voided_at BIGINT;
