//! The wire contracts of mailbus, generated from `proto/mailbus/v1/*.proto`: the gRPC services
//! (`Directory`, `Mailbox`, `QueueAdmin`, `DkimKeys`, `Jmap`, `Sieve`) and the payloads that travel on
//! NATS (`Envelope`, `MailboxEvent`). Generated types stay at the service edges; services convert them
//! into their own validated domain types.

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("mailbus.v1");
}

/// The encoded file descriptor set, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("mailbus_descriptor");

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
