//! An account's mailbox hierarchy: create with parents, rename with children (INBOX's rename as a move),
//! delete, subscriptions (names, kept whether or not the mailbox exists), LIST, and finding a mailbox by
//! name. What a session reads of one mailbox is in `mailbox_state`.

use std::collections::{BTreeMap, BTreeSet};

use mailbus_address::{AccountId, MailboxId, MailboxName};
use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::error::MailboxError;
use crate::list_pattern;
use crate::store::mailbox_state::{self, Status};
use crate::store::messages::{self, Copied};

const INBOX: &str = MailboxName::INBOX;
const SEPARATOR: char = MailboxName::SEPARATOR;

/// Special-use attributes a mailbox may carry (RFC 6154 §2).
const SPECIAL_USES: &[&str] = &["\\Drafts", "\\Sent", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// As stored: names are checked when created, not again when listed.
    pub name: String,
    pub exists: bool,
    pub subscribed: bool,
    pub has_children: bool,
    pub special_use: Option<String>,
    pub status: Option<Status>,
    /// RECURSIVEMATCH (RFC 5258 §3.5): a descendant is subscribed (the CHILDINFO extended data item).
    pub child_subscribed: bool,
}

/// A mailbox's row: what every read and change of its messages starts from.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct MailboxRow {
    #[sqlx(try_from = "i64")]
    pub id: MailboxId,
    pub uidvalidity: i64,
    /// Up to 2^32, one past the last UID.
    pub uidnext: i64,
    pub highestmodseq: i64,
    /// RFC 3501 \Recent: UIDs at or above this have not been claimed by a read-write session.
    pub first_recent_uid: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub reference: String,
    pub patterns: Vec<String>,
    pub subscribed_only: bool,
    pub special_use_only: bool,
    pub with_status: bool,
    /// LSUB's rule for `%` (RFC 3501 §6.3.9): see [`lsub_parents`].
    pub lsub_parents: bool,
    /// LIST (SUBSCRIBED RECURSIVEMATCH), RFC 5258 §3: a name with a subscribed descendant is listed too
    /// (whether or not it is subscribed, or exists), and says so in `child_subscribed`.
    pub recursive_match: bool,
}

/// Mailboxes one account may have. A person's are a few hundred at most; a client creating them in a
/// loop would make every LIST, every JMAP Mailbox/get and the account's rows grow without end.
pub const MAX_MAILBOXES: i64 = 10_000;

/// Creates one mailbox row. Its UIDVALIDITY is the creation time in seconds (as Dovecot's) but always
/// above every value the account handed out before, so a name deleted and created again within a second
/// still gets a new one. An account with `MAX_MAILBOXES` already gets `OverQuota`.
pub async fn insert(
    conn: &mut PgConnection,
    account: AccountId,
    name: &MailboxName,
    special_use: Option<&str>,
) -> Result<u32, MailboxError> {
    let uidvalidity: Option<i64> = sqlx::query_scalar(
        "WITH next AS (
            UPDATE accounts
               SET last_uidvalidity = greatest(last_uidvalidity + 1,
                                               extract(epoch FROM clock_timestamp())::bigint % 4294967296)
             WHERE id = $1 AND (SELECT count(*) FROM mailboxes WHERE account_id = $1) < $4
         RETURNING last_uidvalidity)
         INSERT INTO mailboxes (account_id, name, uidvalidity, special_use)
         SELECT $1, $2, last_uidvalidity, $3 FROM next
         RETURNING uidvalidity",
    )
    .bind(account.get())
    .bind(name.as_str())
    .bind(special_use)
    .bind(MAX_MAILBOXES)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| match MailboxError::from(e) {
        MailboxError::AlreadyExists(what) if what.contains("special_use") => {
            MailboxError::SpecialUseTaken(special_use.unwrap_or_default().to_owned())
        }
        MailboxError::AlreadyExists(_) => already_exists(name),
        other => other,
    })?;
    let Some(uidvalidity) = uidvalidity else {
        // No row: the account has as many mailboxes as it may, or is gone.
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM accounts WHERE id = $1)")
            .bind(account.get())
            .fetch_one(&mut *conn)
            .await?;
        return Err(match exists {
            true => MailboxError::OverQuota(format!("the account has {MAX_MAILBOXES} mailboxes, as many as it may")),
            false => MailboxError::NotFound(format!("no account {}", account.get())),
        });
    };
    Ok(uidvalidity as u32)
}

