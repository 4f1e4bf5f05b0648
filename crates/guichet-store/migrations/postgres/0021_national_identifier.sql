-- Pro Santé Connect (issue 22): the account's national professional identifier (its RPPS
-- number, 11 digits), by which an upstream login finds the account it belongs to; and the
-- upstream identities linked to accounts, one per provider and subject.
ALTER TABLE accounts ADD COLUMN rpps TEXT;
CREATE UNIQUE INDEX accounts_by_rpps ON accounts (rpps);

CREATE TABLE upstream_links (
    upstream TEXT NOT NULL,
    subject TEXT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    PRIMARY KEY (upstream, subject)
);
CREATE INDEX upstream_links_by_account ON upstream_links (account_id);
