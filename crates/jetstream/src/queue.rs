//! The queue stream and the body store.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, object_store, stream};
use async_nats::{HeaderMap, connection::State};
use futures::TryStreamExt;
use mailbus_proto::v1::Envelope;
use mailbus_telemetry::metrics::{NatsOperation, nats_client_error};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::claims::Claims;
use crate::names::{Names, partition_for};
use crate::trace::inject_trace;

/// Bodies up to this size travel inside the envelope (NATS's default max payload is 1 MiB).
pub const INLINE_LIMIT: usize = 256 * 1024;

/// The durable pull consumer that relay replicas share.
pub const RELAY_CONSUMER: &str = "relay";

/// How long the server remembers a `Nats-Msg-Id`: a repeated publish within it is stored once. It must
/// outlast a relay's ack_wait twice over, so that an attempt repeated after a lost ack still publishes
/// its requeue under an id the server remembers ([`MAX_ACK_WAIT`]).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(900);

/// The longest ack_wait the relay may use (see [`DUPLICATE_WINDOW`]).
pub const MAX_ACK_WAIT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("not connected to NATS")]
    Disconnected,
    #[error("creating {what}: {message}")]
    Setup { what: String, message: String },
    #[error("storing body {key}: {message}")]
    PutBody { key: String, message: String },
    #[error("reading body {key}: {message}")]
    GetBody { key: String, message: String },
    #[error("deleting body {key}: {message}")]
    DeleteBody { key: String, message: String },
    #[error("reading the body of {queue_id} to enqueue it: {message}")]
    ReadBody { queue_id: String, message: String },
    #[error("body {key} is missing from the body store")]
    MissingBody { key: String },
    #[error("publishing envelope {queue_id}: {message}")]
    Publish { queue_id: String, message: String },
}

/// Handle on the queue stream and body store of one prefix.
#[derive(Clone)]
pub struct Queue {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    names: Names,
    bodies: object_store::ObjectStore,
    /// The stream under `bodies`, for direct gets of its chunks ([`crate::bodies`]).
    bodies_stream: stream::Stream,
    claims: Claims,
}

