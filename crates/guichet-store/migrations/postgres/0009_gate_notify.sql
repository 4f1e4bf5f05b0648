-- The change counter also announces itself: every instance LISTENs on `guichet_gate` and
-- forgets its forward-auth cache when told, instead of reading the counter every 50 ms.
-- The notification goes out when the transaction commits (and only then), once per
-- transaction whatever the number of statements.

CREATE OR REPLACE FUNCTION gate_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE gate_epoch SET value = value + 1 WHERE id = 1;
    PERFORM pg_notify('guichet_gate', '');
    RETURN NULL;
END
$$;
