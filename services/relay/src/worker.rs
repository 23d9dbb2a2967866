//! The consumer loop: pull envelopes, deliver them, and acknowledge, retry later, or dead-letter each.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use mailbus_jetstream::{Envelope, Queue, QueueError, adopt_trace};
use mailbus_telemetry::ops::Readiness;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::StartError;
use crate::delivery::{Deliverer, Outcome};

/// Retry delays grow from this, doubling per attempt, up to [`MAX_RETRY_DELAY`]. The full schedule with
/// expiry and bounces belongs to the queue work; this keeps a failing mailbox role from being hammered.
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(10);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);

type Labels = Vec<(String, String)>;

pub struct Worker {
    queue: Queue,
    deliverer: Deliverer,
    ack_wait: Duration,
    concurrency: usize,
    recipients: Family<Labels, Counter>,
    messages: Family<Labels, Counter>,
}

/// What to tell JetStream about a message once we are done with it.
#[derive(Debug, PartialEq, Eq)]
enum Disposition {
    /// Every recipient is delivered.
    Done,
    /// Every recipient is final and some failed for good. Until bounces (RFC 3464 DSNs) exist, the
    /// message is kept on the dead-letter stream, with its body, for an operator: never dropped.
    Failed(String),
    /// Some recipient failed temporarily; see the message again after the delay.
    RetryAfter(Duration),
}

impl Worker {
    pub fn new(
        queue: Queue,
        deliverer: Deliverer,
        ack_wait: Duration,
        concurrency: usize,
        registry: &mut Registry,
    ) -> Self {
        let recipients = Family::<Labels, Counter>::default();
        registry.register("recipients", "Recipients processed, by outcome", recipients.clone());
        let messages = Family::<Labels, Counter>::default();
        registry.register("messages", "Queue messages settled, by disposition", messages.clone());
        // Present from the start, so dashboards see zeros rather than nothing.
        for disposition in ["done", "retry", "dead_letter"] {
            drop(messages.get_or_create(&vec![("disposition".into(), disposition.into())]));
        }
        Worker { queue, deliverer, ack_wait, concurrency: concurrency.max(1), recipients, messages }
    }

