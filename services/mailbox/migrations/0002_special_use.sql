-- RFC 6154 SPECIAL-USE mailboxes, created with every account, and subscriptions.

ALTER TABLE mailboxes
    ADD COLUMN special_use TEXT CHECK (special_use IN ('\Drafts', '\Sent', '\Trash', '\Junk', '\Archive')),
    ADD COLUMN subscribed BOOLEAN NOT NULL DEFAULT true;

CREATE UNIQUE INDEX mailboxes_special_use ON mailboxes (account_id, special_use) WHERE special_use IS NOT NULL;

-- Accounts created before this migration get the set too.
INSERT INTO mailboxes (account_id, name, uidvalidity, special_use)
SELECT a.id, s.name, greatest(1, extract(epoch FROM clock_timestamp())::bigint % 4294967296), s.special_use
  FROM accounts a
 CROSS JOIN (VALUES ('Drafts', '\Drafts'), ('Sent', '\Sent'), ('Trash', '\Trash'),
                    ('Junk', '\Junk'), ('Archive', '\Archive')) AS s (name, special_use)
    ON CONFLICT (account_id, name) DO NOTHING;
