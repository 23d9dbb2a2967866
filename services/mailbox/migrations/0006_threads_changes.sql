-- What IMAP THREAD and JMAP share (RFC 8621 §3, RFC 5256): a thread id per message, and one change counter
-- per account with a log of what each step changed, from which JMAP's state strings and /changes come.
-- Both are kept by triggers, so every path that writes (deliver, APPEND, COPY, MOVE, STORE, EXPUNGE,
-- mailbox CREATE/RENAME/DELETE, and the JMAP methods) is seen by every protocol without each remembering to.

-- Threads -----------------------------------------------------------------------------------------------

ALTER TABLE messages
    -- The id of the thread's first message.
    ADD COLUMN thread_id     BIGINT,
    -- The Message-ID, In-Reply-To and References ids of the message, without angle brackets.
    ADD COLUMN thread_refs   TEXT[],
    -- RFC 5256 §2.1 base subject, lower case: the fallback when no reference links a message.
    ADD COLUMN base_subject  TEXT,
    -- Whether any leaf part is an attachment (JMAP hasAttachment); NULL until the mailbox role's start-up
    -- backfill has looked at a message stored before this migration.
    ADD COLUMN has_attachment BOOLEAN;

CREATE INDEX messages_thread ON messages (account_id, thread_id);
CREATE INDEX messages_base_subject ON messages (account_id, base_subject);

-- Every id of every message's thread_refs, for the lookup a new message's threading makes: one B-tree
-- probe per id it names, where matching the arrays themselves would scan the account's messages (a GIN
-- index on them cost more to keep than the scan it saved).
CREATE TABLE message_refs (
    account_id  BIGINT NOT NULL,
    ref         TEXT NOT NULL,
    message_id  BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    PRIMARY KEY (account_id, ref, message_id)
);

CREATE INDEX message_refs_message ON message_refs (message_id);

-- RFC 5256 §2.1, in short: drop leading "Re:", "Fw:", "Fwd:" (with an optional [n]) and "[list]" tags and a
-- trailing "(fwd)", repeatedly; fold white space; lower case.
CREATE FUNCTION mailbus_base_subject(subject TEXT) RETURNS TEXT LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    s TEXT := lower(regexp_replace(coalesce(subject, ''), '\s+', ' ', 'g'));
    before TEXT;
BEGIN
    LOOP
        before := s;
        s := btrim(s);
        s := regexp_replace(s, '\s*\(fwd\)$', '');
        s := regexp_replace(s, '^(re|fwd?|aw|sv|wg|antw|rif|tr)\s*(\[\d+\])?\s*:\s*', '');
        s := regexp_replace(s, '^\[[^\]]*\]\s*', '');
        EXIT WHEN s = before;
    END LOOP;
    RETURN s;
END $$;

-- Whether a subject had a reply or forward prefix: only such a message joins a thread by subject alone.
CREATE FUNCTION mailbus_is_reply_subject(subject TEXT) RETURNS BOOLEAN LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(subject, '') ~* '^\s*(\[[^\]]*\]\s*)*(re|fwd?|aw|sv|wg|antw|rif|tr)\s*(\[\d+\])?\s*:'
$$;

-- The message ids of one header value, brackets removed: the angle-bracketed ones, or, in a value with no
-- brackets at all (messages stored before header values kept them), each word that looks like an id.
CREATE FUNCTION mailbus_msg_ids(value TEXT) RETURNS TEXT[] LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN coalesce(value, '') ~ '<[^<>\s]+>'
        THEN (SELECT array_agg(m[1]) FROM regexp_matches(value, '<([^<>\s]+)>', 'g') AS m)
        ELSE coalesce((SELECT array_agg(m[1]) FROM regexp_matches(coalesce(value, ''), '([^<>\s,;]+@[^<>\s,;]+)', 'g') AS m), '{}')
    END
$$;

-- Fills thread_refs, base_subject and thread_id of a message about to be stored. A message joins the thread
-- of the earliest message of its account that shares any id with it (its parent, a child that arrived first,
-- or a sibling); failing that, a reply ("Re: ...") without references joins the newest thread with its base
-- subject; otherwise it starts a thread of its own. Two threads a later message turns out to link stay two:
-- thread ids never change once given, so no client's view of a thread is rewritten under it.
CREATE FUNCTION mailbus_messages_thread() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    subject TEXT;
    own TEXT[];
    refs TEXT[];
