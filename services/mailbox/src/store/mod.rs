//! The store layer: every SQL statement the mailbox role runs is in this module, and nothing outside it
//! touches `sqlx` beyond holding the pool, except `crate::jmap`, whose queries only JMAP runs and sit
//! beside their methods. Functions take the pool (or a transaction's connection) and
//! validated identifiers (`AccountId`, `MailboxName`, `Uid`), and return named structs; rows are read into
//! `sqlx::FromRow` structs, never tuples. Queries are checked at run time against the real schema by the
//! whole-stack tests (ARCHITECTURE.md: no `sqlx::query!`).
//!
//! - `directory`: domains, accounts, credentials, aliases, and where an address leads.
//! - `dkim`: each domain's DKIM keys, their selectors and states.
//! - `quota`: the check every added entry passes, and an account's usage.
//! - `mailboxes`: an account's hierarchy (create, rename, delete, subscribe, LIST).
//! - `mailbox_state`: what a session reads of one mailbox (STATUS, SELECT, changes since a MODSEQ).
//! - `delivery`: one delivery into one account as its Sieve script planned it (mailboxes, follow-ups,
//!   vacation's memory, rejection), idempotent per (queue id, recipient, account); a batch of them into
//!   one account in one transaction.
//! - `sieve`: an account's Sieve scripts, its VacationResponse, and whom vacation answered.
//! - `messages`: every change to messages (append, flags, copy, move, expunge), each one
//!   transaction under the mailbox row lock.
//! - `fetch`: reading messages back (POP3's listing and RETR, FETCH's rows and octets).
//! - `search`: SEARCH keys as one query; BODY and TEXT as substrings of the stored searchable text.
//! - `emails`: JMAP's reads of emails (rows, entries, uploads) for Email/get and the Email writes' plans.
//! - `email_query`: Email/query's filter and sort as one query.
//! - `parsed`: the columns a parsed message fills, and the start-up backfill of rows stored before parsing.
//!
//! The schema is `migrations/`, applied by [`open`] at start-up.

pub mod delivery;
pub mod directory;
pub mod dkim;
pub mod email_query;
pub mod emails;
pub mod fetch;
pub mod mailbox_state;
pub mod mailboxes;
pub mod messages;
pub mod parsed;
pub mod quota;
pub mod recent;
pub mod search;
pub mod sieve;

use std::time::Duration;

use mailbus_address::Uid;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::StartError;
use crate::error::MailboxError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects to PostgreSQL and brings the schema up to date. Several replicas starting at once take turns
/// on the migrator's advisory lock.
pub async fn open(database_url: &str, max_connections: u32) -> Result<PgPool, StartError> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(database_url)
        .await
        .map_err(StartError::Database)?;
    MIGRATOR.run(&pool).await?;
    // An account's change step names the transaction that took it (`accounts.change_xid`). A database
    // restored into another cluster may carry ids that cluster has not reached yet; one of its own
    // transactions would then share a step already published and its changes would be missed. Ids ahead
    // of this very transaction's can only be such (or of a transaction running now, which has finished
    // with its step when this update gets its row): they are forgotten.
    sqlx::query("UPDATE accounts SET change_xid = NULL WHERE change_xid >= pg_current_xact_id()")
        .execute(&pool)
        .await
        .map_err(StartError::Database)?;
    Ok(pool)
}

/// Whether PostgreSQL answers a trivial query now.
pub async fn reachable(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}

/// UIDs as the store keeps them: in `bigint` columns, since UIDNEXT may be 2^32.
pub(crate) fn uid_column(uids: &[Uid]) -> Vec<i64> {
    uids.iter().map(|&uid| i64::from(uid)).collect()
}

/// A UID read or computed from a `bigint` outside a row struct. The schema and the UIDNEXT check keep
/// these in range, so a failure means a corrupt row, reported as the database's fault.
pub(crate) fn uid_from_column(raw: i64) -> Result<Uid, MailboxError> {
    Uid::try_from(raw).map_err(|e| MailboxError::Database(sqlx::Error::Decode(Box::new(e))))
}
