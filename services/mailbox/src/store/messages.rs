//! Every change to the messages of a mailbox: append (and, for `store::delivery`, adding a message and
//! its entries), flags (STORE with UNCHANGEDSINCE), copy and move (octets shared), expunge. Each is one
//! transaction that locks its mailbox row first, which is what keeps UIDs strictly increasing and flag
//! changes whole under parallel sessions; quotas are checked inside it.

use std::sync::LazyLock;

use mailbus_address::{AccountId, MailboxId, MailboxName, Uid};
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;
use sqlx::{PgConnection, PgPool, Row as _};

use crate::error::MailboxError;
use crate::flags;
use crate::mime::Parsed;
use crate::store::mailbox_state::EntryState;
use crate::store::mailboxes::{self, MailboxRow};
use crate::store::{parsed, quota, uid_column, uid_from_column};

/// A delivered, appended (or previously delivered) message's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub mailbox: MailboxName,
    pub uidvalidity: u32,
    pub uid: Uid,
    pub modseq: i64,
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expunged {
    pub mailbox: MailboxName,
    pub uidvalidity: u32,
    pub uids: Vec<Uid>,
    pub modseq: i64,
}

/// The outcome of a copy or move: the source UIDs and the UIDs they got in the target, in the same order
/// (RFC 4315 COPYUID / RFC 6851); for a move, the source's expunge too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub source_uids: Vec<Uid>,
    pub target: MailboxName,
    pub target_uidvalidity: u32,
    pub target_uids: Vec<Uid>,
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
    pub changed: Vec<Uid>,
    /// UIDs that failed the UNCHANGEDSINCE test.
    pub modified: Vec<Uid>,
    pub modseq: i64,
}

/// A locked mailbox row, inside a transaction.
#[derive(Clone)]
pub(super) struct Locked {
    pub(super) id: MailboxId,
    pub(super) name: MailboxName,
    pub(super) uidvalidity: i64,
    uidnext: i64,
    highestmodseq: i64,
}

impl Locked {
    /// Refuses `count` more UIDs when they would pass 2^32 - 1 (RFC 9051 §2.3.1.1).
    fn room_for(&self, count: usize) -> Result<(), MailboxError> {
        if self.uidnext + count as i64 > i64::from(u32::MAX) + 1 {
            return Err(out_of_uids(&self.name));
        }
        Ok(())
    }
}

fn out_of_uids(name: &MailboxName) -> MailboxError {
    MailboxError::FailedPrecondition(format!("mailbox {:?} has run out of UIDs", name.as_str()))
}

/// Locks a mailbox row for the rest of the transaction. Every change to a mailbox takes this lock first.
pub(super) async fn lock(
    conn: &mut PgConnection,
    account: AccountId,
    name: &MailboxName,
) -> Result<Locked, MailboxError> {
    let row: Option<MailboxRow> = sqlx::query_as(
        "SELECT id, uidvalidity, uidnext, highestmodseq, first_recent_uid FROM mailboxes
          WHERE account_id = $1 AND name = $2 FOR UPDATE",
    )
    .bind(account.get())
    .bind(name.as_str())
    .fetch_optional(conn)
    .await?;
    let row = row.ok_or_else(|| mailboxes::not_found(name))?;
    Ok(Locked {
        id: row.id,
        name: name.clone(),
        uidvalidity: row.uidvalidity,
        uidnext: row.uidnext,
        highestmodseq: row.highestmodseq,
    })
}

/// Locks two mailboxes in a fixed order (by name) so that two opposite moves cannot deadlock; returns
/// them as (source, target), the same row twice when they are one mailbox.
async fn lock_pair(
    conn: &mut PgConnection,
    account: AccountId,
    from: &MailboxName,
    to: &MailboxName,
) -> Result<(Locked, Locked), MailboxError> {
    if from == to {
        let source = lock(conn, account, from).await?;
        Ok((source.clone(), source))
    } else if from < to {
        let a = lock(conn, account, from).await?;
        Ok((a, lock(conn, account, to).await?))
    } else {
        let b = lock(conn, account, to).await?;
        Ok((lock(conn, account, from).await?, b))
    }
}

