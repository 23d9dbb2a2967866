//! `Mailbox` over gRPC: requests become calls on the store (`store::mailboxes`, `mailbox_state`,
//! `messages`, `fetch`, `search`, `quota`), each change is followed by its event on NATS, and message octets
//! leave in chunks.

use std::pin::Pin;

use futures::Stream;
use mailbus_address::{AccountId, Uid};
use mailbus_proto::v1::{self as pb, MailboxEventKind};
use tonic::{Request, Response, Status, Streaming};

use crate::error::{MailboxError, invalid};
use crate::rpc::fetch_stream::{CHUNK, FetchStream};
use crate::rpc::upload::{parse, read_uploads};
use crate::rpc::{MailboxService, mailbox_name, uids, uids_to_pb};
use crate::store::mailbox_state::{self, EntryState, Status as MailboxStatus};
use crate::store::mailboxes::{self, ListQuery, Listed, RenameOutcome};
use crate::store::messages::{self, Copied, Expunged, StoreMode};
use crate::store::{fetch, quota, search};

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::MessageChunk, Status>> + Send>>;

fn status_to_pb(s: MailboxStatus) -> pb::MailboxStatus {
    pb::MailboxStatus {
        messages: s.messages,
        uidnext: s.uidnext,
        uidvalidity: s.uidvalidity,
        unseen: s.unseen,
        deleted: s.deleted,
        size: s.size,
        highest_modseq: s.highest_modseq,
        mailbox_id: s.mailbox_id,
        recent: s.recent,
    }
}

fn entry_to_pb(e: EntryState) -> pb::EntryState {
    pb::EntryState { uid: e.uid.get(), flags: e.flags, modseq: e.modseq }
}

fn listed_to_pb(l: Listed) -> pb::MailboxListing {
    pb::MailboxListing {
        name: l.name,
        exists: l.exists,
        subscribed: l.subscribed,
        has_children: l.has_children,
        special_use: l.special_use.unwrap_or_default(),
        status: l.status.map(status_to_pb),
        child_subscribed: l.child_subscribed,
    }
}

fn store_mode(mode: pb::StoreMode) -> Result<StoreMode, Status> {
    match mode {
        pb::StoreMode::Replace => Ok(StoreMode::Replace),
        pb::StoreMode::Add => Ok(StoreMode::Add),
        pb::StoreMode::Remove => Ok(StoreMode::Remove),
        pb::StoreMode::Unspecified => Err(invalid("store mode missing")),
    }
}

/// FetchMessage's UID. 0 names no message: it gets what a missing one gets.
fn one_uid(uid: u32, mailbox: &str) -> Result<Uid, MailboxError> {
    Uid::new(uid).ok_or_else(|| MailboxError::NotFound(format!("message {uid} not found in {mailbox:?}")))
}

#[tonic::async_trait]
impl pb::mailbox_server::Mailbox for MailboxService {
    async fn deliver(
        &self,
        request: Request<Streaming<pb::DeliverRequest>>,
    ) -> Result<Response<pb::DeliverResponse>, Status> {
        self.deliver_measured(request.into_inner()).await.map(Response::new)
    }

    async fn follow_ups_queued(
        &self,
        request: Request<pb::FollowUpsQueuedRequest>,
    ) -> Result<Response<pb::FollowUpsQueuedResponse>, Status> {
        self.follow_ups_queued(request.into_inner()).await?;
        Ok(Response::new(pb::FollowUpsQueuedResponse {}))
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let r = request.into_inner();
        let listing = fetch::list(&self.pool, r.account_id.into(), &mailbox_name(&r.mailbox)?).await?;
        Ok(Response::new(pb::ListMessagesResponse {
            uidvalidity: listing.uidvalidity,
            uidnext: listing.uidnext,
            messages: listing
                .messages
                .into_iter()
                .map(|m| pb::MessageSummary {
                    uid: m.uid.get(),
                    size: m.size,
                    internal_date_unix: m.internal_date_unix,
                })
                .collect(),
        }))
    }

    type FetchMessageStream = ChunkStream;

