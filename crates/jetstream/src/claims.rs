//! Claims: who settles one queue message, the relay attempt working on it or an operator changing it.
//!
//! An operator's hold, delete or bounce replaces or removes the message at a stream sequence, while a
//! relay may be delivering that very message; if both went ahead, the relay's requeue would bring back
//! a pending copy of a held or deleted message. So each side first creates the key
//! `<queue id>.<sequence>` (partition 0, as before the queue had partitions) or
//! `<queue id>.p<partition>.<sequence>` in a key-value bucket, and the create is atomic: whoever comes second learns
//! who came first. An operator who comes second looks again (the relay has settled that sequence and
//! requeued, or acked, it); a relay that comes second obeys the operator's change. Entries live for
//! [`crate::DUPLICATE_WINDOW`], well past any attempt.
//!
//! The same bucket keeps an attempt's outcome whose requeue failed (the claim's key and `.outcome`):
//! the message then comes back as it was, and the next attempt at it starts from the kept outcome
//! rather than send the message again to recipients that accepted it.
//!
//! Each queue partition has its own bucket ([`crate::Names::queue_partition_claims_bucket`]): every
//! delivery creates a claim, and a bucket is one stream whose writes nats-server syncs one after another,
//! so one bucket for all partitions capped deliveries at one stream's sync rate (about 460 a second on
//! the benchmark machine, BENCHMARKS.md) however many partitions the queue had.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, kv};
use mailbus_telemetry::metrics::{NatsOperation, nats_client_error};

use mailbus_proto::v1::Envelope;
use prost::Message as _;

use crate::Names;
use crate::queue::{DUPLICATE_WINDOW, Position, QueueError};

/// The value a relay attempt writes; an operator writes the name of the change.
const RELAY: &str = "relay";

/// Who holds the claim on a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimant {
    /// A relay attempt (this one, or an earlier attempt at the same message that crashed before its ack).
    Relay,
    /// An operator's change, by its name (`QueueChange`'s, such as `HOLD`).
    Operator(String),
}

#[derive(Clone)]
pub struct Claims {
    jetstream: jetstream::Context,
    names: Names,
    /// The buckets opened so far, by partition: the configured partitions' at [`Self::open`], any other
    /// (a partition left from a larger count, which relays still drain) when first used.
    buckets: Arc<Mutex<HashMap<u32, kv::Store>>>,
}

impl Claims {
    /// Opens (creating them on first use, with the names' replica count) the buckets of the configured
    /// partitions.
    pub async fn open(jetstream: &jetstream::Context, names: &Names) -> Result<Self, QueueError> {
        let claims = Claims { jetstream: jetstream.clone(), names: names.clone(), buckets: Arc::default() };
        for partition in 0..names.partitions() {
            claims.bucket(partition).await?;
        }
        Ok(claims)
    }

    /// The bucket of `partition`'s claims.
    async fn bucket(&self, partition: u32) -> Result<kv::Store, QueueError> {
        if let Some(kv) = self.lock().get(&partition) {
            return Ok(kv.clone());
        }
        let bucket = (self.names.queue_partition_claims_bucket(partition), self.names.replicas());
        let kv = crate::open_bucket(&self.jetstream, bucket, DUPLICATE_WINDOW).await?;
        self.lock().insert(partition, kv.clone());
        Ok(kv)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, kv::Store>> {
        self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims the message at `position` for `claimant`; returns who holds it: `claimant` itself, or
    /// whoever came first.
    pub async fn claim(&self, queue_id: &str, position: Position, claimant: &Claimant) -> Result<Claimant, QueueError> {
        let key = key(queue_id, position);
        let value = match claimant {
            Claimant::Relay => RELAY.to_owned(),
            Claimant::Operator(change) => change.clone(),
        };
        let error =
            |e: &dyn std::fmt::Display| QueueError::Setup { what: format!("claim {key}"), message: e.to_string() };
        let kv = self.bucket(position.partition).await?;
        match kv.create(&key, value.into()).await {
            Ok(_) => return Ok(claimant.clone()),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => {
                nats_client_error(NatsOperation::KvCreate);
                return Err(error(&e));
            }
        }
        let held = kv.get(&key).await.map_err(|e| error(&e))?;
        // Gone between the create and the get: it was released, so claim again.
        let Some(held) = held else { return Box::pin(self.claim(queue_id, position, claimant)).await };
        Ok(match String::from_utf8_lossy(&held).as_ref() {
            RELAY => Claimant::Relay,
            change => Claimant::Operator(change.to_owned()),
        })
    }

    /// Gives up a claim: the relay's attempt did not settle the message after all (its requeue failed),
    /// so an operator may change it.
    pub async fn release(&self, queue_id: &str, position: Position) -> Result<(), QueueError> {
        let key = key(queue_id, position);
        self.bucket(position.partition)
            .await?
            .delete(&key)
            .await
            .map_err(|e| QueueError::Setup { what: format!("claim {key}"), message: e.to_string() })
    }

    /// Keeps the envelope an attempt at the message at `position` ended with, when it could not be
    /// requeued ([`Self::kept_outcome`]).
    pub async fn keep_outcome(
        &self,
        queue_id: &str,
        position: Position,
        envelope: &Envelope,
    ) -> Result<(), QueueError> {
        let key = format!("{}.outcome", key(queue_id, position));
        // The body is in the message itself; the kept outcome needs only the states.
        let outcome = Envelope { inline_body: Vec::new(), ..envelope.clone() };
        let kv = self.bucket(position.partition).await?;
        kv.put(&key, outcome.encode_to_vec().into()).await.map(drop).map_err(|e| {
            nats_client_error(NatsOperation::KvUpdate);
            QueueError::Setup { what: format!("outcome {key}"), message: e.to_string() }
        })
    }

    /// The outcome kept for the message at `position`, with the body of `message` (the envelope as it
    /// was queued), if an earlier attempt's requeue failed.
    pub async fn kept_outcome(&self, message: &Envelope, position: Position) -> Result<Option<Envelope>, QueueError> {
        let key = format!("{}.outcome", key(&message.queue_id, position));
        let error =
            |e: &dyn std::fmt::Display| QueueError::Setup { what: format!("outcome {key}"), message: e.to_string() };
        let kv = self.bucket(position.partition).await?;
        let Some(kept) = kv.get(&key).await.map_err(|e| error(&e))? else { return Ok(None) };
        let outcome = Envelope::decode(kept).map_err(|e| error(&e))?;
        Ok(Some(Envelope { inline_body: message.inline_body.clone(), ..outcome }))
    }
}

/// The claim's key: sequences are per partition, so the partition is part of it; partition 0 keeps the
/// key it had before the queue had partitions, so claims made across an upgrade still hold.
fn key(queue_id: &str, position: Position) -> String {
    match position.partition {
        0 => format!("{queue_id}.{}", position.sequence),
        partition => format!("{queue_id}.p{partition}.{}", position.sequence),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_partition_beyond_the_first() {
        assert_eq!(key("abc", Position { partition: 0, sequence: 7 }), "abc.7");
        assert_eq!(key("abc", Position { partition: 3, sequence: 7 }), "abc.p3.7");
        assert_ne!(
            key("abc", Position { partition: 1, sequence: 7 }),
            key("abc", Position { partition: 2, sequence: 7 })
        );
    }
}
