//! Sieve's rows: an account's scripts (at most one active), its VacationResponse, and vacation's memory
//! of whom it answered. The `Sieve` gRPC service writes the scripts; delivery reads the active one and the
//! vacation row, and writes `vacation_sent` inside its own transaction (`store::delivery`).

use chrono::{DateTime, Utc};
use mailbus_address::{AccountId, MailboxName};
use sqlx::{PgConnection, PgPool};

use crate::error::MailboxError;

/// One script's listing.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScriptInfo {
    pub name: String,
    pub active: bool,
    pub size: i64,
}

/// The script that runs at delivery; `updated_at` tells a cached parse from a stale one.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActiveScript {
    pub content: String,
    pub updated_at: DateTime<Utc>,
}

/// The account's VacationResponse (RFC 8621 §8), as JMAP writes it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VacationRow {
    pub is_enabled: bool,
    pub from_date: Option<DateTime<Utc>>,
    pub to_date: Option<DateTime<Utc>>,
    pub subject: Option<String>,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
}

impl VacationRow {
    /// RFC 8621 §8: enabled, and `at` within [fromDate, toDate) where either may be open.
    pub fn in_effect(&self, at: DateTime<Utc>) -> bool {
        self.is_enabled && self.from_date.is_none_or(|from| from <= at) && self.to_date.is_none_or(|to| at < to)
    }
}

pub async fn list(pool: &PgPool, account: AccountId) -> Result<Vec<ScriptInfo>, MailboxError> {
    let scripts = sqlx::query_as(
        "SELECT name, active, octet_length(content)::BIGINT AS size FROM sieve_scripts
          WHERE account_id = $1 ORDER BY name",
    )
    .bind(account.get())
    .fetch_all(pool)
    .await?;
    Ok(scripts)
}

pub async fn get(pool: &PgPool, account: AccountId, name: &str) -> Result<String, MailboxError> {
    let content: Option<String> =
        sqlx::query_scalar("SELECT content FROM sieve_scripts WHERE account_id = $1 AND name = $2")
            .bind(account.get())
            .bind(name)
            .fetch_optional(pool)
            .await?;
    content.ok_or_else(|| not_found(name))
}

/// Room for a script of `size` octets under `name`: replacing a script frees its own size and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub max_scripts: usize,
    pub max_size: usize,
}

/// Why a script does not fit, in ManageSieve's words (RFC 5804 §1.3 QUOTA/MAXSCRIPTS, QUOTA/MAXSIZE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    MaxScripts,
    MaxSize,
}

impl NoRoom {
    pub fn reason(self) -> &'static str {
        match self {
            NoRoom::MaxScripts => "maxscripts",
            NoRoom::MaxSize => "maxsize",
        }
    }
}

/// Whether a script of `size` under `name` fits the quota, counting the account's other scripts.
pub async fn fits(
    conn: &mut PgConnection,
    account: AccountId,
    name: &str,
    size: usize,
    quota: Quota,
) -> Result<Result<(), NoRoom>, MailboxError> {
    if size > quota.max_size {
        return Ok(Err(NoRoom::MaxSize));
    }
    let others: i64 = sqlx::query_scalar("SELECT count(*) FROM sieve_scripts WHERE account_id = $1 AND name <> $2")
        .bind(account.get())
        .bind(name)
        .fetch_one(conn)
        .await?;
    if others as usize >= quota.max_scripts {
        return Ok(Err(NoRoom::MaxScripts));
    }
    Ok(Ok(()))
}

/// Creates or replaces a script, under the account row's lock so that two uploads at once cannot both
/// pass the count. Replacing keeps the script's active flag.
pub async fn put(
    pool: &PgPool,
    account: AccountId,
    name: &str,
    content: &str,
    quota: Quota,
) -> Result<Result<ScriptInfo, NoRoom>, MailboxError> {
    let mut tx = pool.begin().await?;
    lock_account(&mut tx, account).await?;
    if let Err(no_room) = fits(&mut tx, account, name, content.len(), quota).await? {
        return Ok(Err(no_room));
    }
    let info = sqlx::query_as(
        "INSERT INTO sieve_scripts (account_id, name, content) VALUES ($1, $2, $3)
         ON CONFLICT (account_id, name) DO UPDATE SET content = excluded.content, updated_at = now()
         RETURNING name, active, octet_length(content)::BIGINT AS size",
    )
    .bind(account.get())
    .bind(name)
    .bind(content)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Ok(info))
}

