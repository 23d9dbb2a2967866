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