fn already_exists(name: &MailboxName) -> MailboxError {
    MailboxError::AlreadyExists(format!("mailbox {:?}", name.as_str()))
}

pub(crate) fn not_found(name: &MailboxName) -> MailboxError {
    MailboxError::NotFound(format!("mailbox {:?} not found", name.as_str()))
}

/// An account's mailbox by name.
pub(crate) async fn find<'c>(
    conn: impl PgExecutor<'c>,
    account: AccountId,
    name: &MailboxName,
) -> Result<MailboxRow, MailboxError> {
    let row: Option<MailboxRow> = sqlx::query_as(
        "SELECT id, uidvalidity, uidnext, highestmodseq, first_recent_uid FROM mailboxes
          WHERE account_id = $1 AND name = $2",
    )
    .bind(account.get())
    .bind(name.as_str())
    .fetch_optional(conn)
    .await?;
    row.ok_or_else(|| not_found(name))
}

async fn exists(conn: &mut PgConnection, account: AccountId, name: &MailboxName) -> Result<bool, MailboxError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2")
        .bind(account.get())
        .bind(name.as_str())
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

/// Creates the missing superiors of `name` (RFC 9051 §6.3.4), outermost first.
async fn create_parents(conn: &mut PgConnection, account: AccountId, name: &MailboxName) -> Result<(), MailboxError> {
    for parent in name.parents() {
        if !exists(conn, account, &parent).await? {
            insert(conn, account, &parent, None).await?;
        }
    }
    Ok(())
}

/// Serialises hierarchy changes of one account, so that a rename and a create cannot cross. An advisory
/// lock rather than the accounts row: message changes lock a mailbox row and then the accounts row (the
/// usage trigger), and a hierarchy change must not take them in the other order. (Two-key advisory locks
/// are a space apart from the directory's one-key ones.)
async fn lock_hierarchy(conn: &mut PgConnection, account: AccountId) -> Result<(), MailboxError> {
    sqlx::query("SELECT pg_advisory_xact_lock(1, ($1 % 2147483647)::integer)")
        .bind(account.get())
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks the rows of a mailbox and (with `children`) every mailbox below it, in name order as message
/// changes do, before anything touches the accounts row; returns how many there are.
async fn lock_subtree(
    conn: &mut PgConnection,
    account: AccountId,
    name: &MailboxName,
    children: bool,
) -> Result<usize, MailboxError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM mailboxes
          WHERE account_id = $1 AND (name = $2 OR ($3 AND left(name, length($2) + 1) = $2 || '/'))
          ORDER BY name FOR UPDATE",
    )
    .bind(account.get())
    .bind(name.as_str())
    .bind(children)
    .fetch_all(conn)
    .await?;
    Ok(ids.len())
}

pub async fn create(
    pool: &PgPool,
    account: AccountId,
    name: &MailboxName,
    special_use: &str,
) -> Result<Created, MailboxError> {
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
    lock_hierarchy(&mut tx, account).await?;
    if exists(&mut tx, account, name).await? {
        return Err(already_exists(name));
    }
    create_parents(&mut tx, account, name).await?;
    let uidvalidity = insert(&mut tx, account, name, special_use).await?;
    let id = find(&mut *tx, account, name).await?.id.get();
    tx.commit().await?;
    Ok(Created { uidvalidity, id })
}

/// A mailbox CREATE made: its UIDVALIDITY and row id (IMAP's MAILBOXID, RFC 8474).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub uidvalidity: u32,
    pub id: i64,
}

/// Renames a mailbox and every mailbox below it, and their subscriptions (as Dovecot does). Renaming
/// INBOX instead creates the new mailbox and moves INBOX's messages into it; INBOX stays, empty, and
/// its children stay where they are (RFC 9051 §6.3.6).
pub async fn rename(
    pool: &PgPool,
    account: AccountId,
    from: &MailboxName,
    to: &MailboxName,
) -> Result<RenameOutcome, MailboxError> {
    if to.is_inbox() {
        return Err(MailboxError::AlreadyExists("mailbox \"INBOX\"".into()));
    }
    // INBOX's children stay where they are when it is renamed, so INBOX/old is a fine new name for it.
    if to == from || (!from.is_inbox() && to.is_below(from)) {
        return Err(MailboxError::InvalidArgument(format!("cannot rename {:?} into itself", from.as_str())));
    }
    let mut tx = pool.begin().await?;
    lock_hierarchy(&mut tx, account).await?;
    if lock_subtree(&mut tx, account, from, !from.is_inbox()).await? == 0 {
        return Err(not_found(from));
    }
    if exists(&mut tx, account, to).await? {
        return Err(already_exists(to));
    }
    create_parents(&mut tx, account, to).await?;
    if from.is_inbox() {
        insert(&mut tx, account, to, None).await?;
        let moved = messages::copy_in(&mut tx, account, from, to, None, true).await?;
        tx.commit().await?;
        return Ok(RenameOutcome::InboxMoved(moved));
    }
    rename_subtree(&mut tx, account, from, to).await?;
    tx.commit().await?;
    Ok(RenameOutcome::Renamed { from: from.clone(), to: to.clone() })
}