    async fn fetch_message(
        &self,
        request: Request<pb::FetchMessageRequest>,
    ) -> Result<Response<Self::FetchMessageStream>, Status> {
        let r = request.into_inner();
        let mailbox = mailbox_name(&r.mailbox)?;
        let uid = one_uid(r.uid, mailbox.as_str())?;
        let content = fetch::content(&self.pool, r.account_id.into(), &mailbox, uid).await?;
        let chunks: Vec<Result<pb::MessageChunk, Status>> =
            content.chunks(CHUNK).map(|c| Ok(pb::MessageChunk { data: c.to_vec() })).collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn expunge(&self, request: Request<pb::ExpungeRequest>) -> Result<Response<pb::ExpungeResponse>, Status> {
        let r = request.into_inner();
        let account = AccountId::from(r.account_id);
        let mailbox = mailbox_name(&r.mailbox)?;
        let gone = messages::expunge(&self.pool, account, &mailbox, &uids(&r.uids), r.deleted_only).await?;
        self.publish_expunged(account, &gone);
        Ok(Response::new(pb::ExpungeResponse { expunged: uids_to_pb(&gone.uids), highest_modseq: gone.modseq as u64 }))
    }

    async fn r#move(&self, request: Request<pb::MoveRequest>) -> Result<Response<pb::MoveResponse>, Status> {
        let r = request.into_inner();
        let moved = self.copy_or_move(r.account_id, &r.from_mailbox, &r.to_mailbox, &r.uids, true).await?;
        Ok(Response::new(pb::MoveResponse {
            source_uids: uids_to_pb(&moved.source_uids),
            target_uidvalidity: moved.target_uidvalidity,
            target_uids: uids_to_pb(&moved.target_uids),
        }))
    }

    async fn create_mailbox(
        &self,
        request: Request<pb::CreateMailboxRequest>,
    ) -> Result<Response<pb::CreateMailboxResponse>, Status> {
        let r = request.into_inner();
        let (account, name) = (AccountId::from(r.account_id), mailbox_name(&r.name)?);
        let created = mailboxes::create(&self.pool, account, &name, &r.special_use).await?;
        self.events.publish_hierarchy(account, &name, MailboxEventKind::Created, None);
        Ok(Response::new(pb::CreateMailboxResponse { uidvalidity: created.uidvalidity, mailbox_id: created.id }))
    }

    async fn rename_mailbox(
        &self,
        request: Request<pb::RenameMailboxRequest>,
    ) -> Result<Response<pb::RenameMailboxResponse>, Status> {
        let r = request.into_inner();
        let account = AccountId::from(r.account_id);
        let (from, to) = (mailbox_name(&r.from)?, mailbox_name(&r.to)?);
        match mailboxes::rename(&self.pool, account, &from, &to).await? {
            RenameOutcome::InboxMoved(moved) => {
                self.events.publish_hierarchy(account, &moved.target, MailboxEventKind::Created, None);
                self.publish_copied(account, &moved);
            }
            RenameOutcome::Renamed { from, to } => {
                self.events.publish_hierarchy(account, &from, MailboxEventKind::Renamed, Some(&to));
            }
        }
        Ok(Response::new(pb::RenameMailboxResponse {}))
    }

