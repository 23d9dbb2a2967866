//! `QueueAdmin`: what an operator can ask about the queue.

use mailbus_jetstream::Queue;
use mailbus_proto::v1 as pb;
use tonic::{Request, Response, Status};

pub struct QueueAdminService {
    pub queue: Queue,
}

#[tonic::async_trait]
impl pb::queue_admin_server::QueueAdmin for QueueAdminService {
    async fn queue_status(
        &self,
        _request: Request<pb::QueueStatusRequest>,
    ) -> Result<Response<pb::QueueStatusResponse>, Status> {
        let status = self.queue.status().await.map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::QueueStatusResponse {
            messages: status.messages,
            bytes: status.bytes,
            pending: status.pending,
            in_flight: status.in_flight,
            oldest_unix: status.oldest_unix,
        }))
    }
}
