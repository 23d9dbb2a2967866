-- Sieve at delivery. A delivery may now place a message in any mailbox (fileinto), in several, or in
-- none (discard, reject), so its idempotency key moves from the placement (`deliveries`, which stays as
-- the record of where each copy went) to the account: one row per (queue id, recipient, account), taken
-- first in the delivery's transaction. A repeated Deliver conflicts on it and answers with what the first
-- one did.
CREATE TABLE delivery_runs (
    queue_id      TEXT NOT NULL,
    recipient     TEXT NOT NULL,
    account_id    BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- Set when the account's script rejected the message (RFC 5429): the relay's DSN text.
    rejection     TEXT,
    delivered_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (queue_id, recipient, account_id)
);

-- Deliveries made before this table existed keep their idempotency.
INSERT INTO delivery_runs (queue_id, recipient, account_id, delivered_at)
SELECT d.queue_id, d.recipient, m.account_id, min(d.delivered_at)
  FROM deliveries d JOIN mailboxes m ON m.id = d.mailbox_id
 GROUP BY d.queue_id, d.recipient, m.account_id
ON CONFLICT DO NOTHING;

-- Messages a delivery's script made (redirects, vacation replies), kept from the delivery's commit until
-- the relay has queued them (Mailbox.FollowUpsQueued), so a relay that dies in between finds them again
-- on its repeated Deliver. A redirect stores only the header fields to put before the original, which the
-- relay still holds; a vacation reply is stored whole.
CREATE TABLE delivery_follow_ups (
    queue_id      TEXT NOT NULL,
    recipient     TEXT NOT NULL,
    account_id    BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('redirect', 'vacation')),
    mail_from     TEXT NOT NULL,
    rcpt_to       TEXT NOT NULL,
    content       BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (queue_id, recipient, account_id, seq)
);

CREATE INDEX delivery_follow_ups_created ON delivery_follow_ups (created_at);
