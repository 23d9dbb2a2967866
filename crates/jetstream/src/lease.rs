//! Leases: named locks that expire by themselves, kept in a JetStream key-value bucket whose entries
//! live for the lease's time-to-live. The holder renews its entry every third of that time; a holder that
//! crashes stops renewing, and the lock is free again at most one TTL later. POP3 uses them for the
//! exclusive maildrop lock across every access replica (RFC 1939 §8).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use mailbus_telemetry::metrics::{NatsOperation, nats_client_error};

use crate::queue::QueueError;

#[derive(Clone)]
pub struct Leases {
    kv: kv::Store,
    ttl: Duration,
}

/// A held lease. Dropping it stops the renewals and releases it.
pub struct Lease {
    kv: kv::Store,
    key: String,
    revision: Arc<AtomicU64>,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
    released: bool,
}

impl Leases {
    /// Opens (creating it on first use, with `replicas` copies) the bucket `bucket`, whose entries expire
    /// after `ttl`.
    pub async fn open(
        jetstream: &jetstream::Context,
        (bucket, replicas): (String, usize),
        ttl: Duration,
    ) -> Result<Self, QueueError> {
        let kv = crate::open_bucket(jetstream, (bucket, replicas), ttl).await?;
        Ok(Leases { kv, ttl })
    }

    /// Takes the lease on `key` for `holder`, or `None` when someone else holds it.
    pub async fn acquire(&self, key: &str, holder: &str) -> Result<Option<Lease>, QueueError> {
        let revision = match self.kv.create(key, holder.to_owned().into()).await {
            Ok(revision) => revision,
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => return Ok(None),
            Err(e) => {
                nats_client_error(NatsOperation::KvCreate);
                return Err(QueueError::Setup { what: format!("lease {key}"), message: e.to_string() });
            }
        };
        let revision = Arc::new(AtomicU64::new(revision));
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn(renew(
            self.kv.clone(),
            (key.to_owned(), holder.to_owned()),
            revision.clone(),
            lost.clone(),
            self.ttl,
        ));
        Ok(Some(Lease { kv: self.kv.clone(), key: key.to_owned(), revision, lost, renewer, released: false }))
    }
}

/// Renews the entry every third of the TTL. A failed renewal is retried until the TTL since the last
/// success has nearly run out; only then is the lease given up as lost, and the holder told.
async fn renew(
    kv: kv::Store,
    (key, holder): (String, String),
    revision: Arc<AtomicU64>,
    lost: Arc<AtomicBool>,
    ttl: Duration,
) {
    let mut last_renewed = tokio::time::Instant::now();
    let mut wait = ttl / 3;
    loop {
        tokio::time::sleep(wait).await;
        match kv.update(&key, holder.clone().into(), revision.load(Ordering::SeqCst)).await {
            Ok(next) => {
                revision.store(next, Ordering::SeqCst);
                last_renewed = tokio::time::Instant::now();
                wait = ttl / 3;
            }
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                tracing::warn!(%key, %error, "lease taken over by another holder");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(error) if last_renewed.elapsed() + ttl / 6 >= ttl => {
                nats_client_error(NatsOperation::KvUpdate);
                tracing::warn!(%key, %error, "lease could not be renewed in time");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(error) => {
                nats_client_error(NatsOperation::KvUpdate);
                tracing::debug!(%key, %error, "lease renewal failed, retrying");
                wait = ttl / 6;
            }
        }
    }
}

impl Lease {
    /// Whether the lease ran out or was taken over: the holder must not act as if it still held it.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Releases the lease and waits until that is done, so the next holder finds it free at once.
    pub async fn release(mut self) {
        self.renewer.abort();
        self.released = true;
        let revision = self.revision.load(Ordering::SeqCst);
        if let Err(error) = self.kv.delete_expect_revision(&self.key, Some(revision)).await {
            tracing::debug!(key = %self.key, %error, "lease not released; it expires by itself");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.released {
            return;
        }
        let (kv, key, revision) =
            (self.kv.clone(), std::mem::take(&mut self.key), self.revision.load(Ordering::SeqCst));
        // Only our own revision is deleted: if the lease expired and someone else took it, theirs stays.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = kv.delete_expect_revision(&key, Some(revision)).await {
                    tracing::debug!(%key, %error, "lease not released; it expires by itself");
                }
            });
        }
    }
}
