-- Who opened a request: 'member' (written on /assistance) or 'undelivered' (guichet,
-- after a message to the account was given up). The console words them differently, and
-- a member who then writes in closes guichet's request into their own.
ALTER TABLE assistance_requests ADD COLUMN origin TEXT NOT NULL DEFAULT 'member';
