-- JMAP Mailbox sortOrder (RFC 8621 §2) is the client's to set. NULL is the server's default, worked out from
-- the role (INBOX first, then the roles, then the rest); a number is what a client stored. RFC 8621 §2:
-- an UnsignedInt, and we keep it below 2^31.
ALTER TABLE mailboxes ADD COLUMN sort_order INTEGER CHECK (sort_order >= 0);

-- 0006's trigger logs a mailbox change only when the name or the SPECIAL-USE changes (UIDNEXT and
-- HIGHESTMODSEQ move with every message, and are no Mailbox property); a new sortOrder is a change too.
CREATE OR REPLACE FUNCTION mailbus_log_mailbox_change() RETURNS trigger LANGUAGE plpgsql AS $$
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
