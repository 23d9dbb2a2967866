//! The directory port over gRPC: `Directory.ResolveRecipient` on the mailbox role.

use mailbus_address::EmailAddress;
use mailbus_grpc::TracedChannel;
use mailbus_proto::v1::{RecipientKind, ResolveRecipientRequest, directory_client::DirectoryClient};
use mailbus_smtp::session::Verdict;
use tracing::Instrument;

use crate::ports::Directory;

#[derive(Clone)]
pub struct GrpcDirectory {
    client: DirectoryClient<TracedChannel>,
}

impl GrpcDirectory {
    pub fn new(channel: TracedChannel) -> Self {
        GrpcDirectory { client: DirectoryClient::new(channel) }
    }
}

impl Directory for GrpcDirectory {
    async fn verdict(&self, address: &EmailAddress) -> Verdict {
        let span = tracing::info_span!(
            "directory.resolve_recipient",
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = "mailbus.v1.Directory",
            rpc.method = "ResolveRecipient",
        );
        let request = ResolveRecipientRequest { address: address.to_string() };
        let reply = self.client.clone().resolve_recipient(request).instrument(span).await;
        match reply.map(|r| r.into_inner().kind()) {
            Ok(RecipientKind::Local) => Verdict::Local,
            Ok(RecipientKind::UnknownUser) => Verdict::UnknownUser,
            // No session may relay until submission with AUTH exists (invariant 6: no open relay).
            Ok(RecipientKind::NotLocal) => Verdict::RelayDenied,
            Ok(RecipientKind::Unspecified) => Verdict::Unavailable,
            Err(status) => {
                tracing::warn!(%status, "recipient lookup failed");
                Verdict::Unavailable
            }
        }
    }
}
