//! `QueueAdmin`: what an operator can see and do with the queue, in the spirit of `postqueue -p`,
//! `postqueue -f` and `postsuper -h/-H/-d`, across every queue partition. A change replaces the message's
//! envelope in the stream.
//! A hold, delete or bounce first claims the message ([`mailbus_jetstream::Claims`]): one that a relay
//! attempt has claimed is settled by it, and the change goes to the next state it queued.

use std::collections::{HashMap, HashSet};

use mailbus_jetstream::{Claimant, Envelope, Position, Queue};
use mailbus_proto::v1::{self as pb, QueueChange, RecipientStatus};
use tonic::{Request, Response, Status};

/// Listing stops here; the queue of a healthy server is far smaller.
const LIST_LIMIT: usize = 10_000;

/// How often, and how long apart, the queue is listed again for the next state of a message that a
/// relay attempt settled while the operator's change was on its way.
const SETTLED_ROUNDS: usize = 25;
const SETTLED_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// Whether a change must win over a relay attempt in flight: the attempt would otherwise requeue a
/// pending copy of a held, deleted or bounced message. (A retry or release racing an attempt costs at
/// most one early attempt.)
fn contested(change: QueueChange) -> bool {
    matches!(change, QueueChange::Hold | QueueChange::Delete | QueueChange::Bounce)
}

pub struct QueueAdminService {
    pub queue: Queue,
}

fn unavailable(error: impl std::fmt::Display) -> Status {
    Status::unavailable(error.to_string())
}

#[tonic::async_trait]
impl pb::queue_admin_server::QueueAdmin for QueueAdminService {
    async fn queue_status(
        &self,
        _request: Request<pb::QueueStatusRequest>,
    ) -> Result<Response<pb::QueueStatusResponse>, Status> {
        let status = self.queue.status().await.map_err(unavailable)?;
        Ok(Response::new(pb::QueueStatusResponse {
            messages: status.messages,
            bytes: status.bytes,
            pending: status.pending,
            in_flight: status.in_flight,
            oldest_unix: status.oldest_unix,
        }))
    }

    async fn list_queue(
        &self,
        request: Request<pb::ListQueueRequest>,
    ) -> Result<Response<pb::ListQueueResponse>, Status> {
        let wanted = request.into_inner().queue_id;
        let messages = self
            .queue
            .list(LIST_LIMIT)
            .await
            .map_err(unavailable)?
            .into_iter()
            .filter(|(_, envelope)| wanted.is_empty() || envelope.queue_id == wanted)
            .map(|(position, envelope)| pb::QueuedMessage {
                sequence: position.sequence,
                partition: position.partition,
                envelope: Some(envelope),
            })
            .collect();
        Ok(Response::new(pb::ListQueueResponse { messages }))
    }

    async fn change_queue(
        &self,
        request: Request<pb::ChangeQueueRequest>,
    ) -> Result<Response<pb::ChangeQueueResponse>, Status> {
        let request = request.into_inner();
        let change = request.change();
        if change == QueueChange::Unspecified || (request.queue_id.is_empty() && !request.all) {
            return Err(Status::invalid_argument("name a change and a queue id (or all)"));
        }
        let mut changed = Vec::new();
        // Messages a relay attempt settled under us, by queue id: their next state is looked for again, at
        // any other place (it may be in another partition, so sequences say nothing about which is newer).
        let mut settled: HashMap<String, HashSet<Position>> = HashMap::new();
        for round in 0..=SETTLED_ROUNDS {
            if round > 0 {
                if settled.is_empty() {
                    break;
                }
                tokio::time::sleep(SETTLED_PAUSE).await;
            }
            let wanted = |envelope: &Envelope| request.all || envelope.queue_id == request.queue_id;
            for (position, envelope) in self.queue.list(LIST_LIMIT).await.map_err(unavailable)? {
                let retried = settled.get(&envelope.queue_id);
                if !wanted(&envelope) || (round > 0 && retried.is_none_or(|seen| seen.contains(&position))) {
                    continue;
                }
                let queue_id = envelope.queue_id.clone();
                if contested(change) {
                    let me = Claimant::Operator(change.as_str_name().to_owned());
                    if self.queue.claims().claim(&queue_id, position, &me).await.map_err(unavailable)? != me {
                        // A relay attempt settles this one: change its next state instead.
                        tracing::info!(%queue_id, ?position, "message settled by a relay attempt, looking again");
                        settled.entry(queue_id).or_default().insert(position);
                        continue;
                    }
                }
                settled.remove(&queue_id);
                self.apply(change, position, envelope).await.map_err(unavailable)?;
                tracing::info!(%queue_id, ?change, "queue changed by an operator");
                changed.push(queue_id);
            }
        }
        if changed.is_empty() && !request.all {
            return Err(Status::not_found(format!("no message {} in the queue", request.queue_id)));
        }
        Ok(Response::new(pb::ChangeQueueResponse { changed }))
    }
}

impl QueueAdminService {
    async fn apply(
        &self,
        change: QueueChange,
        position: Position,
        mut envelope: Envelope,
    ) -> Result<(), mailbus_jetstream::QueueError> {
        match change {
            QueueChange::Delete => {
                self.queue.remove(position).await?;
                return self.queue.delete_body_of(&envelope).await;
            }
            QueueChange::Retry => envelope.next_attempt_unix_ms = 0,
            QueueChange::Hold => envelope.held = true,
            QueueChange::Release => {
                envelope.held = false;
                envelope.next_attempt_unix_ms = 0;
            }
            // Every recipient still pending fails now; the relay then sends the sender one DSN.
            QueueChange::Bounce => {
                for recipient in envelope.recipients.iter_mut().filter(|r| r.status() == RecipientStatus::Pending) {
                    recipient.set_status(RecipientStatus::Failed);
                    recipient.last_error = "5.0.0 returned to sender by the mail system administrator".into();
                }
                envelope.held = false;
                envelope.next_attempt_unix_ms = 0;
            }
            QueueChange::Unspecified => return Ok(()),
        }
        self.queue.replace(position, &envelope, change.as_str_name()).await
    }
}
