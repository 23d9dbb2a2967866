//! Messages in mailboxes: delivery and append, flags, copy and move, expunge, and reading a mailbox's
//! listing and octets. Every change locks its mailbox row first and is one transaction.

use sqlx::{PgConnection, PgPool};

use crate::error::MailboxError;
use crate::mailboxes::EntryState;
use crate::mime::Parsed;
use crate::names::{self, INBOX};

/// A delivered, appended (or previously delivered) message's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
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
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uids: Vec<u32>,
    pub modseq: i64,
}

/// The outcome of a copy or move: the source UIDs and the UIDs they got in the target, in the same order
/// (RFC 4315 COPYUID / RFC 6851); for a move, the source's expunge too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub source_uids: Vec<u32>,
    pub target: String,
    pub target_uidvalidity: u32,
    pub target_uids: Vec<u32>,
    pub target_modseq: i64,
    pub expunged: Option<Expunged>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Replace,
    Add,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub uidvalidity: u32,
    /// Every entry that passed the UNCHANGEDSINCE test, with its flags after the change.
    pub updated: Vec<EntryState>,
    /// The UIDs whose flags actually changed: they got `modseq`.
    pub changed: Vec<u32>,
    /// UIDs that failed the UNCHANGEDSINCE test.
    pub modified: Vec<u32>,
    pub modseq: i64,
}

/// A locked mailbox row, inside a transaction.
#[derive(Clone)]
struct Locked {
    id: i64,
    name: String,
    uidvalidity: i64,
    uidnext: i64,
    highestmodseq: i64,
}

impl Locked {
    /// Refuses `count` more UIDs when they would pass 2^32 - 1 (RFC 9051 §2.3.1.1).
    fn room_for(&self, count: usize) -> Result<(), MailboxError> {
        if self.uidnext + count as i64 > i64::from(u32::MAX) + 1 {
            return Err(MailboxError::FailedPrecondition(format!("mailbox {:?} has run out of UIDs", self.name)));
        }
        Ok(())
    }
}

/// Refuses to add `messages` entries of `bytes` octets in all to an account that would then exceed its
/// quota. Called under a mailbox lock; the usage itself is kept by a trigger on `mailbox_entries`. The
/// accounts row is locked (as the trigger would lock it anyway, and in the same order) so that two
/// changes in different mailboxes cannot both pass the check on the same usage.
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
           FROM accounts WHERE id = $1
            FOR NO KEY UPDATE",
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
/// which is what keeps UIDs strictly increasing and flag changes whole under parallel sessions.
async fn lock(conn: &mut PgConnection, account_id: i64, name: &str) -> Result<Locked, MailboxError> {
    let name = names::mailbox_name(name)?;
    let row: Option<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, uidvalidity, uidnext, highestmodseq FROM mailboxes
          WHERE account_id = $1 AND name = $2 FOR UPDATE",
    )
    .bind(account_id)
    .bind(&name)
    .fetch_optional(conn)
    .await?;
    let (id, uidvalidity, uidnext, highestmodseq) =
        row.ok_or_else(|| MailboxError::NotFound(format!("mailbox {name:?} not found")))?;
    Ok(Locked { id, name, uidvalidity, uidnext, highestmodseq })
}

/// Sets a locked mailbox's UIDNEXT and HIGHESTMODSEQ after a change.
async fn advance(conn: &mut PgConnection, mailbox: &Locked, uidnext: i64, modseq: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE mailboxes SET uidnext = $2, highestmodseq = $3 WHERE id = $1")
        .bind(mailbox.id)
        .bind(uidnext)
        .bind(modseq)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a message's octets and what was parsed from them, once; entries point at it.
async fn insert_message(
    conn: &mut PgConnection,
    account_id: i64,
    content: &[u8],
    parsed: &Parsed,
    internal_date_unix: Option<i64>,
) -> Result<i64, MailboxError> {
    use sqlx::Row as _;
    let insert = sqlx::query(
        "INSERT INTO messages (account_id, content, size, internal_date, structure, sent_at,
                               header_names, header_values, body_text, header_size)
         VALUES ($1, $2, $3, coalesce(to_timestamp($4), now()), $5, to_timestamp($6), $7, $8,
                 to_tsvector('simple', $9), $10)
         RETURNING id",
    )
    .bind(account_id)
    .bind(content)
    .bind(content.len() as i64)
    .bind(internal_date_unix.map(|t| t as f64));
    let id: i64 = crate::mime::bind_parsed(insert, parsed).fetch_one(conn).await?.try_get(0)?;
    Ok(id)
}

