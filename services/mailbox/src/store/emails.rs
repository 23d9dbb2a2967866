//! JMAP's view of messages (RFC 8621 §4): an Email is a message row that at least one live mailbox entry
//! holds; its mailboxes are those entries' mailboxes and its keywords their flags. Reads for Email/get,
//! SearchSnippet/get and the writes' planning; the writes themselves go through `messages` so that UIDs,
//! MODSEQs and IMAP's events stay right. Every query names the account.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mailbus_address::{AccountId, MailboxId, MailboxName, Uid};
use sqlx::PgPool;

use crate::error::MailboxError;

/// What Email/get reads of a message besides its entries and its octets (`contents`, read in batches).
#[derive(Debug, sqlx::FromRow)]
pub struct EmailRow {
    pub id: i64,
    pub thread_id: Option<i64>,
    pub size: i64,
    pub internal_date: DateTime<Utc>,
    pub has_attachment: Option<bool>,
    /// JMAP's preview as parsed at delivery; `None` for messages stored before it was kept.
    pub preview: Option<String>,
}

/// The most messages one `contents` call reads, and the octets it aims to stay under: a `/get` of 500
/// large messages must not hold them all at once.
pub const CONTENT_BATCH_MESSAGES: usize = 25;
pub const CONTENT_BATCH_BYTES: i64 = 4 * 1024 * 1024;

/// One live entry of an email: where it is, and its flags.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EmailEntry {
    pub message_id: i64,
    #[sqlx(try_from = "i64")]
    pub mailbox_id: MailboxId,
    pub mailbox_name: String,
    #[sqlx(try_from = "i64")]
    pub uid: Uid,
    pub flags: Vec<String>,
}

impl EmailEntry {
    /// The mailbox's name; names in the table were checked when written.
    pub fn mailbox(&self) -> Result<MailboxName, MailboxError> {
        self.mailbox_name
            .parse()
            .map_err(|e| MailboxError::InvalidArgument(format!("stored mailbox name {:?}: {e}", self.mailbox_name)))
    }
}

/// The account's emails among `ids` (those that exist: some live entry holds them), without their octets.
pub async fn rows(pool: &PgPool, account: AccountId, ids: &[i64]) -> Result<Vec<EmailRow>, MailboxError> {
    let rows = sqlx::query_as(
        "SELECT m.id, m.thread_id, m.size, m.internal_date, m.has_attachment, m.preview
           FROM messages m
          WHERE m.account_id = $1 AND m.id = ANY($2)
            AND EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.message_id = m.id)",
    )
    .bind(account.get())
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// `(id, size)` pairs cut, in order, into the batches `contents` should read: at most
/// `CONTENT_BATCH_MESSAGES` each, and no more than `CONTENT_BATCH_BYTES` unless one message alone is larger.
pub fn content_batches(sized: impl IntoIterator<Item = (i64, i64)>) -> Vec<Vec<i64>> {
    let mut batches: Vec<Vec<i64>> = Vec::new();
    let mut bytes = 0i64;
    for (id, size) in sized {
        let size = size.max(0);
        match batches.last_mut() {
            Some(batch)
                if batch.len() < CONTENT_BATCH_MESSAGES && bytes.saturating_add(size) <= CONTENT_BATCH_BYTES =>
            {
                batch.push(id);
                bytes = bytes.saturating_add(size);
            }
            _ => {
                batches.push(vec![id]);
                bytes = size;
            }
        }
    }
    batches
}

/// The octets of the account's emails among `ids` (one batch of `content_batches`), by id.
pub async fn contents(pool: &PgPool, account: AccountId, ids: &[i64]) -> Result<HashMap<i64, Vec<u8>>, MailboxError> {
    #[derive(sqlx::FromRow)]
    struct Stored {
        id: i64,
        content: Vec<u8>,
    }
    let found: Vec<Stored> = sqlx::query_as(
        "SELECT m.id, m.content FROM messages m
          WHERE m.account_id = $1 AND m.id = ANY($2)
            AND EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.message_id = m.id)",
    )
    .bind(account.get())
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(found.into_iter().map(|s| (s.id, s.content)).collect())
}

/// The header of each of the account's live emails among `ids` (the blank line included), by id: what
/// the header properties of Email/get need, without reading any body. A message not parsed yet (no
/// `header_size`) comes whole.
pub async fn headers(pool: &PgPool, account: AccountId, ids: &[i64]) -> Result<HashMap<i64, Vec<u8>>, MailboxError> {
    #[derive(sqlx::FromRow)]
    struct Stored {
        id: i64,
        header: Vec<u8>,
    }
    let found: Vec<Stored> = sqlx::query_as(
        "SELECT m.id, substring(m.content FROM 1 FOR coalesce(m.header_size, octet_length(m.content))) AS header
           FROM messages m
          WHERE m.account_id = $1 AND m.id = ANY($2)
            AND EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.message_id = m.id)",
    )
    .bind(account.get())
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(found.into_iter().map(|s| (s.id, s.header)).collect())
}

