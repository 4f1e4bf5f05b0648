-- What became of the latest messages to an address: the desk is warned before it mails
-- an address whose server refused guichet's mail.
CREATE INDEX outbox_by_recipient ON outbox (recipient, id);
