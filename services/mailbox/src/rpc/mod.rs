//! The gRPC edge of the mailbox role: `directory` serves `Directory`, `mailbox` serves `Mailbox`, `jmap`
//! serves `Jmap` (from `crate::jmap`), `dkim` serves `DkimKeys`, `sieve` serves `Sieve`. Each
//! method converts the request's primitives into the store's types (`AccountId`, `MailboxName`, `Uid`),
//! calls the store, follows a change with its event on NATS, and converts the result into the reply;
//! errors become gRPC statuses in one place, `crate::error`. No SQL is written here.
//!
//! The streams have files of their own: `upload` reads Deliver's and Append's client streams, `deliver`
//! places a delivery in each account its recipient leads to, `fetch_stream` sends FETCH's results.

mod deliver;
mod directory;
mod dkim;
mod fetch_stream;
mod jmap;
mod mailbox;
mod sieve;
mod upload;

use mailbus_address::{AccountId, MailboxName, RecipientDelimiter, Uid};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use sqlx::PgPool;

use crate::delivery_threads::DeliveryThreads;
use crate::error::{MailboxError, QuotaFull};
use crate::events::Events;
use crate::filter::Filter;
use crate::group_commit::GroupCommit;
use crate::password::Hasher;
use crate::store::delivery;

/// What both services share: the store's pool, the hashing threads, the event publisher, the limits and
/// policy, and Deliver's metrics.
#[derive(Clone)]
pub struct MailboxService {
    pub pool: PgPool,
    pub hasher: Hasher,
    pub events: Events,
    pub max_message_size: u64,
    pub quota_full: QuotaFull,
    /// Plus-addressing: how a recipient's detail is cut off when the whole address leads nowhere.
    pub recipient_delimiter: RecipientDelimiter,
    pub deliveries: Family<Vec<(String, String)>, Counter>,
    /// Time from a Deliver call's arrival to its reply, upload and commit included.
    pub deliver_seconds: Histogram,
    /// Sieve at delivery: the parsed-script cache, the interpreter's limits, the error counts.
    pub filter: Filter,
    pub sieve_quota: SieveQuota,
    /// Deliver calls for one account, gathered into one transaction each (`crate::group_commit`).
    pub delivery_batches: GroupCommit<AccountId, delivery::Job, Result<delivery::Delivered, MailboxError>>,
    /// Where Deliver's work runs (`crate::delivery_threads`).
    pub delivery_threads: DeliveryThreads,
}

/// How many scripts an account may keep, and how large each may be.
#[derive(Debug, Clone, Copy)]
pub struct SieveQuota {
    pub max_scripts: usize,
    pub max_size: usize,
}

/// A mailbox name from a request, checked and normalised.
fn mailbox_name(name: &str) -> Result<MailboxName, MailboxError> {
    name.parse().map_err(|e| MailboxError::bad_mailbox_name(name, e))
}

/// UIDs from a request. 0 names no message, so it is left out: the store would find none under it.
fn uids(given: &[u32]) -> Vec<Uid> {
    given.iter().filter_map(|&uid| Uid::new(uid)).collect()
}

fn uids_to_pb(uids: &[Uid]) -> Vec<u32> {
    uids.iter().map(|&uid| uid.get()).collect()
}
