-- PostgreSQL's change counter now also notifies (LISTEN/NOTIFY). SQLite has no
-- notifications: the gate keeps reading the counter, a read of one row in the same
-- file. Kept so that both schemas carry the same migration numbers.

SELECT 1;
