-- `mailbus admin mail import`: the digest of each message an import appended, per mailbox, so that a
-- second run, or a run resumed after an interruption, finds what is already there and adds nothing twice
-- (as `deliveries` does for Deliver). Dropped with the mailbox; an expunged message's digest stays, so an
-- import run again does not bring back what the user deleted since.
CREATE TABLE imported (
    mailbox_id  BIGINT NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    digest      BYTEA NOT NULL CHECK (octet_length(digest) BETWEEN 16 AND 64),
    uid         BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, digest)
);
