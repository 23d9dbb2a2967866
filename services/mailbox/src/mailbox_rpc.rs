//! The gRPC edge of mail at rest: `Mailbox` requests become calls on the store, each change is followed by
//! its event on NATS, and message octets leave in chunks.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use mailbus_address::EmailAddress;
use mailbus_proto::v1::{self as pb, MailboxEventKind, append_request, deliver_request};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::directory::{self, Resolution};
use crate::error::MailboxError;
use crate::mailboxes::{self, EntryState, ListQuery, RenameOutcome, Status as MailboxStatus};
use crate::maildrop::{self, Copied, Expunged, StoreMode};
use crate::mime::{self, Parsed};
use crate::search;
use crate::sections;
use crate::service::{MailboxService, QuotaFull, invalid};

/// Message octets go out in chunks of this size.
const CHUNK: usize = 64 * 1024;

/// FETCH reads the octets of at most this many bytes' worth of messages at a time (at least one message).
const FETCH_BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// FETCH responses buffered ahead of a slow client.
const FETCH_BUFFER: usize = 64;

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::MessageChunk, Status>> + Send>>;
type FetchStream = Pin<Box<dyn Stream<Item = Result<pb::FetchResponse, Status>> + Send>>;

fn status_to_pb(s: MailboxStatus) -> pb::MailboxStatus {
    pb::MailboxStatus {
        messages: s.messages,
        uidnext: s.uidnext,
        uidvalidity: s.uidvalidity,
        unseen: s.unseen,
        deleted: s.deleted,
        size: s.size,
        highest_modseq: s.highest_modseq,
    }
}

fn entry_to_pb(e: EntryState) -> pb::EntryState {
    pb::EntryState { uid: e.uid, flags: e.flags, modseq: e.modseq }
}

/// A client-streamed upload (Deliver, Append): a header that announces the size, then body chunks.
trait Upload: prost::Message + Default + 'static {
    type Header;
    /// The header, or a chunk; None for an empty message.
    fn split(self) -> Option<Result<Self::Header, Vec<u8>>>;
    fn size(header: &Self::Header) -> u64;
}

impl Upload for pb::DeliverRequest {
    type Header = pb::DeliveryHeader;

    fn split(self) -> Option<Result<Self::Header, Vec<u8>>> {
        match self.part? {
            deliver_request::Part::Header(header) => Some(Ok(header)),
            deliver_request::Part::Chunk(chunk) => Some(Err(chunk)),
        }
    }

    fn size(header: &Self::Header) -> u64 {
        header.size
    }
}

impl Upload for pb::AppendRequest {
    type Header = pb::AppendHeader;

    fn split(self) -> Option<Result<Self::Header, Vec<u8>>> {
        match self.part? {
            append_request::Part::Header(header) => Some(Ok(header)),
            append_request::Part::Chunk(chunk) => Some(Err(chunk)),
        }
    }

    fn size(header: &Self::Header) -> u64 {
        header.size
    }
}

/// Reads a client stream of `header, chunk, chunk, ...` into the header and the octets, checking the size
/// the header announced against the limit and against what arrived.
async fn read_upload<R: Upload>(mut stream: Streaming<R>, limit: u64) -> Result<(R::Header, Vec<u8>), Status> {
    let header = match stream.next().await {
        Some(Ok(first)) => match first.split() {
            Some(Ok(header)) => header,
            _ => return Err(invalid("the first message must be the header")),
        },
        Some(Err(status)) => return Err(status),
        None => return Err(invalid("empty request stream")),
    };
    let size = R::size(&header);
    if size > limit {
        return Err(invalid(format!("message of {size} octets exceeds the limit of {limit}")));
    }
    let mut content = Vec::with_capacity(size as usize);
    while let Some(part) = stream.next().await {
        match part?.split() {
            Some(Err(chunk)) => content.extend_from_slice(&chunk),
            _ => return Err(invalid("only body chunks may follow the header")),
        }
        if content.len() as u64 > size {
            return Err(invalid("body is longer than the header's size"));
        }
    }
    if content.len() as u64 != size {
        return Err(invalid(format!("body has {} octets, the header said {size}", content.len())));
    }
    Ok((header, content))
}

