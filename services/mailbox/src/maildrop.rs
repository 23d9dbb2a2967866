//! Mailboxes and the messages in them: delivery, listing, reading and expunging.

use sqlx::{PgConnection, PgPool};

use crate::error::MailboxError;

/// A delivered (or previously delivered) message's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub account_id: i64,
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uid: u32,
    pub modseq: i64,
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub messages: Vec<Summary>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub uid: u32,
    pub size: u64,
    pub internal_date_unix: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expunged {
    pub uidvalidity: u32,
    pub uids: Vec<u32>,
    pub modseq: i64,
}

/// A locked mailbox row, inside a transaction.
struct Locked {
    id: i64,
    uidvalidity: i64,
    uidnext: i64,
    highestmodseq: i64,
}

/// UIDVALIDITY for a new mailbox: the creation time in seconds, as Dovecot does, so a mailbox deleted and
/// created again gets a new one.
pub async fn create_mailbox(
    conn: &mut PgConnection,
    account_id: i64,
    name: &str,
    special_use: Option<&str>,
) -> Result<(), MailboxError> {
    sqlx::query(
        "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use)
         VALUES ($1, $2, greatest(1, extract(epoch FROM clock_timestamp())::bigint % 4294967296), $3)",
    )
    .bind(account_id)
    .bind(name)
    .bind(special_use)
    .execute(conn)
    .await?;
    Ok(())
}

/// Refuses to add `messages` entries of `bytes` octets in all to an account that would then exceed its
/// quota. Called under a mailbox lock; the usage itself is kept by a trigger on `mailbox_entries`.
pub(crate) async fn check_quota(
    conn: &mut PgConnection,
    account_id: i64,
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
           FROM accounts WHERE id = $1",
    )
    .bind(account_id)
    .bind(messages)
    .bind(bytes)
    .fetch_optional(conn)
    .await?;
    match over.flatten() {
        Some(why) => Err(MailboxError::OverQuota(why)),
        None => Ok(()),
    }
}

/// Locks a mailbox row for the rest of the transaction. Every change to a mailbox takes this lock first,
/// which is what keeps UIDs strictly increasing under parallel deliveries.
async fn lock(conn: &mut PgConnection, account_id: i64, name: &str) -> Result<Locked, MailboxError> {
    let row: Option<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, uidvalidity, uidnext, highestmodseq FROM mailboxes
          WHERE account_id = $1 AND name = $2 FOR UPDATE",
    )
    .bind(account_id)
    .bind(name)
    .fetch_optional(conn)
    .await?;
    let (id, uidvalidity, uidnext, highestmodseq) =
        row.ok_or_else(|| MailboxError::NotFound(format!("mailbox {name:?} not found")))?;
    Ok(Locked { id, uidvalidity, uidnext, highestmodseq })
}

/// Delivers a message into an account's INBOX, once per (queue id, recipient).
pub async fn deliver(
    pool: &PgPool,
    account_id: i64,
    queue_id: &str,
    recipient: &str,
    content: &[u8],
) -> Result<Placed, MailboxError> {
    const INBOX: &str = "INBOX";
    let mut tx = pool.begin().await?;
    let mailbox = lock(&mut tx, account_id, INBOX).await?;
    // Under the mailbox lock a concurrent delivery of the same key has either committed (and is seen
    // here) or not started.
    let earlier: Option<i64> =
        sqlx::query_scalar("SELECT uid FROM deliveries WHERE queue_id = $1 AND recipient = $2 AND mailbox_id = $3")
            .bind(queue_id)
            .bind(recipient)
            .bind(mailbox.id)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(uid) = earlier {
        return Ok(Placed {
            account_id,
            mailbox: INBOX.into(),
            uidvalidity: mailbox.uidvalidity as u32,
            uid: uid as u32,
            modseq: mailbox.highestmodseq,
            duplicate: true,
        });
    }
    if mailbox.uidnext > i64::from(u32::MAX) {
        return Err(MailboxError::FailedPrecondition(format!("mailbox {INBOX} has run out of UIDs")));
    }
    check_quota(&mut tx, account_id, 1, content.len() as i64).await?;
    let (uid, modseq) = (mailbox.uidnext, mailbox.highestmodseq + 1);
    let message_id: i64 =
        sqlx::query_scalar("INSERT INTO messages (account_id, content, size) VALUES ($1, $2, $3) RETURNING id")
            .bind(account_id)
            .bind(content)
            .bind(content.len() as i64)
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query("INSERT INTO mailbox_entries (mailbox_id, uid, message_id, modseq) VALUES ($1, $2, $3, $4)")
        .bind(mailbox.id)
        .bind(uid)
        .bind(message_id)
        .bind(modseq)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE mailboxes SET uidnext = $2, highestmodseq = $3 WHERE id = $1")
        .bind(mailbox.id)
        .bind(uid + 1)
        .bind(modseq)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO deliveries (queue_id, recipient, mailbox_id, uid) VALUES ($1, $2, $3, $4)")
        .bind(queue_id)
        .bind(recipient)
        .bind(mailbox.id)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Placed {
        account_id,
        mailbox: INBOX.into(),
        uidvalidity: mailbox.uidvalidity as u32,
        uid: uid as u32,
        modseq,
        duplicate: false,
    })
}