/// Makes `name` the only active script; `None` deactivates every script.
pub async fn set_active(pool: &PgPool, account: AccountId, name: Option<&str>) -> Result<(), MailboxError> {
    let mut tx = pool.begin().await?;
    lock_account(&mut tx, account).await?;
    if let Some(name) = name {
        let found: Option<bool> =
            sqlx::query_scalar("SELECT active FROM sieve_scripts WHERE account_id = $1 AND name = $2")
                .bind(account.get())
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        match found {
            None => return Err(not_found(name)),
            Some(true) => return Ok(()),
            Some(false) => {}
        }
    }
    // The old active script is switched off first: the partial unique index allows one at a time. A
    // change of the active script counts as its update, so a delivery's cache parses it again.
    sqlx::query("UPDATE sieve_scripts SET active = false WHERE account_id = $1 AND active")
        .bind(account.get())
        .execute(&mut *tx)
        .await?;
    if let Some(name) = name {
        sqlx::query("UPDATE sieve_scripts SET active = true, updated_at = now() WHERE account_id = $1 AND name = $2")
            .bind(account.get())
            .bind(name)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes a script; the active one cannot be (RFC 5804 §2.10: deactivate it first).
pub async fn delete(pool: &PgPool, account: AccountId, name: &str) -> Result<(), MailboxError> {
    let active: Option<bool> = sqlx::query_scalar(
        "DELETE FROM sieve_scripts WHERE account_id = $1 AND name = $2 AND NOT active RETURNING false",
    )
    .bind(account.get())
    .bind(name)
    .fetch_optional(pool)
    .await?;
    if active.is_some() {
        return Ok(());
    }
    // Nothing deleted: either there is no such script or it is the active one.
    get(pool, account, name).await?;
    Err(MailboxError::ActiveScript(name.to_owned()))
}

/// Renames a script, keeping its content and active flag (RFC 5804 §2.11.1).
pub async fn rename(pool: &PgPool, account: AccountId, old: &str, new: &str) -> Result<(), MailboxError> {
    let renamed = sqlx::query("UPDATE sieve_scripts SET name = $3 WHERE account_id = $1 AND name = $2")
        .bind(account.get())
        .bind(old)
        .bind(new)
        .execute(pool)
        .await
        .map_err(|e| match MailboxError::from(e) {
            MailboxError::AlreadyExists(_) => MailboxError::AlreadyExists(format!("script {new:?}")),
            other => other,
        })?;
    if renamed.rows_affected() == 0 {
        return Err(not_found(old));
    }
    Ok(())
}

/// What decides a delivery's plan, in one query: the account's active script and its vacation response,
/// each if it has one.
pub async fn filters(
    pool: &PgPool,
    account: AccountId,
) -> Result<(Option<ActiveScript>, Option<VacationRow>), MailboxError> {
    let row: Filters = sqlx::query_as(
        "SELECT s.content, s.updated_at, v.is_enabled, v.from_date, v.to_date, v.subject, v.text_body, v.html_body
           FROM (SELECT) one
           LEFT JOIN sieve_scripts s ON s.account_id = $1 AND s.active
           LEFT JOIN vacation_responses v ON v.account_id = $1",
    )
    .bind(account.get())
    .fetch_one(pool)
    .await?;
    let script = match (row.content, row.updated_at) {
        (Some(content), Some(updated_at)) => Some(ActiveScript { content, updated_at }),
        _ => None,
    };
    let vacation = row.is_enabled.map(|is_enabled| VacationRow {
        is_enabled,
        from_date: row.from_date,
        to_date: row.to_date,
        subject: row.subject,
        text_body: row.text_body,
        html_body: row.html_body,
    });
    Ok((script, vacation))
}

/// [`filters`]' row: every column absent where the account has no script or no vacation response.
#[derive(sqlx::FromRow)]
struct Filters {
    content: Option<String>,
    updated_at: Option<DateTime<Utc>>,
    is_enabled: Option<bool>,
    from_date: Option<DateTime<Utc>>,
    to_date: Option<DateTime<Utc>>,
    subject: Option<String>,
    text_body: Option<String>,
    html_body: Option<String>,
}

/// The handles vacation has answered `sender` with, still within their period.
pub async fn vacation_handles(pool: &PgPool, account: AccountId, sender: &str) -> Result<Vec<String>, MailboxError> {
    let handles =
        sqlx::query_scalar("SELECT handle FROM vacation_sent WHERE account_id = $1 AND sender = $2 AND until > now()")
            .bind(account.get())
            .bind(sender)
            .fetch_all(pool)
            .await?;
    Ok(handles)
}

/// Remembers a reply for `days` (RFC 5230 §4.2), in the delivery's transaction: false when a memory
/// still in its period is there already (another delivery answered since this one was planned), and the
/// reply is then not sent.
pub async fn remember_vacation(
    conn: &mut PgConnection,
    account: AccountId,
    record: &mailbus_sieve::VacationRecord,
) -> Result<bool, MailboxError> {
    let fresh: Option<i32> = sqlx::query_scalar(
        "INSERT INTO vacation_sent (account_id, sender, handle, until)
         VALUES ($1, $2, $3, now() + make_interval(days => $4))
         ON CONFLICT (account_id, sender, handle) DO UPDATE SET until = excluded.until
          WHERE vacation_sent.until <= now()
         RETURNING 1",
    )
    .bind(account.get())
    .bind(&record.sender)
    .bind(&record.handle)
    .bind(i32::try_from(record.days).unwrap_or(i32::MAX))
    .fetch_optional(conn)
    .await?;
    Ok(fresh.is_some())
}

/// Drops vacation's memories whose period is over, and follow-ups older than any queue lifetime (a relay
/// that queued them but died before saying so); run hourly beside the change log's pruning.
pub async fn prune(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let sent = sqlx::query("DELETE FROM vacation_sent WHERE until <= now()").execute(pool).await?;
    let follow_ups =
        sqlx::query("DELETE FROM delivery_follow_ups WHERE created_at < now() - make_interval(secs => $1)")
            .bind(crate::store::delivery::RECORDS_KEPT.as_secs_f64())
            .execute(pool)
            .await?;
    Ok(sent.rows_affected() + follow_ups.rows_affected())
}

/// Whether the account exists and is not disabled.
pub async fn account_enabled(pool: &PgPool, account: AccountId) -> Result<bool, MailboxError> {
    let enabled: Option<bool> = sqlx::query_scalar("SELECT NOT disabled FROM accounts WHERE id = $1")
        .bind(account.get())
        .fetch_optional(pool)
        .await?;
    Ok(enabled == Some(true))
}

/// The account's own address: vacation's From and "ours" (RFC 5230 §4.5), and the loop marker's value.
pub async fn account_address(pool: &PgPool, account: AccountId) -> Result<Option<String>, MailboxError> {
    let address = sqlx::query_scalar("SELECT address FROM accounts WHERE id = $1")
        .bind(account.get())
        .fetch_optional(pool)
        .await?;
    Ok(address)
}

/// The names of the account's mailboxes, for `mailboxexists` (RFC 5490 §3.1).
pub async fn mailbox_names(pool: &PgPool, account: AccountId) -> Result<Vec<String>, MailboxError> {
    let names = sqlx::query_scalar("SELECT name FROM mailboxes WHERE account_id = $1")
        .bind(account.get())
        .fetch_all(pool)
        .await?;
    Ok(names)
}

pub async fn mailbox_exists(pool: &PgPool, account: AccountId, name: &MailboxName) -> Result<bool, MailboxError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2")
        .bind(account.get())
        .bind(name.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(found.is_some())
}

async fn lock_account(conn: &mut PgConnection, account: AccountId) -> Result<(), MailboxError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
        .bind(account.get())
        .fetch_optional(conn)
        .await?;
    found.map(drop).ok_or_else(|| MailboxError::NotFound(format!("no account {}", account.get())))
}

fn not_found(name: &str) -> MailboxError {
    MailboxError::NotFound(format!("no script {name:?}"))
}
