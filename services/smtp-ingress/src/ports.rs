//! What a session needs from the rest of the system, as traits: the connection code is written against
//! these, production implements them over gRPC and JetStream, and unit tests use in-memory fakes.

use mailbus_address::EmailAddress;
use mailbus_smtp::session::{AuthenticatedUser, Message, Verdict};

use crate::body::Body;

/// Facts about the client that go into `Received:` and the envelope.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub peer: std::net::SocketAddr,
}

/// The directory could not be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryUnavailable;

pub trait Directory: Send + Sync + 'static {
    /// Whether `address` is ours: a local account, an unknown user of a local domain, or not local.
    fn verdict(&self, address: &EmailAddress) -> impl Future<Output = Verdict> + Send;

    /// Whether `user` may send as `address`.
    fn sender_allowed(
        &self,
        user: &AuthenticatedUser,
        address: &EmailAddress,
    ) -> impl Future<Output = Result<bool, DirectoryUnavailable>> + Send;

    /// The account these credentials prove, `None` when they are wrong.
    fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> impl Future<Output = Result<Option<AuthenticatedUser>, DirectoryUnavailable>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// With `Received:` prepended (and line endings normalised) the message is over the size limit. It
    /// must be refused now: the mailbox would refuse it after the 250.
    #[error("message of {size} octets is over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

pub trait Spool: Send + Sync + 'static {
    /// Makes `message` and its `body` durable and returns its queue id. `Ok` means it is safe to answer 250.
    fn enqueue(
        &self,
        message: Message,
        body: Body,
        client: &ClientInfo,
        hostname: &str,
    ) -> impl Future<Output = Result<String, SpoolError>> + Send;
}