async fn mailbox_id(pool: &PgPool, account_id: i64, name: &str) -> Result<(i64, i64, i64), MailboxError> {
    let row: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT id, uidvalidity, uidnext FROM mailboxes WHERE account_id = $1 AND name = $2")
            .bind(account_id)
            .bind(name)
            .fetch_optional(pool)
            .await?;
    row.ok_or_else(|| MailboxError::NotFound(format!("mailbox {name:?} not found")))
}

pub async fn list(pool: &PgPool, account_id: i64, name: &str) -> Result<Listing, MailboxError> {
    let (id, uidvalidity, uidnext) = mailbox_id(pool, account_id, name).await?;
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT e.uid, m.size, extract(epoch FROM m.internal_date)::bigint
           FROM mailbox_entries e JOIN messages m ON m.id = e.message_id
          WHERE e.mailbox_id = $1 AND e.expunged_modseq IS NULL
          ORDER BY e.uid",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(Listing {
        uidvalidity: uidvalidity as u32,
        // UIDNEXT may be 2^32 once the last UID is used; clients see the largest value that fits.
        uidnext: u32::try_from(uidnext).unwrap_or(u32::MAX),
        messages: rows
            .into_iter()
            .map(|(uid, size, date)| Summary { uid: uid as u32, size: size as u64, internal_date_unix: date })
            .collect(),
    })
}

pub async fn content(pool: &PgPool, account_id: i64, name: &str, uid: u32) -> Result<Vec<u8>, MailboxError> {
    let (id, _, _) = mailbox_id(pool, account_id, name).await?;
    let content: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT m.content FROM mailbox_entries e JOIN messages m ON m.id = e.message_id
          WHERE e.mailbox_id = $1 AND e.uid = $2 AND e.expunged_modseq IS NULL",
    )
    .bind(id)
    .bind(i64::from(uid))
    .fetch_optional(pool)
    .await?;
    content.ok_or_else(|| MailboxError::NotFound(format!("message {uid} not found in {name:?}")))
}

/// Expunges the given UIDs: their entries stay as tombstones with the new MODSEQ, and message contents
/// that no entry references any more are deleted.
pub async fn expunge(pool: &PgPool, account_id: i64, name: &str, uids: &[u32]) -> Result<Expunged, MailboxError> {
    let mut tx = pool.begin().await?;
    let mailbox = lock(&mut tx, account_id, name).await?;
    let modseq = mailbox.highestmodseq + 1;
    let uids: Vec<i64> = uids.iter().map(|&u| i64::from(u)).collect();
    let gone: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT uid, message_id FROM mailbox_entries
          WHERE mailbox_id = $1 AND uid = ANY($2) AND expunged_modseq IS NULL ORDER BY uid",
    )
    .bind(mailbox.id)
    .bind(&uids)
    .fetch_all(&mut *tx)
    .await?;
    if gone.is_empty() {
        tx.commit().await?;
        return Ok(Expunged {
            uidvalidity: mailbox.uidvalidity as u32,
            uids: Vec::new(),
            modseq: mailbox.highestmodseq,
        });
    }
    let (gone_uids, message_ids): (Vec<i64>, Vec<i64>) = gone.into_iter().unzip();
    mark_expunged(&mut tx, mailbox.id, &gone_uids, modseq).await?;
    sqlx::query(
        "DELETE FROM messages m WHERE m.id = ANY($1)
            AND NOT EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.message_id = m.id)",
    )
    .bind(&message_ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE mailboxes SET highestmodseq = $2 WHERE id = $1")
        .bind(mailbox.id)
        .bind(modseq)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Expunged {
        uidvalidity: mailbox.uidvalidity as u32,
        uids: gone_uids.into_iter().map(|u| u as u32).collect(),
        modseq,
    })
}

