-- What the writer of an assistance request asks for: 'credentials' (their identifier and
-- a temporary password) or 'call'; NULL when they did not choose.
ALTER TABLE assistance_requests ADD COLUMN wants TEXT;
