//! The wire contracts of mailbus, generated from `proto/mailbus/v1/*.proto`: the gRPC services
//! (`Directory`, `Mailbox`, `QueueAdmin`, `DkimKeys`, `Jmap`, `Sieve`), the payloads that travel on
//! NATS (`Envelope`, `MailboxEvent`) and the typed refusals in a status's details (`Refusal`). Generated
//! types stay at the service edges; services convert them into their own validated domain types.

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("mailbus.v1");
}

/// The encoded file descriptor set, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("mailbus_descriptor");

/// Typed refusals: a [`v1::Refusal`] in a gRPC status's details, so that callers branch on
/// [`v1::Reason`] instead of parsing message texts.
pub mod refusal {
    use crate::v1::{Reason, Refusal};
    use prost::Message as _;

    /// A status refusing a call for `reason`, with `message` for people and, for a delivery refusal,
    /// the RFC 3463 `enhanced_code` a DSN should carry ("" when none).
    pub fn status(code: tonic::Code, message: impl Into<String>, reason: Reason, enhanced_code: &str) -> tonic::Status {
        let refusal = Refusal { reason: reason.into(), enhanced_code: enhanced_code.to_owned() };
        tonic::Status::with_details(code, message, refusal.encode_to_vec().into())
    }

    /// The refusal a status carries, if any (a status from an outage, a bug or an older server has none).
    pub fn of(status: &tonic::Status) -> Option<Refusal> {
        if status.details().is_empty() {
            return None;
        }
        Refusal::decode(status.details()).ok()
    }

    /// The reason a status carries; [`Reason::Unspecified`] without one.
    pub fn reason(status: &tonic::Status) -> Reason {
        of(status).map_or(Reason::Unspecified, |refusal| refusal.reason())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_refusal_survives_the_status_and_a_plain_status_has_none() {
            let status = status(tonic::Code::FailedPrecondition, "mailbox full", Reason::OverQuotaPermanent, "5.2.2");
            assert_eq!(status.message(), "mailbox full");
            let refusal = of(&status).expect("a refusal");
            assert_eq!((refusal.reason(), refusal.enhanced_code.as_str()), (Reason::OverQuotaPermanent, "5.2.2"));
            assert_eq!(reason(&tonic::Status::not_found("gone")), Reason::Unspecified);
            assert!(of(&tonic::Status::with_details(tonic::Code::Internal, "x", vec![0xff, 0xff].into())).is_none());
        }
    }
}

/// Client-streamed uploads (`Mailbox.Deliver`, `Mailbox.Append`): the header first, then the body in
/// chunks. The one way every client builds the stream.
pub mod upload {
    use crate::v1::{AppendHeader, AppendRequest, DeliverRequest, DeliveryHeader, append_request, deliver_request};

    /// Body chunk size for uploads: well under gRPC's 4 MiB message limit.
    pub const CHUNK: usize = 64 * 1024;

    /// The messages of a Deliver call: `header`, then `body` in [`CHUNK`]s.
    pub fn deliver(header: DeliveryHeader, body: &[u8]) -> Vec<DeliverRequest> {
        use deliver_request::Part;
        std::iter::once(Part::Header(header))
            .chain(body.chunks(CHUNK).map(|c| Part::Chunk(c.to_vec())))
            .map(|part| DeliverRequest { part: Some(part) })
            .collect()
    }

    /// The messages of an Append call: `header`, then `body` in chunks of `chunk` octets.
    pub fn append(header: AppendHeader, body: &[u8], chunk: usize) -> Vec<AppendRequest> {
        use append_request::Part;
        std::iter::once(Part::Header(header))
            .chain(body.chunks(chunk.max(1)).map(|c| Part::Chunk(c.to_vec())))
            .map(|part| AppendRequest { part: Some(part) })
            .collect()
    }
}

/// A DKIM signing key's private half stays out of `Debug` (and so out of logs and traces); its
/// selector and algorithm are enough to tell keys apart.
impl std::fmt::Debug for v1::SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_signing_key_debug_hides_the_private_key() {
        let key = super::v1::SigningKey { selector: "s1".into(), algorithm: 1, private_key: vec![0xAB; 32] };
        let shown = format!("{key:?} {:?}", super::v1::SigningKeysResponse { keys: vec![key.clone()] });
        assert!(shown.contains("s1") && shown.contains("redacted"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }
}
