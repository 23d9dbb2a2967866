//! `QueueAdmin`: what an operator can see and do with the queue, in the spirit of `postqueue -p`,
//! `postqueue -f` and `postsuper -h/-H/-d`. A change replaces the message's envelope in the stream.

use mailbus_jetstream::{Envelope, Queue};
use mailbus_proto::v1::{self as pb, QueueChange, RecipientStatus};
use tonic::{Request, Response, Status};

/// Listing stops here; the queue of a healthy server is far smaller.
const LIST_LIMIT: usize = 10_000;

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
            .map(|(sequence, envelope)| pb::QueuedMessage { sequence, envelope: Some(envelope) })
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
        for (sequence, envelope) in self.queue.list(LIST_LIMIT).await.map_err(unavailable)? {
            if !request.all && envelope.queue_id != request.queue_id {
                continue;
            }
            let queue_id = envelope.queue_id.clone();
            self.apply(change, sequence, envelope).await.map_err(unavailable)?;
            tracing::info!(%queue_id, ?change, "queue changed by an operator");
            changed.push(queue_id);
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
        sequence: u64,
        mut envelope: Envelope,
    ) -> Result<(), mailbus_jetstream::QueueError> {
        match change {
            QueueChange::Delete => {
                self.queue.remove(sequence).await?;
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
        self.queue.replace(sequence, &envelope, change.as_str_name()).await
    }
}