/// Sets a locked mailbox's UIDNEXT and HIGHESTMODSEQ after a change.
async fn advance(conn: &mut PgConnection, mailbox: &Locked, uidnext: i64, modseq: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE mailboxes SET uidnext = $2, highestmodseq = $3 WHERE id = $1")
        .bind(mailbox.id.get())
        .bind(uidnext)
        .bind(modseq)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a message's octets and what was parsed from them, once; entries point at it.
pub(super) async fn insert_message(
    conn: &mut PgConnection,
    account: AccountId,
    content: &[u8],
    parsed: &Parsed,
    internal_date_unix: Option<i64>,
) -> Result<i64, MailboxError> {
    static INSERT: LazyLock<String> =
        LazyLock::new(|| format!("INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ({MESSAGE_VALUES}) RETURNING id"));
    let insert = bind_message(sqlx::query(INSERT.as_str()), account, content, parsed, internal_date_unix);
    let id: i64 = insert.fetch_one(conn).await?.try_get("id")?;
    Ok(id)
}

/// The columns a new message row is given, in the order [`bind_message`] binds them as `$1` to `$14`
/// ([`MESSAGE_VALUES`]): shared by the insert above and delivery's one-statement insert.
pub(super) const MESSAGE_COLUMNS: &str = "account_id, content, size, internal_date, structure, sent_at, header_names,
    header_values, search_header, search_body, header_size, sent_date, has_attachment, preview";
pub(super) const MESSAGE_VALUES: &str = "$1, $2, $3, coalesce(to_timestamp($4), now()), $5, to_timestamp($6), $7, $8,
    $9, $10, $11, $12::date, $13, $14";

/// Binds a new message row's `$1` to `$14`: its account, octets, size, internal date (`None`: now) and
/// what was parsed from it.
pub(super) fn bind_message<'q>(
    query: Query<'q, Postgres, PgArguments>,
    account: AccountId,
    content: &'q [u8],
    parsed: &'q Parsed,
    internal_date_unix: Option<i64>,
) -> Query<'q, Postgres, PgArguments> {
    let query =
        query.bind(account.get()).bind(content).bind(content.len() as i64).bind(internal_date_unix.map(|t| t as f64));
    parsed::bind(query, parsed)
}

async fn insert_entry(
    conn: &mut PgConnection,
    mailbox: &Locked,
    uid: Uid,
    message_id: i64,
    flags: &[String],
    modseq: i64,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO mailbox_entries (mailbox_id, uid, message_id, flags, modseq) VALUES ($1, $2, $3, $4, $5)")
        .bind(mailbox.id.get())
        .bind(i64::from(uid))
        .bind(message_id)
        .bind(flags)
        .bind(modseq)
        .execute(conn)
        .await?;
    Ok(())
}

/// Adds a new message to a locked mailbox: quota, octets, entry, UIDNEXT and MODSEQ.
pub(super) async fn add(
    conn: &mut PgConnection,
    account: AccountId,
    mailbox: &Locked,
    content: &[u8],
    parsed: &Parsed,
    flags: &[String],
    internal_date_unix: Option<i64>,
) -> Result<Placed, MailboxError> {
    mailbox.room_for(1)?;
    quota::check(conn, account, 1, content.len() as i64).await?;
    let message_id = insert_message(conn, account, content, parsed, internal_date_unix).await?;
    add_entry(conn, mailbox, message_id, flags).await
}

