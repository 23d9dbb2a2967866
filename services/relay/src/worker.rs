//! The consumer loop: pull envelopes from every queue partition; deliver their pending recipients; then
//! acknowledge (every recipient final, with DSNs queued), requeue the envelope's new state for a later
//! attempt, or dead-letter what cannot be processed at all. No message is processed before its time, and
//! none is dropped.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use chrono::Utc;
use futures::{FutureExt as _, StreamExt};
use mailbus_address::QueueId;
use mailbus_jetstream::{Claimant, Envelope, Position, Queue, QueueError, adopt_trace};
use mailbus_proto::v1::{EnvelopeRecipient, QueueChange, RecipientStatus};
use mailbus_telemetry::metrics::{NatsOperation, nats_client_error};
use mailbus_telemetry::ops::Readiness;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::StartError;
use crate::delivery::{Attempt, Deliverer, Outcome};
use crate::dsn::{self, DsnAction, Entry};

/// RFC 3461 NOTIFY bits as smtp-proto encodes them.
const NOTIFY_SUCCESS: u32 = 1;
const NOTIFY_FAILURE: u32 = 2;
const NOTIFY_DELAY: u32 = 4;
const NOTIFY_NEVER: u32 = 8;

/// How often, 200 ms apart, an attempt overtaken by an operator's hold looks for the held copy.
const MERGE_ROUNDS: usize = 25;
/// Listing for the held copy stops here.
const MERGE_LIST_LIMIT: usize = 10_000;

/// How often a held message is looked at again.
const HELD_RECHECK: Duration = Duration::from_secs(3600);

/// How often the relay looks for queue partitions it does not consume yet (made by a role started with a
/// larger `MAILBUS_QUEUE_PARTITIONS`).
const PARTITION_RECHECK: Duration = Duration::from_secs(30);

/// When to try again and when to give up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The wait after the 1st, 2nd, … failed attempt; the last entry repeats.
    pub schedule: Vec<Duration>,
    /// Past this age a temporary failure becomes permanent (Postfix's `maximal_queue_lifetime`).
    pub max_lifetime: Duration,
    /// Send a "delayed" DSN once a message is this old and still pending.
    pub delay_warning: Option<Duration>,
}

impl RetryPolicy {
    fn wait_after(&self, attempts: u32) -> Duration {
        let index = (attempts.max(1) as usize - 1).min(self.schedule.len().saturating_sub(1));
        self.schedule.get(index).copied().unwrap_or(Duration::from_secs(300))
    }
}

type Labels = Vec<(String, String)>;

pub struct Worker {
    queue: Queue,
    deliverer: Deliverer,
    policy: RetryPolicy,
    hostname: String,
    ack_wait: Duration,
    concurrency: usize,
    recipients: Family<Labels, Counter>,
    messages: Family<Labels, Counter>,
    dsns: Family<Labels, Counter>,
}

impl Worker {
    pub fn new(
        queue: Queue,
        deliverer: Deliverer,
        policy: RetryPolicy,
        hostname: String,
        (ack_wait, concurrency): (Duration, usize),
        registry: &mut Registry,
    ) -> Self {
        let recipients = Family::<Labels, Counter>::default();
        registry.register(
            "recipients",
            "Recipients' delivery attempts, by destination class and outcome",
            recipients.clone(),
        );
        let messages = Family::<Labels, Counter>::default();
        registry.register(
            "messages",
            "Queue messages settled, by disposition (and attempts that panicked, sent back to wait)",
            messages.clone(),
        );
        let dsns = Family::<Labels, Counter>::default();
        registry.register("dsns", "Delivery status notifications queued, by action", dsns.clone());
        // Present from the start, so dashboards see zeros rather than nothing.
        for action in ["failed", "delayed", "delivered"] {
            drop(dsns.get_or_create(&vec![("action".into(), action.into())]));
        }
        for disposition in ["done", "retry", "dead_letter", "operator", "panicked"] {
            drop(messages.get_or_create(&vec![("disposition".into(), disposition.into())]));
        }
        Worker {
            queue,
            deliverer,
            policy,
            hostname,
            ack_wait,
            concurrency: concurrency.max(1),
            recipients,
            messages,
            dsns,
        }
    }

