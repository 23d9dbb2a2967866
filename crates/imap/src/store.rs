//! The session's ports: [`Store`], what it asks of the mailbox role (and the directory, for a login), and
//! [`Wire`], where its output goes and its input comes from. The access role implements both (gRPC and
//! NATS, a TCP or TLS socket); the transcript tests implement them in memory.
//!
//! The store's data types are the mailbox role's protobuf messages: a domain type here would copy them
//! field for field. Its errors are typed ([`StoreError`]): the adapter turns the wire's status codes into
//! them in one place, and the session turns them into RFC 5530 response codes in one place
//! (`session::refusal`).

use std::future::Future;
use std::time::Duration;

use futures::Stream;
use mailbus_address::AccountId;
use mailbus_proto::v1 as pb;

/// Why the store refused or failed a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The mailbox (or message) does not exist: `NONEXISTENT`, or `TRYCREATE` for APPEND, COPY and MOVE.
    #[error("{0}")]
    NonExistent(String),
    /// `ALREADYEXISTS`.
    #[error("{0}")]
    AlreadyExists(String),
    /// RFC 9051 `HASCHILDREN`: a mailbox with children cannot be deleted.
    #[error("{0}")]
    HasChildren(String),
    /// RFC 6154 `USEATTR`: another mailbox already has the special-use attribute.
    #[error("{0}")]
    SpecialUseTaken(String),
    /// `OVERQUOTA`: the account's quota has no room.
    #[error("{0}")]
    OverQuota(String),
    /// The store will not do it (a bad name, a state that does not allow it): `CANNOT`.
    #[error("{0}")]
    Cannot(String),
    /// The store is down or failed inside: `UNAVAILABLE`, with a text that says to try again.
    #[error("{0}")]
    Unavailable(String),
    /// Any other refusal, passed on with its text: `UNAVAILABLE`.
    #[error("{0}")]
    Other(String),
}

/// How a login went. The adapter owns what surrounds the password check (the failed-login throttle and
/// its delays, the connection slot, the event subscription); the session owns the state it leads to.
pub enum LoginOutcome<Lease> {
    /// Logged in. `lease` is what the login holds until it ends (LOGOUT, UNAUTHENTICATE, the connection
    /// closing): for the access role, the account's connection slot and its event subscription.
    Accepted { account_id: AccountId, address: String, lease: Lease },
    /// Wrong user name or password (after the throttle's delay).
    Rejected,
    /// Too many failed logins from the client's address: `UNAVAILABLE`.
    Throttled,
    /// The account has all the sessions it may have from this address: `LIMIT`.
    TooManyConnections,
    /// The login was good but what it needs (the event subscription) could not be had: `UNAVAILABLE`.
    NotReady,
    /// The credentials could not be checked.
    Failed(StoreError),
}

/// What the session asks of the mailbox role. Each call is one request; the session holds no store state
/// beyond what it told the client.
pub trait Store: Send {
    /// What a login holds until it ends (see [`LoginOutcome::Accepted`]).
    type Lease: Send;
    /// The rows of a FETCH, as the store streams them.
    type Fetch: Stream<Item = Result<pb::FetchResponse, StoreError>> + Send + Unpin;

    fn log_in(&mut self, user: &str, password: &str) -> impl Future<Output = LoginOutcome<Self::Lease>> + Send;
    fn select(
        &mut self,
        request: pb::SelectRequest,
    ) -> impl Future<Output = Result<pb::SelectResponse, StoreError>> + Send;
    fn changes(
        &mut self,
        request: pb::ChangesRequest,
    ) -> impl Future<Output = Result<pb::ChangesResponse, StoreError>> + Send;
    fn status(
        &mut self,
        request: pb::StatusRequest,
    ) -> impl Future<Output = Result<pb::MailboxStatus, StoreError>> + Send;
    fn get_quota(
        &mut self,
        request: pb::GetQuotaRequest,
    ) -> impl Future<Output = Result<pb::QuotaUsage, StoreError>> + Send;
    fn list_mailboxes(
        &mut self,
        request: pb::ListMailboxesRequest,
    ) -> impl Future<Output = Result<pb::ListMailboxesResponse, StoreError>> + Send;
    fn create_mailbox(
        &mut self,
        request: pb::CreateMailboxRequest,
    ) -> impl Future<Output = Result<pb::CreateMailboxResponse, StoreError>> + Send;
    fn delete_mailbox(
        &mut self,
        request: pb::DeleteMailboxRequest,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn rename_mailbox(
        &mut self,
        request: pb::RenameMailboxRequest,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn subscribe(&mut self, request: pb::SubscribeRequest) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// APPEND: `message` is the whole message, already checked against APPENDLIMIT.
    fn append(
        &mut self,
        header: pb::AppendHeader,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<pb::AppendResponse, StoreError>> + Send;
    /// RFC 3502 MULTIAPPEND: several messages (each checked against APPENDLIMIT, every header naming the
    /// same mailbox) added all or none, with consecutive UIDs: `uid` to `last_uid` in the answer.
    fn append_all(
        &mut self,
        messages: Vec<(pb::AppendHeader, Vec<u8>)>,
    ) -> impl Future<Output = Result<pb::AppendResponse, StoreError>> + Send;
    /// Whether `host`, the host of an absolute IMAP URL (RFC 5092) in a CATENATE, names this server.
    fn serves_host(&self, host: &str) -> bool;
    fn expunge(
        &mut self,
        request: pb::ExpungeRequest,
    ) -> impl Future<Output = Result<pb::ExpungeResponse, StoreError>> + Send;
    fn search(
        &mut self,
        request: pb::SearchRequest,
    ) -> impl Future<Output = Result<pb::SearchResponse, StoreError>> + Send;
    fn store(
        &mut self,
        request: pb::StoreRequest,
    ) -> impl Future<Output = Result<pb::StoreResponse, StoreError>> + Send;
    fn copy(&mut self, request: pb::CopyRequest) -> impl Future<Output = Result<pb::CopyResponse, StoreError>> + Send;
    fn move_messages(
        &mut self,
        request: pb::MoveRequest,
    ) -> impl Future<Output = Result<pb::MoveResponse, StoreError>> + Send;
    fn fetch(&mut self, request: pb::FetchRequest) -> impl Future<Output = Result<Self::Fetch, StoreError>> + Send;

    /// A command (by its lowercase name, or `malformed`) arrived: for the role's metrics.
    fn command_seen(&self, _name: &str) {}
    /// A command was answered after `_elapsed`: for the role's latency metrics.
    fn command_answered(&self, _name: &str, _elapsed: Duration) {}
}

/// The connection's buffers, as the session sees them: it takes input from `input` and writes responses
/// into `output`, and asks for them to be sent (a long FETCH is sent as the store streams it).
pub trait Wire: Send {
    /// Bytes received and not yet taken by the session.
    fn input(&mut self) -> &mut Vec<u8>;
    /// Bytes to send.
    fn output(&mut self) -> &mut Vec<u8>;
    /// Sends `output` if enough has gathered.
    fn flush_if_large(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Sends all of `output`.
    fn flush(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Sends `output` then `bytes`, the last thing the session says (a BYE before it closes), ignoring
    /// failures: the connection ends either way.
    fn last_words(&mut self, bytes: &[u8]) -> impl Future<Output = ()> + Send;
}