/// Adds an entry for an already stored message (one of this account's) to a locked mailbox: a second
/// place of a message filed twice at delivery shares its octets, as COPY does. The caller checked the
/// quota for it.
///
/// The UID and MODSEQ come from the row itself, in the statement that takes them (one round trip, not
/// an insert and an update): `mailbox` may have been locked before other entries were added in the same
/// transaction (a batch of deliveries locks its mailboxes once), and only its id, name and UIDVALIDITY
/// are read from it.
pub(super) async fn add_entry(
    conn: &mut PgConnection,
    mailbox: &Locked,
    message_id: i64,
    flags: &[String],
) -> Result<Placed, MailboxError> {
    let taken: Option<(i64, i64)> = sqlx::query_as(
        "WITH m AS (UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
                     WHERE id = $1 AND uidnext <= $4
                     RETURNING uidnext - 1 AS uid, highestmodseq AS modseq)
         INSERT INTO mailbox_entries (mailbox_id, uid, message_id, flags, modseq)
         SELECT $1, m.uid, $2, $3, m.modseq FROM m
         RETURNING uid, modseq",
    )
    .bind(mailbox.id.get())
    .bind(message_id)
    .bind(flags)
    .bind(i64::from(u32::MAX))
    .fetch_optional(conn)
    .await?;
    let Some((uid, modseq)) = taken else {
        // No row came back: UIDNEXT is past 2^32 - 1 (the row is locked, so it exists).
        return Err(out_of_uids(&mailbox.name));
    };
    Ok(Placed {
        mailbox: mailbox.name.clone(),
        uidvalidity: mailbox.uidvalidity as u32,
        uid: uid_from_column(uid)?,
        modseq,
        duplicate: false,
    })
}

/// IMAP APPEND: a message into any mailbox of the account, with flags and an internal date.
pub async fn append(
    pool: &PgPool,
    account: AccountId,
    mailbox: &MailboxName,
    flags: &[String],
    internal_date_unix: Option<i64>,
    content: &[u8],
    parsed: &Parsed,
) -> Result<Placed, MailboxError> {
    let appending = Appending { flags, internal_date_unix, import_digest: None };
    append_with(pool, account, mailbox, appending, content, parsed).await
}

/// What an append brings besides the message.
pub struct Appending<'a> {
    pub flags: &'a [String],
    /// Absent: now.
    pub internal_date_unix: Option<i64>,
    /// `mailbus admin mail import`'s digest of the message in its source: an append whose digest the
    /// mailbox already recorded adds nothing and answers with the earlier UID, so a second run of an
    /// import, or one resumed after an interruption, adds no message twice.
    pub import_digest: Option<&'a [u8]>,
}

/// APPEND with the import digest: the lookup, the insert and the record of the digest happen under the
/// mailbox row lock, in one transaction, as `deliver` does with `deliveries`.
pub async fn append_with(
    pool: &PgPool,
    account: AccountId,
    mailbox: &MailboxName,
    appending: Appending<'_>,
    content: &[u8],
    parsed: &Parsed,
) -> Result<Placed, MailboxError> {
    let flags = flags::canonical(appending.flags)?;
    // RFC 9051 date-time: years 1900 to 9999 (so PostgreSQL's timestamp range is never left).
    const DATES: std::ops::RangeInclusive<i64> = -2_208_988_800..=253_402_300_799;
    let internal_date_unix = appending.internal_date_unix;
    if let Some(date) = internal_date_unix.filter(|d| !DATES.contains(d)) {
        return Err(MailboxError::InvalidArgument(format!("internal date {date} is out of range")));
    }
    let mut tx = pool.begin().await?;
    let mailbox = lock(&mut tx, account, mailbox).await?;
    let Some(digest) = appending.import_digest else {
        let placed = add(&mut tx, account, &mailbox, content, parsed, &flags, internal_date_unix).await?;
        tx.commit().await?;
        return Ok(placed);
    };
    let earlier: Option<i64> = sqlx::query_scalar("SELECT uid FROM imported WHERE mailbox_id = $1 AND digest = $2")
        .bind(mailbox.id.get())
        .bind(digest)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(uid) = earlier {
        return Ok(Placed {
            uidvalidity: mailbox.uidvalidity as u32,
            uid: uid_from_column(uid)?,
            modseq: mailbox.highestmodseq,
            mailbox: mailbox.name,
            duplicate: true,
        });
    }
    let placed = add(&mut tx, account, &mailbox, content, parsed, &flags, internal_date_unix).await?;
    sqlx::query("INSERT INTO imported (mailbox_id, digest, uid) VALUES ($1, $2, $3)")
        .bind(mailbox.id.get())
        .bind(digest)
        .bind(i64::from(placed.uid))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(placed)
}

