//! An account's mailbox hierarchy (create, rename, delete, subscribe, list) and what a session reads of
//! one mailbox (status, select, changes since a MODSEQ).

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{PgConnection, PgPool};

use crate::error::MailboxError;
use crate::names::{self, INBOX, SEPARATOR};

/// Special-use attributes a mailbox may carry (RFC 6154 §2).
const SPECIAL_USES: &[&str] = &["\\Drafts", "\\Sent", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub messages: u32,
    pub uidnext: u32,
    pub uidvalidity: u32,
    pub unseen: u32,
    pub deleted: u32,
    pub size: u64,
    pub highest_modseq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub status: Status,
    pub keywords: Vec<String>,
    pub uids: Vec<u32>,
    pub first_unseen_uid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryState {
    pub uid: u32,
    pub flags: Vec<String>,
    pub modseq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    pub uidvalidity: u32,
    pub highest_modseq: u64,
    pub changed: Vec<EntryState>,
    pub vanished: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub exists: bool,
    pub subscribed: bool,
    pub has_children: bool,
    pub special_use: Option<String>,
    pub status: Option<Status>,
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub reference: String,
    pub patterns: Vec<String>,
    pub subscribed_only: bool,
    pub special_use_only: bool,
    pub with_status: bool,
}

/// Creates one mailbox row. Its UIDVALIDITY is the creation time in seconds (as Dovecot's) but always
/// above every value the account handed out before, so a name deleted and created again within a second
/// still gets a new one.
pub async fn insert(
    conn: &mut PgConnection,
    account_id: i64,
    name: &str,
    special_use: Option<&str>,
) -> Result<u32, MailboxError> {
    let uidvalidity: i64 = sqlx::query_scalar(
        "WITH next AS (
            UPDATE accounts
               SET last_uidvalidity = greatest(last_uidvalidity + 1,
                                               extract(epoch FROM clock_timestamp())::bigint % 4294967296)
             WHERE id = $1
         RETURNING last_uidvalidity)
         INSERT INTO mailboxes (account_id, name, uidvalidity, special_use)
         SELECT $1, $2, last_uidvalidity, $3 FROM next
         RETURNING uidvalidity",
    )
    .bind(account_id)
    .bind(name)
    .bind(special_use)
    .fetch_one(conn)
    .await
    .map_err(|e| match MailboxError::from(e) {
        MailboxError::AlreadyExists(what) if what.contains("special_use") => {
            MailboxError::AlreadyExists(format!("a mailbox with {}", special_use.unwrap_or_default()))
        }
        MailboxError::AlreadyExists(_) => MailboxError::AlreadyExists(format!("mailbox {name:?}")),
        other => other,
    })?;
    Ok(uidvalidity as u32)
}

async fn exists(conn: &mut PgConnection, account_id: i64, name: &str) -> Result<bool, MailboxError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2")
        .bind(account_id)
        .bind(name)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

/// Creates the missing superiors of `name` (RFC 9051 §6.3.4), outermost first.
async fn create_parents(conn: &mut PgConnection, account_id: i64, name: &str) -> Result<(), MailboxError> {
    for parent in names::parents(name) {
        if !exists(conn, account_id, parent).await? {
            insert(conn, account_id, parent, None).await?;
        }
    }
    Ok(())
}

/// Serialises hierarchy changes of one account, so that a rename and a create cannot cross. An advisory
/// lock rather than the accounts row: message changes lock a mailbox row and then the accounts row (the
/// usage trigger), and a hierarchy change must not take them in the other order. (Two-key advisory locks
/// are a space apart from the directory's one-key ones.)
async fn lock_hierarchy(conn: &mut PgConnection, account_id: i64) -> Result<(), MailboxError> {
    sqlx::query("SELECT pg_advisory_xact_lock(1, ($1 % 2147483647)::integer)").bind(account_id).execute(conn).await?;
    Ok(())
}

/// Locks the rows of a mailbox and (with `children`) every mailbox below it, in name order as message
/// changes do, before anything touches the accounts row; returns how many there are.
async fn lock_subtree(
    conn: &mut PgConnection,
    account_id: i64,
    name: &str,
    children: bool,
) -> Result<usize, MailboxError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM mailboxes
          WHERE account_id = $1 AND (name = $2 OR ($3 AND left(name, length($2) + 1) = $2 || '/'))
          ORDER BY name FOR UPDATE",
    )
    .bind(account_id)
    .bind(name)
    .bind(children)
    .fetch_all(conn)
    .await?;
    Ok(ids.len())
}

