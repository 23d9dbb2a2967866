//! The IMAP session's [`Store`] over the mailbox role's gRPC API, and the login around the directory's
//! password check: the failed-login throttle (and its delays), the account's connection slot from this
//! address, and the account's event subscription, confirmed before the login is answered.
//!
//! [`store_error`] is the one place a gRPC status becomes the session's typed [`StoreError`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use mailbus_address::AccountId;
use mailbus_imap::{LoginOutcome, Store, StoreError};
use mailbus_proto::v1 as pb;

use super::ImapContext;

/// One session's way to the mailbox role.
pub(super) struct GrpcStore {
    ctx: Arc<ImapContext>,
    client: IpAddr,
}

impl GrpcStore {
    pub(super) fn new(ctx: Arc<ImapContext>, client: IpAddr) -> Self {
        GrpcStore { ctx, client }
    }
}

/// What a login holds: the account's connection slot from this address, and its mailbox events (None
/// after NATS dropped the subscription, until it is made again).
pub(super) struct Lease {
    pub(super) events: Option<super::feed::Events>,
    _slot: UserSlot,
}

/// One of an account's connection slots from one address; given back when the session ends.
struct UserSlot {
    ctx: Arc<ImapContext>,
    key: (AccountId, IpAddr),
}

impl UserSlot {
    fn take(ctx: &Arc<ImapContext>, account_id: AccountId, ip: IpAddr) -> Option<UserSlot> {
        let mut open = ctx.user_connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry((account_id, ip)).or_default();
        if *count >= ctx.max_user_connections {
            return None;
        }
        *count += 1;
        Some(UserSlot { ctx: ctx.clone(), key: (account_id, ip) })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut open = self.ctx.user_connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The mailbox role's status codes (its error contract) as the session's errors.
fn store_error(status: tonic::Status) -> StoreError {
    use mailbus_proto::v1::Reason;
    use tonic::Code as G;
    let reason = mailbus_proto::refusal::reason(&status);
    let message = status.message().to_owned();
    match (reason, status.code()) {
        (Reason::HasChildren, _) => StoreError::HasChildren(message),
        (Reason::SpecialUseTaken, _) => StoreError::SpecialUseTaken(message),
        (Reason::Nonexistent, _) | (_, G::NotFound) => StoreError::NonExistent(message),
        (Reason::AlreadyExists, _) | (_, G::AlreadyExists) => StoreError::AlreadyExists(message),
        (Reason::OverQuotaTemporary | Reason::OverQuotaPermanent, _) | (_, G::ResourceExhausted) => {
            StoreError::OverQuota(message)
        }
        (_, G::FailedPrecondition | G::InvalidArgument) => StoreError::Cannot(message),
        (_, G::Unavailable | G::Internal | G::Unknown | G::DeadlineExceeded) => StoreError::Unavailable(message),
        _ => StoreError::Other(message),
    }
}

type Reply<T> = Result<tonic::Response<T>, tonic::Status>;

fn reply<T>(result: Reply<T>) -> Result<T, StoreError> {
    result.map(tonic::Response::into_inner).map_err(store_error)
}

impl Store for GrpcStore {
    type Lease = Lease;
    type Fetch = std::pin::Pin<Box<dyn Stream<Item = Result<pb::FetchResponse, StoreError>> + Send>>;

    async fn log_in(&mut self, user: &str, password: &str) -> LoginOutcome<Lease> {
        let ctx = &self.ctx;
        if ctx.throttle.verdict(self.client).await == mailbus_jetstream::Verdict::Refuse {
            ctx.metrics.throttled();
            return LoginOutcome::Throttled;
        }
        let request = pb::AuthenticateRequest { username: user.to_owned(), password: password.to_owned() };
        let reply = match reply(ctx.directory.clone().authenticate(request).await) {
            Ok(reply) => reply,
            Err(error) => return LoginOutcome::Failed(error),
        };
        if !reply.ok {
            // A delay that grows with the failures of this address and account across sessions.
            ctx.metrics.auth_failed();
            tokio::time::sleep(ctx.throttle.failed("imap", self.client, user).await).await;
            return LoginOutcome::Rejected;
        }
        let account_id = AccountId::from(reply.account_id);
        let Some(slot) = UserSlot::take(ctx, account_id, self.client) else {
            return LoginOutcome::TooManyConnections;
        };
        // Confirmed before the login is answered: a change committed after the client's SELECT reads the
        // mailbox must reach this session, or it would not report it until something else changes.
        let events = match super::feed::join(ctx, account_id).await {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, "cannot subscribe to mailbox events");
                return LoginOutcome::NotReady;
            }
        };
        ctx.throttle.succeeded(user).await;
        LoginOutcome::Accepted {
            account_id,
            address: reply.account_address,
            lease: Lease { events: Some(events), _slot: slot },
        }
    }