    /// Runs until `shutdown`. Losing NATS is not fatal: the loop opens the consumer again.
    pub async fn run(self, readiness: Readiness, shutdown: CancellationToken) -> Result<(), StartError> {
        while !shutdown.is_cancelled() {
            if let Err(error) = self.consume(&readiness, &shutdown).await {
                readiness.set(false);
                tracing::warn!(%error, "queue consumer interrupted, reopening");
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        Ok(())
    }

    /// Consumes every partition that exists until `shutdown`, or until another partition appears: then
    /// it returns, and [`Self::run`] opens them all again.
    async fn consume(&self, readiness: &Readiness, shutdown: &CancellationToken) -> Result<(), QueueError> {
        let partitions = self.queue.partitions().await?;
        // Pull no more than we work on at once: a pulled message's ack_wait is running, and only the ones
        // in hand get progress acks. Each partition pulls its share of the concurrency.
        let batch = self.concurrency.div_ceil(partitions.len()).max(1);
        let mut streams = Vec::with_capacity(partitions.len());
        for &partition in &partitions {
            let consumer = self.queue.relay_consumer(partition, self.ack_wait).await?;
            let messages = consumer.stream().max_messages_per_batch(batch).messages().await.map_err(|e| {
                QueueError::Setup { what: format!("consumer stream of partition {partition}"), message: e.to_string() }
            })?;
            streams.push(messages.map(move |message| (partition, message)));
        }
        readiness.set(true);
        let changed = CancellationToken::new();
        let watcher = tokio::spawn(watch_partitions(self.queue.clone(), partitions, changed.clone()));
        futures::stream::select_all(streams)
            .take_until(shutdown.cancelled())
            .take_until(changed.cancelled())
            .for_each_concurrent(self.concurrency, |(partition, message)| async move {
                match message {
                    Ok(message) => {
                        let attempt = std::panic::AssertUnwindSafe(self.handle(partition, &message)).catch_unwind();
                        if attempt.await.is_err() {
                            self.after_panic(&message).await;
                        }
                    }
                    Err(error) => {
                        nats_client_error(NatsOperation::Consume);
                        tracing::warn!(%error, "queue stream error");
                    }
                }
            })
            .await;
        watcher.abort();
        if changed.is_cancelled() {
            tracing::info!("queue partitions changed, consuming them all");
        }
        Ok(())
    }

    async fn handle(&self, partition: u32, message: &jetstream::Message) {
        let mut envelope = match Envelope::decode(message.payload.clone()) {
            Ok(envelope) => envelope,
            Err(error) => return self.dead_letter(message, &format!("undecodable envelope: {error}")).await,
        };
        // An earlier attempt at this very message whose requeue failed: start from where it ended. Only a
        // message delivered before can have one (the relay's consumer is durable: its delivery count
        // survives restarts), so a first delivery, nearly every one, spares itself the read.
        let earlier = message.info().ok().filter(|info| info.delivered > 1).map(|info| info.stream_sequence);
        if let Some(sequence) = earlier {
            match self.queue.claims().kept_outcome(&envelope, Position { partition, sequence }).await {
                Ok(Some(outcome)) => {
                    tracing::info!(queue_id = %envelope.queue_id, "requeueing the outcome of an earlier attempt");
                    return self.settle_or_yield(partition, message, outcome).await;
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "kept outcome unreadable; the attempt waits");
                    return nak(message, Some(self.policy.wait_after(1))).await;
                }
            }
        }
        // On hold: look again in a while; an operator's release replaces the message anyway.
        if envelope.held {
            nak(message, Some(HELD_RECHECK)).await;
            return;
        }
        // A message whose time has not come goes back, to come round exactly when it is due.
        let wait = envelope.next_attempt_unix_ms.saturating_sub(Utc::now().timestamp_millis());
        if wait > 0 {
            nak(message, Some(Duration::from_millis(wait as u64))).await;
            return;
        }
        let span = tracing::info_span!(
            "relay.process",
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.operation = "process",
            messaging.destination.name = %message.subject,
            messaging.destination.partition.id = partition,
            queue_id = %envelope.queue_id,
            attempt = envelope.attempts + 1,
            recipients = envelope.recipients.len(),
            outcome = tracing::field::Empty,
        );
        adopt_trace(&span, message.headers.as_ref());
        async {
            match with_progress(self.deliverer.deliver(&envelope), message, self.ack_wait).await {
                Ok(outcomes) => {
                    self.record(&mut envelope, outcomes);
                    self.settle_or_yield(partition, message, envelope).await;
                }
                Err(QueueError::MissingBody { key }) => {
                    self.dead_letter(message, &format!("body {key} is missing")).await
                }
                Err(error) => {
                    tracing::warn!(%error, "body unavailable, will retry");
                    nak(message, Some(self.policy.wait_after(1))).await;
                }
            }
        }
        .instrument(span)
        .await
    }

    /// A bug that panics on one message must not take the relay down with it: the message, never
    /// acknowledged, would come back after every restart and do it again, and no other mail would move.
    /// The panic (its message and place are already on stderr) is logged with the queue id and counted,
    /// and the message waits the longest retry interval before it is tried again, for an operator to
    /// see in `mailbus admin queue list` and hold, bounce or delete.
    async fn after_panic(&self, message: &jetstream::Message) {
        let queue_id = Envelope::decode(message.payload.clone()).map(|e| e.queue_id).unwrap_or_default();
        tracing::error!(%queue_id, subject = %message.subject, "the attempt panicked; the message waits for the longest retry interval");
        self.count("panicked");
        nak(message, Some(self.policy.wait_after(u32::MAX))).await;
    }

    /// Writes this attempt's outcomes into the envelope's recipients.
    fn record(&self, envelope: &mut Envelope, outcomes: Vec<Attempt>) {
        envelope.attempts += 1;
        for (index, destination, outcome) in outcomes {
            let recipient = &mut envelope.recipients[index];
            let label = match &outcome {
                Outcome::Delivered { duplicate: true, .. } => "duplicate",
                Outcome::Delivered { .. } => "delivered",
                Outcome::Relayed { .. } => "relayed",
                Outcome::TemporaryFailure(_) => "temporary_failure",
                Outcome::PermanentFailure(_) => "permanent_failure",
            };
            let labels = vec![("destination".into(), destination.label().into()), ("outcome".into(), label.into())];
            self.recipients.get_or_create(&labels).inc();
            match outcome {
                Outcome::Delivered { uids, duplicate } => {
                    tracing::info!(recipient = %recipient.address, ?uids, duplicate, "delivered");
                    recipient.set_status(RecipientStatus::Delivered);
                    // A success report must not show an earlier attempt's failure.
                    recipient.last_error.clear();
                }
                Outcome::Relayed { dsn_passed_on } => {
                    tracing::info!(recipient = %recipient.address, dsn_passed_on, "relayed");
                    recipient.set_status(RecipientStatus::Delivered);
                    recipient.last_error.clear();
                    if dsn_passed_on {
                        // The next hop reports success itself.
                        recipient.notify &= !NOTIFY_SUCCESS;
                    } else {
                        recipient.relayed = true;
                    }
                }
                Outcome::TemporaryFailure(reason) => {
                    tracing::warn!(recipient = %recipient.address, %reason, "temporary failure");
                    recipient.last_error = reason;
                }
                Outcome::PermanentFailure(reason) => {
                    tracing::warn!(recipient = %recipient.address, %reason, "permanent failure");
                    recipient.set_status(RecipientStatus::Failed);
                    recipient.last_error = reason;
                }
            }
        }
    }

    /// Claims the message for this attempt's outcome; an operator who changed it during the attempt
    /// wins, and the outcome goes where the change says.
    async fn settle_or_yield(&self, partition: u32, message: &jetstream::Message, envelope: Envelope) {
        let position = match message.info() {
            Ok(info) => Position { partition, sequence: info.stream_sequence },
            Err(error) => {
                tracing::warn!(%error, "message without its stream sequence; the attempt repeats");
                return nak(message, Some(self.policy.wait_after(1))).await;
            }
        };
        let claims = self.queue.claims();
        match claims.claim(&envelope.queue_id, position, &Claimant::Relay).await {
            Ok(Claimant::Relay) => {
                if !self.settle(position, message, envelope.clone()).await
                    && let Err(error) = claims.release(&envelope.queue_id, position).await
                {
                    tracing::warn!(%error, "claim not released; an operator's change waits for it to expire");
                }
            }
            Ok(Claimant::Operator(change)) => self.yield_to_operator(message, envelope, &change).await,
            Err(error) => {
                tracing::warn!(%error, "message not claimed; the attempt repeats");
                self.keep_outcome(position, &envelope).await;
                nak(message, Some(self.policy.wait_after(1))).await;
            }
        }
    }

    /// Keeps this attempt's outcome for the next attempt at the same message, which starts from it
    /// instead of delivering again: who accepted the message must not be sent it twice when it comes
    /// back as it was (a requeue, a claim or a DSN that could not be written).
    async fn keep_outcome(&self, position: Position, envelope: &Envelope) {
        if let Err(error) = self.queue.claims().keep_outcome(&envelope.queue_id, position, envelope).await {
            tracing::warn!(%error, "outcome not kept; the next attempt repeats this one");
        }
    }

    /// An operator held, deleted or bounced the message while this attempt ran. Deleted: it is not
    /// queued again. Bounced: the operator's copy carries the bounce. Held: this attempt's outcome (who
    /// accepted it) goes into the operator's held copy, so that a release does not send it to them again.
    async fn yield_to_operator(&self, message: &jetstream::Message, mut envelope: Envelope, change: &str) {
        tracing::info!(change, "an operator changed the message during the attempt; the change wins");
        self.count("operator");
        if change == QueueChange::Hold.as_str_name() {
            envelope.held = true;
            if let Err(error) = self.merge_into_held(&envelope).await {
                tracing::warn!(%error, "attempt's outcome not merged into the held message; the attempt repeats");
                return nak(message, Some(self.policy.wait_after(1))).await;
            }
        }
        if let Err(error) = message.double_ack().await {
            nats_client_error(NatsOperation::Ack);
            tracing::debug!(%error, "ack of a message an operator changed not confirmed");
        }
    }

    /// Puts `envelope` (held) in place of the operator's held copy of the same message; when that copy
    /// cannot be found, queues it as a held message of its own, so that nothing is lost.
    async fn merge_into_held(&self, envelope: &Envelope) -> Result<(), QueueError> {
        for _ in 0..MERGE_ROUNDS {
            let held = self
                .queue
                .list(MERGE_LIST_LIMIT)
                .await?
                .into_iter()
                .rev()
                .find(|(_, queued)| queued.queue_id == envelope.queue_id && queued.held);
            if let Some((position, _)) = held {
                return self.queue.replace(position, envelope, "merge").await;
            }
            // The operator's copy is on its way (claimed, not yet published).
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.queue.requeue(envelope).await
    }

    /// Returns whether the message left the queue (acked, requeued, dead-lettered): `false` when it comes
    /// back as it was.
    async fn settle(&self, position: Position, message: &jetstream::Message, mut envelope: Envelope) -> bool {
        let now = Utc::now();
        let age = Duration::from_millis(now.timestamp_millis().saturating_sub(envelope.arrival_unix_ms).max(0) as u64);
        let pending = |e: &Envelope| e.recipients.iter().any(|r| r.status() == RecipientStatus::Pending);
        if pending(&envelope) && age >= self.policy.max_lifetime {
            for recipient in envelope.recipients.iter_mut().filter(|r| r.status() == RecipientStatus::Pending) {
                recipient.set_status(RecipientStatus::Failed);
                recipient.last_error = format!("4.4.7 delivery time expired; last error: {}", recipient.last_error);
            }
        }
        if !pending(&envelope) {
            return self.finish(position, message, &envelope).await;
        }
        if let Some(warning) = self.policy.delay_warning
            && !envelope.delay_warned
            && age >= warning
        {
            envelope.delay_warned = true;
            if let Err(error) = self.notify(&envelope, DsnAction::Delayed).await {
                tracing::warn!(%error, "delay notification not queued");
            }
        }
        let wait = self.policy.wait_after(envelope.attempts);
        envelope.next_attempt_unix_ms = now.timestamp_millis() + wait.as_millis() as i64;
        match self.requeue(&envelope).await {
            Ok(()) => {
                self.count("retry");
                tracing::info!(attempt = envelope.attempts, ?wait, "will retry");
                if let Err(error) = message.double_ack().await {
                    nats_client_error(NatsOperation::Ack);
                    tracing::warn!(%error, "ack after requeue not confirmed; the attempt may repeat");
                }
                true
            }
            Err(error) => {
                tracing::warn!(%error, "requeue failed; the message comes back as it was");
                self.keep_outcome(position, &envelope).await;
                nak(message, Some(wait)).await;
                false
            }
        }
    }

    /// Every recipient is final: queue the DSNs the sender asked for, then ack, then drop the body.
    /// Returns whether the message left the queue (see [`Self::settle`]).
    async fn finish(&self, position: Position, message: &jetstream::Message, envelope: &Envelope) -> bool {
        let failed = envelope.recipients.iter().any(|r| r.status() == RecipientStatus::Failed);
        if failed && envelope.mail_from.is_empty() {
            // RFC 3464 §4: a null sender is never bounced; an operator can still see the failure.
            // Kept with this attempt's outcomes, so an operator sees which recipients failed and why.
            let reason = "permanent failure of a message with a null sender";
            return self.dead_letter_payload(message, envelope.encode_to_vec().into(), reason).await;
        }
        for action in [DsnAction::Failed, DsnAction::Delivered] {
            if let Err(error) = self.notify(envelope, action).await {
                tracing::warn!(%error, "DSN not queued; the message comes back as it was");
                // The DSN is queued again from the kept outcome, under the same id; nobody is sent the
                // message again.
                self.keep_outcome(position, envelope).await;
                nak(message, Some(self.policy.wait_after(1))).await;
                return false;
            }
        }
        self.count("done");
        // Wait for the server to confirm the ack before deleting the body: an ack that is lost means a
        // redelivery, and a redelivery needs the body.
        if let Err(error) = message.double_ack().await {
            nats_client_error(NatsOperation::Ack);
            tracing::warn!(%error, "ack not confirmed; the message will be redelivered and deduplicated");
            return true;
        }
        if let Err(error) = self.queue.delete_body_of(envelope).await {
            tracing::warn!(%error, "body not deleted");
        }
        true
    }

    /// Queues one DSN of `action` to the sender for the recipients that asked for it; nothing to do is Ok.
    async fn notify(&self, envelope: &Envelope, action: DsnAction) -> Result<(), QueueError> {
        if envelope.mail_from.is_empty() {
            return Ok(());
        }
        let wanted = |r: &EnvelopeRecipient| {
            let (status, notify) = (r.status(), r.notify);
            let asked = |bit: u32| notify & bit != 0 || (notify == 0 && bit == NOTIFY_FAILURE);
            notify & NOTIFY_NEVER == 0
                && match action {
                    DsnAction::Failed => status == RecipientStatus::Failed && asked(NOTIFY_FAILURE),
                    DsnAction::Delayed => status == RecipientStatus::Pending && asked(NOTIFY_DELAY),
                    DsnAction::Delivered => status == RecipientStatus::Delivered && notify & NOTIFY_SUCCESS != 0,
                }
        };
        let entries: Vec<Entry<'_>> =
            envelope.recipients.iter().filter(|r| wanted(r)).map(|recipient| Entry { recipient, action }).collect();
        if entries.is_empty() {
            return Ok(());
        }
        let original = self.queue.body_of(envelope).await?;
        let report = dsn::build(envelope, &entries, &original, &self.hostname, Utc::now());
        // The same report for the same message gets the same id, so a repeated attempt (after a lost ack
        // or a failed requeue) queues it once: the queue deduplicates on it.
        let queue_id = dsn_queue_id(envelope, action);
        let dsn_envelope = Envelope {
            queue_id: queue_id.to_string(),
            mail_from: String::new(),
            recipients: vec![EnvelopeRecipient { address: envelope.mail_from.clone(), ..Default::default() }],
            size: report.len() as u64,
            arrival_unix_ms: Utc::now().timestamp_millis(),
            smtputf8: envelope.smtputf8,
            ..Default::default()
        };
        self.queue.enqueue(&dsn_envelope, &report, queue_id.as_str()).await?;
        self.dsns.get_or_create(&vec![("action".into(), format!("{action:?}").to_lowercase())]).inc();
        tracing::info!(dsn = %queue_id, ?action, recipients = entries.len(), "DSN queued");
        Ok(())
    }

    fn count(&self, disposition: &str) {
        tracing::Span::current().record("outcome", disposition);
        self.messages.get_or_create(&vec![("disposition".into(), disposition.into())]).inc();
    }

    /// Requeues an envelope's new state, trying a few times: giving up means the message comes back as
    /// it was, and recipients that accepted this time would be sent it again.
    async fn requeue(&self, envelope: &Envelope) -> Result<(), QueueError> {
        let mut result = self.queue.requeue(envelope).await;
        for pause in [200, 1000, 3000] {
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(pause)).await;
            result = self.queue.requeue(envelope).await;
        }
        result
    }

    async fn dead_letter(&self, message: &jetstream::Message, reason: &str) {
        self.dead_letter_payload(message, message.payload.clone(), reason).await;
    }

    /// Returns whether the message left the queue (see [`Self::settle`]).
    async fn dead_letter_payload(&self, message: &jetstream::Message, payload: bytes::Bytes, reason: &str) -> bool {
        tracing::error!(subject = %message.subject, %reason, "dead-lettering message");
        self.count("dead_letter");
        let headers = message.headers.clone().unwrap_or_default();
        match self.queue.dead_letter(payload, headers, reason).await {
            Ok(()) => {
                if let Err(error) = message.double_ack().await {
                    nats_client_error(NatsOperation::Ack);
                    tracing::warn!(%error, "ack of dead-lettered message failed");
                }
                true
            }
            // Keep it on the queue: it comes back after ack_wait and we try again.
            Err(error) => {
                tracing::error!(%error, "dead-letter publish failed");
                false
            }
        }
    }
}

/// A queue id derived from the message's and the report's kind (and, for delay warnings, the attempt).
fn dsn_queue_id(envelope: &Envelope, action: DsnAction) -> QueueId {
    let name = format!(
        "{}.dsn.{action:?}.{}",
        envelope.queue_id,
        if action == DsnAction::Delayed { envelope.attempts } else { 0 }
    );
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes());
    id.simple().to_string().parse().expect("a UUID in simple form is a valid queue id")
}

