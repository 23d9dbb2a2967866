//! Reading messages back out: a mailbox's listing and one message's octets (POP3's LIST, UIDL and RETR),
//! and what FETCH reads: the entries' metadata and stored structure first, then octets by message, whole
//! or just the header.

use std::collections::HashMap;

use mailbus_address::{AccountId, MailboxName, Uid};
use sqlx::PgPool;

use crate::error::MailboxError;
use crate::store::mailboxes;
use crate::store::uid_column;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub messages: Vec<Summary>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Summary {
    #[sqlx(try_from = "i64")]
    pub uid: Uid,
    #[sqlx(try_from = "i64")]
    pub size: u64,
    pub internal_date_unix: i64,
}

/// The live messages of a mailbox, in UID order.
pub async fn list(pool: &PgPool, account: AccountId, name: &MailboxName) -> Result<Listing, MailboxError> {
    let mailbox = mailboxes::find(pool, account, name).await?;
    let messages: Vec<Summary> = sqlx::query_as(
        "SELECT e.uid, m.size, extract(epoch FROM m.internal_date)::bigint AS internal_date_unix
           FROM mailbox_entries e JOIN messages m ON m.id = e.message_id
          WHERE e.mailbox_id = $1 AND e.expunged_modseq IS NULL
          ORDER BY e.uid",
    )
    .bind(mailbox.id.get())
    .fetch_all(pool)
    .await?;
    Ok(Listing {
        uidvalidity: mailbox.uidvalidity as u32,
        // UIDNEXT may be 2^32 once the last UID is used; clients see the largest value that fits.
        uidnext: u32::try_from(mailbox.uidnext).unwrap_or(u32::MAX),
        messages,
    })
}

/// One live message's octets.
pub async fn content(pool: &PgPool, account: AccountId, name: &MailboxName, uid: Uid) -> Result<Vec<u8>, MailboxError> {
    let mailbox = mailboxes::find(pool, account, name).await?;
    let content: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT m.content FROM mailbox_entries e JOIN messages m ON m.id = e.message_id
          WHERE e.mailbox_id = $1 AND e.uid = $2 AND e.expunged_modseq IS NULL",
    )
    .bind(mailbox.id.get())
    .bind(i64::from(uid))
    .fetch_optional(pool)
    .await?;
    content.ok_or_else(|| MailboxError::NotFound(format!("message {uid} not found in {:?}", name.as_str())))
}

/// What FETCH reads of an entry before any octets.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FetchRow {
    #[sqlx(try_from = "i64")]
    pub uid: Uid,
    pub flags: Vec<String>,
    #[sqlx(try_from = "i64")]
    pub modseq: u64,
    pub internal_date_unix: i64,
    /// RFC 8514 SAVEDATE: when the entry was saved into the mailbox (migration 0016).
    pub saved_unix: i64,
    #[sqlx(try_from = "i64")]
    pub size: u64,
    pub message_id: i64,
    /// The id of the thread's first message (migration 0006), JMAP's Thread id without its letter; a
    /// message stored before threading is a thread of its own, as JMAP's Email/get says.
    pub thread_id: i64,
    /// `mailbus.v1.MessageStructure`, protobuf-encoded; None for a row not parsed yet.
    pub structure: Option<Vec<u8>>,
    /// JMAP's Email preview (migration 0008); None for a message stored before it.
    pub preview: Option<String>,
}

/// The entries of `uids` (with `changed_since`, only those changed after it), in UID order.
pub async fn fetch_rows(
    pool: &PgPool,
    account: AccountId,
    name: &MailboxName,
    uids: &[Uid],
    changed_since: Option<u64>,
) -> Result<(Vec<FetchRow>, u64), MailboxError> {
    let mailbox = mailboxes::find(pool, account, name).await?;
    let rows = sqlx::query_as(
        "SELECT e.uid, e.flags, e.modseq, extract(epoch FROM m.internal_date)::bigint AS internal_date_unix,
                extract(epoch FROM coalesce(e.saved_at, m.internal_date))::bigint AS saved_unix, m.size, m.id AS message_id,
                coalesce(m.thread_id, m.id) AS thread_id, m.structure, m.preview
           FROM mailbox_entries e JOIN messages m ON m.id = e.message_id
          WHERE e.mailbox_id = $1 AND e.expunged_modseq IS NULL AND e.uid = ANY($2)
            AND ($3::bigint IS NULL OR e.modseq > $3)
          ORDER BY e.uid",
    )
    .bind(mailbox.id.get())
    .bind(uid_column(uids))
    .bind(changed_since.map(|m| m.min(i64::MAX as u64) as i64))
    .fetch_all(pool)
    .await?;
    Ok((rows, mailbox.highestmodseq.max(0) as u64))
}

#[derive(sqlx::FromRow)]
struct Octets {
    id: i64,
    content: Vec<u8>,
}

/// The octets of messages by id: whole, or (`header_only`) just their headers.
pub async fn octets(
    pool: &PgPool,
    message_ids: &[i64],
    header_only: bool,
) -> Result<HashMap<i64, Vec<u8>>, MailboxError> {
    let query = if header_only {
        "SELECT id, substring(content FROM 1 FOR coalesce(header_size, size::integer)) AS content
           FROM messages WHERE id = ANY($1)"
    } else {
        "SELECT id, content FROM messages WHERE id = ANY($1)"
    };
    let rows: Vec<Octets> = sqlx::query_as(query).bind(message_ids).fetch_all(pool).await?;
    Ok(rows.into_iter().map(|row| (row.id, row.content)).collect())
}