    async fn delete_mailbox(
        &self,
        request: Request<pb::DeleteMailboxRequest>,
    ) -> Result<Response<pb::DeleteMailboxResponse>, Status> {
        let r = request.into_inner();
        let (account, name) = (AccountId::from(r.account_id), mailbox_name(&r.name)?);
        mailboxes::delete(&self.pool, account, &name).await?;
        self.events.publish_hierarchy(account, &name, MailboxEventKind::Deleted, None);
        Ok(Response::new(pb::DeleteMailboxResponse {}))
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<pb::SubscribeResponse>, Status> {
        let r = request.into_inner();
        let (account, name) = (r.account_id.into(), mailbox_name(&r.name)?);
        mailboxes::subscribe(&self.pool, account, &name, r.subscribed).await?;
        self.events.publish_subscription(account, &name, r.subscribed);
        Ok(Response::new(pb::SubscribeResponse {}))
    }

    async fn list_mailboxes(
        &self,
        request: Request<pb::ListMailboxesRequest>,
    ) -> Result<Response<pb::ListMailboxesResponse>, Status> {
        let r = request.into_inner();
        if !crate::list_pattern::within_limits(&r.reference, &r.patterns) {
            return Err(Status::invalid_argument(format!(
                "at most {} patterns of at most {} octets each, the reference included",
                crate::list_pattern::MAX_PATTERNS,
                crate::list_pattern::MAX_PATTERN_LEN
            )));
        }
        let query = ListQuery {
            reference: r.reference,
            patterns: r.patterns,
            subscribed_only: r.subscribed_only,
            special_use_only: r.special_use_only,
            with_status: r.with_status,
            lsub_parents: r.lsub_parents,
            recursive_match: r.recursive_match,
        };
        let listed = mailboxes::list(&self.pool, r.account_id.into(), &query).await?;
        Ok(Response::new(pb::ListMailboxesResponse { mailboxes: listed.into_iter().map(listed_to_pb).collect() }))
    }

    async fn status(&self, request: Request<pb::StatusRequest>) -> Result<Response<pb::MailboxStatus>, Status> {
        let r = request.into_inner();
        let status = mailbox_state::status(&self.pool, r.account_id.into(), &mailbox_name(&r.mailbox)?).await?;
        Ok(Response::new(status_to_pb(status)))
    }

    async fn select(&self, request: Request<pb::SelectRequest>) -> Result<Response<pb::SelectResponse>, Status> {
        let r = request.into_inner();
        let name = mailbox_name(&r.mailbox)?;
        let selected = mailbox_state::select(&self.pool, r.account_id.into(), &name, r.claim_recent).await?;
        Ok(Response::new(pb::SelectResponse {
            status: Some(status_to_pb(selected.status)),
            keywords: selected.keywords,
            uids: uids_to_pb(&selected.uids),
            first_unseen_uid: selected.first_unseen.map_or(0, Uid::get),
            name: name.into_string(),
            recent_from: selected.recent_from,
        }))
    }

    async fn changes(&self, request: Request<pb::ChangesRequest>) -> Result<Response<pb::ChangesResponse>, Status> {
        let r = request.into_inner();
        let name = mailbox_name(&r.mailbox)?;
        let (account, since) = (r.account_id.into(), r.since_modseq);
        let changes = mailbox_state::changes(&self.pool, account, &name, since, r.claim_recent).await?;
        Ok(Response::new(pb::ChangesResponse {
            uidvalidity: changes.uidvalidity,
            highest_modseq: changes.highest_modseq,
            changed: changes.changed.into_iter().map(entry_to_pb).collect(),
            vanished: uids_to_pb(&changes.vanished),
            recent_from: changes.recent_from,
        }))
    }

    async fn append(
        &self,
        request: Request<Streaming<pb::AppendRequest>>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        // A MULTIAPPEND's messages together are bounded as one message is, as the access role bounds them.
        let limit = self.max_message_size;
        let mut uploads: Vec<(pb::AppendHeader, _)> = read_uploads(request.into_inner(), limit, limit).await?;
        if uploads.len() > 1 {
            return self.append_all(uploads).await.map(Response::new);
        }
        let (header, content) = uploads.pop().expect("read_uploads reads at least one");
        let (account, mailbox) = (AccountId::from(header.account_id), mailbox_name(&header.mailbox)?);
        let (content, parsed) = parse(content).await?;
        let appending = messages::Appending {
            flags: &header.flags,
            internal_date_unix: header.internal_date_unix,
            import_digest: header.import_digest.as_deref(),
        };
        let placed = messages::append_with(&self.pool, account, &mailbox, appending, &content, &parsed).await?;
        if !placed.duplicate {
            let kind = MailboxEventKind::Appended;
            self.events.publish(account, &placed.mailbox, kind, &[placed.uid], placed.modseq, placed.uidvalidity);
        }
        let (uidvalidity, uid, duplicate) = (placed.uidvalidity, placed.uid.get(), placed.duplicate);
        Ok(Response::new(pb::AppendResponse { uidvalidity, uid, duplicate, last_uid: uid }))
    }

    async fn store(&self, request: Request<pb::StoreRequest>) -> Result<Response<pb::StoreResponse>, Status> {
        let r = request.into_inner();
        let mode = store_mode(r.mode())?;
        let (account, mailbox) = (AccountId::from(r.account_id), mailbox_name(&r.mailbox)?);
        let uids = uids(&r.uids);
        let stored = messages::store(&self.pool, account, &mailbox, &uids, mode, &r.flags, r.unchanged_since).await?;
        if !stored.changed.is_empty() {
            let kind = MailboxEventKind::FlagsChanged;
            self.events.publish(account, &mailbox, kind, &stored.changed, stored.modseq, stored.uidvalidity);
        }
        Ok(Response::new(pb::StoreResponse {
            updated: stored.updated.into_iter().map(entry_to_pb).collect(),
            modified: uids_to_pb(&stored.modified),
            highest_modseq: stored.modseq as u64,
            changed: !stored.changed.is_empty(),
        }))
    }

    async fn copy(&self, request: Request<pb::CopyRequest>) -> Result<Response<pb::CopyResponse>, Status> {
        let r = request.into_inner();
        let copied = self.copy_or_move(r.account_id, &r.from_mailbox, &r.to_mailbox, &r.uids, false).await?;
        Ok(Response::new(pb::CopyResponse {
            source_uids: uids_to_pb(&copied.source_uids),
            target_uidvalidity: copied.target_uidvalidity,
            target_uids: uids_to_pb(&copied.target_uids),
        }))
    }

    type FetchStream = FetchStream;

    async fn fetch(&self, request: Request<pb::FetchRequest>) -> Result<Response<Self::FetchStream>, Status> {
        self.fetch_stream(request.into_inner()).await.map(Response::new)
    }

    async fn search(&self, request: Request<pb::SearchRequest>) -> Result<Response<pb::SearchResponse>, Status> {
        let r = request.into_inner();
        let key = r.key.ok_or_else(|| invalid("search key missing"))?;
        let facts = search::Facts { threading: r.threading, sorting: r.sorting };
        let found = search::search(&self.pool, r.account_id.into(), &mailbox_name(&r.mailbox)?, &key, facts).await?;
        Ok(Response::new(pb::SearchResponse {
            uids: uids_to_pb(&found.uids),
            highest_modseq: found.highest_modseq,
            modseqs: found.modseqs,
            threading: found.threading,
            mailbox_modseq: found.mailbox_modseq,
            sorting: found.sorting,
        }))
    }

    async fn get_quota(&self, request: Request<pb::GetQuotaRequest>) -> Result<Response<pb::QuotaUsage>, Status> {
        let usage = quota::usage(&self.pool, request.into_inner().account_id.into()).await?;
        Ok(Response::new(pb::QuotaUsage {
            used_bytes: usage.used_bytes.max(0) as u64,
            used_messages: usage.used_messages.max(0) as u64,
            limit_bytes: usage.quota_bytes.map(|l| l as u64),
            limit_messages: usage.quota_messages.map(|l| l as u64),
        }))
    }
}

impl MailboxService {
    /// RFC 3502 MULTIAPPEND: the stream's messages into one mailbox, all or none, then one Appended event
    /// with every new UID, after the commit.
    async fn append_all(&self, uploads: Vec<(pb::AppendHeader, Vec<u8>)>) -> Result<pb::AppendResponse, Status> {
        let first = &uploads[0].0;
        let (account, name) = (AccountId::from(first.account_id), first.mailbox.clone());
        if uploads.iter().any(|(h, _)| h.account_id != first.account_id || h.mailbox != name) {
            return Err(invalid("every message of one append goes to the same mailbox"));
        }
        if uploads.iter().any(|(h, _)| h.import_digest.is_some()) {
            return Err(invalid("an import appends one message at a time"));
        }
        let mailbox = mailbox_name(&name)?;
        let mut parsed = Vec::with_capacity(uploads.len());
        for (header, content) in uploads {
            let (content, facts) = parse(content).await?;
            parsed.push((header, content, facts));
        }
        let appending: Vec<messages::Appended<'_>> = parsed
            .iter()
            .map(|(header, content, facts)| messages::Appended {
                content,
                parsed: facts,
                flags: &header.flags,
                internal_date_unix: header.internal_date_unix,
            })
            .collect();
        let placed = messages::append_all(&self.pool, account, &mailbox, &appending).await?;
        let (first, last) = (&placed[0], &placed[placed.len() - 1]);
        let uids: Vec<_> = placed.iter().map(|p| p.uid).collect();
        self.events.publish(account, &first.mailbox, MailboxEventKind::Appended, &uids, last.modseq, first.uidvalidity);
        Ok(pb::AppendResponse {
            uidvalidity: first.uidvalidity,
            uid: first.uid.get(),
            duplicate: false,
            last_uid: last.uid.get(),
        })
    }