async fn insert_entry(
    conn: &mut PgConnection,
    mailbox: &Locked,
    uid: i64,
    message_id: i64,
    flags: &[String],
    modseq: i64,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO mailbox_entries (mailbox_id, uid, message_id, flags, modseq) VALUES ($1, $2, $3, $4, $5)")
        .bind(mailbox.id)
        .bind(uid)
        .bind(message_id)
        .bind(flags)
        .bind(modseq)
        .execute(conn)
        .await?;
    Ok(())
}

/// Delivers a message into an account's INBOX, once per (queue id, recipient, account).
pub async fn deliver(
    pool: &PgPool,
    account_id: i64,
    queue_id: &str,
    recipient: &str,
    content: &[u8],
    parsed: &Parsed,
) -> Result<Placed, MailboxError> {
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
            mailbox: mailbox.name,
            uidvalidity: mailbox.uidvalidity as u32,
            uid: uid as u32,
            modseq: mailbox.highestmodseq,
            duplicate: true,
        });
    }
    let placed = add(&mut tx, account_id, &mailbox, content, parsed, &[], None).await?;
    sqlx::query("INSERT INTO deliveries (queue_id, recipient, mailbox_id, uid) VALUES ($1, $2, $3, $4)")
        .bind(queue_id)
        .bind(recipient)
        .bind(mailbox.id)
        .bind(i64::from(placed.uid))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(placed)
}

/// Adds a new message to a locked mailbox: quota, octets, entry, UIDNEXT and MODSEQ.
async fn add(
    conn: &mut PgConnection,
    account_id: i64,
    mailbox: &Locked,
    content: &[u8],
    parsed: &Parsed,
    flags: &[String],
    internal_date_unix: Option<i64>,
) -> Result<Placed, MailboxError> {
    mailbox.room_for(1)?;
    check_quota(conn, account_id, 1, content.len() as i64).await?;
    let (uid, modseq) = (mailbox.uidnext, mailbox.highestmodseq + 1);
    let message_id = insert_message(conn, account_id, content, parsed, internal_date_unix).await?;
    insert_entry(conn, mailbox, uid, message_id, flags, modseq).await?;
    advance(conn, mailbox, uid + 1, modseq).await?;
    Ok(Placed {
        mailbox: mailbox.name.clone(),
        uidvalidity: mailbox.uidvalidity as u32,
        uid: uid as u32,
        modseq,
        duplicate: false,
    })
}

/// IMAP APPEND: a message into any mailbox of the account, with flags and an internal date.
pub async fn append(
    pool: &PgPool,
    account_id: i64,
    mailbox: &str,
    flags: &[String],
    internal_date_unix: Option<i64>,
    content: &[u8],
    parsed: &Parsed,
) -> Result<Placed, MailboxError> {
    let flags = names::flags(flags)?;
    // RFC 9051 date-time: years 1900 to 9999 (so PostgreSQL's timestamp range is never left).
    const DATES: std::ops::RangeInclusive<i64> = -2_208_988_800..=253_402_300_799;
    if let Some(date) = internal_date_unix.filter(|d| !DATES.contains(d)) {
        return Err(MailboxError::InvalidArgument(format!("internal date {date} is out of range")));
    }
    let mut tx = pool.begin().await?;
    let mailbox = lock(&mut tx, account_id, mailbox).await?;
    let placed = add(&mut tx, account_id, &mailbox, content, parsed, &flags, internal_date_unix).await?;
    tx.commit().await?;
    Ok(placed)
}

