-- A member's given and family names, kept apart for the applications (OpenID Connect's
-- given_name and family_name); display_name stays what pages show (their join when
-- either is known).

ALTER TABLE accounts ADD COLUMN given_name TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN family_name TEXT NOT NULL DEFAULT '';
