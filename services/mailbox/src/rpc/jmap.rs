//! `mailbus.v1.Jmap`: the JMAP method calls, blobs, state and submissions of the http role, served from
//! `crate::jmap`. Every RPC first refuses an account that is missing or disabled (PERMISSION_DENIED).

use std::collections::HashMap;

use futures::StreamExt;
use mailbus_address::AccountId;
use mailbus_proto::v1::{self as pb, blob_chunk, blob_upload, jmap_server::Jmap};
use tonic::{Request, Response, Status, Streaming};

use super::MailboxService;
use crate::error::invalid;
use crate::jmap::blob::{self, UploadRefused};
use crate::jmap::{self, Ctx, MethodError, submission};

/// Download chunks.
const CHUNK: usize = 64 * 1024;

fn internal(error: MethodError) -> Status {
    Status::internal(error.to_json().to_string())
}

impl MailboxService {
    /// The account, if it exists and may use JMAP now.
    async fn jmap_account(&self, id: i64) -> Result<AccountId, Status> {
        if id <= 0 {
            return Err(Status::invalid_argument("no account"));
        }
        let account = AccountId::new(id);
        if !jmap::account_enabled(&self.pool, account).await.map_err(internal)? {
            return Err(Status::permission_denied("the account is disabled or gone"));
        }
        Ok(account)
    }
}

#[tonic::async_trait]
impl Jmap for MailboxService {
    async fn call(&self, request: Request<pb::JmapCall>) -> Result<Response<pb::JmapCallResult>, Status> {
        let call = request.into_inner();
        let account = self.jmap_account(call.account_id).await?;
        let arguments: serde_json::Value = serde_json::from_str(&call.arguments)
            .map_err(|e| Status::invalid_argument(format!("arguments are not JSON: {e}")))?;
        let mut created_ids: HashMap<String, String> = call.created_ids;
        let known: Vec<String> = created_ids.keys().cloned().collect();
        let mut ctx = Ctx {
            pool: &self.pool,
            events: &self.events,
            account,
            max_message_size: self.max_message_size,
            recipient_delimiter: &self.recipient_delimiter,
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

    async fn upload(&self, request: Request<Streaming<pb::BlobUpload>>) -> Result<Response<pb::BlobUploaded>, Status> {
        let mut stream = request.into_inner();
        let header = match stream.next().await {
            Some(Ok(pb::BlobUpload { part: Some(blob_upload::Part::Header(header)) })) => header,
            Some(Err(status)) => return Err(status),
            _ => return Err(invalid("the first message must be the header")),
        };
        let account = self.jmap_account(header.account_id).await?;
        let mut content = Vec::new();
        while let Some(part) = stream.next().await {
            match part?.part {
                Some(blob_upload::Part::Chunk(chunk)) => content.extend_from_slice(&chunk),
                _ => return Err(invalid("only chunks may follow the header")),
            }
            if content.len() as u64 > self.max_message_size {
                let limit = self.max_message_size;
                return Err(Status::out_of_range(format!("the upload exceeds the limit of {limit} octets")));
            }
        }
        let media_type = blob::media_type(&header.media_type);
        let blob_id = match blob::upload(&self.pool, account, &media_type, &content).await {
            Ok(blob_id) => blob_id,
            Err(UploadRefused::OverQuota) => return Err(Status::resource_exhausted("the account's quota is full")),
            Err(UploadRefused::Store(error)) => return Err(internal(error)),
        };
        Ok(Response::new(pb::BlobUploaded { blob_id, media_type, size: content.len() as u64 }))
    }

    type DownloadStream = tokio_stream::wrappers::ReceiverStream<Result<pb::BlobChunk, Status>>;

    async fn download(&self, request: Request<pb::BlobDownload>) -> Result<Response<Self::DownloadStream>, Status> {
        let request = request.into_inner();
        let account = self.jmap_account(request.account_id).await?;
        let Some(found) = blob::read(&self.pool, account, &request.blob_id).await.map_err(internal)? else {
            return Err(Status::not_found(format!("no blob {:?}", request.blob_id)));
        };
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let info = pb::BlobInfo {
                media_type: found.media_type,
                size: found.octets.len() as u64,
                name: found.name.unwrap_or_default(),
            };
            if sender.send(Ok(pb::BlobChunk { part: Some(blob_chunk::Part::Info(info)) })).await.is_err() {
                return;
            }
            for chunk in found.octets.chunks(CHUNK) {
                let chunk = pb::BlobChunk { part: Some(blob_chunk::Part::Chunk(chunk.to_vec())) };
                if sender.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(receiver)))
    }

    async fn state(&self, request: Request<pb::StateRequest>) -> Result<Response<pb::StateResponse>, Status> {
        let account = self.jmap_account(request.into_inner().account_id).await?;
        let state = jmap::state(&self.pool, account).await.map_err(internal)?;
        Ok(Response::new(pb::StateResponse { state }))
    }

    async fn prepare_submission(
        &self,
        request: Request<pb::PrepareSubmissionRequest>,
    ) -> Result<Response<pb::PrepareSubmissionResponse>, Status> {
        let r = request.into_inner();
        let account = self.jmap_account(r.account_id).await?;
        let prepared = submission::prepare(
            &self.pool,
            account,
            self.max_message_size,
            &self.recipient_delimiter,
            &r.identity_id,
            &r.email_id,
            &r.envelope,
        )
        .await
        .map_err(internal)?;
        let outcome = match prepared {
            Ok(p) => pb::prepare_submission_response::Outcome::Prepared(pb::PreparedSubmission {
                mail_from: p.mail_from,
                rcpt_to: p.rcpt_to,
                blob_id: p.blob_id,
                size: p.size,
                thread_id: p.thread_id,
            }),
            Err(error) => pb::prepare_submission_response::Outcome::SetError(error.to_json().to_string()),
        };
        Ok(Response::new(pb::PrepareSubmissionResponse { outcome: Some(outcome) }))
    }

    async fn record_submission(
        &self,
        request: Request<pb::RecordSubmissionRequest>,
    ) -> Result<Response<pb::RecordSubmissionResponse>, Status> {
        let r = request.into_inner();
        let account = self.jmap_account(r.account_id).await?;
        let recorded =
            submission::record(&self.pool, account, &r.identity_id, &r.email_id, &r.queue_id, &r.mail_from, &r.rcpt_to)
                .await
                .map_err(internal)?;
        match recorded {
            Some(id) => Ok(Response::new(pb::RecordSubmissionResponse { id })),
            None => Err(Status::not_found(format!("no email {:?}", r.email_id))),
        }
    }
}