/// The outcome of a move: the source's expunged UIDs and the UIDs they got in the target, in the same
/// order (RFC 4315 COPYUID / RFC 6851).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub source: Expunged,
    pub target_uidvalidity: u32,
    pub target_uids: Vec<u32>,
    pub target_modseq: i64,
}

/// Moves messages between two mailboxes of one account, in one transaction: each gets the target's next
/// UID and keeps its content (stored once) and flags; the source keeps a tombstone.
/// Records `uids` of a mailbox as expunged at `modseq`: each row keeps its UID and MODSEQ (so no UID is
/// reused and QRESYNC can report it VANISHED) and lets go of its message.
async fn mark_expunged(conn: &mut PgConnection, mailbox_id: i64, uids: &[i64], modseq: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE mailbox_entries SET expunged_modseq = $3, message_id = NULL, modseq = $3
          WHERE mailbox_id = $1 AND uid = ANY($2)",
    )
    .bind(mailbox_id)
    .bind(uids)
    .bind(modseq)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn move_messages(
    pool: &PgPool,
    account_id: i64,
    from: &str,
    to: &str,
    uids: &[u32],
) -> Result<Moved, MailboxError> {
    if from == to {
        return Err(MailboxError::InvalidArgument("source and target mailbox are the same".into()));
    }
    let mut tx = pool.begin().await?;
    // Lock in a fixed order (by name) so that two opposite moves cannot deadlock.
    let (first, second) = if from < to { (from, to) } else { (to, from) };
    let a = lock(&mut tx, account_id, first).await?;
    let b = lock(&mut tx, account_id, second).await?;
    let (source, target) = if from < to { (a, b) } else { (b, a) };
    let uids: Vec<i64> = uids.iter().map(|&u| i64::from(u)).collect();
    let moving: Vec<(i64, i64, Vec<String>)> = sqlx::query_as(
        "SELECT uid, message_id, flags FROM mailbox_entries
          WHERE mailbox_id = $1 AND uid = ANY($2) AND expunged_modseq IS NULL ORDER BY uid",
    )
    .bind(source.id)
    .bind(&uids)
    .fetch_all(&mut *tx)
    .await?;
    let (source_modseq, target_modseq) = (source.highestmodseq + 1, target.highestmodseq + 1);
    if target.uidnext + moving.len() as i64 > i64::from(u32::MAX) + 1 {
        return Err(MailboxError::FailedPrecondition(format!("mailbox {to:?} has run out of UIDs")));
    }
    let mut target_uids = Vec::with_capacity(moving.len());
    for (offset, (_, message_id, flags)) in moving.iter().enumerate() {
        let uid = target.uidnext + offset as i64;
        sqlx::query(
            "INSERT INTO mailbox_entries (mailbox_id, uid, message_id, flags, modseq) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(target.id)
        .bind(uid)
        .bind(message_id)
        .bind(flags)
        .bind(target_modseq)
        .execute(&mut *tx)
        .await?;
        target_uids.push(uid as u32);
    }
    let moved_uids: Vec<i64> = moving.iter().map(|(uid, _, _)| *uid).collect();
    mark_expunged(&mut tx, source.id, &moved_uids, source_modseq).await?;
    if !moving.is_empty() {
        sqlx::query("UPDATE mailboxes SET highestmodseq = $2 WHERE id = $1")
            .bind(source.id)
            .bind(source_modseq)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE mailboxes SET uidnext = uidnext + $2, highestmodseq = $3 WHERE id = $1")
            .bind(target.id)
            .bind(moving.len() as i64)
            .bind(target_modseq)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Moved {
        source: Expunged {
            uidvalidity: source.uidvalidity as u32,
            uids: moved_uids.into_iter().map(|u| u as u32).collect(),
            modseq: source_modseq,
        },
        target_uidvalidity: target.uidvalidity as u32,
        target_uids,
        target_modseq,
    })
}
