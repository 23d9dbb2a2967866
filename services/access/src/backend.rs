//! What POP3 sessions need from the mailbox role, as a port, and its gRPC implementation.

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use mailbus_address::AccountId;
use mailbus_grpc::TracedChannel;
use mailbus_pop3::session::{Maildrop, MessageInfo};
use mailbus_proto::v1::{self as pb, directory_client::DirectoryClient, mailbox_client::MailboxClient};

/// The mailbox POP3 serves (RFC 1939's maildrop).
pub const MAILDROP: &str = "INBOX";

/// The backend could not be reached or failed; the session answers with a temporary error.
#[derive(Debug, thiserror::Error)]
#[error("mailbox service: {0}")]
pub struct Unavailable(pub String);

impl From<tonic::Status> for Unavailable {
    fn from(status: tonic::Status) -> Self {
        Unavailable(format!("{:?}: {}", status.code(), status.message()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub address: String,
}

pub trait Backend: Send + Sync + 'static {
    /// `Ok(None)` for wrong credentials.
    fn authenticate(
        &self,
        user: &str,
        password: &str,
    ) -> impl Future<Output = Result<Option<Account>, Unavailable>> + Send;
    fn maildrop(&self, account: &Account) -> impl Future<Output = Result<Maildrop, Unavailable>> + Send;
    /// The message's octets, in chunks.
    fn fetch(
        &self,
        account: &Account,
        uid: u32,
    ) -> impl Future<Output = Result<BoxStream<'static, Result<Vec<u8>, Unavailable>>, Unavailable>> + Send;
    fn expunge(&self, account: &Account, uids: Vec<u32>) -> impl Future<Output = Result<(), Unavailable>> + Send;
    /// Moves messages out of the maildrop into another mailbox of the account.
    fn move_to(
        &self,
        account: &Account,
        uids: Vec<u32>,
        mailbox: &str,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;
}

#[derive(Clone)]
pub struct GrpcBackend {
    directory: DirectoryClient<TracedChannel>,
    mailbox: MailboxClient<TracedChannel>,
}

impl GrpcBackend {
    pub fn new(channel: TracedChannel) -> Self {
        GrpcBackend { directory: DirectoryClient::new(channel.clone()), mailbox: MailboxClient::new(channel) }
    }
}

impl Backend for GrpcBackend {
    async fn authenticate(&self, user: &str, password: &str) -> Result<Option<Account>, Unavailable> {
        let request = pb::AuthenticateRequest { username: user.to_owned(), password: password.to_owned() };
        let reply = self.directory.clone().authenticate(request).await?.into_inner();
        Ok(reply.ok.then_some(Account { id: reply.account_id.into(), address: reply.account_address }))
    }

    async fn maildrop(&self, account: &Account) -> Result<Maildrop, Unavailable> {
        let request = pb::ListMessagesRequest { account_id: account.id.get(), mailbox: MAILDROP.into() };
        let listing = self.mailbox.clone().list_messages(request).await?.into_inner();
        Ok(Maildrop {
            uidvalidity: listing.uidvalidity,
            messages: listing.messages.into_iter().map(|m| MessageInfo { uid: m.uid, size: m.size }).collect(),
        })
    }

    async fn fetch(
        &self,
        account: &Account,
        uid: u32,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, Unavailable>>, Unavailable> {
        let request = pb::FetchMessageRequest { account_id: account.id.get(), mailbox: MAILDROP.into(), uid };
        let stream = self.mailbox.clone().fetch_message(request).await?.into_inner();
        Ok(stream.map_ok(|chunk| chunk.data).map_err(Unavailable::from).boxed())
    }

    async fn expunge(&self, account: &Account, uids: Vec<u32>) -> Result<(), Unavailable> {
        let request =
            pb::ExpungeRequest { account_id: account.id.get(), mailbox: MAILDROP.into(), uids, deleted_only: false };
        self.mailbox.clone().expunge(request).await?;
        Ok(())
    }

    async fn move_to(&self, account: &Account, uids: Vec<u32>, mailbox: &str) -> Result<(), Unavailable> {
        let request = pb::MoveRequest {
            account_id: account.id.get(),
            from_mailbox: MAILDROP.into(),
            to_mailbox: mailbox.into(),
            uids,
        };
        self.mailbox.clone().r#move(request).await?;
        Ok(())
    }
}
