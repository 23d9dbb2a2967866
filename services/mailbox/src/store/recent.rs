//! RFC 3501 §2.3.2 `\Recent`: a message is recent to the first session told of it with its mailbox
//! selected read-write, and to no other. `mailboxes.first_recent_uid` marks the UIDs no such session has
//! claimed yet (every UID at or above it, as Dovecot's index header); a session claims what it has been
//! told of by moving the mark up, under the mailbox row lock, so two sessions never claim the same UID.

use mailbus_address::MailboxId;
use sqlx::PgPool;

use crate::error::MailboxError;

/// Moves the mailbox's mark up to `below` (one past the last UID the session was told of) and returns where
/// it was: the UIDs from there up to `below` are recent to the caller alone. A mark already at or past
/// `below` stays, and the caller gets nothing (another session was told first).
pub(crate) async fn claim(pool: &PgPool, mailbox: MailboxId, below: i64) -> Result<i64, MailboxError> {
    let mut tx = pool.begin().await?;
    // The row lock every change to the mailbox takes: a concurrent claim waits here, then reads the mark
    // as that one left it.
    let mark: Option<i64> = sqlx::query_scalar("SELECT first_recent_uid FROM mailboxes WHERE id = $1 FOR UPDATE")
        .bind(mailbox.get())
        .fetch_optional(&mut *tx)
        .await?;
    let Some(mark) = mark else {
        // Deleted meanwhile: nothing to claim.
        return Ok(below);
    };
    if mark < below {
        sqlx::query("UPDATE mailboxes SET first_recent_uid = $2 WHERE id = $1")
            .bind(mailbox.get())
            .bind(below)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(mark)
}