    /// Runs until `shutdown`. Losing NATS is not fatal: the loop opens the consumer again.
    pub async fn run(self, readiness: Readiness, shutdown: CancellationToken) -> Result<(), StartError> {
        while !shutdown.is_cancelled() {
            match self.consume(&readiness, &shutdown).await {
                Ok(()) => {}
                Err(error) => {
                    readiness.set(false);
                    tracing::warn!(%error, "queue consumer interrupted, reopening");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        Ok(())
    }

    async fn consume(&self, readiness: &Readiness, shutdown: &CancellationToken) -> Result<(), QueueError> {
        let consumer = self.queue.relay_consumer(self.ack_wait).await?;
        // Pull no more than we work on at once: a pulled message's ack_wait is running, and only the ones
        // in hand get progress acks.
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.concurrency)
            .messages()
            .await
            .map_err(|e| QueueError::Setup { what: "consumer stream".into(), message: e.to_string() })?;
        readiness.set(true);
        messages
            .take_until(shutdown.cancelled())
            .for_each_concurrent(self.concurrency, |message| async move {
                match message {
                    Ok(message) => self.handle(message).await,
                    Err(error) => tracing::warn!(%error, "queue stream error"),
                }
            })
            .await;
        Ok(())
    }

    async fn handle(&self, message: jetstream::Message) {
        let envelope = match Envelope::decode(message.payload.clone()) {
            Ok(envelope) => envelope,
            Err(error) => return self.dead_letter(&message, &format!("undecodable envelope: {error}")).await,
        };
        let span = tracing::info_span!(
            "relay.process",
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.operation = "process",
            messaging.destination.name = %message.subject,
            queue_id = %envelope.queue_id,
            recipients = envelope.recipients.len(),
        );
        adopt_trace(&span, message.headers.as_ref());
        async {
            let attempt = message.info().map(|info| info.delivered).unwrap_or(1);
            let outcomes = with_progress(self.deliverer.deliver(&envelope), &message, self.ack_wait).await;
            let disposition = match outcomes {
                Ok(outcomes) => self.disposition(&envelope, &outcomes, attempt),
                Err(QueueError::MissingBody { key }) => {
                    return self.dead_letter(&message, &format!("body {key} is missing")).await;
                }
                Err(error) => {
                    tracing::warn!(%error, "body unavailable, will retry");
                    Disposition::RetryAfter(retry_delay(attempt))
                }
            };
            self.settle(&message, &envelope, disposition).await;
        }
        .instrument(span)
        .await
    }

    fn disposition(&self, envelope: &Envelope, outcomes: &[(String, Outcome)], attempt: i64) -> Disposition {
        for (recipient, outcome) in outcomes {
            let label = match outcome {
                Outcome::Delivered { duplicate: false, .. } => "delivered",
                Outcome::Delivered { duplicate: true, .. } => "duplicate",
                Outcome::TemporaryFailure(_) => "temporary_failure",
                Outcome::PermanentFailure(_) => "permanent_failure",
            };
            self.recipients.get_or_create(&vec![("outcome".into(), label.into())]).inc();
            match outcome {
                Outcome::Delivered { uid, duplicate } => tracing::info!(%recipient, uid, duplicate, "delivered"),
                Outcome::TemporaryFailure(reason) => tracing::warn!(%recipient, %reason, attempt, "temporary failure"),
                Outcome::PermanentFailure(reason) => {
                    tracing::error!(queue_id = %envelope.queue_id, %recipient, %reason, "permanent failure")
                }
            }
        }
        if !outcomes.iter().all(|(_, outcome)| outcome.is_final()) {
            return Disposition::RetryAfter(retry_delay(attempt));
        }
        let failed: Vec<String> = outcomes
            .iter()
            .filter_map(|(recipient, outcome)| match outcome {
                Outcome::PermanentFailure(reason) => Some(format!("<{recipient}>: {reason}")),
                _ => None,
            })
            .collect();
        if failed.is_empty() { Disposition::Done } else { Disposition::Failed(failed.join("; ")) }
    }

    fn count(&self, disposition: &str) {
        self.messages.get_or_create(&vec![("disposition".into(), disposition.into())]).inc();
    }

    async fn settle(&self, message: &jetstream::Message, envelope: &Envelope, disposition: Disposition) {
        match disposition {
            Disposition::Failed(reason) => {
                return self.dead_letter(message, &format!("permanent failure: {reason}")).await;
            }
            Disposition::Done => self.count("done"),
            Disposition::RetryAfter(_) => self.count("retry"),
        }
        match disposition {
            Disposition::Failed(_) => {}
            Disposition::Done => {
                // Wait for the server to confirm the ack before deleting the body: an ack that is lost
                // means a redelivery, and a redelivery needs the body.
                if let Err(error) = message.double_ack().await {
                    tracing::warn!(%error, "ack not confirmed; the message will be redelivered and deduplicated");
                    return;
                }
                if let Err(error) = self.queue.delete_body(&envelope.body_key).await {
                    tracing::warn!(%error, "body not deleted");
                }
            }
            Disposition::RetryAfter(delay) => {
                if let Err(error) = message.ack_with(AckKind::Nak(Some(delay))).await {
                    tracing::warn!(%error, "nak failed; the message comes back after ack_wait");
                }
            }
        }
    }

    async fn dead_letter(&self, message: &jetstream::Message, reason: &str) {
        tracing::error!(subject = %message.subject, %reason, "dead-lettering message");
        self.count("dead_letter");
        let headers = message.headers.clone().unwrap_or_default();
        match self.queue.dead_letter(message.payload.clone(), headers, reason).await {
            Ok(()) => {
                if let Err(error) = message.double_ack().await {
                    tracing::warn!(%error, "ack of dead-lettered message failed");
                }
            }
            // Keep it on the queue: it comes back after ack_wait and we try again.
            Err(error) => tracing::error!(%error, "dead-letter publish failed"),
        }
    }
}

/// Runs `work` while telling JetStream every third of `ack_wait` that the message is still in hand.
async fn with_progress<T>(work: impl Future<Output = T>, message: &jetstream::Message, ack_wait: Duration) -> T {
    let mut ticker = tokio::time::interval(ack_wait / 3);
    ticker.tick().await;
    tokio::pin!(work);
    loop {
        tokio::select! {
            result = &mut work => return result,
            _ = ticker.tick() => {
                if let Err(error) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(%error, "progress ack failed");
                }
            }
        }
    }
}

fn retry_delay(attempt: i64) -> Duration {
    let doublings = attempt.clamp(1, 16) as u32 - 1;
    FIRST_RETRY_DELAY.saturating_mul(1 << doublings).min(MAX_RETRY_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_and_is_capped() {
        assert_eq!(retry_delay(1), Duration::from_secs(10));
        assert_eq!(retry_delay(2), Duration::from_secs(20));
        assert_eq!(retry_delay(4), Duration::from_secs(80));
        assert_eq!(retry_delay(100), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(0), Duration::from_secs(10));
    }
}