async fn mailbox_id(pool: &PgPool, account_id: i64, name: &str) -> Result<(i64, i64, i64), MailboxError> {
    let name = names::mailbox_name(name)?;
    let row: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT id, uidvalidity, uidnext FROM mailboxes WHERE account_id = $1 AND name = $2")
            .bind(account_id)
            .bind(&name)
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

/// Deletes the octets of messages that no entry references any more. The rows are locked first: two
/// transactions dropping the last two references to one message each see the other's reference in
/// their snapshot, but the second to get the lock looks again after the first committed.
pub(crate) async fn free_unreferenced(conn: &mut PgConnection, message_ids: &[i64]) -> sqlx::Result<()> {
    sqlx::query("SELECT id FROM messages WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(message_ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "DELETE FROM messages m WHERE m.id = ANY($1)
            AND NOT EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.message_id = m.id)",
    )
    .bind(message_ids)
    .execute(conn)
    .await?;
    Ok(())
}

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

fn to_i64(uids: &[u32]) -> Vec<i64> {
    uids.iter().map(|&u| i64::from(u)).collect()
}

/// Expunges the given UIDs (with `deleted_only`, those of them that have \Deleted; no UIDs, nothing): their entries stay as tombstones with the new MODSEQ, and octets that no entry
/// references any more are deleted.
pub async fn expunge(
    pool: &PgPool,
    account_id: i64,
    name: &str,
    uids: &[u32],
    deleted_only: bool,
) -> Result<Expunged, MailboxError> {
    let mut tx = pool.begin().await?;
    let mailbox = lock(&mut tx, account_id, name).await?;
    let gone: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT uid, message_id FROM mailbox_entries
          WHERE mailbox_id = $1 AND expunged_modseq IS NULL
            AND uid = ANY($2)
            AND (NOT $3 OR flags @> '{\\\\Deleted}')
          ORDER BY uid",
    )
    .bind(mailbox.id)
    .bind(to_i64(uids))
    .bind(deleted_only)
    .fetch_all(&mut *tx)
    .await?;
    let (gone_uids, message_ids): (Vec<i64>, Vec<i64>) = gone.into_iter().unzip();
    let expunged = expunge_locked(&mut tx, &mailbox, &gone_uids).await?;
    free_unreferenced(&mut tx, &message_ids).await?;
    tx.commit().await?;
    Ok(expunged)
}

async fn expunge_locked(conn: &mut PgConnection, mailbox: &Locked, uids: &[i64]) -> Result<Expunged, MailboxError> {
    let mut modseq = mailbox.highestmodseq;
    if !uids.is_empty() {
        modseq += 1;
        mark_expunged(conn, mailbox.id, uids, modseq).await?;
        advance(conn, mailbox, mailbox.uidnext, modseq).await?;
    }
    Ok(Expunged {
        mailbox: mailbox.name.clone(),
        uidvalidity: mailbox.uidvalidity as u32,
        uids: uids.iter().map(|&u| u as u32).collect(),
        modseq,
    })
}

/// Copies (or, with `expunge_source`, moves) messages between two mailboxes of one account, in one
/// transaction: each gets the target's next UID and keeps its octets (stored once), flags and internal
/// date.
pub async fn copy(
    pool: &PgPool,
    account_id: i64,
    from: &str,
    to: &str,
    uids: &[u32],
    expunge_source: bool,
) -> Result<Copied, MailboxError> {
    let mut tx = pool.begin().await?;
    let copied = copy_in(&mut tx, account_id, from, to, Some(uids), expunge_source).await?;
    tx.commit().await?;
    Ok(copied)
}

