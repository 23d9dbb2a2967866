-- What IMAP needs without reading a message again: its parsed structure, the Date field, header fields
-- for SEARCH, and a text-search vector of its decoded text. Rows stored before this migration have a NULL
-- structure until the mailbox role's start-up backfill parses them.
ALTER TABLE messages
    ADD COLUMN structure      BYTEA,          -- mailbus.v1.MessageStructure, protobuf-encoded
    ADD COLUMN header_size    INTEGER,        -- octets of the header, blank line included
    ADD COLUMN sent_at        TIMESTAMPTZ,    -- the Date field
    ADD COLUMN header_names   TEXT[],         -- lower case
    ADD COLUMN header_values  TEXT[],         -- unfolded, encoded words decoded
    ADD COLUMN body_text      TSVECTOR;

CREATE INDEX messages_body_text ON messages USING gin (body_text);
CREATE INDEX messages_unparsed ON messages (id) WHERE structure IS NULL;

-- RFC 9051 §6.3.7: a subscription is a name, and outlives (or precedes) the mailbox.
CREATE TABLE subscriptions (
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);

INSERT INTO subscriptions (account_id, name) SELECT account_id, name FROM mailboxes WHERE subscribed;
ALTER TABLE mailboxes DROP COLUMN subscribed;

-- UIDVALIDITY must differ from every earlier mailbox of the same name, even one deleted and created again
-- within a second: each account hands out strictly increasing values.
ALTER TABLE accounts ADD COLUMN last_uidvalidity BIGINT NOT NULL DEFAULT 0;
UPDATE accounts a SET last_uidvalidity = coalesce((SELECT max(uidvalidity) FROM mailboxes m WHERE m.account_id = a.id), 0);

-- SELECT, STATUS and SEARCH read live entries in UID order; CONDSTORE reads changes by MODSEQ.
CREATE INDEX mailbox_entries_live ON mailbox_entries (mailbox_id, uid) INCLUDE (flags) WHERE expunged_modseq IS NULL;
CREATE INDEX mailbox_entries_modseq ON mailbox_entries (mailbox_id, modseq);

-- RFC 6154 has two more attributes a client may give with CREATE-SPECIAL-USE.
ALTER TABLE mailboxes DROP CONSTRAINT mailboxes_special_use_check;
ALTER TABLE mailboxes ADD CONSTRAINT mailboxes_special_use_check
    CHECK (special_use IN ('\Drafts', '\Sent', '\Trash', '\Junk', '\Archive', '\All', '\Flagged'));
