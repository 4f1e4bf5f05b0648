-- A counter the database itself moves whenever what the forward-auth gate caches may
-- have changed: a session ends, an account's identity or status changes, a membership
-- changes. Every instance polls it and forgets its cache when it moves, so that a change
-- made anywhere (another instance, the command line) reaches every gate.

CREATE TABLE gate_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO gate_epoch (id, value) VALUES (1, 0);

CREATE FUNCTION gate_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE gate_epoch SET value = value + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER gate_session_ended AFTER DELETE ON sessions
FOR EACH STATEMENT EXECUTE FUNCTION gate_epoch_bump();

CREATE TRIGGER gate_account_changed
AFTER UPDATE OF identifier, email, display_name, role, must_change_password, disabled_at ON accounts
FOR EACH STATEMENT EXECUTE FUNCTION gate_epoch_bump();

CREATE TRIGGER gate_account_removed AFTER DELETE ON accounts
FOR EACH STATEMENT EXECUTE FUNCTION gate_epoch_bump();

CREATE TRIGGER gate_member_joined AFTER INSERT ON group_members
FOR EACH STATEMENT EXECUTE FUNCTION gate_epoch_bump();

CREATE TRIGGER gate_member_left AFTER DELETE ON group_members
FOR EACH STATEMENT EXECUTE FUNCTION gate_epoch_bump();

CREATE TRIGGER gate_group_removed AFTER DELETE ON groups
FOR EACH STATEMENT EXECUTE FUNCTION gate_epoch_bump();
