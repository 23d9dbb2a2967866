-- The mailbus schema. Only the mailbox role reads or writes it.

CREATE TABLE domains (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE CHECK (name = lower(name)),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id      BIGINT NOT NULL REFERENCES domains (id),
    -- The lookup form: local part and domain in lower case.
    address        TEXT NOT NULL UNIQUE CHECK (address = lower(address)),
    -- argon2id, as a PHC string.
    password_hash  TEXT NOT NULL,
    disabled       BOOLEAN NOT NULL DEFAULT false,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE mailboxes (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    -- RFC 9051 §2.3.1.1: UIDs and UIDVALIDITY are 32-bit unsigned.
    uidvalidity    BIGINT NOT NULL CHECK (uidvalidity BETWEEN 1 AND 4294967295),
    uidnext        BIGINT NOT NULL DEFAULT 1 CHECK (uidnext BETWEEN 1 AND 4294967296),
    -- RFC 7162 CONDSTORE.
    highestmodseq  BIGINT NOT NULL DEFAULT 1,
    UNIQUE (account_id, name)
);

CREATE TABLE messages (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- The octets as delivered, CRLF line endings.
    content        BYTEA NOT NULL,
    size           BIGINT NOT NULL,
    internal_date  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per (mailbox, UID). An expunged entry keeps its row, UID and MODSEQ (for QRESYNC's VANISHED
-- and so that no UID is ever reused) and drops its message.
CREATE TABLE mailbox_entries (
    mailbox_id       BIGINT NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid              BIGINT NOT NULL,
    message_id       BIGINT REFERENCES messages (id),
    flags            TEXT[] NOT NULL DEFAULT '{}',
    modseq           BIGINT NOT NULL,
    expunged_modseq  BIGINT,
    PRIMARY KEY (mailbox_id, uid),
    CHECK ((expunged_modseq IS NULL) = (message_id IS NOT NULL))
);

CREATE INDEX mailbox_entries_message ON mailbox_entries (message_id) WHERE message_id IS NOT NULL;

-- The idempotency key of Deliver: a relay that repeats a delivery finds it here.
CREATE TABLE deliveries (
    queue_id      TEXT NOT NULL,
    recipient     TEXT NOT NULL,
    mailbox_id    BIGINT NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid           BIGINT NOT NULL,
    delivered_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (queue_id, recipient)
);