/// One message of a MULTIAPPEND: its octets, what was parsed from them, its flags and internal date.
pub struct Appended<'a> {
    pub content: &'a [u8],
    pub parsed: &'a Parsed,
    pub flags: &'a [String],
    /// Absent: now.
    pub internal_date_unix: Option<i64>,
}

/// RFC 3502 MULTIAPPEND: every message into one mailbox in one transaction under its row lock, so they
/// get consecutive UIDs and either all are added or none (a quota, a flag, a date refused for one
/// refuses them all). The places, in order.
pub async fn append_all(
    pool: &PgPool,
    account: AccountId,
    mailbox: &MailboxName,
    messages: &[Appended<'_>],
) -> Result<Vec<Placed>, MailboxError> {
    const DATES: std::ops::RangeInclusive<i64> = -2_208_988_800..=253_402_300_799;
    let mut canonical = Vec::with_capacity(messages.len());
    for message in messages {
        canonical.push(flags::canonical(message.flags)?);
        if let Some(date) = message.internal_date_unix.filter(|d| !DATES.contains(d)) {
            return Err(MailboxError::InvalidArgument(format!("internal date {date} is out of range")));
        }
    }
    let mut tx = pool.begin().await?;
    let mut locked = lock(&mut tx, account, mailbox).await?;
    locked.room_for(messages.len())?;
    let bytes = messages.iter().map(|m| m.content.len() as i64).sum();
    quota::check(&mut tx, account, messages.len() as i64, bytes).await?;
    let mut placed = Vec::with_capacity(messages.len());
    for (message, flags) in messages.iter().zip(&canonical) {
        let (content, parsed, date) = (message.content, message.parsed, message.internal_date_unix);
        let one = add(&mut tx, account, &locked, content, parsed, flags, date).await?;
        // `add` moved the row on by one UID and one MODSEQ; the next message starts from there.
        locked.uidnext += 1;
        locked.highestmodseq = one.modseq;
        placed.push(one);
    }
    tx.commit().await?;
    Ok(placed)
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
async fn mark_expunged(conn: &mut PgConnection, mailbox: MailboxId, uids: &[Uid], modseq: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE mailbox_entries SET expunged_modseq = $3, message_id = NULL, modseq = $3
          WHERE mailbox_id = $1 AND uid = ANY($2)",
    )
    .bind(mailbox.get())
    .bind(uid_column(uids))
    .bind(modseq)
    .execute(conn)
    .await?;
    Ok(())
}

/// A live entry on its way out.
#[derive(sqlx::FromRow)]
struct Gone {
    #[sqlx(try_from = "i64")]
    uid: Uid,
    message_id: i64,
}

/// Expunges the given UIDs (with `deleted_only`, those of them that have \Deleted; no UIDs, nothing):
/// their entries stay as tombstones with the new MODSEQ, and octets that no entry references any more are
/// deleted.
pub async fn expunge(
    pool: &PgPool,
    account: AccountId,
    name: &MailboxName,
    uids: &[Uid],
    deleted_only: bool,
) -> Result<Expunged, MailboxError> {
    let mut tx = pool.begin().await?;
    let mailbox = lock(&mut tx, account, name).await?;
    let gone: Vec<Gone> = sqlx::query_as(
        "SELECT uid, message_id FROM mailbox_entries
          WHERE mailbox_id = $1 AND expunged_modseq IS NULL
            AND uid = ANY($2)
            AND (NOT $3 OR flags @> '{\\\\Deleted}')
          ORDER BY uid",
    )
    .bind(mailbox.id.get())
    .bind(uid_column(uids))
    .bind(deleted_only)
    .fetch_all(&mut *tx)
    .await?;
    let gone_uids: Vec<Uid> = gone.iter().map(|g| g.uid).collect();
    let message_ids: Vec<i64> = gone.iter().map(|g| g.message_id).collect();
    let expunged = expunge_locked(&mut tx, &mailbox, gone_uids).await?;
    free_unreferenced(&mut tx, &message_ids).await?;
    tx.commit().await?;
    Ok(expunged)
}

async fn expunge_locked(conn: &mut PgConnection, mailbox: &Locked, uids: Vec<Uid>) -> Result<Expunged, MailboxError> {
    let mut modseq = mailbox.highestmodseq;
    if !uids.is_empty() {
        modseq += 1;
        mark_expunged(conn, mailbox.id, &uids, modseq).await?;
        advance(conn, mailbox, mailbox.uidnext, modseq).await?;
    }
    Ok(Expunged { mailbox: mailbox.name.clone(), uidvalidity: mailbox.uidvalidity as u32, uids, modseq })
}

/// Copies (or, with `expunge_source`, moves) messages between two mailboxes of one account, in one
/// transaction: each gets the target's next UID and keeps its octets (stored once), flags and internal
/// date.
pub async fn copy(
    pool: &PgPool,
    account: AccountId,
    from: &MailboxName,
    to: &MailboxName,
    uids: &[Uid],
    expunge_source: bool,
) -> Result<Copied, MailboxError> {
    let mut tx = pool.begin().await?;
    let copied = copy_in(&mut tx, account, from, to, Some(uids), expunge_source).await?;
    tx.commit().await?;
    Ok(copied)
}

/// A live entry to copy.
#[derive(sqlx::FromRow)]
struct Picked {
    #[sqlx(try_from = "i64")]
    uid: Uid,
    message_id: i64,
    flags: Vec<String>,
    size: i64,
}

/// The body of `copy` for a caller that holds a transaction; `uids` None takes every message.
pub(crate) async fn copy_in(
    conn: &mut PgConnection,
    account: AccountId,
    from: &MailboxName,
    to: &MailboxName,
    uids: Option<&[Uid]>,
    expunge_source: bool,
) -> Result<Copied, MailboxError> {
    let (source, target) = lock_pair(conn, account, from, to).await?;
    let picked: Vec<Picked> = sqlx::query_as(
        "SELECT e.uid, e.message_id, e.flags, m.size FROM mailbox_entries e JOIN messages m ON m.id = e.message_id
          WHERE e.mailbox_id = $1 AND e.expunged_modseq IS NULL AND ($2::bigint[] IS NULL OR e.uid = ANY($2))
          ORDER BY e.uid",
    )
    .bind(source.id.get())
    .bind(uids.map(uid_column))
    .fetch_all(&mut *conn)
    .await?;
    target.room_for(picked.len())?;
    if !expunge_source {
        let bytes: i64 = picked.iter().map(|p| p.size).sum();
        quota::check(conn, account, picked.len() as i64, bytes).await?;
    }
    let mut copied = add_entries(conn, &target, &picked).await?;
    if expunge_source {
        // A move within one mailbox (Dovecot allows it, RFC 6851 does not forbid it) gives the messages
        // new UIDs: the expunge then follows the copy on the row the copy just advanced, under a MODSEQ
        // of its own, so UIDNEXT never goes back and no MODSEQ is used twice.
        let source = if from == to {
            Locked { uidnext: target.uidnext + picked.len() as i64, highestmodseq: copied.target_modseq, ..source }
        } else {
            source
        };
        let source_uids = copied.source_uids.clone();
        copied.expunged = Some(expunge_locked(conn, &source, source_uids).await?);
    }
    Ok(copied)
}

/// Gives each picked entry the target's next UID, under one new MODSEQ (none when nothing was picked).
async fn add_entries(conn: &mut PgConnection, target: &Locked, picked: &[Picked]) -> Result<Copied, MailboxError> {
    let mut target_uids = Vec::with_capacity(picked.len());
    let target_modseq = target.highestmodseq + 1;
    for (offset, entry) in picked.iter().enumerate() {
        let uid = uid_from_column(target.uidnext + offset as i64)?;
        insert_entry(conn, target, uid, entry.message_id, &entry.flags, target_modseq).await?;
        target_uids.push(uid);
    }
    let mut copied = Copied {
        source_uids: picked.iter().map(|p| p.uid).collect(),
        target: target.name.clone(),
        target_uidvalidity: target.uidvalidity as u32,
        target_uids,
        target_modseq: target.highestmodseq,
        expunged: None,
    };
    if !picked.is_empty() {
        advance(conn, target, target.uidnext + picked.len() as i64, target_modseq).await?;
        copied.target_modseq = target_modseq;
    }
    Ok(copied)
}

/// An entry's flags as STORE finds them.
#[derive(sqlx::FromRow)]
struct FlagState {
    #[sqlx(try_from = "i64")]
    uid: Uid,
    flags: Vec<String>,
    modseq: i64,
}

/// IMAP STORE: changes the flags of `uids`, all under one new MODSEQ, skipping (and reporting) entries
/// changed after `unchanged_since` (RFC 7162 §3.1.3).
pub async fn store(
    pool: &PgPool,
    account: AccountId,
    name: &MailboxName,
    uids: &[Uid],
    mode: StoreMode,
    flags: &[String],
    unchanged_since: Option<u64>,
) -> Result<Stored, MailboxError> {
    let given = flags::canonical(flags)?;
    let mut tx = pool.begin().await?;
    let mailbox = lock(&mut tx, account, name).await?;
    let entries: Vec<FlagState> = sqlx::query_as(
        "SELECT uid, flags, modseq FROM mailbox_entries
          WHERE mailbox_id = $1 AND expunged_modseq IS NULL AND uid = ANY($2) ORDER BY uid",
    )
    .bind(mailbox.id.get())
    .bind(uid_column(uids))
    .fetch_all(&mut *tx)
    .await?;
    let (stored, writes) = plan_store(&mailbox, entries, mode, &given, unchanged_since);
    if !writes.uids.is_empty() {
        write_flags(&mut tx, &mailbox, &writes, stored.modseq).await?;
    }
    tx.commit().await?;
    Ok(stored)
}

/// The entries whose flags a STORE changes, in the form the UPDATE takes them: flags never contain spaces
/// (`flags::canonical`), so each set travels as one space-separated string.
#[derive(Default)]
struct FlagWrites {
    uids: Vec<i64>,
    flags: Vec<String>,
}

/// What a STORE does to each entry, decided before anything is written: the changed entries get the
/// mailbox's next MODSEQ; with none changed, the MODSEQ stays.
fn plan_store(
    mailbox: &Locked,
    entries: Vec<FlagState>,
    mode: StoreMode,
    given: &[String],
    unchanged_since: Option<u64>,
) -> (Stored, FlagWrites) {
    let modseq = mailbox.highestmodseq + 1;
    let mut stored = Stored {
        uidvalidity: mailbox.uidvalidity as u32,
        updated: Vec::new(),
        changed: Vec::new(),
        modified: Vec::new(),
        modseq,
    };
    let mut writes = FlagWrites::default();
    for FlagState { uid, flags: old, modseq: old_modseq } in entries {
        if unchanged_since.is_some_and(|limit| old_modseq as u64 > limit) {
            stored.modified.push(uid);
            continue;
        }
        let new = apply(mode, &old, given);
        let same = new.len() == old.len() && new.iter().all(|f| old.contains(f));
        let entry_modseq = if same {
            old_modseq
        } else {
            writes.uids.push(i64::from(uid));
            writes.flags.push(new.join(" "));
            stored.changed.push(uid);
            modseq
        };
        stored.updated.push(EntryState { uid, flags: new, modseq: entry_modseq as u64 });
    }
    if stored.changed.is_empty() {
        stored.modseq = mailbox.highestmodseq;
    }
    (stored, writes)
}

/// Writes the flags of the entries a STORE changed, and the mailbox's new MODSEQ.
async fn write_flags(
    conn: &mut PgConnection,
    mailbox: &Locked,
    writes: &FlagWrites,
    modseq: i64,
) -> Result<(), MailboxError> {
    sqlx::query(
        "UPDATE mailbox_entries e SET flags = coalesce(string_to_array(nullif(x.flags, ''), ' '), '{}'), modseq = $4
           FROM unnest($2::bigint[], $3::text[]) AS x (uid, flags)
          WHERE e.mailbox_id = $1 AND e.uid = x.uid",
    )
    .bind(mailbox.id.get())
    .bind(&writes.uids)
    .bind(&writes.flags)
    .bind(modseq)
    .execute(&mut *conn)
    .await?;
    advance(conn, mailbox, mailbox.uidnext, modseq).await?;
    Ok(())
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