BEGIN
    IF NEW.thread_id IS NOT NULL THEN
        RETURN NEW;
    END IF;
    IF NEW.header_names IS NULL THEN
        -- Not parsed yet (a row of before MIME parsing): threaded when the backfill parses it.
        IF TG_OP = 'INSERT' THEN
            RETURN NEW;
        END IF;
    END IF;
    subject := NEW.header_values[array_position(NEW.header_names, 'subject')];
    own := mailbus_msg_ids(NEW.header_values[array_position(NEW.header_names, 'message-id')]);
    refs := mailbus_msg_ids(NEW.header_values[array_position(NEW.header_names, 'in-reply-to')])
         || mailbus_msg_ids(NEW.header_values[array_position(NEW.header_names, 'references')]);
    NEW.thread_refs := own || refs;
    NEW.base_subject := mailbus_base_subject(subject);
    IF cardinality(NEW.thread_refs) > 0 THEN
        SELECT m.thread_id INTO NEW.thread_id
          FROM message_refs r JOIN messages m ON m.id = r.message_id
         WHERE r.account_id = NEW.account_id AND r.ref = ANY (NEW.thread_refs) AND m.thread_id IS NOT NULL
           AND m.id <> NEW.id
         ORDER BY m.id
         LIMIT 1;
    END IF;
    IF NEW.thread_id IS NULL AND cardinality(refs) = 0 AND mailbus_is_reply_subject(subject)
       AND NEW.base_subject <> '' THEN
        SELECT m.thread_id INTO NEW.thread_id
          FROM messages m
         WHERE m.account_id = NEW.account_id AND m.base_subject = NEW.base_subject AND m.thread_id IS NOT NULL
           AND m.id <> NEW.id
         ORDER BY m.id DESC
         LIMIT 1;
    END IF;
    NEW.thread_id := coalesce(NEW.thread_id, NEW.id);
    RETURN NEW;
END $$;

CREATE TRIGGER messages_thread BEFORE INSERT OR UPDATE OF header_names ON messages
    FOR EACH ROW EXECUTE FUNCTION mailbus_messages_thread();

-- Once the row exists, its ids go into message_refs for the messages after it.
CREATE FUNCTION mailbus_messages_refs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.thread_refs IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.thread_refs IS DISTINCT FROM OLD.thread_refs) THEN
        INSERT INTO message_refs (account_id, ref, message_id)
        SELECT DISTINCT NEW.account_id, r, NEW.id FROM unnest(NEW.thread_refs) AS r
            ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER messages_refs AFTER INSERT OR UPDATE OF thread_refs ON messages
    FOR EACH ROW EXECUTE FUNCTION mailbus_messages_refs();

-- Existing messages, oldest first, so each joins the thread of the ones before it.
DO $$
DECLARE
    r RECORD;
BEGIN
    FOR r IN SELECT id FROM messages WHERE header_names IS NOT NULL ORDER BY id LOOP
        UPDATE messages SET header_names = header_names WHERE id = r.id;
    END LOOP;
END $$;

-- Changes -----------------------------------------------------------------------------------------------

-- The account's change counter: JMAP's state string for every type is its value. It only grows.
ALTER TABLE accounts ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
-- The log keeps a limited time (the mailbox role prunes it); a state older than the last step pruned gets
-- cannotCalculateChanges, and the client starts over.
ALTER TABLE accounts ADD COLUMN changes_floor BIGINT NOT NULL DEFAULT 0;

