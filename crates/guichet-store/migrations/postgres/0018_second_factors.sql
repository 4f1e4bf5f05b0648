-- A second factor (issue 19): TOTP secrets, sealed under a key derived from the server
-- key; single-use recovery codes, by SHA-256; and how each session signed in, carried to
-- what the session hands out (codes and refresh tokens) for the applications' amr and acr.

-- How the session signed in: amr values separated by spaces ("pwd", "pwd otp", "pwd hwk").
ALTER TABLE sessions ADD COLUMN factors TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE oidc_codes ADD COLUMN factors TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE oidc_refresh_tokens ADD COLUMN factors TEXT NOT NULL DEFAULT 'pwd';
-- 1: the application admits only sessions signed in with a second factor
ALTER TABLE oidc_clients ADD COLUMN second_factor BIGINT NOT NULL DEFAULT 0;

-- One TOTP secret per account; confirmed_at is NULL while enrolment waits for its first
-- code. last_step is the last time step accepted: a code works once.
CREATE TABLE totp_secrets (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_step BIGINT NOT NULL DEFAULT 0
);

-- Ten per account, shown once; each works once.
CREATE TABLE second_factor_recovery_codes (
    code_hash TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX second_factor_recovery_codes_by_account ON second_factor_recovery_codes (account_id);
