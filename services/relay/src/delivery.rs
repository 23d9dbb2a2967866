//! Delivering one envelope: fetch the body, hand it to the mailbox role for each recipient, and say how
//! each recipient ended. Results are data, so the worker decides about acks in one place.

use mailbus_grpc::TracedChannel;
use mailbus_jetstream::{Envelope, Queue, QueueError};
use mailbus_proto::v1::{self as pb, deliver_request::Part, mailbox_client::MailboxClient};
use tonic::Code;
use tracing::Instrument;

/// Chunk size for streaming bodies to the mailbox role.
const CHUNK: usize = 64 * 1024;

/// How one recipient ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        uid: u32,
        duplicate: bool,
    },
    /// Try again later.
    TemporaryFailure(String),
    /// Never going to work; the sender should hear about it.
    PermanentFailure(String),
}

impl Outcome {
    pub fn is_final(&self) -> bool {
        !matches!(self, Outcome::TemporaryFailure(_))
    }
}

#[derive(Clone)]
pub struct Deliverer {
    queue: Queue,
    mailbox: MailboxClient<TracedChannel>,
}

impl Deliverer {
    pub fn new(queue: Queue, channel: TracedChannel) -> Self {
        Deliverer { queue, mailbox: MailboxClient::new(channel) }
    }

    /// Delivers every recipient of `envelope`. An error means the body could not be read; recipient
    /// failures are outcomes, not errors.
    pub async fn deliver(&self, envelope: &Envelope) -> Result<Vec<(String, Outcome)>, QueueError> {
        let body = self.queue.body(&envelope.body_key).await?;
        let mut outcomes = Vec::with_capacity(envelope.recipients.len());
        for recipient in &envelope.recipients {
            let span = tracing::info_span!(
                "relay.deliver_local",
                otel.kind = "client",
                rpc.system = "grpc",
                rpc.service = "mailbus.v1.Mailbox",
                rpc.method = "Deliver",
                queue_id = %envelope.queue_id,
            );
            let outcome = self.deliver_local(envelope, &recipient.address, &body).instrument(span).await;
            outcomes.push((recipient.address.clone(), outcome));
        }
        Ok(outcomes)
    }

    async fn deliver_local(&self, envelope: &Envelope, recipient: &str, body: &[u8]) -> Outcome {
        let header = pb::DeliveryHeader {
            queue_id: envelope.queue_id.clone(),
            recipient: recipient.to_owned(),
            mail_from: envelope.mail_from.clone(),
            size: body.len() as u64,
        };
        let parts: Vec<pb::DeliverRequest> = std::iter::once(Part::Header(header))
            .chain(body.chunks(CHUNK).map(|c| Part::Chunk(c.to_vec())))
            .map(|part| pb::DeliverRequest { part: Some(part) })
            .collect();
        match self.mailbox.clone().deliver(futures::stream::iter(parts)).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                Outcome::Delivered { uid: reply.uid, duplicate: reply.duplicate }
            }
            Err(status) => classify(&status),
        }
    }
}

/// Which gRPC failures are worth retrying.
fn classify(status: &tonic::Status) -> Outcome {
    let reason = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::NotFound | Code::InvalidArgument | Code::FailedPrecondition | Code::PermissionDenied => {
            Outcome::PermanentFailure(reason)
        }
        _ => Outcome::TemporaryFailure(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_failures_are_classified() {
        assert!(matches!(classify(&tonic::Status::unavailable("db down")), Outcome::TemporaryFailure(_)));
        assert!(matches!(classify(&tonic::Status::deadline_exceeded("slow")), Outcome::TemporaryFailure(_)));
        assert!(matches!(classify(&tonic::Status::not_found("no mailbox")), Outcome::PermanentFailure(_)));
        assert!(!Outcome::TemporaryFailure(String::new()).is_final());
        assert!(Outcome::PermanentFailure(String::new()).is_final());
    }
}