/// MIME parsing is CPU work: it runs off the async threads.
async fn parse(content: Vec<u8>) -> Result<(Vec<u8>, Parsed), Status> {
    tokio::task::spawn_blocking(move || {
        let parsed = mime::parse(&content);
        (content, parsed)
    })
    .await
    .map_err(|e| Status::internal(format!("parsing the message: {e}")))
}

#[tonic::async_trait]
impl pb::mailbox_server::Mailbox for MailboxService {
    async fn deliver(
        &self,
        request: Request<Streaming<pb::DeliverRequest>>,
    ) -> Result<Response<pb::DeliverResponse>, Status> {
        let started = std::time::Instant::now();
        let (header, content) = read_upload(request.into_inner(), self.max_message_size).await?;
        let span = tracing::info_span!(
            "mailbox.deliver",
            queue_id = %header.queue_id,
            uid = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let outcome = self.deliver_one(header, content).instrument(span.clone()).await;
        let label = match &outcome {
            Ok(reply) if reply.duplicate => "duplicate",
            Ok(_) => "delivered",
            Err(status) if status.message().starts_with("4.2.2") || status.message().starts_with("5.2.2") => {
                "over_quota"
            }
            Err(status) if status.code() == tonic::Code::Unavailable => "temporary_failure",
            Err(_) => "rejected",
        };
        span.record("outcome", label);
        self.deliveries.get_or_create(&vec![("outcome".into(), label.into())]).inc();
        self.deliver_seconds.observe(started.elapsed().as_secs_f64());
        outcome.map(Response::new)
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let request = request.into_inner();
        let listing = maildrop::list(&self.pool, request.account_id, &request.mailbox).await?;
        Ok(Response::new(pb::ListMessagesResponse {
            uidvalidity: listing.uidvalidity,
            uidnext: listing.uidnext,
            messages: listing
                .messages
                .into_iter()
                .map(|m| pb::MessageSummary { uid: m.uid, size: m.size, internal_date_unix: m.internal_date_unix })
                .collect(),
        }))
    }

    type FetchMessageStream = ChunkStream;

    async fn fetch_message(
        &self,
        request: Request<pb::FetchMessageRequest>,
    ) -> Result<Response<Self::FetchMessageStream>, Status> {
        let request = request.into_inner();
        let content = maildrop::content(&self.pool, request.account_id, &request.mailbox, request.uid).await?;
        let chunks: Vec<Result<pb::MessageChunk, Status>> =
            content.chunks(CHUNK).map(|c| Ok(pb::MessageChunk { data: c.to_vec() })).collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn expunge(&self, request: Request<pb::ExpungeRequest>) -> Result<Response<pb::ExpungeResponse>, Status> {
        let r = request.into_inner();
        let gone = maildrop::expunge(&self.pool, r.account_id, &r.mailbox, &r.uids, r.deleted_only).await?;
        self.publish_expunged(r.account_id, &gone);
        Ok(Response::new(pb::ExpungeResponse { expunged: gone.uids, highest_modseq: gone.modseq as u64 }))
    }

    async fn r#move(&self, request: Request<pb::MoveRequest>) -> Result<Response<pb::MoveResponse>, Status> {
        let r = request.into_inner();
        let moved = maildrop::copy(&self.pool, r.account_id, &r.from_mailbox, &r.to_mailbox, &r.uids, true).await?;
        self.publish_copied(r.account_id, &moved);
        Ok(Response::new(pb::MoveResponse {
            source_uids: moved.source_uids,
            target_uidvalidity: moved.target_uidvalidity,
            target_uids: moved.target_uids,
        }))
    }

    async fn create_mailbox(
        &self,
        request: Request<pb::CreateMailboxRequest>,
    ) -> Result<Response<pb::CreateMailboxResponse>, Status> {
        let r = request.into_inner();
        let uidvalidity = mailboxes::create(&self.pool, r.account_id, &r.name, &r.special_use).await?;
        let name = crate::names::mailbox_name(&r.name)?;
        self.events.publish_hierarchy(r.account_id, &name, MailboxEventKind::Created, "");
        Ok(Response::new(pb::CreateMailboxResponse { uidvalidity }))
    }

    async fn rename_mailbox(
        &self,
        request: Request<pb::RenameMailboxRequest>,
    ) -> Result<Response<pb::RenameMailboxResponse>, Status> {
        let r = request.into_inner();
        match mailboxes::rename(&self.pool, r.account_id, &r.from, &r.to).await? {
            RenameOutcome::InboxMoved(moved) => {
                self.events.publish_hierarchy(r.account_id, &moved.target, MailboxEventKind::Created, "");
                self.publish_copied(r.account_id, &moved);
            }
            RenameOutcome::Renamed { from, to } => {
                self.events.publish_hierarchy(r.account_id, &from, MailboxEventKind::Renamed, &to);
            }
        }
        Ok(Response::new(pb::RenameMailboxResponse {}))
    }

    async fn delete_mailbox(
        &self,
        request: Request<pb::DeleteMailboxRequest>,
    ) -> Result<Response<pb::DeleteMailboxResponse>, Status> {
        let r = request.into_inner();
        mailboxes::delete(&self.pool, r.account_id, &r.name).await?;
        let name = crate::names::mailbox_name(&r.name)?;
        self.events.publish_hierarchy(r.account_id, &name, MailboxEventKind::Deleted, "");
        Ok(Response::new(pb::DeleteMailboxResponse {}))
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<pb::SubscribeResponse>, Status> {
        let r = request.into_inner();
        mailboxes::subscribe(&self.pool, r.account_id, &r.name, r.subscribed).await?;
        Ok(Response::new(pb::SubscribeResponse {}))
    }

    async fn list_mailboxes(
        &self,
        request: Request<pb::ListMailboxesRequest>,
    ) -> Result<Response<pb::ListMailboxesResponse>, Status> {
        let r = request.into_inner();
        let query = ListQuery {
            reference: r.reference,
            patterns: r.patterns,
            subscribed_only: r.subscribed_only,
            special_use_only: r.special_use_only,
            with_status: r.with_status,
        };
        let listed = mailboxes::list(&self.pool, r.account_id, &query).await?;
        Ok(Response::new(pb::ListMailboxesResponse {
            mailboxes: listed
                .into_iter()
                .map(|l| pb::MailboxListing {
                    name: l.name,
                    exists: l.exists,
                    subscribed: l.subscribed,
                    has_children: l.has_children,
                    special_use: l.special_use.unwrap_or_default(),
                    status: l.status.map(status_to_pb),
                })
                .collect(),
        }))
    }

    async fn status(&self, request: Request<pb::StatusRequest>) -> Result<Response<pb::MailboxStatus>, Status> {
        let r = request.into_inner();
        Ok(Response::new(status_to_pb(mailboxes::status(&self.pool, r.account_id, &r.mailbox).await?)))
    }

    async fn select(&self, request: Request<pb::SelectRequest>) -> Result<Response<pb::SelectResponse>, Status> {
        let r = request.into_inner();
        let selected = mailboxes::select(&self.pool, r.account_id, &r.mailbox).await?;
        Ok(Response::new(pb::SelectResponse {
            status: Some(status_to_pb(selected.status)),
            keywords: selected.keywords,
            uids: selected.uids,
            first_unseen_uid: selected.first_unseen_uid,
            name: crate::names::mailbox_name(&r.mailbox)?,
        }))
    }

    async fn changes(&self, request: Request<pb::ChangesRequest>) -> Result<Response<pb::ChangesResponse>, Status> {
        let r = request.into_inner();
        let changes = mailboxes::changes(&self.pool, r.account_id, &r.mailbox, r.since_modseq).await?;
        Ok(Response::new(pb::ChangesResponse {
            uidvalidity: changes.uidvalidity,
            highest_modseq: changes.highest_modseq,
            changed: changes.changed.into_iter().map(entry_to_pb).collect(),
            vanished: changes.vanished,
        }))
    }

    async fn append(
        &self,
        request: Request<Streaming<pb::AppendRequest>>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let (header, content): (pb::AppendHeader, _) = read_upload(request.into_inner(), self.max_message_size).await?;
        let (content, parsed) = parse(content).await?;
        let placed = maildrop::append(
            &self.pool,
            header.account_id,
            &header.mailbox,
            &header.flags,
            header.internal_date_unix,
            &content,
            &parsed,
        )
        .await?;
        self.events.publish(
            header.account_id,
            &placed.mailbox,
            MailboxEventKind::Appended,
            vec![placed.uid],
            placed.modseq,
            placed.uidvalidity,
        );
        Ok(Response::new(pb::AppendResponse { uidvalidity: placed.uidvalidity, uid: placed.uid }))
    }

    async fn store(&self, request: Request<pb::StoreRequest>) -> Result<Response<pb::StoreResponse>, Status> {
        let r = request.into_inner();
        let mode = match r.mode() {
            pb::StoreMode::Replace => StoreMode::Replace,
            pb::StoreMode::Add => StoreMode::Add,
            pb::StoreMode::Remove => StoreMode::Remove,
            pb::StoreMode::Unspecified => return Err(invalid("store mode missing")),
        };
        let stored =
            maildrop::store(&self.pool, r.account_id, &r.mailbox, &r.uids, mode, &r.flags, r.unchanged_since).await?;
        if !stored.changed.is_empty() {
            let name = crate::names::mailbox_name(&r.mailbox)?;
            self.events.publish(
                r.account_id,
                &name,
                MailboxEventKind::FlagsChanged,
                stored.changed.clone(),
                stored.modseq,
                stored.uidvalidity,
            );
        }
        Ok(Response::new(pb::StoreResponse {
            updated: stored.updated.into_iter().map(entry_to_pb).collect(),
            modified: stored.modified,
            highest_modseq: stored.modseq as u64,
        }))
    }

    async fn copy(&self, request: Request<pb::CopyRequest>) -> Result<Response<pb::CopyResponse>, Status> {
        let r = request.into_inner();
        let copied = maildrop::copy(&self.pool, r.account_id, &r.from_mailbox, &r.to_mailbox, &r.uids, false).await?;
        self.publish_copied(r.account_id, &copied);
        Ok(Response::new(pb::CopyResponse {
            source_uids: copied.source_uids,
            target_uidvalidity: copied.target_uidvalidity,
            target_uids: copied.target_uids,
        }))
    }

    type FetchStream = FetchStream;

    async fn fetch(&self, request: Request<pb::FetchRequest>) -> Result<Response<Self::FetchStream>, Status> {
        let r = request.into_inner();
        if r.set_seen {
            let seen = ["\\Seen".to_owned()];
            let stored =
                maildrop::store(&self.pool, r.account_id, &r.mailbox, &r.uids, StoreMode::Add, &seen, None).await?;
            if !stored.changed.is_empty() {
                let name = crate::names::mailbox_name(&r.mailbox)?;
                self.events.publish(
                    r.account_id,
                    &name,
                    MailboxEventKind::FlagsChanged,
                    stored.changed,
                    stored.modseq,
                    stored.uidvalidity,
                );
            }
        }
        let rows = maildrop::fetch_rows(&self.pool, r.account_id, &r.mailbox, &r.uids, r.changed_since).await?;
        let (sender, receiver) = mpsc::channel(FETCH_BUFFER);
        let pool = self.pool.clone();
        tokio::spawn(
            async move {
                if let Err(status) = stream_fetch(&pool, &r, rows, &sender).await {
                    let _ = sender.send(Err(status)).await;
                }
            }
            .in_current_span(),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn search(&self, request: Request<pb::SearchRequest>) -> Result<Response<pb::SearchResponse>, Status> {
        let r = request.into_inner();
        let key = r.key.ok_or_else(|| invalid("search key missing"))?;
        let found = search::search(&self.pool, r.account_id, &r.mailbox, &key).await?;
        Ok(Response::new(pb::SearchResponse { uids: found.uids, highest_modseq: found.highest_modseq }))
    }

    async fn get_quota(&self, request: Request<pb::GetQuotaRequest>) -> Result<Response<pb::QuotaUsage>, Status> {
        let account_id = request.into_inner().account_id;
        let row: Option<(i64, i64, Option<i64>, Option<i64>)> =
            sqlx::query_as("SELECT used_bytes, used_messages, quota_bytes, quota_messages FROM accounts WHERE id = $1")
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(MailboxError::from)?;
        let (used_bytes, used_messages, limit_bytes, limit_messages) =
            row.ok_or_else(|| MailboxError::NotFound(format!("no account {account_id}")))?;
        Ok(Response::new(pb::QuotaUsage {
            used_bytes: used_bytes.max(0) as u64,
            used_messages: used_messages.max(0) as u64,
            limit_bytes: limit_bytes.map(|l| l as u64),
            limit_messages: limit_messages.map(|l| l as u64),
        }))
    }
}

/// Whether a section lies in the message's own header, so that FETCH need read only the header octets.
fn in_top_header(section: &pb::Section) -> bool {
    use pb::SectionText::*;
    section.part.is_empty() && matches!(section.text(), Header | HeaderFields | HeaderFieldsNot)
}

/// Sends each row's metadata and then its sections in chunks, reading octets in batches of bounded size.
async fn stream_fetch(
    pool: &sqlx::PgPool,
    request: &pb::FetchRequest,
    rows: Vec<maildrop::FetchRow>,
    sender: &mpsc::Sender<Result<pb::FetchResponse, Status>>,
) -> Result<(), Status> {
    let wants_octets = !request.sections.is_empty();
    let header_only = request.sections.iter().all(in_top_header);
    let mut start = 0;
    while start < rows.len() {
        // At least one row per batch; more while their octets stay under the bound.
        let mut end = start + 1;
        let mut bytes = rows[start].size;
        while end < rows.len() && bytes + rows[end].size <= FETCH_BATCH_BYTES {
            bytes += rows[end].size;
            end += 1;
        }
        let batch = &rows[start..end];
        start = end;
        let octets = if wants_octets {
            let ids: Vec<i64> = batch.iter().map(|r| r.message_id).collect();
            maildrop::octets(pool, &ids, header_only).await?
        } else {
            Default::default()
        };
        for row in batch {
            if wants_octets && !octets.contains_key(&row.message_id) {
                continue; // Expunged (by another session) since the rows were read: it is gone.
            }
            let needs_structure = request.envelope || request.body_structure || wants_octets;
            let stored = row.structure.as_deref().filter(|_| needs_structure).map(pb::MessageStructure::decode);
            let structure = match stored {
                Some(Ok(structure)) => structure,
                None if !needs_structure => pb::MessageStructure::default(),
                // Stored before parsing existed (and not backfilled yet), or unreadable: parse it now.
                _ => {
                    let whole = maildrop::octets(pool, &[row.message_id], false).await?;
                    let Some(whole) = whole.get(&row.message_id) else { continue };
                    mime::parse(whole).structure
                }
            };
            let content = octets.get(&row.message_id).map(Vec::as_slice).unwrap_or_default();
            let sections: Vec<Result<Option<Vec<u8>>, sections::UnknownCte>> =
                request.sections.iter().map(|s| sections::extract_section(content, &structure, s)).collect();
            let meta = pb::FetchedMessage {
                uid: row.uid,
                flags: row.flags.clone(),
                modseq: row.modseq,
                internal_date_unix: row.internal_date_unix,
                size: row.size,
                envelope: if request.envelope { structure.envelope.clone() } else { None },
                body_structure: if request.body_structure { structure.body.clone() } else { None },
                section_sizes: sections
                    .iter()
                    .map(|s| match s {
                        Ok(Some(data)) => data.len() as i64,
                        Ok(None) => -1,
                        Err(sections::UnknownCte) => -2,
                    })
                    .collect(),
            };
            let item = pb::fetch_response::Item::Message(meta);
            if sender.send(Ok(pb::FetchResponse { item: Some(item) })).await.is_err() {
                return Ok(()); // The caller went away.
            }
            for (index, data) in sections.into_iter().enumerate() {
                for chunk in data.ok().flatten().unwrap_or_default().chunks(CHUNK) {
                    let chunk = pb::SectionChunk { section: index as u32, data: chunk.to_vec() };
                    let item = pb::fetch_response::Item::Chunk(chunk);
                    if sender.send(Ok(pb::FetchResponse { item: Some(item) })).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
    Ok(())
}

impl MailboxService {
    fn publish_expunged(&self, account_id: i64, gone: &Expunged) {
        if !gone.uids.is_empty() {
            let kind = MailboxEventKind::Expunged;
            self.events.publish(account_id, &gone.mailbox, kind, gone.uids.clone(), gone.modseq, gone.uidvalidity);
        }
    }

    fn publish_copied(&self, account_id: i64, copied: &Copied) {
        if let Some(gone) = &copied.expunged {
            self.publish_expunged(account_id, gone);
        }
        if !copied.target_uids.is_empty() {
            self.events.publish(
                account_id,
                &copied.target,
                MailboxEventKind::Appended,
                copied.target_uids.clone(),
                copied.target_modseq,
                copied.target_uidvalidity,
            );
        }
    }

    async fn deliver_one(&self, header: pb::DeliveryHeader, content: Vec<u8>) -> Result<pb::DeliverResponse, Status> {
        let recipient: EmailAddress = header.recipient.parse().map_err(invalid)?;
        let accounts = match directory::resolve(&self.pool, &recipient).await? {
            Resolution::Local(accounts) => accounts,
            _ => return Err(MailboxError::NotFound(format!("no mailbox for {recipient}")).into()),
        };
        let (content, parsed) = parse(content).await?;
        // An alias may lead to several accounts: each gets its own copy in its own transaction, and a
        // repeated call skips the accounts that already have theirs, so a refusal for one (a full mailbox)
        // neither blocks nor duplicates the others.
        let mut reply = pb::DeliverResponse { placements: Vec::new(), duplicate: true };
        let mut refusal = None;
        let key = recipient.lookup_key();
        for account_id in accounts {
            match maildrop::deliver(&self.pool, account_id, &header.queue_id, &key, &content, &parsed).await {
                Ok(placed) => {
                    if !placed.duplicate {
                        reply.duplicate = false;
                        self.events.publish(
                            account_id,
                            &placed.mailbox,
                            MailboxEventKind::Appended,
                            vec![placed.uid],
                            placed.modseq,
                            placed.uidvalidity,
                        );
                    }
                    reply.placements.push(pb::Placement {
                        account_id,
                        mailbox: placed.mailbox,
                        uidvalidity: placed.uidvalidity,
                        uid: placed.uid,
                    });
                }
                Err(MailboxError::OverQuota(why)) => {
                    tracing::info!(account_id, %why, "mailbox full");
                    refusal = Some(match self.quota_full {
                        QuotaFull::Bounce => Status::failed_precondition(format!("5.2.2 mailbox full: {why}")),
                        QuotaFull::Defer => Status::resource_exhausted(format!("4.2.2 mailbox full: {why}")),
                    });
                }
                Err(other) => return Err(other.into()),
            }
        }
        let uids: Vec<u32> = reply.placements.iter().map(|p| p.uid).collect();
        tracing::Span::current().record("uid", tracing::field::debug(&uids));
        match refusal {
            Some(status) => Err(status),
            None => Ok(reply),
        }
    }
}
