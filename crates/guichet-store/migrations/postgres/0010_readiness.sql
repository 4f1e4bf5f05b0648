-- One row that readiness (`GET /readyz`) writes to: a database that cannot commit a
-- write (a full disk, a read-only standby) is not ready, whatever `SELECT 1` says.

CREATE TABLE readiness (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at BIGINT NOT NULL
);
INSERT INTO readiness (id, checked_at) VALUES (1, 0);