impl Queue {
    /// Opens the queue, creating its partition streams, the dead letters, the body bucket and the claims
    /// if they do not exist yet, each with [`Names::replicas`] copies, and bringing every stream and
    /// bucket of the prefix that exists to that count ([`reconcile_replicas`]). Every role that uses
    /// them calls this, so start-up order does not matter.
    pub async fn open(client: async_nats::Client, names: Names, timeout: Duration) -> Result<Self, QueueError> {
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(timeout);
        let setup = |what: String| move |e: &dyn std::fmt::Display| QueueError::Setup { what, message: e.to_string() };
        let replicas = names.replicas();
        for partition in 0..names.partitions() {
            patiently(async || {
                jetstream
                    .get_or_create_stream(partition_config(&names, partition))
                    .await
                    .map_err(|e| setup(names.queue_partition_stream(partition))(&e))
            })
            .await?;
        }
        let dead_letters = stream::Config {
            name: names.dead_letter_stream(),
            subjects: vec![names.dead_letter_subject()],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        patiently(async || {
            jetstream
                .get_or_create_stream(dead_letters.clone())
                .await
                .map_err(|e| setup(names.dead_letter_stream())(&e))
        })
        .await?;
        patiently(async || {
            if jetstream.get_object_store(names.bodies_bucket()).await.is_ok() {
                return Ok(());
            }
            jetstream
                .create_object_store(object_store::Config {
                    bucket: names.bodies_bucket(),
                    storage: stream::StorageType::File,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map(drop)
                .map_err(|e| setup(names.bodies_bucket())(&e))
        })
        .await?;
        let claims = patiently(async || Claims::open(&jetstream, &names).await).await?;
        patiently(async || reconcile_replicas(&jetstream, &names).await).await?;
        let bodies_stream = patiently(async || allow_direct_gets(&jetstream, &names.bodies_stream()).await).await?;
        // Opened after the reconciliation, so that its cached stream info has allow_direct and its
        // `info` reads by direct get too.
        let bodies =
            jetstream.get_object_store(names.bodies_bucket()).await.map_err(|e| setup(names.bodies_bucket())(&e))?;
        Ok(Queue { client, jetstream, names, bodies, bodies_stream, claims })
    }

    /// Whether the NATS connection is up right now (for readiness; an operation may still fail).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Who settles each message: a relay attempt or an operator's change.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Makes a message durable: a small body inside the envelope, a large one into the body store first;
    /// then the envelope onto the queue stream, waiting for the server's acknowledgement of each. Only
    /// after `Ok` may SMTP answer 250.
    ///
    /// `dedup_id` is the envelope's `Nats-Msg-Id`: an enqueue with an id the stream saw within
    /// [`DUPLICATE_WINDOW`] is stored once, so a repeat is safe. A large body goes under a key of its
    /// own for each call (whatever `envelope.body_key` says), and a repeat's is deleted again: the
    /// first envelope's body is never overwritten, nor deleted, by a repeat.
    pub async fn enqueue(&self, envelope: &Envelope, body: &[u8], dedup_id: &str) -> Result<(), QueueError> {
        self.enqueue_from(envelope, body.len(), &mut &body[..], dedup_id).await
    }

    /// [`Self::enqueue`] with a body of `size` octets read from `body`: a large one is streamed into the
    /// body store, so it never has to be in memory whole.
    pub async fn enqueue_from(
        &self,
        envelope: &Envelope,
        size: usize,
        body: &mut (impl AsyncRead + Unpin + Send),
        dedup_id: &str,
    ) -> Result<(), QueueError> {
        if self.client.connection_state() != State::Connected {
            nats_client_error(NatsOperation::Publish);
            return Err(QueueError::Disconnected);
        }
        let mut envelope = envelope.clone();
        if size <= INLINE_LIMIT {
            // Measured: the object store's get and delete cost several round trips (and a consumer) per
            // message, which made the relay the bottleneck for ordinary mail.
            envelope.inline_body = Vec::with_capacity(size);
            body.read_to_end(&mut envelope.inline_body)
                .await
                .map_err(|e| QueueError::ReadBody { queue_id: envelope.queue_id.clone(), message: e.to_string() })?;
            envelope.body_key.clear();
        } else {
            let key = format!("{}.{}", envelope.queue_id, uuid::Uuid::now_v7().simple());
            self.bodies.put(key.as_str(), body).await.map_err(|e| {
                nats_client_error(NatsOperation::BodyPut);
                QueueError::PutBody { key: key.clone(), message: e.to_string() }
            })?;
            envelope.body_key = key;
        }
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, dedup_id);
        inject_trace(&tracing::Span::current(), &mut headers);
        let publish_error = |e: &dyn std::fmt::Display| {
            nats_client_error(NatsOperation::Publish);
            QueueError::Publish { queue_id: envelope.queue_id.clone(), message: e.to_string() }
        };
        let ack = self
            .jetstream
            .publish_with_headers(self.subject_for(dedup_id), headers, envelope.encode_to_vec().into())
            .await
            .map_err(|e| publish_error(&e))?
            .await
            .map_err(|e| publish_error(&e))?;
        if ack.duplicate {
            tracing::info!(queue_id = %envelope.queue_id, %dedup_id, "repeated enqueue, already queued");
            if !envelope.body_key.is_empty()
                && let Err(error) = self.delete_body(&envelope.body_key).await
            {
                tracing::warn!(%error, "body of a repeated enqueue not deleted");
            }
        }
        Ok(())
    }

    /// Publishes the next state of an envelope (its recipients' statuses, attempts, next attempt time)
    /// as a new queue message, deduplicated per attempt. The caller acks the old message only after this
    /// succeeded, so a crash in between repeats the attempt rather than losing the message.
    pub async fn requeue(&self, envelope: &Envelope) -> Result<(), QueueError> {
        self.publish_envelope(envelope, &format!("{}.{}", envelope.queue_id, envelope.attempts)).await
    }

    async fn publish_envelope(&self, envelope: &Envelope, id: &str) -> Result<(), QueueError> {
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        inject_trace(&tracing::Span::current(), &mut headers);
        let error = |e: &dyn std::fmt::Display| {
            nats_client_error(NatsOperation::Publish);
            QueueError::Publish { queue_id: id.to_owned(), message: e.to_string() }
        };
        self.jetstream
            .publish_with_headers(self.subject_for(id), headers, envelope.encode_to_vec().into())
            .await
            .map_err(|e| error(&e))?
            .await
            .map_err(|e| error(&e))?;
        Ok(())
    }

    /// The subject of the partition that a message with `Nats-Msg-Id` `dedup_id` goes to.
    pub fn subject_for(&self, dedup_id: &str) -> String {
        self.names.queue_partition_subject(partition_for(dedup_id, self.names.partitions()))
    }

    /// The queue partitions that exist: `0..partitions`, and any beyond that an earlier, larger setting
    /// made, which still hold mail to drain. Sorted.
    pub async fn partitions(&self) -> Result<Vec<u32>, QueueError> {
        let mut found: Vec<u32> = self
            .jetstream
            .stream_names()
            .try_collect::<Vec<String>>()
            .await
            .map_err(|e| {
                nats_client_error(NatsOperation::StreamAdmin);
                QueueError::Setup { what: "list of streams".into(), message: e.to_string() }
            })?
            .iter()
            .filter_map(|name| self.names.queue_partition_of(name))
            .chain(0..self.names.partitions())
            .collect();
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }

    async fn partition_stream(&self, partition: u32) -> Result<stream::Stream, QueueError> {
        let name = self.names.queue_partition_stream(partition);
        self.jetstream.get_stream(&name).await.map_err(|e| {
            nats_client_error(NatsOperation::StreamAdmin);
            QueueError::Setup { what: name, message: e.to_string() }
        })
    }

    /// A partition's stream and what it holds now.
    async fn partition_info(&self, partition: u32) -> Result<(stream::Stream, stream::Info), QueueError> {
        let mut stream = self.partition_stream(partition).await?;
        let info = stream.info().await.map_err(|e| {
            nats_client_error(NatsOperation::StreamAdmin);
            QueueError::Setup { what: self.names.queue_partition_stream(partition), message: e.to_string() }
        })?;
        let info = info.clone();
        Ok((stream, info))
    }

    /// Keeps an envelope that cannot be processed (it does not decode, or its body is gone) on the
    /// dead-letter stream, with the reason in the `Mailbus-Dead-Reason` header. Nothing is dropped silently.
    pub async fn dead_letter(
        &self,
        payload: bytes::Bytes,
        mut headers: HeaderMap,
        reason: &str,
    ) -> Result<(), QueueError> {
        headers.insert("Mailbus-Dead-Reason", reason);
        let error = |e: &dyn std::fmt::Display| {
            nats_client_error(NatsOperation::Publish);
            QueueError::Publish { queue_id: "dead letter".into(), message: e.to_string() }
        };
        self.jetstream
            .publish_with_headers(self.names.dead_letter_subject(), headers, payload)
            .await
            .map_err(|e| error(&e))?
            .await
            .map_err(|e| error(&e))?;
        Ok(())
    }

    /// The body of `envelope`, inline or from the body store.
    pub async fn body_of(&self, envelope: &Envelope) -> Result<Vec<u8>, QueueError> {
        if envelope.body_key.is_empty() {
            return Ok(envelope.inline_body.clone());
        }
        self.body(&envelope.body_key).await
    }

    /// Deletes the body of `envelope` from the body store, if it is there.
    pub async fn delete_body_of(&self, envelope: &Envelope) -> Result<(), QueueError> {
        if envelope.body_key.is_empty() {
            return Ok(());
        }
        self.delete_body(&envelope.body_key).await
    }

    /// Reads a whole body, by direct gets of its info and chunks: no consumer per read (see
    /// [`crate::bodies`]). A body that is not there, or was deleted, is [`QueueError::MissingBody`].
    pub async fn body(&self, key: &str) -> Result<Vec<u8>, QueueError> {
        let read = crate::bodies::read(&self.bodies, &self.bodies_stream, &self.names.bodies_bucket(), key).await;
        if matches!(read, Err(QueueError::GetBody { .. })) {
            nats_client_error(NatsOperation::BodyGet);
        }
        read
    }

    /// Deletes a body once every recipient of its message is final. A body already gone is not an error.
    pub async fn delete_body(&self, key: &str) -> Result<(), QueueError> {
        match self.bodies.delete(key).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => {
                nats_client_error(NatsOperation::BodyDelete);
                Err(QueueError::DeleteBody { key: key.to_owned(), message: e.to_string() })
            }
        }
    }

    /// The relay's durable pull consumer on partition `partition`, created on first use. `ack_wait` is
    /// how long a relay may hold a message before the server hands it to another replica.
    pub async fn relay_consumer(
        &self,
        partition: u32,
        ack_wait: Duration,
    ) -> Result<consumer::PullConsumer, QueueError> {
        let stream = self.partition_stream(partition).await.inspect_err(|_| {
            nats_client_error(NatsOperation::ConsumerCreate);
        })?;
        // Create or update: a changed ack_wait setting must reach the server, or it would redeliver messages
        // a relay is still working on.
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(RELAY_CONSUMER.to_owned()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait,
                max_deliver: -1,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                nats_client_error(NatsOperation::ConsumerCreate);
                QueueError::Setup {
                    what: format!("consumer {RELAY_CONSUMER} of {}", self.names.queue_partition_stream(partition)),
                    message: e.to_string(),
                }
            })
    }