pub async fn create(pool: &PgPool, account_id: i64, name: &str, special_use: &str) -> Result<u32, MailboxError> {
    let name = names::mailbox_name(name)?;
    let special_use = match special_use {
        "" => None,
        given => Some(
            *SPECIAL_USES
                .iter()
                .find(|s| s.eq_ignore_ascii_case(given))
                .ok_or_else(|| MailboxError::InvalidArgument(format!("{given} is not a special-use attribute")))?,
        ),
    };
    let mut tx = pool.begin().await?;
    lock_hierarchy(&mut tx, account_id).await?;
    if exists(&mut tx, account_id, &name).await? {
        return Err(MailboxError::AlreadyExists(format!("mailbox {name:?}")));
    }
    create_parents(&mut tx, account_id, &name).await?;
    let uidvalidity = insert(&mut tx, account_id, &name, special_use).await?;
    tx.commit().await?;
    Ok(uidvalidity)
}

/// Renames a mailbox and every mailbox below it, and their subscriptions (as Dovecot does). Renaming
/// INBOX instead creates the new mailbox and moves INBOX's messages into it; INBOX stays, empty, and
/// its children stay where they are (RFC 9051 §6.3.6).
pub async fn rename(pool: &PgPool, account_id: i64, from: &str, to: &str) -> Result<RenameOutcome, MailboxError> {
    let (from, to) = (names::mailbox_name(from)?, names::mailbox_name(to)?);
    if to == INBOX {
        return Err(MailboxError::AlreadyExists("mailbox \"INBOX\"".into()));
    }
    // INBOX's children stay where they are when it is renamed, so INBOX/old is a fine new name for it.
    if to == from || (from != INBOX && to.starts_with(&format!("{from}{SEPARATOR}"))) {
        return Err(MailboxError::InvalidArgument(format!("cannot rename {from:?} into itself")));
    }
    let mut tx = pool.begin().await?;
    lock_hierarchy(&mut tx, account_id).await?;
    if lock_subtree(&mut tx, account_id, &from, from != INBOX).await? == 0 {
        return Err(MailboxError::NotFound(format!("mailbox {from:?} not found")));
    }
    if exists(&mut tx, account_id, &to).await? {
        return Err(MailboxError::AlreadyExists(format!("mailbox {to:?}")));
    }
    create_parents(&mut tx, account_id, &to).await?;
    if from == INBOX {
        insert(&mut tx, account_id, &to, None).await?;
        let moved = crate::maildrop::copy_in(&mut tx, account_id, INBOX, &to, None, true).await?;
        tx.commit().await?;
        return Ok(RenameOutcome::InboxMoved(moved));
    }
    sqlx::query(
        "UPDATE mailboxes SET name = $3 || substr(name, length($2) + 1)
          WHERE account_id = $1 AND (name = $2 OR left(name, length($2) + 1) = $2 || '/')",
    )
    .bind(account_id)
    .bind(&from)
    .bind(&to)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE subscriptions SET name = $3 || substr(name, length($2) + 1)
          WHERE account_id = $1 AND (name = $2 OR left(name, length($2) + 1) = $2 || '/')
            AND NOT EXISTS (SELECT 1 FROM subscriptions s
                             WHERE s.account_id = $1 AND s.name = $3 || substr(subscriptions.name, length($2) + 1))",
    )
    .bind(account_id)
    .bind(&from)
    .bind(&to)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(RenameOutcome::Renamed { from, to })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenameOutcome {
    /// The mailbox (and its children with it) has its new name.
    Renamed { from: String, to: String },
    /// INBOX was renamed: its messages moved to a new mailbox.
    InboxMoved(crate::maildrop::Copied),
}