-- What each step of the counter changed. kind: 'E' email (a message), 'M' mailbox, 'T' thread, 'S' email
-- submission, 'I' identity. op: 'c' created, 'u' updated, 'd' destroyed. An Email is a message row; it
-- exists while at least one mailbox entry holds it.
CREATE TABLE changes (
    -- The order of a step's changes among themselves.
    id          BIGINT GENERATED ALWAYS AS IDENTITY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    kind        CHAR(1) NOT NULL CHECK (kind IN ('E', 'M', 'T', 'S', 'I')),
    object_id   BIGINT NOT NULL,
    op          CHAR(1) NOT NULL CHECK (op IN ('c', 'u', 'd')),
    -- For a mailbox 'u' caused by a message coming or going: only its counts changed (JMAP's
    -- updatedProperties).
    counts_only BOOLEAN NOT NULL DEFAULT false,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX changes_since ON changes (account_id, kind, seq, id);
CREATE INDEX changes_at ON changes (at);

-- The step of an account's counter for the current transaction: the first change a transaction makes to an
-- account takes the next value, and every later one in the same transaction shares it (kept in a
-- transaction-local setting), so a STORE on a thousand messages is one step and one row update, not a
-- thousand. NULL when the account is being deleted. The row lock the update takes is held to the commit,
-- so an account's steps commit in the order they were taken: a reader that sees step n sees every step
-- before it.
CREATE FUNCTION mailbus_next_change(account BIGINT) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    setting TEXT := 'mailbus.change_seq_' || account;
    taken TEXT := current_setting(setting, true);
    seq BIGINT;
BEGIN
    IF taken IS NOT NULL AND taken <> '' THEN
        RETURN taken::bigint;
    END IF;
    UPDATE accounts SET change_seq = change_seq + 1 WHERE id = account RETURNING change_seq INTO seq;
    IF seq IS NOT NULL THEN
        PERFORM set_config(setting, seq::text, true);
    END IF;
    RETURN seq;
END $$;

-- Logs a mailbox entry's change as changes of its email, its mailbox (counts) and its thread.
CREATE FUNCTION mailbus_log_entry_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    message BIGINT;
    mailbox BIGINT;
    account BIGINT;
    thread BIGINT;
    seq BIGINT;
    email_op CHAR(1) := 'u';
    thread_op CHAR(1) := 'u';
    counts BOOLEAN := false;
BEGIN
    IF TG_OP = 'INSERT' THEN
        message := NEW.message_id;
        mailbox := NEW.mailbox_id;
        counts := true;
    ELSIF TG_OP = 'DELETE' THEN
        message := OLD.message_id;
        mailbox := OLD.mailbox_id;
        counts := true;
    ELSE
        message := coalesce(OLD.message_id, NEW.message_id);
        mailbox := NEW.mailbox_id;
        counts := NEW.message_id IS DISTINCT FROM OLD.message_id OR NEW.flags IS DISTINCT FROM OLD.flags;
    END IF;
    IF message IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT m.account_id, m.thread_id INTO account, thread FROM messages m WHERE m.id = message;
    IF account IS NULL THEN
        RETURN NULL;
    END IF;
    seq := mailbus_next_change(account);
    IF seq IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.message_id = message
                          AND (e.mailbox_id, e.uid) <> (NEW.mailbox_id, NEW.uid)) THEN
            email_op := 'c';
        END IF;
    ELSIF TG_OP = 'DELETE' OR NEW.message_id IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.message_id = message) THEN
            email_op := 'd';
        END IF;
    END IF;
    -- A thread is created with its first message (whose id it bears: later messages have greater ids) and
    -- destroyed with its last. Entries inserted by one statement all exist when these triggers run, so
    -- creation is told by the id rather than by the absence of others.
    IF email_op = 'c' AND message = thread THEN
        thread_op := 'c';
    ELSIF email_op = 'd' AND thread IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM messages m JOIN mailbox_entries e ON e.message_id = m.id
         WHERE m.account_id = account AND m.thread_id = thread AND m.id <> message) THEN
        thread_op := 'd';
    END IF;
    INSERT INTO changes (account_id, seq, kind, object_id, op, counts_only)
    VALUES (account, seq, 'E', message, email_op, false),
           (account, seq, 'M', mailbox, 'u', true);
    IF thread IS NOT NULL THEN
        INSERT INTO changes (account_id, seq, kind, object_id, op) VALUES (account, seq, 'T', thread, thread_op);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER mailbox_entries_changes AFTER INSERT OR UPDATE OR DELETE ON mailbox_entries
    FOR EACH ROW EXECUTE FUNCTION mailbus_log_entry_change();