    /// Every message in every partition with its place, oldest first by the time the stream stored it
    /// (at most `limit`).
    pub async fn list(&self, limit: usize) -> Result<Vec<(Position, Envelope)>, QueueError> {
        let mut found = Vec::new();
        for partition in self.partitions().await? {
            found.extend(self.list_partition(partition, limit).await?);
        }
        found.sort_by_key(|(time, position, _)| (*time, *position));
        Ok(found.into_iter().take(limit).map(|(_, position, envelope)| (position, envelope)).collect())
    }

    /// The first `limit` messages of one partition with the time each was stored (Unix nanoseconds).
    async fn list_partition(
        &self,
        partition: u32,
        limit: usize,
    ) -> Result<Vec<(i128, Position, Envelope)>, QueueError> {
        let (stream, info) = self.partition_info(partition).await?;
        let state = info.state;
        let mut found = Vec::new();
        if state.messages == 0 {
            return Ok(found);
        }
        for sequence in state.first_sequence..=state.last_sequence {
            if found.len() >= limit {
                break;
            }
            // A work queue has holes where messages were acked.
            let Ok(message) = stream.get_raw_message(sequence).await else { continue };
            if let Ok(envelope) = Envelope::decode(message.payload) {
                found.push((message.time.unix_timestamp_nanos(), Position { partition, sequence }, envelope));
            }
        }
        Ok(found)
    }