    async fn select(&mut self, request: pb::SelectRequest) -> Result<pb::SelectResponse, StoreError> {
        reply(self.ctx.mailbox.clone().select(request).await)
    }

    async fn changes(&mut self, request: pb::ChangesRequest) -> Result<pb::ChangesResponse, StoreError> {
        reply(self.ctx.mailbox.clone().changes(request).await)
    }

    async fn status(&mut self, request: pb::StatusRequest) -> Result<pb::MailboxStatus, StoreError> {
        reply(self.ctx.mailbox.clone().status(request).await)
    }

    async fn get_quota(&mut self, request: pb::GetQuotaRequest) -> Result<pb::QuotaUsage, StoreError> {
        reply(self.ctx.mailbox.clone().get_quota(request).await)
    }

    async fn list_mailboxes(
        &mut self,
        request: pb::ListMailboxesRequest,
    ) -> Result<pb::ListMailboxesResponse, StoreError> {
        reply(self.ctx.mailbox.clone().list_mailboxes(request).await)
    }

    async fn create_mailbox(
        &mut self,
        request: pb::CreateMailboxRequest,
    ) -> Result<pb::CreateMailboxResponse, StoreError> {
        reply(self.ctx.mailbox.clone().create_mailbox(request).await)
    }

    async fn delete_mailbox(&mut self, request: pb::DeleteMailboxRequest) -> Result<(), StoreError> {
        reply(self.ctx.mailbox.clone().delete_mailbox(request).await).map(drop)
    }

    async fn rename_mailbox(&mut self, request: pb::RenameMailboxRequest) -> Result<(), StoreError> {
        reply(self.ctx.mailbox.clone().rename_mailbox(request).await).map(drop)
    }

    async fn subscribe(&mut self, request: pb::SubscribeRequest) -> Result<(), StoreError> {
        reply(self.ctx.mailbox.clone().subscribe(request).await).map(drop)
    }

    async fn append(&mut self, header: pb::AppendHeader, message: Vec<u8>) -> Result<pb::AppendResponse, StoreError> {
        let parts = mailbus_proto::upload::append(header, &message, mailbus_proto::upload::CHUNK);
        drop(message);
        reply(self.ctx.mailbox.clone().append(futures::stream::iter(parts)).await)
    }

    async fn append_all(
        &mut self,
        messages: Vec<(pb::AppendHeader, Vec<u8>)>,
    ) -> Result<pb::AppendResponse, StoreError> {
        // One stream, each message a header and its chunks: the mailbox role adds them in one transaction.
        let mut parts = Vec::new();
        for (header, message) in messages {
            parts.extend(mailbus_proto::upload::append(header, &message, mailbus_proto::upload::CHUNK));
        }
        reply(self.ctx.mailbox.clone().append(futures::stream::iter(parts)).await)
    }

    fn serves_host(&self, host: &str) -> bool {
        host.eq_ignore_ascii_case(&self.ctx.hostname)
    }

    async fn expunge(&mut self, request: pb::ExpungeRequest) -> Result<pb::ExpungeResponse, StoreError> {
        reply(self.ctx.mailbox.clone().expunge(request).await)
    }

    async fn search(&mut self, request: pb::SearchRequest) -> Result<pb::SearchResponse, StoreError> {
        reply(self.ctx.mailbox.clone().search(request).await)
    }

    async fn store(&mut self, request: pb::StoreRequest) -> Result<pb::StoreResponse, StoreError> {
        reply(self.ctx.mailbox.clone().store(request).await)
    }

    async fn copy(&mut self, request: pb::CopyRequest) -> Result<pb::CopyResponse, StoreError> {
        reply(self.ctx.mailbox.clone().copy(request).await)
    }

    async fn move_messages(&mut self, request: pb::MoveRequest) -> Result<pb::MoveResponse, StoreError> {
        reply(self.ctx.mailbox.clone().r#move(request).await)
    }

    async fn fetch(&mut self, request: pb::FetchRequest) -> Result<Self::Fetch, StoreError> {
        let stream = reply(self.ctx.mailbox.clone().fetch(request).await)?;
        Ok(Box::pin(stream.map(|item| item.map_err(store_error))))
    }

    fn command_seen(&self, name: &str) {
        self.ctx.commands.get_or_create(&vec![("command".into(), name.to_owned())]).inc();
    }

    fn command_answered(&self, name: &str, elapsed: Duration) {
        self.ctx.metrics.observe_elapsed(name, elapsed);
    }
}
