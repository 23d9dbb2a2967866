//! The NATS topology of mailbus, in one place: every stream, bucket, consumer and subject name (under a
//! configurable prefix, so tests and tenants stay apart), and the operations on them that more than one
//! role performs.
//!
//! - The **queue**: JetStream work-queue streams ([`Names::partitions`] of them) of protobuf
//!   [`Envelope`]s, one per accepted message, deduplicated by `Nats-Msg-Id` = queue id; the partition of
//!   a message is chosen from that id ([`partition_for`]), so a repeat reaches the stream that remembers
//!   it. Relay replicas share one durable pull consumer on each partition and consume them all.
//! - **Replicas**: every stream and bucket is made with [`Names::replicas`] copies, and brought to that
//!   count when a role opens the queue ([`reconcile_replicas`]).
//! - The **body store**: a JetStream object store holding each large message's octets under its queue id,
//!   read by direct gets of its chunks, never through a consumer.
//! - **Mailbox events**: core NATS subjects `<prefix>.mail.events.<account id>`, published by the mailbox
//!   role after each commit.
//! - **Directory changes**: the core NATS subject `<prefix>.directory.changed`, announced by the mailbox
//!   role after each change to accounts, aliases or domains, on which the roles that keep recipient
//!   answers forget them ([`follow_directory_changes`]).
//!
//! - **Claims**: a key-value bucket per partition saying who settles a queue message, a relay attempt or an operator's
//!   change, so that an operator's hold, delete or bounce wins over an attempt in flight ([`Claims`]).
//! - **Leases**: a key-value bucket of locks that expire by themselves (the POP3 maildrop lock).
//! - **Failed logins**: a key-value bucket of counts per client address and account, shared by every
//!   protocol and replica ([`LoginThrottle`]).
//! - **Submission rates**: a key-value bucket of message and recipient counts per account and client
//!   address in fixed windows, shared by every replica of the roles that accept submissions
//!   ([`SubmissionLimits`]).
//!
//! - **Backup**: every stream of the prefix snapshotted and restored through the server's API ([`backup`]).
//!
//! Each envelope carries the W3C trace context of the session that accepted it in its headers.

pub mod backup;
mod bodies;
mod bucket;
mod claims;
mod directory;
mod events;
mod lease;
mod names;
mod queue;
mod rate;
mod throttle;
mod trace;

pub use async_nats;
pub use bucket::open_bucket;
pub use claims::{Claimant, Claims};
pub use directory::{announce_directory_change, follow_directory_changes};
pub use events::{PROBE_HEADER, is_probe, subscribe_confirmed};
pub use lease::{Lease, Leases};
pub use mailbus_proto::v1::{Envelope, MailboxEvent};
pub use names::{MAX_PARTITIONS, MAX_REPLICAS, NameError, Names, partition_for};
pub use queue::{
    DUPLICATE_WINDOW, INLINE_LIMIT, MAX_ACK_WAIT, Position, Queue, QueueError, QueueStatus, RELAY_CONSUMER,
    reconcile_replicas,
};
pub use rate::{Limit, RatePolicy, SubmissionLimits};
pub use throttle::{LoginThrottle, ThrottlePolicy, Verdict, account_tag};
pub use trace::{adopt_trace, inject_trace};

/// Connects to NATS and keeps reconnecting for as long as the process runs: a role survives a NATS
/// restart without being restarted itself. `url` may name several servers of a cluster, separated by
/// commas; the client goes to another when one is down (and learns the rest of the cluster from them).
pub async fn connect(url: &str, client_name: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .name(client_name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(std::time::Duration::from_secs(5))
        .connect(servers(url))
        .await
}

/// The servers of a `NATS_URL`: one URL, or several separated by commas.
pub fn servers(url: &str) -> Vec<&str> {
    url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}
