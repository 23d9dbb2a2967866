//! The directory port over gRPC: the mailbox role's `Directory` service.

use std::sync::Arc;

use mailbus_address::EmailAddress;
use mailbus_grpc::TracedChannel;
use mailbus_grpc::recipients::RecipientCache;
use mailbus_proto::v1::{self as pb, RecipientKind, directory_client::DirectoryClient};
use mailbus_smtp::session::{AuthenticatedUser, Verdict};
use tracing::Instrument;

use crate::ports::{Directory, DirectoryUnavailable};

#[derive(Clone)]
pub struct GrpcDirectory {
    client: DirectoryClient<TracedChannel>,
    srs: Option<mailbus_srs::Srs>,
    /// The mailbox role's answers about recipients, kept so that a RCPT TO seldom waits for a call.
    recipients: Arc<RecipientCache>,
}

impl GrpcDirectory {
    pub fn new(channel: TracedChannel, srs: Option<mailbus_srs::Srs>, recipients: Arc<RecipientCache>) -> Self {
        GrpcDirectory { client: DirectoryClient::new(channel), srs, recipients }
    }

    /// What an address of a hosted domain that is no account or alias is worth as an SRS address: a
    /// bounce to mail we forwarded is accepted when we signed the address and it is recent enough (the
    /// relay passes it back); a bad signature is refused as a forgery, an old one as unknown.
    fn srs_verdict(&self, address: &EmailAddress) -> Verdict {
        let Some(srs) = &self.srs else { return Verdict::UnknownUser };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        match srs.reverse(&address.to_string(), now) {
            Ok(Some(_)) => Verdict::Local,
            Ok(None) => Verdict::UnknownUser,
            Err(mailbus_srs::SrsError::Expired) => Verdict::ExpiredReturnPath,
            Err(_) => Verdict::ForgedReturnPath,
        }
    }
}

fn client_span(method: &'static str) -> tracing::Span {
    tracing::info_span!(
        "directory.call",
        otel.name = %format!("mailbus.v1.Directory/{method}"),
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = "mailbus.v1.Directory",
        rpc.method = method,
    )
}

fn unavailable(status: tonic::Status) -> DirectoryUnavailable {
    tracing::warn!(%status, "directory call failed");
    DirectoryUnavailable
}

impl Directory for GrpcDirectory {
    async fn verdict(&self, address: &EmailAddress) -> Verdict {
        let ask = |request| async move {
            let reply =
                self.client.clone().resolve_recipient(request).instrument(client_span("ResolveRecipient")).await;
            Ok(reply?.into_inner())
        };
        let reply = self.recipients.resolve(&address.to_string(), ask).await;
        match reply.map(|r| r.kind()) {
            Ok(RecipientKind::Local) => Verdict::Local,
            Ok(RecipientKind::UnknownUser) => self.srs_verdict(address),
            Ok(RecipientKind::NotLocal) => Verdict::NotLocal,
            Ok(RecipientKind::Unspecified) => Verdict::Unavailable,
            Err(status) => {
                unavailable(status);
                Verdict::Unavailable
            }
        }
    }

    async fn sender_allowed(
        &self,
        user: &AuthenticatedUser,
        address: &EmailAddress,
    ) -> Result<bool, DirectoryUnavailable> {
        let request = pb::CheckSenderRequest { account_id: user.account_id, address: address.to_string() };
        let reply = self.client.clone().check_sender(request).instrument(client_span("CheckSender")).await;
        Ok(reply.map_err(unavailable)?.into_inner().allowed)
    }

    async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<AuthenticatedUser>, DirectoryUnavailable> {
        let request = pb::AuthenticateRequest { username: username.to_owned(), password: password.to_owned() };
        let reply = self.client.clone().authenticate(request).instrument(client_span("Authenticate")).await;
        let reply = reply.map_err(unavailable)?.into_inner();
        Ok(reply.ok.then_some(AuthenticatedUser { account_id: reply.account_id, address: reply.account_address }))
    }
}
