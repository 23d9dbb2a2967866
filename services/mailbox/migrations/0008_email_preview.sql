-- JMAP's Email preview (RFC 8621 §4.1.4: up to 256 characters of the first text body), computed once when
-- a message is parsed, so that a message list reads no body. NULL for messages stored before this
-- migration: Email/get works it out from their octets as before.
ALTER TABLE messages ADD COLUMN preview TEXT;