/// The live entries of the account's emails among `ids`, by email, each email's in mailbox order.
pub async fn entries(
    pool: &PgPool,
    account: AccountId,
    ids: &[i64],
) -> Result<HashMap<i64, Vec<EmailEntry>>, MailboxError> {
    let found: Vec<EmailEntry> = sqlx::query_as(
        "SELECT e.message_id, e.mailbox_id, b.name AS mailbox_name, e.uid, e.flags
           FROM mailbox_entries e JOIN mailboxes b ON b.id = e.mailbox_id
          WHERE b.account_id = $1 AND e.message_id = ANY($2)
          ORDER BY e.message_id, e.mailbox_id, e.uid",
    )
    .bind(account.get())
    .bind(ids)
    .fetch_all(pool)
    .await?;
    let mut by_email: HashMap<i64, Vec<EmailEntry>> = HashMap::new();
    for entry in found {
        by_email.entry(entry.message_id).or_default().push(entry);
    }
    Ok(by_email)
}

/// The account's mailboxes among `ids`, by id.
pub async fn mailbox_names(
    pool: &PgPool,
    account: AccountId,
    ids: &[i64],
) -> Result<HashMap<i64, MailboxName>, MailboxError> {
    #[derive(sqlx::FromRow)]
    struct Named {
        id: i64,
        name: String,
    }
    let found: Vec<Named> = sqlx::query_as("SELECT id, name FROM mailboxes WHERE account_id = $1 AND id = ANY($2)")
        .bind(account.get())
        .bind(ids)
        .fetch_all(pool)
        .await?;
    Ok(found.into_iter().filter_map(|n| Some((n.id, n.name.parse().ok()?))).collect())
}

/// An uploaded blob (RFC 8620 §6.1) of the account.
#[derive(Debug, sqlx::FromRow)]
pub struct Upload {
    pub media_type: String,
    pub content: Vec<u8>,
}

pub async fn upload(pool: &PgPool, account: AccountId, id: i64) -> Result<Option<Upload>, MailboxError> {
    Ok(sqlx::query_as("SELECT media_type, content FROM blobs WHERE account_id = $1 AND id = $2")
        .bind(account.get())
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// The octets of one of the account's emails (one that exists).
pub async fn content(pool: &PgPool, account: AccountId, id: i64) -> Result<Option<Vec<u8>>, MailboxError> {
    Ok(sqlx::query_scalar(
        "SELECT m.content FROM messages m
          WHERE m.account_id = $1 AND m.id = $2
            AND EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.message_id = m.id)",
    )
    .bind(account.get())
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The email a mailbox entry holds, after an append.
pub async fn message_at(
    pool: &PgPool,
    mailbox: &MailboxName,
    account: AccountId,
    uid: Uid,
) -> Result<i64, MailboxError> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT e.message_id FROM mailbox_entries e JOIN mailboxes b ON b.id = e.mailbox_id
          WHERE b.account_id = $1 AND b.name = $2 AND e.uid = $3 AND e.message_id IS NOT NULL",
    )
    .bind(account.get())
    .bind(mailbox.as_str())
    .bind(i64::from(uid))
    .fetch_optional(pool)
    .await?;
    id.ok_or_else(|| MailboxError::NotFound(format!("message {uid} of {:?}", mailbox.as_str())))
}

/// Email ids (with their threads) changed after `since` in the account's log, oldest change first.
pub async fn changed_since(pool: &PgPool, account: AccountId, since: i64) -> Result<Vec<i64>, MailboxError> {
    Ok(sqlx::query_scalar(
        "SELECT object_id FROM changes WHERE account_id = $1 AND kind = 'E' AND seq > $2
          GROUP BY object_id ORDER BY min(seq)",
    )
    .bind(account.get())
    .bind(since)
    .fetch_all(pool)
    .await?)
}

/// Email ids with their thread ids, for the threads of the given emails' collapse in queryChanges.
pub async fn threads_of(pool: &PgPool, account: AccountId, ids: &[i64]) -> Result<HashMap<i64, i64>, MailboxError> {
    #[derive(sqlx::FromRow)]
    struct Threaded {
        id: i64,
        thread_id: Option<i64>,
    }
    let found: Vec<Threaded> =
        sqlx::query_as("SELECT id, thread_id FROM messages WHERE account_id = $1 AND id = ANY($2)")
            .bind(account.get())
            .bind(ids)
            .fetch_all(pool)
            .await?;
    Ok(found.into_iter().map(|t| (t.id, t.thread_id.unwrap_or(t.id))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_are_read_in_bounded_batches() {
        let small = content_batches((1..=60).map(|id| (id, 100)));
        assert_eq!(small.iter().map(Vec::len).collect::<Vec<_>>(), [25, 25, 10]);
        assert_eq!(small.concat(), (1..=60).collect::<Vec<_>>(), "every id once, in order");
        let mb = 1024 * 1024;
        let large = content_batches([(1, 3 * mb), (2, 2 * mb), (3, 10 * mb), (4, mb), (5, mb)]);
        assert_eq!(large, [vec![1], vec![2], vec![3], vec![4, 5]], "a large message is a batch of its own");
        assert!(content_batches([]).is_empty());
    }
}
