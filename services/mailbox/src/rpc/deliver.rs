//! Deliver: the relay's local delivery. The recipient is resolved to its accounts, the message parsed
//! once, and each account gets its own copy in its own transaction, followed by its event; the outcome is
//! counted and timed. Concurrent calls for one account share a transaction (`crate::group_commit`): one
//! commit for the batch, then its events, one per mailbox with the batch's UIDs in order, then each
//! caller's reply.

use std::sync::Arc;

use mailbus_address::{AccountId, EmailAddress, Uid};
use mailbus_proto::v1::{self as pb, MailboxEventKind};
use sqlx::PgPool;
use tonic::{Status, Streaming};
use tracing::Instrument;

use crate::error::{MailboxError, invalid};
use crate::events::Events;
use crate::filter::Delivery;
use crate::rpc::MailboxService;
use crate::rpc::upload::{parse, read_upload};
use crate::store;
use crate::store::delivery::{Delivered, FollowUpKind, Incoming, Job, StoredFollowUp};
use crate::store::directory::{self, Resolution};
use crate::store::messages::Placed;

impl MailboxService {
    /// Deliver with its span, its outcome counted by kind, and its duration from arrival to reply.
    pub(super) async fn deliver_measured(
        &self,
        stream: Streaming<pb::DeliverRequest>,
    ) -> Result<pb::DeliverResponse, Status> {
        let started = std::time::Instant::now();
        let (header, content) = read_upload(stream, self.max_message_size).await?;
        let span = tracing::info_span!(
            "mailbox.deliver",
            queue_id = %header.queue_id,
            uid = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let service = self.clone();
        let work = async move { service.deliver(header, content).await }.instrument(span.clone());
        let outcome =
            self.delivery_threads.run(work).await.unwrap_or_else(|| Err(Status::internal("delivery task failed")));
        let label = outcome_label(&outcome);
        span.record("outcome", label);
        self.deliveries.get_or_create(&vec![("outcome".into(), label.into())]).inc();
        self.deliver_seconds.observe(started.elapsed().as_secs_f64());
        outcome
    }

    async fn deliver(&self, header: pb::DeliveryHeader, content: Vec<u8>) -> Result<pb::DeliverResponse, Status> {
        let recipient: EmailAddress = header.recipient.parse().map_err(invalid)?;
        let accounts = match directory::resolve(&self.pool, &recipient, &self.recipient_delimiter).await? {
            // The forwards are the relay's to send on; Deliver stores for the accounts only.
            Resolution::Local { accounts, .. } if !accounts.is_empty() => accounts,
            // An alias that now only forwards (or whose accounts are disabled): the relay acted on an
            // older answer. Storing nowhere and answering success would lose the message; the relay asks
            // the directory again and routes by what it says now.
            Resolution::Local { .. } => {
                return Err(Status::aborted(format!("{recipient} leads to no account here any more")));
            }
            _ => return Err(MailboxError::NotFound(format!("no mailbox for {recipient}")).into()),
        };
        let (content, parsed) = parse(content).await?;
        let message = Arc::new(Incoming { content, parsed });
        // An alias may lead to several accounts: each gets its own copy in its own transaction, and a
        // repeated call skips the accounts that already have theirs, so a refusal for one (a full mailbox)
        // neither blocks nor duplicates the others. Each account's Sieve script decides where its copy goes.
        let mut reply = pb::DeliverResponse { duplicate: true, ..Default::default() };
        let mut refusal = None;
        let key = recipient.lookup_key();
        let delivery = Delivery {
            queue_id: &header.queue_id,
            recipient: &header.recipient,
            mail_from: &header.mail_from,
            content: &message.content,
        };
        for account in accounts {
            let plan = self.filter.plan(&self.pool, account, &delivery).await?;
            let job = Job { queue_id: header.queue_id.clone(), recipient: key.clone(), message: message.clone(), plan };
            let (pool, events) = (self.pool.clone(), self.events.clone());
            let run = move |jobs: Vec<Job>| deliver_and_publish(pool.clone(), events.clone(), account, jobs);
            let done = self.delivery_batches.submit(account, job, run).await;
            let done = done.unwrap_or_else(|| Err(MailboxError::FailedPrecondition("delivery batch failed".into())));
            match done {
                Ok(delivered) => {
                    if !delivered.duplicate {
                        reply.duplicate = false;
                    }
                    reply.placements.extend(delivered.placed.into_iter().map(|placed| placement(account, placed)));
                    reply.follow_ups.extend(delivered.follow_ups.into_iter().map(follow_up));
                    if let Some(rejection) = delivered.rejection {
                        reply.rejection = rejection;
                    }
                }
                Err(MailboxError::OverQuota(why)) => {
                    tracing::info!(account_id = account.get(), %why, "mailbox full");
                    refusal = Some(self.quota_full.refusal(&why));
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

    /// The relay queued the follow-ups of a delivery: they are forgotten.
    pub(super) async fn follow_ups_queued(&self, request: pb::FollowUpsQueuedRequest) -> Result<(), Status> {
        let recipient: EmailAddress = request.recipient.parse().map_err(invalid)?;
        store::delivery::follow_ups_queued(&self.pool, &request.queue_id, &recipient.lookup_key()).await?;
        Ok(())
    }
}

/// One batch of deliveries into `account`, then, after its commit, its events: per mailbox one Appended
/// event carrying the batch's new UIDs in order, so that a session learns of them in UID order.
async fn deliver_and_publish(
    pool: PgPool,
    events: Events,
    account: AccountId,
    jobs: Vec<Job>,
) -> Vec<Result<Delivered, MailboxError>> {
    let results = store::delivery::deliver_batch(&pool, account, &jobs).await;
    let mut appended: Vec<(&Placed, Vec<Uid>)> = Vec::new();
    let fresh = results.iter().flatten().filter(|d| !d.duplicate).flat_map(|d| d.placed.iter());
    for placed in fresh {
        match appended.iter_mut().find(|(p, _)| p.mailbox == placed.mailbox) {
            Some((last, uids)) => {
                uids.push(placed.uid);
                *last = placed;
            }
            None => appended.push((placed, vec![placed.uid])),
        }
    }
    for (last, uids) in &appended {
        events.publish(account, &last.mailbox, MailboxEventKind::Appended, uids, last.modseq, last.uidvalidity);
    }
    results
}

/// A follow-up's id names its account and its place in that account's plan: stable across calls.
fn follow_up(stored: StoredFollowUp) -> pb::FollowUp {
    let kind = match stored.follow_up.kind {
        FollowUpKind::Redirect => pb::FollowUpKind::Redirect,
        FollowUpKind::Vacation => pb::FollowUpKind::Vacation,
    };
    pb::FollowUp {
        id: format!("{}.{}", stored.account.get(), stored.seq),
        kind: kind.into(),
        mail_from: stored.follow_up.mail_from,
        recipient: stored.follow_up.rcpt_to,
        content: stored.follow_up.content,
    }
}

fn placement(account: AccountId, placed: Placed) -> pb::Placement {
    pb::Placement {
        account_id: account.get(),
        mailbox: placed.mailbox.into_string(),
        uidvalidity: placed.uidvalidity,
        uid: placed.uid.get(),
    }
}

/// The `outcome` label of `mailbus_mailbox_deliveries_total`.
fn outcome_label(outcome: &Result<pb::DeliverResponse, Status>) -> &'static str {
    match outcome {
        Ok(reply) if reply.duplicate => "duplicate",
        Ok(_) => "delivered",
        Err(status) if status.message().starts_with("4.2.2") || status.message().starts_with("5.2.2") => "over_quota",
        Err(status) if status.code() == tonic::Code::Unavailable => "temporary_failure",
        Err(_) => "rejected",
    }
}
