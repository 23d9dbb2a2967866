//! Leases: named locks that expire by themselves, kept in a JetStream key-value bucket whose entries
//! live for the lease's time-to-live. The holder renews its entry every third of that time; a holder that
//! crashes stops renewing, and the lock is free again at most one TTL later. POP3 uses them for the
//! exclusive maildrop lock across every access replica (RFC 1939 §8).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, kv};

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
    renewer: tokio::task::JoinHandle<()>,
}

impl Leases {
    /// Opens (creating it on first use) the bucket `bucket`, whose entries expire after `ttl`.
    pub async fn open(jetstream: &jetstream::Context, bucket: String, ttl: Duration) -> Result<Self, QueueError> {
        let setup = |e: &dyn std::fmt::Display| QueueError::Setup { what: bucket.clone(), message: e.to_string() };
        let kv = match jetstream.get_key_value(&bucket).await {
            Ok(kv) => kv,
            Err(_) => jetstream
                .create_key_value(kv::Config { bucket: bucket.clone(), history: 1, max_age: ttl, ..Default::default() })
                .await
                .map_err(|e| setup(&e))?,
        };
        Ok(Leases { kv, ttl })
    }

    /// Takes the lease on `key` for `holder`, or `None` when someone else holds it.
    pub async fn acquire(&self, key: &str, holder: &str) -> Result<Option<Lease>, QueueError> {
        let revision = match self.kv.create(key, holder.to_owned().into()).await {
            Ok(revision) => revision,
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(QueueError::Setup { what: format!("lease {key}"), message: e.to_string() }),
        };
        let revision = Arc::new(AtomicU64::new(revision));
        let renewer =
            tokio::spawn(renew(self.kv.clone(), key.to_owned(), holder.to_owned(), revision.clone(), self.ttl));
        Ok(Some(Lease { kv: self.kv.clone(), key: key.to_owned(), revision, renewer }))
    }
}

/// Renews the entry every third of the TTL, as long as it is still ours.
async fn renew(kv: kv::Store, key: String, holder: String, revision: Arc<AtomicU64>, ttl: Duration) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        match kv.update(&key, holder.clone().into(), revision.load(Ordering::SeqCst)).await {
            Ok(next) => revision.store(next, Ordering::SeqCst),
            Err(error) => {
                tracing::warn!(%key, %error, "lease lost");
                return;
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
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
