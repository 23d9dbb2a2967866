//! A mailbox's state as sessions read it: STATUS (and LIST-STATUS for every mailbox of an account),
//! SELECT's snapshot, and the changes since a MODSEQ that an IMAP session catches up with.

use std::collections::{BTreeMap, BTreeSet};

use mailbus_address::{AccountId, MailboxName, Uid};
use sqlx::PgPool;

use crate::error::MailboxError;
use crate::store::mailboxes::{MailboxRow, find, not_found};
use crate::store::recent;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub messages: u32,
    pub uidnext: u32,
    pub uidvalidity: u32,
    pub unseen: u32,
    pub deleted: u32,
    pub size: u64,
    pub highest_modseq: u64,
    /// The mailbox's row id, JMAP's Mailbox id without its letter (RFC 8474 MAILBOXID).
    pub mailbox_id: i64,
    /// RFC 3501 STATUS RECENT: live messages no read-write session has been told of yet.
    pub recent: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub status: Status,
    pub keywords: Vec<String>,
    pub uids: Vec<Uid>,
    /// The first message without \Seen, if any.
    pub first_unseen: Option<Uid>,
    /// UIDs at or above this are `\Recent` to the selecting session (`store::recent`).
    pub recent_from: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryState {
    pub uid: Uid,
    pub flags: Vec<String>,
    pub modseq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    pub uidvalidity: u32,
    pub highest_modseq: u64,
    pub changed: Vec<EntryState>,
    pub vanished: Vec<Uid>,
    /// New entries at or above this UID are `\Recent` to the session that asked.
    pub recent_from: u64,
}

/// The columns of a [`StatusRow`], from `mailboxes b` joined with its live entries `e` and their
/// messages `m`, grouped by mailbox.
const STATUS_COLUMNS: &str = "b.id, b.uidvalidity, b.uidnext, b.highestmodseq,
       count(e.uid) AS messages,
       count(e.uid) FILTER (WHERE NOT e.flags @> '{\\\\Seen}') AS unseen,
       count(e.uid) FILTER (WHERE e.flags @> '{\\\\Deleted}') AS deleted,
       coalesce(sum(m.size), 0)::bigint AS size,
       count(e.uid) FILTER (WHERE e.uid >= b.first_recent_uid) AS recent";

#[derive(Debug, Clone, Default, sqlx::FromRow)]
struct StatusRow {
    id: i64,
    uidvalidity: i64,
    uidnext: i64,
    highestmodseq: i64,
    messages: i64,
    unseen: i64,
    deleted: i64,
    size: i64,
    recent: i64,
}

impl From<StatusRow> for Status {
    fn from(row: StatusRow) -> Self {
        Status {
            messages: row.messages as u32,
            // UIDNEXT may be 2^32 once the last UID is used; clients see the largest value that fits.
            uidnext: u32::try_from(row.uidnext).unwrap_or(u32::MAX),
            uidvalidity: row.uidvalidity as u32,
            unseen: row.unseen as u32,
            deleted: row.deleted as u32,
            size: row.size as u64,
            highest_modseq: row.highestmodseq as u64,
            mailbox_id: row.id,
            recent: row.recent as u32,
        }
    }
}

#[derive(sqlx::FromRow)]
struct NamedStatus {
    name: String,
    #[sqlx(flatten)]
    status: StatusRow,
}

pub(crate) async fn statuses(pool: &PgPool, account: AccountId) -> Result<BTreeMap<String, Status>, MailboxError> {
    let rows: Vec<NamedStatus> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT b.name, {STATUS_COLUMNS}
           FROM mailboxes b
           LEFT JOIN mailbox_entries e ON e.mailbox_id = b.id AND e.expunged_modseq IS NULL
           LEFT JOIN messages m ON m.id = e.message_id
          WHERE b.account_id = $1
          GROUP BY b.id"
    )))
    .bind(account.get())
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|row| (row.name, row.status.into())).collect())
}

pub async fn status(pool: &PgPool, account: AccountId, name: &MailboxName) -> Result<Status, MailboxError> {
    let row: Option<StatusRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {STATUS_COLUMNS}
           FROM mailboxes b
           LEFT JOIN mailbox_entries e ON e.mailbox_id = b.id AND e.expunged_modseq IS NULL
           LEFT JOIN messages m ON m.id = e.message_id
          WHERE b.account_id = $1 AND b.name = $2
          GROUP BY b.id"
    )))
    .bind(account.get())
    .bind(name.as_str())
    .fetch_optional(pool)
    .await?;
    row.map(Status::from).ok_or_else(|| not_found(name))
}

