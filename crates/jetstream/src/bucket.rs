//! The one way every role opens a key-value bucket: the existing one, or a new one made with one value
//! per key, entries that expire, and the configured number of replicas (`MAILBUS_NATS_REPLICAS`).

use std::time::Duration;

use async_nats::jetstream::{self, kv};

use crate::QueueError;

/// Opens `bucket`, making it on first use with one value per key, entries that live `max_age` and
/// `replicas` copies. A bucket that exists is taken as it is: start-up reconciles its replica count
/// with every other stream of the prefix.
pub async fn open_bucket(
    jetstream: &jetstream::Context,
    (bucket, replicas): (String, usize),
    max_age: Duration,
) -> Result<kv::Store, QueueError> {
    if let Ok(kv) = jetstream.get_key_value(&bucket).await {
        return Ok(kv);
    }
    let config =
        kv::Config { bucket: bucket.clone(), history: 1, max_age, num_replicas: replicas, ..Default::default() };
    jetstream.create_key_value(config).await.map_err(|e| QueueError::Setup { what: bucket, message: e.to_string() })
}
