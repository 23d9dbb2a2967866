//! The gRPC edge: `Directory` and `Mailbox` requests become calls on the store, and the store's rows
//! become protobuf replies. Nothing else in this crate sees a generated type.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use mailbus_address::EmailAddress;
use mailbus_proto::v1::{self as pb, MailboxEventKind, deliver_request};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sqlx::PgPool;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::directory::{self, Resolution};
use crate::error::MailboxError;
use crate::events::Events;
use crate::maildrop;
use crate::password::{Hasher, Password};

/// Message bodies go out in chunks of this size.
const CHUNK: usize = 64 * 1024;

/// What a delivery into a full mailbox gets: Dovecot's `quota_full_tempfail` as a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuotaFull {
    /// 5.2.2: the sender gets a bounce now (Dovecot's default).
    #[default]
    Bounce,
    /// 4.2.2: the relay keeps trying until the message expires, in case the owner makes room.
    Defer,
}

#[derive(Clone)]
pub struct MailboxService {
    pub pool: PgPool,
    pub hasher: Hasher,
    pub events: Events,
    pub max_message_size: u64,
    pub quota_full: QuotaFull,
    pub deliveries: Family<Vec<(String, String)>, Counter>,
}

fn invalid(what: impl std::fmt::Display) -> Status {
    Status::invalid_argument(what.to_string())
}

#[tonic::async_trait]
impl pb::directory_server::Directory for MailboxService {
    async fn resolve_recipient(
        &self,
        request: Request<pb::ResolveRecipientRequest>,
    ) -> Result<Response<pb::ResolveRecipientResponse>, Status> {
        let address: EmailAddress = request.into_inner().address.parse().map_err(invalid)?;
        let reply = match directory::resolve(&self.pool, &address).await? {
            Resolution::Local(account_ids) => {
                pb::ResolveRecipientResponse { kind: pb::RecipientKind::Local.into(), account_ids }
            }
            Resolution::UnknownUser => {
                pb::ResolveRecipientResponse { kind: pb::RecipientKind::UnknownUser.into(), ..Default::default() }
            }
            Resolution::NotLocal => {
                pb::ResolveRecipientResponse { kind: pb::RecipientKind::NotLocal.into(), ..Default::default() }
            }
        };
        Ok(Response::new(reply))
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let request = request.into_inner();
        let account =
            directory::authenticate(&self.pool, &self.hasher, &request.username, Password::new(request.password))
                .await?;
        Ok(Response::new(match account {
            Some((account_id, account_address)) => pb::AuthenticateResponse { ok: true, account_id, account_address },
            None => pb::AuthenticateResponse::default(),
        }))
    }

    async fn check_sender(
        &self,
        request: Request<pb::CheckSenderRequest>,
    ) -> Result<Response<pb::CheckSenderResponse>, Status> {
        let request = request.into_inner();
        let address: EmailAddress = request.address.parse().map_err(invalid)?;
        let allowed = directory::sender_allowed(&self.pool, request.account_id, &address).await?;
        Ok(Response::new(pb::CheckSenderResponse { allowed }))
    }

    async fn add_domain(&self, request: Request<pb::AddDomainRequest>) -> Result<Response<pb::Domain>, Status> {
        let row = directory::add_domain(&self.pool, &request.into_inner().name).await?;
        Ok(Response::new(pb::Domain { name: row.name, created_unix: row.created_unix }))
    }

    async fn list_domains(
        &self,
        _request: Request<pb::ListDomainsRequest>,
    ) -> Result<Response<pb::ListDomainsResponse>, Status> {
        let domains = directory::list_domains(&self.pool).await?;
        Ok(Response::new(pb::ListDomainsResponse {
            domains: domains.into_iter().map(|d| pb::Domain { name: d.name, created_unix: d.created_unix }).collect(),
        }))
    }

