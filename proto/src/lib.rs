//! The wire contracts of mailbus, generated from `proto/mailbus/v1/*.proto`: the gRPC services
//! (`Directory`, `Mailbox`, `QueueAdmin`) and the payloads that travel on NATS (`Envelope`,
//! `MailboxEvent`). Generated types stay at the service edges; services convert them into their own
//! validated domain types.

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
