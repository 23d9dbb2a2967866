//! The spool port over JetStream: prepend `Received:`, store the body, publish the envelope, and wait
//! for the acknowledgements.

use chrono::Utc;
use mailbus_address::QueueId;
use mailbus_jetstream::{Envelope, Queue};
use mailbus_proto::v1::{BodyType, ClientFacts, DsnRet, EnvelopeRecipient};
use mailbus_smtp::session::{self, Message, ReversePath};
use tokio::io::AsyncReadExt;
use tracing::Instrument;

use crate::body::Body;
use crate::ports::{ClientInfo, Spool, SpoolError};
use crate::received::received_header;

#[derive(Clone)]
pub struct JetStreamSpool {
    queue: Queue,
    max_message_size: usize,
}

impl JetStreamSpool {
    pub fn new(queue: Queue, max_message_size: usize) -> Self {
        JetStreamSpool { queue, max_message_size }
    }

    pub fn is_connected(&self) -> bool {
        self.queue.is_connected()
    }
}

impl Spool for JetStreamSpool {
    async fn enqueue(
        &self,
        message: Message,
        body: Body,
        client: &ClientInfo,
        hostname: &str,
    ) -> Result<String, SpoolError> {
        let queue_id = QueueId::generate();
        let dedup_id = transaction_id(&message, &body).unwrap_or_else(|| queue_id.to_string());
        let now = Utc::now();
        let received = received_header(&message, client, hostname, &queue_id, now).into_bytes();
        let size = received.len() + body.size();
        if size > self.max_message_size {
            return Err(SpoolError::TooLarge { size, limit: self.max_message_size });
        }
        let envelope = envelope(&message, client, &queue_id, size, now.timestamp_millis());
        let span = tracing::info_span!(
            "smtp.enqueue",
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.operation = "publish",
            messaging.destination.name = %self.queue.subject_for(&dedup_id),
            queue_id = %queue_id,
            size,
        );
        // A large body streams from its file into the object store; it is never in memory whole.
        let mut content = std::io::Cursor::new(received).chain(body.into_reader());
        self.queue
            .enqueue_from(&envelope, size, &mut content, &dedup_id)
            .instrument(span)
            .await
            .map_err(|e| SpoolError::Unavailable(e.to_string()))?;
        Ok(queue_id.to_string())
    }
}

/// The `Nats-Msg-Id` of a message that names itself (it has a Message-ID): a digest of who sent it
/// (the authenticated user, if any), its envelope and its body as the client sent them (the body by its
/// own digest, taken as it arrived). A client that sends the same transaction again because it never saw
/// the 250 (the connection broke, or the role died, between the queue's acknowledgement and the reply)
/// within [`mailbus_jetstream::DUPLICATE_WINDOW`] has it stored once: delivered exactly once, and the
/// client gets its 250. Later, or without a Message-ID (identical messages sent on purpose), a message
/// is a message: it gets its queue id as its `Nats-Msg-Id`, and every message has a queue id of its own,
/// so nothing is dropped as a duplicate further on.
fn transaction_id(message: &Message, body: &Body) -> Option<String> {
    body.message_id()?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    match &message.authenticated {
        Some(user) => digest.update(user.address.as_bytes()),
        None => digest.update(b"-"),
    }
    digest.update(b"\0");
    match &message.from.path {
        ReversePath::Null => digest.update(b"<>"),
        ReversePath::Address(address) => digest.update(address.to_string().as_bytes()),
    }
    for recipient in &message.recipients {
        digest.update(b"\0");
        digest.update(recipient.address.to_string().as_bytes());
    }
    digest.update(b"\0\0");
    digest.update(body.digest());
    let hex: String = digest.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("tx.{hex}"))
}

fn envelope(message: &Message, client: &ClientInfo, queue_id: &QueueId, size: usize, arrival_ms: i64) -> Envelope {
    Envelope {
        queue_id: queue_id.to_string(),
        mail_from: match &message.from.path {
            ReversePath::Null => String::new(),
            ReversePath::Address(address) => address.to_string(),
        },
        recipients: message
            .recipients
            .iter()
            .map(|r| EnvelopeRecipient {
                address: r.address.to_string(),
                notify: r.notify as u32,
                orcpt: r.orcpt.clone().unwrap_or_default(),
                ..Default::default()
            })
            .collect(),
        size: size as u64,
        // Set by the queue for a body it stores apart (a key of its own per enqueue).
        body_key: String::new(),
        arrival_unix_ms: arrival_ms,
        client: Some(ClientFacts {
            remote_ip: client.peer.ip().to_string(),
            remote_port: u32::from(client.peer.port()),
            helo: message.helo.name.clone(),
            authenticated_as: message.authenticated.as_ref().map(|u| u.address.clone()).unwrap_or_default(),
            tls: message.tls.is_some(),
        }),
        body_type: match message.from.body_type {
            session::BodyType::SevenBit => BodyType::SevenBit,
            session::BodyType::EightBitMime => BodyType::EightBitMime,
        }
        .into(),
        smtputf8: message.from.smtputf8,
        dsn_envid: message.from.env_id.clone().unwrap_or_default(),
        dsn_ret: match message.from.ret {
            None => DsnRet::Unspecified,
            Some(session::DsnReturn::Full) => DsnRet::Full,
            Some(session::DsnReturn::Headers) => DsnRet::Hdrs,
        }
        .into(),
        // A new message: no attempt yet, due at once.
        ..Default::default()
    }
}
