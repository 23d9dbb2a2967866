//! `mailbus.v1.Jmap`: the JMAP method calls, blobs and state of the http role, served from `crate::jmap`.

use std::collections::HashMap;

use mailbus_address::AccountId;
use mailbus_proto::v1::{self as pb, jmap_server::Jmap};
use tonic::{Request, Response, Status, Streaming};

use super::MailboxService;
use crate::jmap::{self, Ctx};

fn account(id: i64) -> Result<AccountId, Status> {
    if id <= 0 {
        return Err(Status::invalid_argument("no account"));
    }
    Ok(AccountId::new(id))
}

#[tonic::async_trait]
impl Jmap for MailboxService {
    async fn call(&self, request: Request<pb::JmapCall>) -> Result<Response<pb::JmapCallResult>, Status> {
        let call = request.into_inner();
        let account = account(call.account_id)?;
        let arguments: serde_json::Value = serde_json::from_str(&call.arguments)
            .map_err(|e| Status::invalid_argument(format!("arguments are not JSON: {e}")))?;
        let mut created_ids: HashMap<String, String> = call.created_ids;
        let known: Vec<String> = created_ids.keys().cloned().collect();
        let mut ctx = Ctx {
            pool: &self.pool,
            events: &self.events,
            account,
            max_message_size: self.max_message_size,
            created_ids: &mut created_ids,
        };
        let responses = jmap::call(&mut ctx, &call.method, arguments).await;
        let responses = responses
            .into_iter()
            .map(|(name, arguments)| pb::JmapResponse { name, arguments: arguments.to_string() })
            .collect();
        created_ids.retain(|k, _| !known.contains(k));
        Ok(Response::new(pb::JmapCallResult { responses, created_ids }))
    }

    async fn upload(&self, _request: Request<Streaming<pb::BlobUpload>>) -> Result<Response<pb::BlobUploaded>, Status> {
        Err(Status::unimplemented("Upload"))
    }

    type DownloadStream = tokio_stream::wrappers::ReceiverStream<Result<pb::BlobChunk, Status>>;

    async fn download(&self, _request: Request<pb::BlobDownload>) -> Result<Response<Self::DownloadStream>, Status> {
        Err(Status::unimplemented("Download"))
    }

    async fn state(&self, request: Request<pb::StateRequest>) -> Result<Response<pb::StateResponse>, Status> {
        let account = account(request.into_inner().account_id)?;
        let state = jmap::state(&self.pool, account).await.map_err(|e| Status::internal(e.kind()))?;
        Ok(Response::new(pb::StateResponse { state }))
    }

    async fn prepare_submission(
        &self,
        _request: Request<pb::PrepareSubmissionRequest>,
    ) -> Result<Response<pb::PrepareSubmissionResponse>, Status> {
        Err(Status::unimplemented("PrepareSubmission"))
    }

    async fn record_submission(
        &self,
        _request: Request<pb::RecordSubmissionRequest>,
    ) -> Result<Response<pb::RecordSubmissionResponse>, Status> {
        Err(Status::unimplemented("RecordSubmission"))
    }
}