/// The body of `copy` for a caller that holds a transaction; `uids` None takes every message.
pub(crate) async fn copy_in(
    conn: &mut PgConnection,
    account_id: i64,
    from: &str,
    to: &str,
    uids: Option<&[u32]>,
    expunge_source: bool,
) -> Result<Copied, MailboxError> {
    let (from, to) = (names::mailbox_name(from)?, names::mailbox_name(to)?);
    if from == to && expunge_source {
        return Err(MailboxError::InvalidArgument("source and target mailbox are the same".into()));
    }
    // Lock in a fixed order (by name) so that two opposite moves cannot deadlock.
    let (source, target) = if from == to {
        let source = lock(conn, account_id, &from).await?;
        (source.clone(), source)
    } else if from < to {
        let a = lock(conn, account_id, &from).await?;
        (a, lock(conn, account_id, &to).await?)
    } else {
        let b = lock(conn, account_id, &to).await?;
        (lock(conn, account_id, &from).await?, b)
    };
    let picked: Vec<(i64, i64, Vec<String>, i64)> = sqlx::query_as(
        "SELECT e.uid, e.message_id, e.flags, m.size FROM mailbox_entries e JOIN messages m ON m.id = e.message_id
          WHERE e.mailbox_id = $1 AND e.expunged_modseq IS NULL AND ($2::bigint[] IS NULL OR e.uid = ANY($2))
          ORDER BY e.uid",
    )
    .bind(source.id)
    .bind(uids.map(to_i64))
    .fetch_all(&mut *conn)
    .await?;
    target.room_for(picked.len())?;
    if !expunge_source {
        let bytes: i64 = picked.iter().map(|(_, _, _, size)| size).sum();
        check_quota(conn, account_id, picked.len() as i64, bytes).await?;
    }
    let mut target_uids = Vec::with_capacity(picked.len());
    let target_modseq = target.highestmodseq + 1;
    for (offset, (_, message_id, flags, _)) in picked.iter().enumerate() {
        let uid = target.uidnext + offset as i64;
        insert_entry(conn, &target, uid, *message_id, flags, target_modseq).await?;
        target_uids.push(uid as u32);
    }
    let source_uids: Vec<i64> = picked.iter().map(|(uid, ..)| *uid).collect();
    let mut copied = Copied {
        source_uids: source_uids.iter().map(|&u| u as u32).collect(),
        target: target.name.clone(),
        target_uidvalidity: target.uidvalidity as u32,
        target_uids,
        target_modseq: target.highestmodseq,
        expunged: None,
    };
    if !picked.is_empty() {
        advance(conn, &target, target.uidnext + picked.len() as i64, target_modseq).await?;
        copied.target_modseq = target_modseq;
    }
    if expunge_source {
        // The source's row may be the target's when copying into the same mailbox; not for a move.
        copied.expunged = Some(expunge_locked(conn, &source, &source_uids).await?);
    }
    Ok(copied)
}

/// IMAP STORE: changes the flags of `uids`, all under one new MODSEQ, skipping (and reporting) entries
/// changed after `unchanged_since` (RFC 7162 §3.1.3).
pub async fn store(
    pool: &PgPool,
    account_id: i64,
    name: &str,
    uids: &[u32],
    mode: StoreMode,
    flags: &[String],
    unchanged_since: Option<u64>,
) -> Result<Stored, MailboxError> {
    let given = names::flags(flags)?;
    let mut tx = pool.begin().await?;
    let mailbox = lock(&mut tx, account_id, name).await?;
    let rows: Vec<(i64, Vec<String>, i64)> = sqlx::query_as(
        "SELECT uid, flags, modseq FROM mailbox_entries
          WHERE mailbox_id = $1 AND expunged_modseq IS NULL AND uid = ANY($2) ORDER BY uid",
    )
    .bind(mailbox.id)
    .bind(to_i64(uids))
    .fetch_all(&mut *tx)
    .await?;
    let modseq = mailbox.highestmodseq + 1;
    let mut stored = Stored {
        uidvalidity: mailbox.uidvalidity as u32,
        updated: Vec::new(),
        changed: Vec::new(),
        modified: Vec::new(),
        modseq,
    };
    let (mut changed_uids, mut changed_flags) = (Vec::new(), Vec::new());
    for (uid, old, old_modseq) in rows {
        if unchanged_since.is_some_and(|limit| old_modseq as u64 > limit) {
            stored.modified.push(uid as u32);
            continue;
        }
        let new = apply(mode, &old, &given);
        let same = new.len() == old.len() && new.iter().all(|f| old.contains(f));
        let entry_modseq = if same {
            old_modseq
        } else {
            changed_uids.push(uid);
            changed_flags.push(new.join(" "));
            stored.changed.push(uid as u32);
            modseq
        };
        stored.updated.push(EntryState { uid: uid as u32, flags: new, modseq: entry_modseq as u64 });
    }
    if changed_uids.is_empty() {
        stored.modseq = mailbox.highestmodseq;
    } else {
        // Flags never contain spaces (`names::flags`), so each set travels as one space-separated string.
        sqlx::query(
            "UPDATE mailbox_entries e SET flags = coalesce(string_to_array(nullif(x.flags, ''), ' '), '{}'), modseq = $4
               FROM unnest($2::bigint[], $3::text[]) AS x (uid, flags)
              WHERE e.mailbox_id = $1 AND e.uid = x.uid",
        )
        .bind(mailbox.id)
        .bind(&changed_uids)
        .bind(&changed_flags)
        .bind(modseq)
        .execute(&mut *tx)
        .await?;
        advance(&mut tx, &mailbox, mailbox.uidnext, modseq).await?;
    }
    tx.commit().await?;
    Ok(stored)
}