    async fn add_account(&self, request: Request<pb::AddAccountRequest>) -> Result<Response<pb::Account>, Status> {
        let request = request.into_inner();
        if request.password.is_empty() {
            return Err(invalid("password must not be empty"));
        }
        let row =
            directory::add_account(&self.pool, &self.hasher, &request.address, Password::new(request.password)).await?;
        Ok(Response::new(account_to_pb(row)))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let domain = request.into_inner().domain;
        let rows = directory::list_accounts(&self.pool, Some(domain.as_str()).filter(|d| !d.is_empty())).await?;
        Ok(Response::new(pb::ListAccountsResponse { accounts: rows.into_iter().map(account_to_pb).collect() }))
    }

    async fn update_account(
        &self,
        request: Request<pb::UpdateAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let request = request.into_inner();
        if request.password.as_deref() == Some("") {
            return Err(invalid("password must not be empty"));
        }
        let limit = |value: Option<u64>| value.map(|v| (v > 0).then_some(v.min(i64::MAX as u64) as i64));
        let change = directory::AccountChange {
            password: request.password.map(Password::new),
            disabled: request.disabled,
            quota_bytes: limit(request.quota_bytes),
            quota_messages: limit(request.quota_messages),
        };
        let row = directory::update_account(&self.pool, &self.hasher, &request.address, change).await?;
        Ok(Response::new(account_to_pb(row)))
    }

    async fn remove_account(
        &self,
        request: Request<pb::RemoveAccountRequest>,
    ) -> Result<Response<pb::RemoveAccountResponse>, Status> {
        directory::remove_account(&self.pool, &request.into_inner().address).await?;
        Ok(Response::new(pb::RemoveAccountResponse {}))
    }

    async fn add_alias(&self, request: Request<pb::AddAliasRequest>) -> Result<Response<pb::Alias>, Status> {
        let request = request.into_inner();
        let row = directory::add_alias(&self.pool, &request.address, &request.targets).await?;
        Ok(Response::new(pb::Alias { address: row.address, targets: row.targets }))
    }

    async fn remove_alias(
        &self,
        request: Request<pb::RemoveAliasRequest>,
    ) -> Result<Response<pb::RemoveAliasResponse>, Status> {
        let request = request.into_inner();
        directory::remove_alias(&self.pool, &request.address, &request.targets).await?;
        Ok(Response::new(pb::RemoveAliasResponse {}))
    }

    async fn list_aliases(
        &self,
        request: Request<pb::ListAliasesRequest>,
    ) -> Result<Response<pb::ListAliasesResponse>, Status> {
        let domain = request.into_inner().domain;
        let rows = directory::list_aliases(&self.pool, Some(domain.as_str()).filter(|d| !d.is_empty())).await?;
        Ok(Response::new(pb::ListAliasesResponse {
            aliases: rows.into_iter().map(|a| pb::Alias { address: a.address, targets: a.targets }).collect(),
        }))
    }
}

