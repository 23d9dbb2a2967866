-- What a password proved stops proving it when the password changes: the http role's bearer tokens and
-- webmail sessions carry the account's credential epoch as it was when they were issued, and one issued
-- before the epoch moved is refused. A new password moves it, and so does a new address (the name the
-- user logged in with is gone).
ALTER TABLE accounts ADD COLUMN credential_epoch BIGINT NOT NULL DEFAULT 0;
