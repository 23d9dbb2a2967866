-- RFC 3501 §2.3.2 \Recent: a message is recent to the first session that is told of it with the mailbox
-- selected read-write, and to no later one. As Dovecot's index header, one number per mailbox says which
-- UIDs no such session has been told of yet: every UID at or above it. A SELECT, or a session catching up
-- with new messages, moves it up to the mailbox's UIDNEXT as it saw it, in one statement under the row
-- lock, and the UIDs it moved past are recent to that session only.
ALTER TABLE mailboxes ADD COLUMN first_recent_uid BIGINT;
-- What is already stored when this arrives has been seen by whoever reads the mailbox: not recent.
UPDATE mailboxes SET first_recent_uid = uidnext;
ALTER TABLE mailboxes ALTER COLUMN first_recent_uid SET NOT NULL,
                      ALTER COLUMN first_recent_uid SET DEFAULT 1;
