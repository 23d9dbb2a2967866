//! What a session needs from the rest of the system, as traits: the connection code is written against
//! these, production implements them over gRPC and JetStream, and unit tests use in-memory fakes.

use mailbus_address::EmailAddress;
use mailbus_smtp::session::{Message, Verdict};

/// Facts about the client that go into `Received:` and the envelope.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub peer: std::net::SocketAddr,
}

pub trait Directory: Send + Sync + 'static {
    /// Whether `address` may receive mail in this session.
    fn verdict(&self, address: &EmailAddress) -> impl Future<Output = Verdict> + Send;
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpoolError(pub String);

pub trait Spool: Send + Sync + 'static {
    /// Makes `message` durable and returns its queue id. `Ok` means it is safe to answer 250.
    fn enqueue(
        &self,
        message: Message,
        client: &ClientInfo,
        hostname: &str,
    ) -> impl Future<Output = Result<String, SpoolError>> + Send;
}