/// Deletes a mailbox without children, with its messages. Octets no other entry shares are freed.
pub async fn delete(pool: &PgPool, account_id: i64, name: &str) -> Result<(), MailboxError> {
    let name = names::mailbox_name(name)?;
    if name == INBOX {
        return Err(MailboxError::FailedPrecondition("INBOX cannot be deleted".into()));
    }
    let mut tx = pool.begin().await?;
    lock_hierarchy(&mut tx, account_id).await?;
    let id: i64 = sqlx::query_scalar("SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2 FOR UPDATE")
        .bind(account_id)
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| MailboxError::NotFound(format!("mailbox {name:?} not found")))?;
    let children: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM mailboxes WHERE account_id = $1 AND left(name, length($2) + 1) = $2 || '/' LIMIT 1",
    )
    .bind(account_id)
    .bind(&name)
    .fetch_optional(&mut *tx)
    .await?;
    if children.is_some() {
        return Err(MailboxError::HasChildren(name));
    }
    let message_ids: Vec<i64> = sqlx::query_scalar(
        "DELETE FROM mailbox_entries WHERE mailbox_id = $1 AND message_id IS NOT NULL RETURNING message_id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM mailboxes WHERE id = $1").bind(id).execute(&mut *tx).await?;
    crate::maildrop::free_unreferenced(&mut tx, &message_ids).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn subscribe(pool: &PgPool, account_id: i64, name: &str, subscribed: bool) -> Result<(), MailboxError> {
    let name = names::mailbox_name(name)?;
    let query = if subscribed {
        "INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM subscriptions WHERE account_id = $1 AND name = $2"
    };
    sqlx::query(query).bind(account_id).bind(&name).execute(pool).await?;
    Ok(())
}

/// Mailboxes (or, for LIST (SUBSCRIBED), subscriptions) whose names match any of the patterns, in name
/// order with INBOX first.
pub async fn list(pool: &PgPool, account_id: i64, query: &ListQuery) -> Result<Vec<Listed>, MailboxError> {
    let mailboxes: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT name, special_use FROM mailboxes WHERE account_id = $1")
            .bind(account_id)
            .fetch_all(pool)
            .await?;
    let subscribed: BTreeSet<String> = sqlx::query_scalar("SELECT name FROM subscriptions WHERE account_id = $1")
        .bind(account_id)
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect();
    let existing: BTreeMap<String, Option<String>> = mailboxes.into_iter().collect();
    let candidates: BTreeSet<&String> =
        if query.subscribed_only { subscribed.iter().collect() } else { existing.keys().collect() };
    let patterns: Vec<String> = query.patterns.iter().map(|p| format!("{}{p}", query.reference)).collect();
    let mut statuses = if query.with_status { statuses(pool, account_id).await? } else { BTreeMap::new() };
    let mut out: Vec<Listed> = candidates
        .into_iter()
        .filter(|name| patterns.iter().any(|p| names::matches(p, name)))
        .map(|name| {
            let special_use = existing.get(name).cloned().flatten();
            let prefix = format!("{name}{SEPARATOR}");
            Listed {
                name: name.clone(),
                exists: existing.contains_key(name),
                subscribed: subscribed.contains(name),
                has_children: existing.keys().any(|other| other.starts_with(&prefix)),
                status: statuses.remove(name),
                special_use,
            }
        })
        .filter(|l| !query.special_use_only || l.special_use.is_some())
        .collect();
    out.sort_by(|a, b| (a.name != INBOX, &a.name).cmp(&(b.name != INBOX, &b.name)));
    Ok(out)
}

const STATUS_COLUMNS: &str = "b.uidvalidity, b.uidnext, b.highestmodseq,
       count(e.uid),
       count(e.uid) FILTER (WHERE NOT e.flags @> '{\\\\Seen}'),
       count(e.uid) FILTER (WHERE e.flags @> '{\\\\Deleted}'),
       coalesce(sum(m.size), 0)::bigint";

type StatusRow = (i64, i64, i64, i64, i64, i64, i64);

fn status_of(row: StatusRow) -> Status {
    let (uidvalidity, uidnext, highest_modseq, messages, unseen, deleted, size) = row;
    Status {
        messages: messages as u32,
        // UIDNEXT may be 2^32 once the last UID is used; clients see the largest value that fits.
        uidnext: u32::try_from(uidnext).unwrap_or(u32::MAX),
        uidvalidity: uidvalidity as u32,
        unseen: unseen as u32,
        deleted: deleted as u32,
        size: size as u64,
        highest_modseq: highest_modseq as u64,
    }
}

async fn statuses(pool: &PgPool, account_id: i64) -> Result<BTreeMap<String, Status>, MailboxError> {
    let rows: Vec<(String, StatusRow)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT b.name, ROW({STATUS_COLUMNS})
           FROM mailboxes b
           LEFT JOIN mailbox_entries e ON e.mailbox_id = b.id AND e.expunged_modseq IS NULL
           LEFT JOIN messages m ON m.id = e.message_id
          WHERE b.account_id = $1
          GROUP BY b.id"
    )))
    .bind(account_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(name, row)| (name, status_of(row))).collect())
}