/// Renames the mailboxes and the subscriptions at and below `from`; a subscription the new name already
/// has is left as it is.
async fn rename_subtree(
    conn: &mut PgConnection,
    account: AccountId,
    from: &MailboxName,
    to: &MailboxName,
) -> Result<(), MailboxError> {
    sqlx::query(
        "UPDATE mailboxes SET name = $3 || substr(name, length($2) + 1)
          WHERE account_id = $1 AND (name = $2 OR left(name, length($2) + 1) = $2 || '/')",
    )
    .bind(account.get())
    .bind(from.as_str())
    .bind(to.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE subscriptions SET name = $3 || substr(name, length($2) + 1)
          WHERE account_id = $1 AND (name = $2 OR left(name, length($2) + 1) = $2 || '/')
            AND NOT EXISTS (SELECT 1 FROM subscriptions s
                             WHERE s.account_id = $1 AND s.name = $3 || substr(subscriptions.name, length($2) + 1))",
    )
    .bind(account.get())
    .bind(from.as_str())
    .bind(to.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenameOutcome {
    /// The mailbox (and its children with it) has its new name.
    Renamed { from: MailboxName, to: MailboxName },
    /// INBOX was renamed: its messages moved to a new mailbox.
    InboxMoved(Copied),
}

/// Deletes a mailbox without children, with its messages. Octets no other entry shares are freed.
pub async fn delete(pool: &PgPool, account: AccountId, name: &MailboxName) -> Result<(), MailboxError> {
    if name.is_inbox() {
        return Err(MailboxError::FailedPrecondition("INBOX cannot be deleted".into()));
    }
    let mut tx = pool.begin().await?;
    lock_hierarchy(&mut tx, account).await?;
    let id: i64 = sqlx::query_scalar("SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2 FOR UPDATE")
        .bind(account.get())
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| not_found(name))?;
    let children: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM mailboxes WHERE account_id = $1 AND left(name, length($2) + 1) = $2 || '/' LIMIT 1",
    )
    .bind(account.get())
    .bind(name.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    if children.is_some() {
        return Err(MailboxError::HasChildren(name.to_string()));
    }
    let message_ids: Vec<i64> = sqlx::query_scalar(
        "DELETE FROM mailbox_entries WHERE mailbox_id = $1 AND message_id IS NOT NULL RETURNING message_id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM mailboxes WHERE id = $1").bind(id).execute(&mut *tx).await?;
    messages::free_unreferenced(&mut tx, &message_ids).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn subscribe(
    pool: &PgPool,
    account: AccountId,
    name: &MailboxName,
    subscribed: bool,
) -> Result<(), MailboxError> {
    let query = if subscribed {
        "INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM subscriptions WHERE account_id = $1 AND name = $2"
    };
    sqlx::query(query).bind(account.get()).bind(name.as_str()).execute(pool).await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Existing {
    name: String,
    special_use: Option<String>,
}

/// Mailboxes (or, for LIST (SUBSCRIBED), subscriptions) whose names match any of the patterns, in name
/// order with INBOX first.
pub async fn list(pool: &PgPool, account: AccountId, query: &ListQuery) -> Result<Vec<Listed>, MailboxError> {
    let existing: Vec<Existing> = sqlx::query_as("SELECT name, special_use FROM mailboxes WHERE account_id = $1")
        .bind(account.get())
        .fetch_all(pool)
        .await?;
    let subscribed: BTreeSet<String> = sqlx::query_scalar("SELECT name FROM subscriptions WHERE account_id = $1")
        .bind(account.get())
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect();
    let existing: BTreeMap<String, Option<String>> = existing.into_iter().map(|e| (e.name, e.special_use)).collect();
    let statuses = if query.with_status { mailbox_state::statuses(pool, account).await? } else { BTreeMap::new() };
    Ok(listing(query, &existing, &subscribed, statuses))
}

/// RFC 3501 §6.3.9: "if foo/bar is subscribed but foo is not, LSUB "" % returns foo with \Noselect".
/// The names that a `%` pattern stops short of a subscribed name at, which are not subscribed themselves.
fn lsub_parents(patterns: &[String], subscribed: &BTreeSet<String>) -> BTreeSet<String> {
    let mut parents = BTreeSet::new();
    for name in subscribed {
        let mut at = 0;
        while let Some(found) = name[at..].find(SEPARATOR) {
            let parent = &name[..at + found];
            at += found + SEPARATOR.len_utf8();
            let stops_here = patterns.iter().any(|p| p.contains('%') && list_pattern::matches(p, parent));
            if stops_here && !subscribed.contains(parent) {
                parents.insert(parent.to_owned());
            }
        }
    }
    parents
}

/// Every name above one of `names` in the hierarchy.
fn ancestors(names: &BTreeSet<String>) -> BTreeSet<String> {
    let mut above = BTreeSet::new();
    for name in names {
        for (at, _) in name.match_indices(SEPARATOR) {
            above.insert(name[..at].to_owned());
        }
    }
    above
}

/// LIST's answer from an account's mailboxes (with their special use) and subscriptions.
fn listing(
    query: &ListQuery,
    existing: &BTreeMap<String, Option<String>>,
    subscribed: &BTreeSet<String>,
    mut statuses: BTreeMap<String, Status>,
) -> Vec<Listed> {
    let patterns: Vec<String> = query.patterns.iter().map(|p| format!("{}{p}", query.reference)).collect();
    let mut candidates: BTreeSet<&String> =
        if query.subscribed_only { subscribed.iter().collect() } else { existing.keys().collect() };
    let parents = if query.lsub_parents { lsub_parents(&patterns, subscribed) } else { BTreeSet::new() };
    candidates.extend(parents.iter());
    let with_subscribed_child = if query.recursive_match { ancestors(subscribed) } else { BTreeSet::new() };
    candidates.extend(with_subscribed_child.iter());
    let mut out: Vec<Listed> = candidates
        .into_iter()
        .filter(|name| patterns.iter().any(|p| list_pattern::matches(p, name)))
        .map(|name| {
            let special_use = existing.get(name).cloned().flatten();
            let prefix = format!("{name}{SEPARATOR}");
            Listed {
                name: name.clone(),
                exists: existing.contains_key(name),
                subscribed: subscribed.contains(name),
                // The first name after the prefix in order is a child if any is.
                has_children: existing
                    .range(prefix.clone()..)
                    .next()
                    .is_some_and(|(other, _)| other.starts_with(&prefix)),
                status: statuses.remove(name),
                special_use,
                child_subscribed: with_subscribed_child.contains(name.as_str()),
            }
        })
        .filter(|l| !query.special_use_only || l.special_use.is_some())
        .collect();
    out.sort_by(|a, b| (a.name != INBOX, &a.name).cmp(&(b.name != INBOX, &b.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    /// RFC 5258 §3.5: `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"` lists the top-level names with a subscribed
    /// descendant, subscribed or not and existing or not, and marks them; without RECURSIVEMATCH, only what
    /// is subscribed and matches.
    #[test]
    fn recursive_match_lists_parents_of_subscribed_names() {
        let existing: BTreeMap<String, Option<String>> =
            ["INBOX", "Foo", "Foo/Bar", "Plain"].map(|n| (n.to_owned(), None)).into();
        let subscribed = names(&["INBOX", "Foo/Bar", "Veg/Root/Carrot"]);
        let query = ListQuery {
            patterns: vec!["%".into()],
            subscribed_only: true,
            recursive_match: true,
            ..ListQuery::default()
        };
        let listed = listing(&query, &existing, &subscribed, BTreeMap::new());
        let seen: Vec<(&str, bool, bool, bool)> =
            listed.iter().map(|l| (l.name.as_str(), l.exists, l.subscribed, l.child_subscribed)).collect();
        assert_eq!(seen, [("INBOX", true, true, false), ("Foo", true, false, true), ("Veg", false, false, true)]);

        let plain = ListQuery { recursive_match: false, ..query };
        let listed = listing(&plain, &existing, &subscribed, BTreeMap::new());
        assert_eq!(listed.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["INBOX"]);
    }
}