    /// Puts a changed envelope in place of the message at `position`: the new one first, then the old one
    /// goes, so a crash in between leaves a duplicate (delivered once, thanks to the delivery key), never
    /// a loss.
    pub async fn replace(&self, position: Position, envelope: &Envelope, change: &str) -> Result<(), QueueError> {
        let id = format!("{}.{}.{change}.{}", envelope.queue_id, envelope.attempts, uuid::Uuid::now_v7().simple());
        self.publish_envelope(envelope, &id).await?;
        self.remove(position).await
    }

    /// Takes the message at `position` out of the queue.
    pub async fn remove(&self, position: Position) -> Result<(), QueueError> {
        let stream = self.partition_stream(position.partition).await?;
        stream.delete_message(position.sequence).await.map_err(|e| {
            nats_client_error(NatsOperation::StreamAdmin);
            QueueError::Setup { what: self.names.queue_partition_stream(position.partition), message: e.to_string() }
        })?;
        Ok(())
    }

    /// Numbers for the operator, summed over the partitions: the streams' message and byte counts, the
    /// consumers' backlog, and the oldest message's time.
    pub async fn status(&self) -> Result<QueueStatus, QueueError> {
        let mut total = QueueStatus { messages: 0, bytes: 0, pending: 0, in_flight: 0, oldest_unix: 0 };
        for partition in self.partitions().await? {
            let (stream, info) = self.partition_info(partition).await?;
            let (pending, in_flight) = match stream.consumer_info(RELAY_CONSUMER).await {
                Ok(consumer) => (consumer.num_pending, consumer.num_ack_pending as u64),
                Err(_) => (info.state.messages, 0),
            };
            total.messages += info.state.messages;
            total.bytes += info.state.bytes;
            total.pending += pending;
            total.in_flight += in_flight;
            if info.state.messages > 0 {
                let oldest = info.state.first_timestamp.unix_timestamp();
                total.oldest_unix = if total.oldest_unix == 0 { oldest } else { total.oldest_unix.min(oldest) };
            }
        }
        Ok(total)
    }
}

