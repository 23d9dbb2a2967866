//! Quotas: the check that every path adding entries passes under its mailbox lock, and an account's usage
//! and limits (IMAP GETQUOTA). The usage itself is kept by a trigger on `mailbox_entries`, whichever path
//! adds or drops an entry.

use mailbus_address::AccountId;
use sqlx::{PgConnection, PgPool};

use crate::error::MailboxError;

/// An account's usage and its limits (`None`: no limit).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Usage {
    pub used_bytes: i64,
    pub used_messages: i64,
    pub quota_bytes: Option<i64>,
    pub quota_messages: Option<i64>,
}

pub async fn usage(pool: &PgPool, account: AccountId) -> Result<Usage, MailboxError> {
    let usage: Option<Usage> =
        sqlx::query_as("SELECT used_bytes, used_messages, quota_bytes, quota_messages FROM accounts WHERE id = $1")
            .bind(account.get())
            .fetch_optional(pool)
            .await?;
    usage.ok_or_else(|| MailboxError::NotFound(format!("no account {account}")))
}

/// Refuses to add `messages` entries of `bytes` octets in all to an account that would then exceed its
/// quota. Called under a mailbox lock. The accounts row is locked (as the usage trigger would lock it
/// anyway, and in the same order) so that two changes in different mailboxes cannot both pass the check
/// on the same usage.
pub(crate) async fn check(
    conn: &mut PgConnection,
    account: AccountId,
    messages: i64,
    bytes: i64,
) -> Result<(), MailboxError> {
    let over: Option<Option<String>> = sqlx::query_scalar(
        "SELECT CASE
                WHEN quota_bytes IS NOT NULL AND used_bytes + $3 > quota_bytes
                    THEN format('storage quota exceeded (%s of %s octets used)', used_bytes, quota_bytes)
                WHEN quota_messages IS NOT NULL AND used_messages + $2 > quota_messages
                    THEN format('message quota exceeded (%s of %s messages)', used_messages, quota_messages)
                END
           FROM accounts WHERE id = $1
            FOR NO KEY UPDATE",
    )
    .bind(account.get())
    .bind(messages)
    .bind(bytes)
    .fetch_optional(conn)
    .await?;
    match over.flatten() {
        Some(why) => Err(MailboxError::OverQuota(why)),
        None => Ok(()),
    }
}