pub async fn status(pool: &PgPool, account_id: i64, name: &str) -> Result<Status, MailboxError> {
    let name = names::mailbox_name(name)?;
    let row: Option<StatusRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {STATUS_COLUMNS}
           FROM mailboxes b
           LEFT JOIN mailbox_entries e ON e.mailbox_id = b.id AND e.expunged_modseq IS NULL
           LEFT JOIN messages m ON m.id = e.message_id
          WHERE b.account_id = $1 AND b.name = $2
          GROUP BY b.id"
    )))
    .bind(account_id)
    .bind(&name)
    .fetch_optional(pool)
    .await?;
    row.map(status_of).ok_or_else(|| MailboxError::NotFound(format!("mailbox {name:?} not found")))
}

/// Everything SELECT reports, read in one consistent snapshot.
pub async fn select(pool: &PgPool, account_id: i64, name: &str) -> Result<Selected, MailboxError> {
    let name = names::mailbox_name(name)?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let mailbox: Option<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, uidvalidity, uidnext, highestmodseq FROM mailboxes WHERE account_id = $1 AND name = $2",
    )
    .bind(account_id)
    .bind(&name)
    .fetch_optional(&mut *tx)
    .await?;
    let (id, uidvalidity, uidnext, highest_modseq) =
        mailbox.ok_or_else(|| MailboxError::NotFound(format!("mailbox {name:?} not found")))?;
    let rows: Vec<(i64, Vec<String>, i64)> = sqlx::query_as(
        "SELECT e.uid, e.flags, m.size FROM mailbox_entries e JOIN messages m ON m.id = e.message_id
          WHERE e.mailbox_id = $1 AND e.expunged_modseq IS NULL ORDER BY e.uid",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut status = status_of((uidvalidity, uidnext, highest_modseq, rows.len() as i64, 0, 0, 0));
    let mut keywords = BTreeSet::new();
    let mut first_unseen_uid = 0;
    let mut uids = Vec::with_capacity(rows.len());
    for (uid, flags, size) in rows {
        let has = |flag: &str| flags.iter().any(|f| f == flag);
        if !has("\\Seen") {
            status.unseen += 1;
            if first_unseen_uid == 0 {
                first_unseen_uid = uid as u32;
            }
        }
        status.deleted += u32::from(has("\\Deleted"));
        status.size += size as u64;
        keywords.extend(flags.into_iter().filter(|f| !f.starts_with('\\')));
        uids.push(uid as u32);
    }
    Ok(Selected { status, keywords: keywords.into_iter().collect(), uids, first_unseen_uid })
}

/// What changed in a mailbox after `since`: live entries with a higher MODSEQ, and UIDs expunged since.
pub async fn changes(pool: &PgPool, account_id: i64, name: &str, since: u64) -> Result<Changes, MailboxError> {
    let name = names::mailbox_name(name)?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let mailbox: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT id, uidvalidity, highestmodseq FROM mailboxes WHERE account_id = $1 AND name = $2")
            .bind(account_id)
            .bind(&name)
            .fetch_optional(&mut *tx)
            .await?;
    let (id, uidvalidity, highest_modseq) =
        mailbox.ok_or_else(|| MailboxError::NotFound(format!("mailbox {name:?} not found")))?;
    let rows: Vec<(i64, Option<Vec<String>>, i64, bool)> = sqlx::query_as(
        "SELECT uid, flags, modseq, expunged_modseq IS NOT NULL FROM mailbox_entries
          WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid",
    )
    .bind(id)
    .bind(since.min(i64::MAX as u64) as i64)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut changes = Changes {
        uidvalidity: uidvalidity as u32,
        highest_modseq: highest_modseq as u64,
        changed: Vec::new(),
        vanished: Vec::new(),
    };
    for (uid, flags, modseq, expunged) in rows {
        if expunged {
            changes.vanished.push(uid as u32);
        } else {
            changes.changed.push(EntryState {
                uid: uid as u32,
                flags: flags.unwrap_or_default(),
                modseq: modseq as u64,
            });
        }
    }
    Ok(changes)
}
