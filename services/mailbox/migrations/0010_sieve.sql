-- Sieve (RFC 5228) filtering at delivery, ManageSieve (RFC 5804) and JMAP's VacationResponse (RFC 8621 §8).

-- An account's scripts; ManageSieve names them, at most one is active and runs at delivery.
CREATE TABLE sieve_scripts (
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- RFC 5804 §1.6: a non-empty UTF-8 name without control characters.
    name        TEXT NOT NULL CHECK (name <> '' AND length(name) <= 512),
    content     TEXT NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT false,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, name)
);

CREATE UNIQUE INDEX sieve_scripts_one_active ON sieve_scripts (account_id) WHERE active;

-- The account's VacationResponse singleton (RFC 8621 §8). Delivery runs it, through the same Sieve
-- interpreter, after the active script: it can only answer, never file or discard.
CREATE TABLE vacation_responses (
    account_id  BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    is_enabled  BOOLEAN NOT NULL DEFAULT false,
    from_date   TIMESTAMPTZ,
    to_date     TIMESTAMPTZ,
    subject     TEXT,
    text_body   TEXT,
    html_body   TEXT
);

-- Vacation's memory (RFC 5230 §4.2): whom an account has answered, under which handle, until when; a
-- sender is answered once per period. Rows past `until` are pruned.
CREATE TABLE vacation_sent (
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    sender      TEXT NOT NULL,
    handle      TEXT NOT NULL,
    until       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, sender, handle)
);

CREATE INDEX vacation_sent_until ON vacation_sent (until);
