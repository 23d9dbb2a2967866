-- RFC 9051 §6.4.4: SEARCH BODY and TEXT match a substring, case-insensitively, of the decoded text; the
-- tsvector of migration 0004 matched whole words only. Each message now keeps its searchable text as the
-- mailbox role makes it (search_text.rs: decoded, lower-cased, white space folded): its header values,
-- and its body (every text part, attached messages' header values and text parts too). A trigram index
-- on each answers `LIKE '%needle%'` without reading every row.
--
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension since PostgreSQL 13: the database's
-- owner (any role with CREATE on the database) may create it, no superuser needed. Where the role
-- lacks that, an administrator runs this statement once beforehand, and IF NOT EXISTS lets it pass.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE messages
    ADD COLUMN search_header TEXT,
    ADD COLUMN search_body   TEXT,
    DROP COLUMN body_text;

CREATE INDEX messages_search_header ON messages USING gin (search_header gin_trgm_ops);
CREATE INDEX messages_search_body ON messages USING gin (search_body gin_trgm_ops);
-- Messages stored before this migration get their text from the mailbox role's start-up backfill, which
-- finds them here without a scan.
CREATE INDEX messages_search_unfilled ON messages (id) WHERE search_body IS NULL AND structure IS NOT NULL;