fn account_to_pb(row: directory::AccountRow) -> pb::Account {
    pb::Account {
        id: row.id,
        address: row.address,
        disabled: row.disabled,
        created_unix: row.created_unix,
        message_count: row.message_count as u64,
        storage_bytes: row.storage_bytes as u64,
        quota_bytes: row.quota_bytes.map(|q| q as u64),
        quota_messages: row.quota_messages.map(|q| q as u64),
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::MessageChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::mailbox_server::Mailbox for MailboxService {
    async fn deliver(
        &self,
        request: Request<Streaming<pb::DeliverRequest>>,
    ) -> Result<Response<pb::DeliverResponse>, Status> {
        let mut stream = request.into_inner();
        let header = match stream.next().await {
            Some(Ok(pb::DeliverRequest { part: Some(deliver_request::Part::Header(header)) })) => header,
            Some(Err(status)) => return Err(status),
            _ => return Err(invalid("the first Deliver message must be the header")),
        };
        let span = tracing::info_span!("mailbox.deliver", queue_id = %header.queue_id, uid = tracing::field::Empty);
        let outcome = self.deliver_one(header, stream).instrument(span.clone()).await;
        let label = match &outcome {
            Ok(reply) if reply.duplicate => "duplicate",
            Ok(_) => "delivered",
            Err(status) if status.message().starts_with("4.2.2") || status.message().starts_with("5.2.2") => {
                "over_quota"
            }
            Err(status) if status.code() == tonic::Code::Unavailable => "temporary_failure",
            Err(_) => "rejected",
        };
        self.deliveries.get_or_create(&vec![("outcome".into(), label.into())]).inc();
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
        let request = request.into_inner();
        let gone = maildrop::expunge(&self.pool, request.account_id, &request.mailbox, &request.uids).await?;
        if !gone.uids.is_empty() {
            self.events.publish(
                request.account_id,
                &request.mailbox,
                MailboxEventKind::Expunged,
                gone.uids.clone(),
                gone.modseq,
                gone.uidvalidity,
            );
        }
        Ok(Response::new(pb::ExpungeResponse { expunged: gone.uids, highest_modseq: gone.modseq as u64 }))
    }

    async fn r#move(&self, request: Request<pb::MoveRequest>) -> Result<Response<pb::MoveResponse>, Status> {
        let request = request.into_inner();
        let moved = maildrop::move_messages(
            &self.pool,
            request.account_id,
            &request.from_mailbox,
            &request.to_mailbox,
            &request.uids,
        )
        .await?;
        if !moved.target_uids.is_empty() {
            let account = request.account_id;
            let source = &moved.source;
            self.events.publish(
                account,
                &request.from_mailbox,
                MailboxEventKind::Expunged,
                source.uids.clone(),
                source.modseq,
                source.uidvalidity,
            );
            self.events.publish(
                account,
                &request.to_mailbox,
                MailboxEventKind::Appended,
                moved.target_uids.clone(),
                moved.target_modseq,
                moved.target_uidvalidity,
            );
        }
        Ok(Response::new(pb::MoveResponse {
            source_uids: moved.source.uids,
            target_uidvalidity: moved.target_uidvalidity,
            target_uids: moved.target_uids,
        }))
    }
}

impl MailboxService {
    async fn deliver_one(
        &self,
        header: pb::DeliveryHeader,
        mut stream: Streaming<pb::DeliverRequest>,
    ) -> Result<pb::DeliverResponse, Status> {
        if header.size > self.max_message_size {
            return Err(Status::invalid_argument(format!("message of {} octets exceeds the limit", header.size)));
        }
        let recipient: EmailAddress = header.recipient.parse().map_err(invalid)?;
        let accounts = match directory::resolve(&self.pool, &recipient).await? {
            Resolution::Local(accounts) => accounts,
            _ => return Err(MailboxError::NotFound(format!("no mailbox for {recipient}")).into()),
        };
        let mut content = Vec::with_capacity(header.size as usize);
        while let Some(part) = stream.next().await {
            match part?.part {
                Some(deliver_request::Part::Chunk(chunk)) => content.extend_from_slice(&chunk),
                _ => return Err(invalid("only body chunks may follow the header")),
            }
            if content.len() as u64 > header.size {
                return Err(invalid("body is longer than the header's size"));
            }
        }
        if content.len() as u64 != header.size {
            return Err(invalid(format!("body has {} octets, the header said {}", content.len(), header.size)));
        }
        // An alias may lead to several accounts: each gets its own copy in its own transaction, and a
        // repeated call skips the accounts that already have theirs, so a refusal for one (a full mailbox)
        // neither blocks nor duplicates the others.
        let mut reply = pb::DeliverResponse { placements: Vec::new(), duplicate: true };
        let mut refusal = None;
        for account_id in accounts {
            let key = recipient.lookup_key();
            match maildrop::deliver(&self.pool, account_id, &header.queue_id, &key, &content).await {
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