/// A live entry as SELECT counts it.
#[derive(sqlx::FromRow)]
struct LiveEntry {
    #[sqlx(try_from = "i64")]
    uid: Uid,
    flags: Vec<String>,
    size: i64,
}

/// Everything SELECT reports, read in one consistent snapshot. `claim`: the session is read-write, and
/// takes the `\Recent` messages of the snapshot for itself (EXAMINE sees them without taking them, RFC 3501
/// §6.3.2).
pub async fn select(
    pool: &PgPool,
    account: AccountId,
    name: &MailboxName,
    claim: bool,
) -> Result<Selected, MailboxError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let mailbox = find(&mut *tx, account, name).await?;
    let entries: Vec<LiveEntry> = sqlx::query_as(
        "SELECT e.uid, e.flags, m.size FROM mailbox_entries e JOIN messages m ON m.id = e.message_id
          WHERE e.mailbox_id = $1 AND e.expunged_modseq IS NULL ORDER BY e.uid",
    )
    .bind(mailbox.id.get())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let recent_from = recent_from(pool, &mailbox, claim).await?;
    let mut status = Status::from(StatusRow {
        id: mailbox.id.get(),
        uidvalidity: mailbox.uidvalidity,
        uidnext: mailbox.uidnext,
        highestmodseq: mailbox.highestmodseq,
        messages: entries.len() as i64,
        ..StatusRow::default()
    });
    let mut keywords = BTreeSet::new();
    let mut first_unseen = None;
    let mut uids = Vec::with_capacity(entries.len());
    for LiveEntry { uid, flags, size } in entries {
        let has = |flag: &str| flags.iter().any(|f| f == flag);
        if !has("\\Seen") {
            status.unseen += 1;
            first_unseen = first_unseen.or(Some(uid));
        }
        status.deleted += u32::from(has("\\Deleted"));
        status.size += size as u64;
        keywords.extend(flags.into_iter().filter(|f| !f.starts_with('\\')));
        status.recent += u32::from(uid.get() as u64 >= recent_from);
        uids.push(uid);
    }
    Ok(Selected { status, keywords: keywords.into_iter().collect(), uids, first_unseen, recent_from })
}

/// Where the `\Recent` UIDs start for a session that read `mailbox` in a snapshot: a read-write one
/// claims those up to the snapshot's UIDNEXT (every one of them is in the snapshot), a read-only one sees
/// those not claimed yet.
async fn recent_from(pool: &PgPool, mailbox: &MailboxRow, claim: bool) -> Result<u64, MailboxError> {
    let from = if claim && mailbox.first_recent_uid < mailbox.uidnext {
        recent::claim(pool, mailbox.id, mailbox.uidnext).await?
    } else {
        mailbox.first_recent_uid
    };
    Ok(from.max(0) as u64)
}

/// An entry changed after a MODSEQ: live with its flags, or expunged.
#[derive(sqlx::FromRow)]
struct ChangedEntry {
    #[sqlx(try_from = "i64")]
    uid: Uid,
    flags: Option<Vec<String>>,
    modseq: i64,
    expunged: bool,
}

/// What changed in a mailbox after `since`: live entries with a higher MODSEQ, and UIDs expunged since.
/// `claim`: a read-write session takes the new entries' `\Recent` for itself, as SELECT does.
pub async fn changes(
    pool: &PgPool,
    account: AccountId,
    name: &MailboxName,
    since: u64,
    claim: bool,
) -> Result<Changes, MailboxError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let mailbox = find(&mut *tx, account, name).await?;
    let entries: Vec<ChangedEntry> = sqlx::query_as(
        "SELECT uid, flags, modseq, expunged_modseq IS NOT NULL AS expunged FROM mailbox_entries
          WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid",
    )
    .bind(mailbox.id.get())
    .bind(since.min(i64::MAX as u64) as i64)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut changes = Changes {
        uidvalidity: mailbox.uidvalidity as u32,
        highest_modseq: mailbox.highestmodseq as u64,
        changed: Vec::new(),
        vanished: Vec::new(),
        recent_from: recent_from(pool, &mailbox, claim).await?,
    };
    for entry in entries {
        if entry.expunged {
            changes.vanished.push(entry.uid);
        } else {
            let flags = entry.flags.unwrap_or_default();
            changes.changed.push(EntryState { uid: entry.uid, flags, modseq: entry.modseq as u64 });
        }
    }
    Ok(changes)
}
