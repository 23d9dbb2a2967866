//! The relay's view of the DKIM keys: asked of the mailbox role (`DkimKeys.SigningKeys`) per signing
//! domain and kept for a short time, so a busy relay makes one call per domain per TTL and a key
//! rotation reaches every relay within it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailbus_grpc::TracedChannel;
use mailbus_proto::v1::{self as pb, dkim_keys_client::DkimKeysClient};

use crate::signing::DomainKeys;

pub struct KeyCache {
    client: DkimKeysClient<TracedChannel>,
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Arc<DomainKeys>)>>,
}

impl KeyCache {
    pub fn new(channel: TracedChannel, ttl: Duration) -> Self {
        KeyCache { client: DkimKeysClient::new(channel), ttl, entries: Mutex::default() }
    }

    /// The active keys of `domain` (none: its mail goes unsigned). An error means the mailbox role could
    /// not say; the caller retries later rather than send unsigned what should be signed.
    pub async fn get(&self, domain: &str) -> Result<Arc<DomainKeys>, tonic::Status> {
        if let Some((fetched, keys)) = self.lock().get(domain)
            && fetched.elapsed() < self.ttl
        {
            return Ok(keys.clone());
        }
        let request = pb::SigningKeysRequest { domain: domain.to_owned() };
        let reply = self.client.clone().signing_keys(request).await?.into_inner();
        let keys = Arc::new(DomainKeys::from_pb(domain, &reply));
        self.lock().insert(domain.to_owned(), (Instant::now(), keys.clone()));
        Ok(keys)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<DomainKeys>)>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
