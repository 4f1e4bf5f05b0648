-- A counter the database itself moves whenever what the forward-auth gate caches may
-- have changed: a session ends, an account's identity or status changes, a membership
-- changes. Every instance polls it and forgets its cache when it moves, so that a change
-- made anywhere (another instance, the command line) reaches every gate.

CREATE TABLE gate_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO gate_epoch (id, value) VALUES (1, 0);

CREATE TRIGGER gate_session_ended AFTER DELETE ON sessions
BEGIN UPDATE gate_epoch SET value = value + 1 WHERE id = 1; END;

CREATE TRIGGER gate_account_changed
AFTER UPDATE OF identifier, email, display_name, role, must_change_password, disabled_at ON accounts
BEGIN UPDATE gate_epoch SET value = value + 1 WHERE id = 1; END;

CREATE TRIGGER gate_account_removed AFTER DELETE ON accounts
BEGIN UPDATE gate_epoch SET value = value + 1 WHERE id = 1; END;

CREATE TRIGGER gate_member_joined AFTER INSERT ON group_members
BEGIN UPDATE gate_epoch SET value = value + 1 WHERE id = 1; END;

CREATE TRIGGER gate_member_left AFTER DELETE ON group_members
BEGIN UPDATE gate_epoch SET value = value + 1 WHERE id = 1; END;

CREATE TRIGGER gate_group_removed AFTER DELETE ON groups
BEGIN UPDATE gate_epoch SET value = value + 1 WHERE id = 1; END;