/// How often a start-up request is tried before start-up fails, 500 ms apart.
const SETUP_TRIES: usize = 10;

/// Runs a start-up request, trying it again when it fails: on a NATS cluster, a stream another role
/// has just made answers nothing until its replicas have elected a leader, and roles starting together
/// meet exactly that. A request that keeps failing fails start-up with its last error.
async fn patiently<T>(mut request: impl AsyncFnMut() -> Result<T, QueueError>) -> Result<T, QueueError> {
    let mut tries = 1;
    loop {
        match request().await {
            Ok(value) => return Ok(value),
            Err(error) if tries < SETUP_TRIES => {
                tracing::info!(%error, tries, "NATS set-up request failed, trying again");
                tries += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Where a message is in the queue: its partition and its sequence in that partition's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub partition: u32,
    pub sequence: u64,
}

/// The configuration of queue partition `partition`: a work queue deduplicating by `Nats-Msg-Id`.
fn partition_config(names: &Names, partition: u32) -> stream::Config {
    stream::Config {
        name: names.queue_partition_stream(partition),
        subjects: vec![names.queue_partition_subject(partition)],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: names.replicas(),
        ..Default::default()
    }
}

/// Brings every stream of the prefix (queue partitions, dead letters, the object store's and the
/// key-value buckets' streams) to [`Names::replicas`] copies: a changed setting takes effect at the next
/// start-up of any role that opens the queue. The server moves the data itself (a scale-up copies the
/// stream to new peers before they count toward its quorum); a server that cannot place them (fewer
/// servers than replicas) refuses, and start-up fails with its answer.
pub async fn reconcile_replicas(jetstream: &jetstream::Context, names: &Names) -> Result<(), QueueError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| {
        nats_client_error(NatsOperation::StreamAdmin);
        QueueError::Setup { what: what.to_owned(), message: e.to_string() }
    };
    let own = format!("{}_", names.prefix());
    let streams: Vec<String> =
        jetstream.stream_names().try_collect().await.map_err(|e| setup("list of streams", &e))?;
    for name in streams {
        let bare = name.strip_prefix("OBJ_").or_else(|| name.strip_prefix("KV_")).unwrap_or(&name);
        if !bare.starts_with(&own) {
            continue;
        }
        let mut stream = jetstream.get_stream(&name).await.map_err(|e| setup(&name, &e))?;
        let config = stream.info().await.map_err(|e| setup(&name, &e))?.config.clone();
        if config.num_replicas == names.replicas() {
            continue;
        }
        tracing::info!(stream = %name, from = config.num_replicas, to = names.replicas(), "changing the replica count");
        jetstream
            .update_stream(stream::Config { num_replicas: names.replicas(), ..config })
            .await
            .map_err(|e| setup(&name, &e))?;
    }
    Ok(())
}

/// Turns on `allow_direct` on `name` if it is off, and returns the stream. async-nats makes object stores
/// with it on, but a bucket made by another client or by hand may lack it, and then every body read
/// would fail.
async fn allow_direct_gets(jetstream: &jetstream::Context, name: &str) -> Result<stream::Stream, QueueError> {
    let setup = |e: &dyn std::fmt::Display| QueueError::Setup { what: name.to_owned(), message: e.to_string() };
    let mut stream = jetstream.get_stream(name).await.map_err(|e| setup(&e))?;
    let config = stream.info().await.map_err(|e| setup(&e))?.config.clone();
    if config.allow_direct {
        return Ok(stream);
    }
    tracing::info!(stream = name, "turning on direct gets for the body store");
    jetstream.update_stream(stream::Config { allow_direct: true, ..config }).await.map_err(|e| setup(&e))?;
    jetstream.get_stream(name).await.map_err(|e| setup(&e))
}

/// See [`Queue::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStatus {
    pub messages: u64,
    pub bytes: u64,
    pub pending: u64,
    pub in_flight: u64,
    pub oldest_unix: i64,
}
