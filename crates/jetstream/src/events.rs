//! Subscribing to an account's mailbox events so that nothing published after the subscription returns
//! is missed. `Client::subscribe` only queues the SUB: until the server has read it, an event published
//! meanwhile (a change another session committed just after this one read the mailbox) goes to nobody,
//! and a session that relies on events to learn of changes would never report it. So the subscriber
//! publishes a probe on the subject itself and waits for it to come back: the server reads one
//! connection's SUB and PUB in order, so once the probe arrives, every later event will too. Probes carry
//! [`PROBE_HEADER`] and every listener skips them ([`is_probe`]).

use std::time::Duration;

use async_nats::{Client, HeaderMap, Message, Subscriber};
use futures::StreamExt;

/// The header that marks a probe, with a value unique to the subscription that sent it.
pub const PROBE_HEADER: &str = "Mailbus-Probe";

/// A probe some subscriber sent, not a mailbox event.
pub fn is_probe(message: &Message) -> bool {
    message.headers.as_ref().is_some_and(|headers| headers.get(PROBE_HEADER).is_some())
}

/// Subscribes to `subject` and waits (up to `wait`) until the server is known to deliver to the new
/// subscription. Whatever arrives before the probe is dropped: it was published before the caller reads
/// the state the events are about. Past `wait` (a slow server), the subscription is returned anyway.
pub async fn subscribe_confirmed(
    client: &Client,
    subject: String,
    wait: Duration,
) -> Result<Subscriber, async_nats::SubscribeError> {
    let mut subscriber = client.subscribe(subject.clone()).await?;
    let nonce = client.new_inbox();
    let mut headers = HeaderMap::new();
    headers.insert(PROBE_HEADER, nonce.as_str());
    if let Err(error) = client.publish_with_headers(subject.clone(), headers, Default::default()).await {
        tracing::warn!(%error, %subject, "cannot probe the event subscription");
        return Ok(subscriber);
    }
    let own_probe = |message: &Message| {
        message.headers.as_ref().and_then(|h| h.get(PROBE_HEADER)).is_some_and(|v| v.as_str() == nonce)
    };
    let confirmed = tokio::time::timeout(wait, async {
        while let Some(message) = subscriber.next().await {
            if own_probe(&message) {
                return true;
            }
        }
        false
    })
    .await;
    if !matches!(confirmed, Ok(true)) {
        tracing::warn!(%subject, "the event subscription was not confirmed in time");
    }
    Ok(subscriber)
}