-- JMAP Mailbox sortOrder (RFC 8621 §2) is the client's to set. NULL is the server's default, worked out from
-- the role (INBOX first, then the roles, then the rest); a number is what a client stored. RFC 8621 §2:
-- an UnsignedInt, and we keep it below 2^31.
ALTER TABLE mailboxes ADD COLUMN sort_order INTEGER CHECK (sort_order >= 0);

-- Logs a mailbox's creation, rename (or other change of its own properties: name, SPECIAL-USE, sortOrder)
-- and deletion. UIDNEXT and HIGHESTMODSEQ moving is not a change of the JMAP Mailbox: its counts are
-- logged with the entries.
CREATE FUNCTION mailbus_log_mailbox_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seq BIGINT;
    row_ mailboxes%ROWTYPE;
    op CHAR(1);
BEGIN
    IF TG_OP = 'DELETE' THEN
        row_ := OLD;
        op := 'd';
    ELSE
        row_ := NEW;
        op := CASE TG_OP WHEN 'INSERT' THEN 'c' ELSE 'u' END;
        IF TG_OP = 'UPDATE' AND NEW.name IS NOT DISTINCT FROM OLD.name
           AND NEW.special_use IS NOT DISTINCT FROM OLD.special_use
           AND NEW.sort_order IS NOT DISTINCT FROM OLD.sort_order THEN
            RETURN NULL;
        END IF;
    END IF;
    seq := mailbus_next_change(row_.account_id);
    IF seq IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO changes (account_id, seq, kind, object_id, op) VALUES (row_.account_id, seq, 'M', row_.id, op);
    RETURN NULL;
END $$;

CREATE TRIGGER mailboxes_changes AFTER INSERT OR UPDATE OR DELETE ON mailboxes
    FOR EACH ROW EXECUTE FUNCTION mailbus_log_mailbox_change();

-- JMAP objects of their own -------------------------------------------------------------------------------

-- Uploaded blobs (RFC 8620 §6.1), until they are used or expire.
CREATE TABLE blobs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    media_type  TEXT NOT NULL,
    content     BYTEA NOT NULL,
    size        BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX blobs_account ON blobs (account_id, created_at);

-- EmailSubmission objects (RFC 8621 §7): what was handed to the queue, and when.
CREATE TABLE email_submissions (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    identity_id  TEXT NOT NULL,
    email_id     BIGINT NOT NULL,
    thread_id    BIGINT,
    queue_id     TEXT NOT NULL,
    mail_from    TEXT NOT NULL,
    rcpt_to      TEXT[] NOT NULL,
    send_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX email_submissions_account ON email_submissions (account_id, id);

-- Identities (RFC 8621 §6): the addresses an account sends as, with a display name and signatures. An
-- account's own address gets one the first time its identities are read; more may name any address the
-- account may send from (its aliases).
CREATE TABLE identities (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name            TEXT NOT NULL DEFAULT '',
    email           TEXT NOT NULL,
    reply_to        JSONB,
    bcc             JSONB,
    text_signature  TEXT NOT NULL DEFAULT '',
    html_signature  TEXT NOT NULL DEFAULT ''
);

CREATE INDEX identities_account ON identities (account_id);

-- Logs identities ('I') and email submissions ('S') as they are created, changed and destroyed.
CREATE FUNCTION mailbus_log_object_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    account BIGINT := CASE TG_OP WHEN 'DELETE' THEN OLD.account_id ELSE NEW.account_id END;
    object BIGINT := CASE TG_OP WHEN 'DELETE' THEN OLD.id ELSE NEW.id END;
    seq BIGINT;
BEGIN
    seq := mailbus_next_change(account);
    IF seq IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO changes (account_id, seq, kind, object_id, op)
    VALUES (account, seq, TG_ARGV[0], object, CASE TG_OP WHEN 'INSERT' THEN 'c' WHEN 'DELETE' THEN 'd' ELSE 'u' END);
    RETURN NULL;
END $$;

CREATE TRIGGER identities_changes AFTER INSERT OR UPDATE OR DELETE ON identities
    FOR EACH ROW EXECUTE FUNCTION mailbus_log_object_change('I');
CREATE TRIGGER email_submissions_changes AFTER INSERT OR UPDATE OR DELETE ON email_submissions
    FOR EACH ROW EXECUTE FUNCTION mailbus_log_object_change('S');
