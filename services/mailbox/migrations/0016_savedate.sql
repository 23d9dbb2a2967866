-- RFC 8514 SAVEDATE: when an entry was saved into its mailbox. APPEND, delivery, COPY and MOVE each insert
-- a new entry, so the column's default is the save date and delivery's insert does not name it.
--
-- Entries saved before this migration get their message's internal date: for delivered and appended
-- mail that is when it was saved, and a date the client can search by is more use than RFC 8514's NIL,
-- which would also make SAVEDATESUPPORTED a per-mailbox question. Only a copy or move made before this
-- migration shows its original's date. Tombstones (expunged entries) have no message and stay NULL.
ALTER TABLE mailbox_entries ADD COLUMN saved_at TIMESTAMPTZ;
UPDATE mailbox_entries e SET saved_at = m.internal_date FROM messages m WHERE m.id = e.message_id;
ALTER TABLE mailbox_entries ALTER COLUMN saved_at SET DEFAULT now();