    /// COPY, or with `expunge_source` MOVE, followed by the events of both mailboxes.
    async fn copy_or_move(
        &self,
        account_id: i64,
        from: &str,
        to: &str,
        given: &[u32],
        expunge_source: bool,
    ) -> Result<Copied, MailboxError> {
        let account = AccountId::from(account_id);
        let (from, to) = (mailbox_name(from)?, mailbox_name(to)?);
        let copied = messages::copy(&self.pool, account, &from, &to, &uids(given), expunge_source).await?;
        self.publish_copied(account, &copied);
        Ok(copied)
    }

    fn publish_expunged(&self, account: AccountId, gone: &Expunged) {
        if !gone.uids.is_empty() {
            let kind = MailboxEventKind::Expunged;
            self.events.publish(account, &gone.mailbox, kind, &gone.uids, gone.modseq, gone.uidvalidity);
        }
    }

    fn publish_copied(&self, account: AccountId, copied: &Copied) {
        if let Some(gone) = &copied.expunged {
            self.publish_expunged(account, gone);
        }
        if !copied.target_uids.is_empty() {
            self.events.publish(
                account,
                &copied.target,
                MailboxEventKind::Appended,
                &copied.target_uids,
                copied.target_modseq,
                copied.target_uidvalidity,
            );
        }
    }
}
