-- Email/query's usual question, "the account's newest emails", answered from an index in order, and the
-- hasAttachment backfill's rows found without a scan.
CREATE INDEX messages_received ON messages (account_id, internal_date DESC, id DESC);
CREATE INDEX messages_has_attachment_unknown ON messages (id) WHERE has_attachment IS NULL AND structure IS NOT NULL;