/// Cancels `changed` once the queue has a partition that `consuming` lacks. A partition that cannot be
/// listed for now is looked for again next time.
async fn watch_partitions(queue: Queue, consuming: Vec<u32>, changed: CancellationToken) {
    loop {
        tokio::time::sleep(PARTITION_RECHECK).await;
        if let Ok(partitions) = queue.partitions().await
            && partitions.iter().any(|p| !consuming.contains(p))
        {
            changed.cancel();
            return;
        }
    }
}

/// Hands a message back to JetStream for redelivery after `wait`. A failed nak costs nothing but time:
/// the server redelivers the message anyway once its ack_wait runs out.
async fn nak(message: &jetstream::Message, wait: Option<Duration>) {
    if let Err(error) = message.ack_with(AckKind::Nak(wait)).await {
        nats_client_error(NatsOperation::Ack);
        tracing::debug!(%error, "nak failed; the message comes back after ack_wait");
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
                    nats_client_error(NatsOperation::Ack);
                    tracing::debug!(%error, "progress ack failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_steps_and_then_repeats_its_last_wait() {
        let policy = RetryPolicy {
            schedule: vec![Duration::from_secs(60), Duration::from_secs(300)],
            max_lifetime: Duration::from_secs(3600),
            delay_warning: None,
        };
        assert_eq!(policy.wait_after(1), Duration::from_secs(60));
        assert_eq!(policy.wait_after(2), Duration::from_secs(300));
        assert_eq!(policy.wait_after(9), Duration::from_secs(300));
        assert_eq!(policy.wait_after(0), Duration::from_secs(60));
    }
}
