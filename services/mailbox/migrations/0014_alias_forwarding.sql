-- An alias may forward to addresses of other domains, as Postfix's virtual_alias_maps do: a target is
-- either an account here or an address elsewhere, never both. The relay sends the message on to the
-- address targets (with SRS and an ARC seal), and delivers to the account targets as before.

ALTER TABLE alias_targets DROP CONSTRAINT alias_targets_pkey;
ALTER TABLE alias_targets ALTER COLUMN account_id DROP NOT NULL;
-- The address as the operator gave it: a remote local part may be case-sensitive (RFC 5321 §2.4), so it
-- is kept as written; the domain is lower case.
ALTER TABLE alias_targets ADD COLUMN address TEXT;
ALTER TABLE alias_targets
    ADD CONSTRAINT alias_targets_one_kind CHECK ((account_id IS NULL) <> (address IS NULL)),
    ADD CONSTRAINT alias_targets_account_once UNIQUE (alias_id, account_id);
-- One address once per alias whatever its case: the same mailbox written twice is not two copies.
CREATE UNIQUE INDEX alias_targets_address_once ON alias_targets (alias_id, lower(address));
