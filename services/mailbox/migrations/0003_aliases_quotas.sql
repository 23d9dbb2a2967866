-- Aliases (one address, or a whole domain's catch-all, leading to one or more accounts) and per-account
-- quotas with a usage count that PostgreSQL keeps true itself.

CREATE TABLE aliases (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id   BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    -- The lookup form of the address, or '@' and the domain for the domain's catch-all.
    address     TEXT NOT NULL UNIQUE CHECK (address = lower(address)),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE alias_targets (
    alias_id    BIGINT NOT NULL REFERENCES aliases (id) ON DELETE CASCADE,
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    PRIMARY KEY (alias_id, account_id)
);

CREATE INDEX alias_targets_account ON alias_targets (account_id);

-- NULL quota: no limit. Usage counts every live mailbox entry, as Dovecot's count quota does: a message
-- copied to a second mailbox counts twice, though its octets are stored once.
ALTER TABLE accounts
    ADD COLUMN quota_bytes     BIGINT CHECK (quota_bytes >= 0),
    ADD COLUMN quota_messages  BIGINT CHECK (quota_messages >= 0),
    ADD COLUMN used_bytes      BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN used_messages   BIGINT NOT NULL DEFAULT 0;

UPDATE accounts a
   SET used_bytes = u.bytes, used_messages = u.messages
  FROM (SELECT m.account_id, sum(m.size)::bigint AS bytes, count(*) AS messages
          FROM mailbox_entries e JOIN messages m ON m.id = e.message_id
         GROUP BY m.account_id) u
 WHERE u.account_id = a.id;

-- Every path that adds or drops a live entry (deliver, append, copy, move, expunge, mailbox delete) passes
-- through these rows, so the usage is kept here rather than in each caller.
CREATE FUNCTION mailbox_entries_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.message_id IS NOT NULL
       AND (TG_OP = 'DELETE' OR NEW.message_id IS DISTINCT FROM OLD.message_id) THEN
        UPDATE accounts a SET used_bytes = used_bytes - m.size, used_messages = used_messages - 1
          FROM messages m WHERE m.id = OLD.message_id AND a.id = m.account_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.message_id IS NOT NULL
       AND (TG_OP = 'INSERT' OR NEW.message_id IS DISTINCT FROM OLD.message_id) THEN
        UPDATE accounts a SET used_bytes = used_bytes + m.size, used_messages = used_messages + 1
          FROM messages m WHERE m.id = NEW.message_id AND a.id = m.account_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER mailbox_entries_usage AFTER INSERT OR UPDATE OF message_id OR DELETE ON mailbox_entries
    FOR EACH ROW EXECUTE FUNCTION mailbox_entries_usage();

-- The idempotency key of Deliver now allows one row per account an alias leads to.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey;
ALTER TABLE deliveries ADD PRIMARY KEY (queue_id, recipient, mailbox_id);
