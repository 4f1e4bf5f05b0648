-- The active administrators are held by every unit that may take one away (and by each
-- batch of `member import --update`): found by an index, not by reading every account.

CREATE INDEX accounts_by_role ON accounts (role, disabled_at);