/// A STORE's effect on one entry's flags; keywords compare case-insensitively.
fn apply(mode: StoreMode, old: &[String], given: &[String]) -> Vec<String> {
    let has = |set: &[String], flag: &str| set.iter().any(|f| f.eq_ignore_ascii_case(flag));
    match mode {
        StoreMode::Replace => given.to_vec(),
        StoreMode::Add => old.iter().chain(given.iter().filter(|f| !has(old, f))).cloned().collect(),
        StoreMode::Remove => old.iter().filter(|f| !has(given, f)).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_modes_combine_flags_without_duplicates() {
        let old = ["\\Seen", "$Work"].map(String::from);
        let given = ["$work", "\\Flagged"].map(String::from);
        assert_eq!(apply(StoreMode::Add, &old, &given), ["\\Seen", "$Work", "\\Flagged"]);
        assert_eq!(apply(StoreMode::Remove, &old, &given), ["\\Seen"]);
        assert_eq!(apply(StoreMode::Replace, &old, &given), ["$work", "\\Flagged"]);
    }
}

/// What FETCH reads of an entry before any octets.
#[derive(Debug, Clone)]
pub struct FetchRow {
    pub uid: u32,
    pub flags: Vec<String>,
    pub modseq: u64,
    pub internal_date_unix: i64,
    pub size: u64,
    pub message_id: i64,
    /// `mailbus.v1.MessageStructure`, protobuf-encoded; None for a row not parsed yet.
    pub structure: Option<Vec<u8>>,
}

/// The entries of `uids` (with `changed_since`, only those changed after it), in UID order.
pub async fn fetch_rows(
    pool: &PgPool,
    account_id: i64,
    name: &str,
    uids: &[u32],
    changed_since: Option<u64>,
) -> Result<Vec<FetchRow>, MailboxError> {
    let (id, _, _) = mailbox_id(pool, account_id, name).await?;
    #[derive(sqlx::FromRow)]
    struct Row {
        uid: i64,
        flags: Vec<String>,
        modseq: i64,
        date: i64,
        size: i64,
        message_id: i64,
        structure: Option<Vec<u8>>,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT e.uid, e.flags, e.modseq, extract(epoch FROM m.internal_date)::bigint AS date, m.size,
                m.id AS message_id, m.structure
           FROM mailbox_entries e JOIN messages m ON m.id = e.message_id
          WHERE e.mailbox_id = $1 AND e.expunged_modseq IS NULL AND e.uid = ANY($2)
            AND ($3::bigint IS NULL OR e.modseq > $3)
          ORDER BY e.uid",
    )
    .bind(id)
    .bind(to_i64(uids))
    .bind(changed_since.map(|m| m.min(i64::MAX as u64) as i64))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| FetchRow {
            uid: r.uid as u32,
            flags: r.flags,
            modseq: r.modseq as u64,
            internal_date_unix: r.date,
            size: r.size as u64,
            message_id: r.message_id,
            structure: r.structure,
        })
        .collect())
}

/// The octets of messages by id: whole, or (`header_only`) just their headers.
pub async fn octets(
    pool: &PgPool,
    message_ids: &[i64],
    header_only: bool,
) -> Result<std::collections::HashMap<i64, Vec<u8>>, MailboxError> {
    let query = if header_only {
        "SELECT id, substring(content FROM 1 FOR coalesce(header_size, size::integer)) FROM messages WHERE id = ANY($1)"
    } else {
        "SELECT id, content FROM messages WHERE id = ANY($1)"
    };
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(query).bind(message_ids).fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}
