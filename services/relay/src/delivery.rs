//! Delivering one envelope's pending recipients: each is asked about at the directory; local ones go to
//! the mailbox role (`Mailbox.Deliver`), remote ones are grouped by domain and sent over SMTP. Results are
//! data, one [`Outcome`] per recipient, so the worker decides about acks, retries and DSNs in one place.

use std::collections::BTreeMap;
use std::sync::Arc;

use mailbus_grpc::TracedChannel;
use mailbus_grpc::recipients::RecipientCache;
use mailbus_jetstream::{Envelope, Queue, QueueError};
use mailbus_proto::v1::{
    self as pb, DsnRet, RecipientKind, RecipientStatus, directory_client::DirectoryClient,
    mailbox_client::MailboxClient,
};
use mailbus_telemetry::metrics::latency_histogram;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tonic::Code;
use tracing::Instrument;

use crate::forwarding;
use crate::keys::KeyCache;
use crate::remote::{Outgoing, Remote, RemoteRecipient};
use crate::signing::{self, DomainKeys, Sealer};

/// How one recipient ended this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored in the local mailbox of each account the address leads to, with the UIDs there.
    Delivered { uids: Vec<u32>, duplicate: bool },
    /// Accepted by the next hop; `dsn_passed_on` when that hop speaks DSN and so takes over the
    /// sender's NOTIFY=SUCCESS request (RFC 3461 §6.2).
    Relayed { dsn_passed_on: bool },
    /// Try again later; the reason starts with its RFC 3463 code.
    TemporaryFailure(String),
    /// Never going to work; the sender hears about it.
    PermanentFailure(String),
}

impl Outcome {
    pub fn is_final(&self) -> bool {
        !matches!(self, Outcome::TemporaryFailure(_))
    }

    /// Stored or passed on: nothing failed.
    pub fn is_final_success(&self) -> bool {
        matches!(self, Outcome::Delivered { .. } | Outcome::Relayed { .. })
    }
}

/// Where a recipient's attempt went: the metrics' destination class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// A hosted domain: the mailbox role (an unknown user there included).
    Local,
    /// Another domain's server, over SMTP.
    Remote,
    /// The directory could not say.
    Unresolved,
}

impl Destination {
    pub fn label(self) -> &'static str {
        match self {
            Destination::Local => "local",
            Destination::Remote => "remote",
            Destination::Unresolved => "unresolved",
        }
    }
}

/// Where one recipient goes this attempt.
enum Route {
    /// Settled without leaving: stored here, forwarded, or failed.
    Here(Destination, Outcome),
    /// To another domain's server, at this address: the recipient's own, or the one our SRS address
    /// stands for.
    Remote(String),
}

impl Route {
    fn unresolved(status: &tonic::Status) -> Route {
        let reason = format!("4.3.0 directory unavailable: {}", status.message());
        Route::Here(Destination::Unresolved, Outcome::TemporaryFailure(reason))
    }

    fn unknown(address: &str) -> Route {
        Route::Here(Destination::Local, Outcome::PermanentFailure(format!("5.1.1 <{address}>: no such user here")))
    }
}

/// One recipient's attempt: its index in `envelope.recipients`, where it went, and how it ended.
pub type Attempt = (usize, Destination, Outcome);

pub struct Deliverer {
    /// Seconds per attempt, by destination class: one Deliver call, or one SMTP transaction per domain.
    durations: Family<Vec<(String, String)>, Histogram>,
    queue: Queue,
    directory: DirectoryClient<TracedChannel>,
    /// The mailbox role's answers about recipients, kept so that a delivery seldom waits for a call.
    recipients: Arc<RecipientCache>,
    mailbox: MailboxClient<TracedChannel>,
    remote: Remote,
    keys: KeyCache,
    srs: Option<mailbus_srs::Srs>,
    sealer: Sealer,
}

impl Deliverer {
    pub fn new(
        queue: Queue,
        channel: TracedChannel,
        (remote, recipients): (Remote, Arc<RecipientCache>),
        keys: KeyCache,
        (srs, sealer): (Option<mailbus_srs::Srs>, Sealer),
        registry: &mut Registry,
    ) -> Self {
        let durations = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "delivery_duration",
            "Delivery attempts, by destination class: a local Deliver call or a remote SMTP transaction",
            Unit::Seconds,
            durations.clone(),
        );
        Deliverer {
            durations,
            queue,
            directory: DirectoryClient::new(channel.clone()),
            recipients,
            mailbox: MailboxClient::new(channel),
            remote,
            keys,
            srs,
            sealer,
        }
    }

    /// Delivers every pending recipient of `envelope`, one [`Attempt`] each. An error means the body could
    /// not be read; recipient failures are outcomes, not errors.
    pub async fn deliver(&self, envelope: &Envelope) -> Result<Vec<Attempt>, QueueError> {
        let body = self.queue.body_of(envelope).await?;
        let mut outcomes = Vec::new();
        let mut remote: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        // Bounces to our SRS addresses go on to the address each stands for.
        let mut passed_back: BTreeMap<usize, String> = BTreeMap::new();
        for (index, recipient) in envelope.recipients.iter().enumerate() {
            if recipient.status() != RecipientStatus::Pending {
                continue;
            }
            let route = match self.route(envelope, &recipient.address, &body).await {
                Route::Here(destination, outcome) => {
                    outcomes.push((index, destination, outcome));
                    continue;
                }
                Route::Remote(route) => route,
            };
            let domain = route.rsplit_once('@').map_or("", |(_, d)| d).to_lowercase();
            remote.entry(domain).or_default().push(index);
            if route != recipient.address {
                passed_back.insert(index, route);
            }
        }
        if remote.is_empty() {
            return Ok(outcomes);
        }
        let dkim = match self.dkim_keys(envelope, &body).await {
            Ok(dkim) => dkim,
            Err(status) => {
                // Sent unsigned, the message would land in spam or be refused under DMARC: wait instead.
                let reason = format!("4.3.0 DKIM keys unavailable: {}", status.message());
                let failed = remote.into_values().flatten();
                outcomes.extend(
                    failed.map(|index| (index, Destination::Remote, Outcome::TemporaryFailure(reason.clone()))),
                );
                return Ok(outcomes);
            }
        };
        let arc = match self.arc_keys(envelope).await {
            Ok(arc) => arc,
            Err(status) => {
                // Forwarded unsealed, the copy of a p=reject domain's mail may be refused: wait instead.
                let reason = format!("4.3.0 ARC keys unavailable: {}", status.message());
                let failed = remote.into_values().flatten();
                outcomes.extend(
                    failed.map(|index| (index, Destination::Remote, Outcome::TemporaryFailure(reason.clone()))),
                );
                return Ok(outcomes);
            }
        };
        for (domain, indexes) in remote {
            let recipients: Vec<RemoteRecipient> = indexes
                .iter()
                .map(|&i| {
                    let r = &envelope.recipients[i];
                    let address = passed_back.get(&i).unwrap_or(&r.address).clone();
                    RemoteRecipient { address, notify: r.notify, orcpt: r.orcpt.clone() }
                })
                .collect();
            let message = Outgoing {
                from: &envelope.mail_from,
                recipients: &recipients,
                body: &body,
                smtputf8: envelope.smtputf8,
                envid: &envelope.dsn_envid,
                ret: match envelope.dsn_ret() {
                    DsnRet::Full => Some("FULL"),
                    DsnRet::Hdrs => Some("HDRS"),
                    DsnRet::Unspecified => None,
                },
                dkim: dkim.as_deref(),
                arc: arc.as_deref().map(|keys| (keys, &self.sealer)),
            };
            let span = tracing::info_span!("relay.deliver_remote", otel.kind = "client", server.address = %domain, recipients = recipients.len());
            let started = std::time::Instant::now();
            let results = self.remote.deliver(&domain, &message).instrument(span).await;
            self.observe(Destination::Remote, started);
            outcomes
                .extend(indexes.into_iter().zip(results).map(|(index, outcome)| (index, Destination::Remote, outcome)));
        }
        Ok(outcomes)
    }

    /// The keys of the first candidate signing domain that has any (`signing::signing_domains`).
    async fn dkim_keys(
        &self,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<Option<std::sync::Arc<DomainKeys>>, tonic::Status> {
        for domain in signing::signing_domains(envelope, body) {
            let keys = self.keys.get(&domain).await?;
            if !keys.is_empty() {
                return Ok(Some(keys));
            }
        }
        Ok(None)
    }

    /// For a copy an alias forwards: the alias domain's keys, to ARC-seal it with (none when the domain
    /// has none). Not a DKIM signature of the alias domain: the message's From is someone else's, so it
    /// would not align for DMARC; the author's signature survives forwarding, and the seal is what
    /// vouches for our part, as Postfix with OpenARC and Stalwart do.
    async fn arc_keys(&self, envelope: &Envelope) -> Result<Option<std::sync::Arc<DomainKeys>>, tonic::Status> {
        let Some((_, domain)) = envelope.forwarded_for.rsplit_once('@') else { return Ok(None) };
        let keys = self.keys.get(&domain.to_lowercase()).await?;
        Ok((!keys.is_empty()).then_some(keys))
    }

    fn observe(&self, destination: Destination, started: std::time::Instant) {
        let labels = vec![("destination".to_owned(), destination.label().to_owned())];
        self.durations.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    }

    async fn resolve(&self, address: &str) -> Result<pb::ResolveRecipientResponse, tonic::Status> {
        let ask = |request| async move { Ok(self.directory.clone().resolve_recipient(request).await?.into_inner()) };
        self.recipients.resolve(address, ask).await
    }

    /// Where one pending recipient goes: settled here (stored, forwarded, or failed), or to another
    /// domain's server. A bounce to one of our SRS addresses goes where the address leads: the original
    /// sender's mailbox when that is hosted here, else its domain.
    async fn route(&self, envelope: &Envelope, address: &str, body: &[u8]) -> Route {
        let found = match self.resolve(address).await {
            Ok(found) => found,
            Err(status) => return Route::unresolved(&status),
        };
        let route = self.route_found(envelope, address, &found, body).await;
        // The answer may have been a kept one gone stale (an announcement of a directory change was
        // missed, so the cache kept it for up to its TTL): when acting on it did not settle the recipient
        // here, ask afresh, and if the directory now says something else, route by that.
        if let Route::Here(Destination::Local, outcome) = &route
            && !outcome.is_final_success()
        {
            self.recipients.forget(address);
            if let Ok(fresh) = self.resolve(address).await
                && fresh != found
            {
                tracing::info!(recipient = %address, "the directory's answer changed since it was kept; routing again");
                return self.route_found(envelope, address, &fresh, body).await;
            }
        }
        route
    }

    /// [`Self::route`] by the directory's answer `found` about `address`.
    async fn route_found(
        &self,
        envelope: &Envelope,
        address: &str,
        found: &pb::ResolveRecipientResponse,
        body: &[u8],
    ) -> Route {
        match found.kind() {
            RecipientKind::Local => {
                Route::Here(Destination::Local, self.timed_here(envelope, address, found, body).await)
            }
            RecipientKind::NotLocal => Route::Remote(address.to_owned()),
            _ => {
                let original = match self.srs_reverse(address) {
                    Ok(Some(original)) => original,
                    Ok(None) => return Route::unknown(address),
                    Err(failure) => return Route::Here(Destination::Local, failure),
                };
                let found = match self.resolve(&original).await {
                    Ok(found) => found,
                    Err(status) => return Route::unresolved(&status),
                };
                match found.kind() {
                    RecipientKind::Local => {
                        Route::Here(Destination::Local, self.timed_here(envelope, &original, &found, body).await)
                    }
                    RecipientKind::NotLocal => Route::Remote(original),
                    _ => Route::unknown(&original),
                }
            }
        }
    }

    async fn timed_here(
        &self,
        envelope: &Envelope,
        address: &str,
        found: &pb::ResolveRecipientResponse,
        body: &[u8],
    ) -> Outcome {
        let started = std::time::Instant::now();
        let outcome = self.deliver_here(envelope, address, found, body).await;
        self.observe(Destination::Local, started);
        outcome
    }

    /// Where a recipient that is no account or alias of ours goes if it is one of our SRS addresses: the
    /// address it stands for; an SRS address we did not sign, or one too old, fails (smtp-ingress refused
    /// these already; one queued by other means is held to the same rule).
    fn srs_reverse(&self, address: &str) -> Result<Option<String>, Outcome> {
        let Some(srs) = &self.srs else { return Ok(None) };
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        srs.reverse(address, now).map_err(|error| match error {
            mailbus_srs::SrsError::Expired => Outcome::PermanentFailure(format!("5.1.1 <{address}>: {error}")),
            _ => Outcome::PermanentFailure(format!("5.7.1 <{address}>: {error}")),
        })
    }

    /// A recipient of a hosted domain: stored for its accounts, then forwarded to its alias's addresses in
    /// other domains. The forward is queued only once the local part is final, and the recipient is final
    /// once the forward is queued, so no attempt repeats a forward that was queued (but for a lost ack,
    /// which the queue's deduplication covers, as for DSNs).
    async fn deliver_here(
        &self,
        envelope: &Envelope,
        recipient: &str,
        found: &pb::ResolveRecipientResponse,
        body: &[u8],
    ) -> Outcome {
        if !found.forwards.is_empty()
            && let Some(reason) = forwarding::loop_reason(body, recipient)
        {
            return Outcome::PermanentFailure(reason);
        }
        let local = if found.account_ids.is_empty() {
            None
        } else {
            let outcome = self.deliver_local(envelope, recipient, body).await;
            if !outcome.is_final() {
                return outcome;
            }
            Some(outcome)
        };
        if !found.forwards.is_empty() {
            let now = chrono::Utc::now();
            // SRS: the next hop's SPF checks our domain, and a bounce comes back to us. A null sender
            // stays null, and without a secret the sender stays as it was.
            let alias_domain = recipient.rsplit_once('@').map_or("", |(_, d)| d);
            let sender = match &self.srs {
                Some(srs) if !envelope.mail_from.is_empty() => {
                    srs.forward(&envelope.mail_from, alias_domain, now.timestamp().max(0) as u64)
                }
                _ => envelope.mail_from.clone(),
            };
            let (copy, octets) = forwarding::copy(envelope, recipient, &found.forwards, sender, body, now);
            if let Err(error) = self.queue.enqueue(&copy, &octets, &copy.queue_id).await {
                return Outcome::TemporaryFailure(format!("4.3.0 forwarded copy not queued: {error}"));
            }
            tracing::info!(alias = %recipient, forward = %copy.queue_id, targets = copy.recipients.len(), "forwarded");
        }
        // Forwarded only: the next hops take over, as for a relayed recipient (RFC 3461 §6.2).
        local.unwrap_or(Outcome::Relayed { dsn_passed_on: false })
    }

    async fn deliver_local(&self, envelope: &Envelope, recipient: &str, body: &[u8]) -> Outcome {
        let span = tracing::info_span!(
            "relay.deliver_local",
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = "mailbus.v1.Mailbox",
            rpc.method = "Deliver",
            queue_id = %envelope.queue_id,
        );
        let header = pb::DeliveryHeader {
            queue_id: envelope.queue_id.clone(),
            recipient: recipient.to_owned(),
            mail_from: envelope.mail_from.clone(),
            size: body.len() as u64,
        };
        let parts = mailbus_proto::upload::deliver(header, body);
        let reply = match self.mailbox.clone().deliver(futures::stream::iter(parts)).instrument(span).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => return classify(&status),
        };
        // What the recipient's Sieve script asked for beyond storing is queued before this recipient counts
        // as delivered (and so before the original is acked). The mailbox role keeps the follow-ups until
        // told they are queued: a crash before that finds them again in the repeated Deliver's reply, and
        // their ids, derived from (queue id, recipient, follow-up), make the queue store each once.
        for follow_up in &reply.follow_ups {
            if let Err(error) = self.enqueue_follow_up(envelope, recipient, follow_up, body).await {
                tracing::warn!(%error, recipient, follow_up = %follow_up.id, "Sieve follow-up not queued; will retry");
                return Outcome::TemporaryFailure(format!("4.3.0 queueing a Sieve follow-up failed: {error}"));
            }
        }
        if !reply.follow_ups.is_empty() {
            let done =
                pb::FollowUpsQueuedRequest { queue_id: envelope.queue_id.clone(), recipient: recipient.to_owned() };
            // Left behind, they would come back only on a repeated Deliver within the queue's dedupe
            // window (so they would still be stored once); the mailbox role prunes them later.
            if let Err(status) = self.mailbox.clone().follow_ups_queued(done).await {
                tracing::warn!(error = %status.message(), recipient, "Sieve follow-ups queued but not confirmed");
            }
        }
        if !reply.rejection.is_empty() {
            // The script's reject (RFC 5429): the sender hears about it through the DSN path.
            return Outcome::PermanentFailure(reply.rejection);
        }
        Outcome::Delivered { uids: reply.placements.iter().map(|p| p.uid).collect(), duplicate: reply.duplicate }
    }

    /// Queues one follow-up of a local delivery: a redirect (its header fields before the original) or a
    /// vacation reply (whole), as a new message of its own.
    async fn enqueue_follow_up(
        &self,
        envelope: &Envelope,
        recipient: &str,
        follow_up: &pb::FollowUp,
        body: &[u8],
    ) -> Result<(), QueueError> {
        let content = match follow_up.kind() {
            pb::FollowUpKind::Redirect => [follow_up.content.as_slice(), body].concat(),
            _ => follow_up.content.clone(),
        };
        let queue_id = follow_up_queue_id(&envelope.queue_id, recipient, &follow_up.id);
        let new = Envelope {
            queue_id: queue_id.clone(),
            mail_from: follow_up.mail_from.clone(),
            recipients: vec![pb::EnvelopeRecipient { address: follow_up.recipient.clone(), ..Default::default() }],
            size: content.len() as u64,
            arrival_unix_ms: chrono::Utc::now().timestamp_millis(),
            smtputf8: envelope.smtputf8,
            // A vacation reply is ours: UTF-8 text sent as 8bit; a redirect is the original's octets.
            body_type: match follow_up.kind() {
                pb::FollowUpKind::Redirect => envelope.body_type,
                _ => pb::BodyType::EightBitMime.into(),
            },
            // A redirect is the original's, who sent it included (as an alias's forwarded copy is): so it
            // is not taken for mail we wrote and DKIM-signed in the name of whatever its From says.
            client: match follow_up.kind() {
                pb::FollowUpKind::Redirect => envelope.client.clone(),
                _ => None,
            },
            ..Default::default()
        };
        self.queue.enqueue(&new, &content, &queue_id).await?;
        let (kind, to) = (follow_up.kind(), &follow_up.recipient);
        tracing::info!(queue_id = %envelope.queue_id, recipient, follow_up = %queue_id, ?kind, %to, "Sieve follow-up queued");
        Ok(())
    }
}

/// The queue id (and dedupe id) of a follow-up: the same for the same (queue id, recipient, follow-up) on
/// every attempt, so a repeated attempt queues it once.
fn follow_up_queue_id(queue_id: &str, recipient: &str, follow_up: &str) -> String {
    let name = format!("{queue_id}.sieve.{}.{follow_up}", recipient.to_lowercase());
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).simple().to_string()
}

/// Which gRPC failures are worth retrying, with the RFC 3463 code a DSN will carry: the one the mailbox
/// role's refusal names (a full mailbox is 4.2.2 or 5.2.2), else one for the gRPC code.
fn classify(status: &tonic::Status) -> Outcome {
    let message = status.message();
    let named = mailbus_proto::refusal::of(status).map(|refusal| refusal.enhanced_code).unwrap_or_default();
    let coded = |class: char, default: &str| {
        let code = if is_enhanced_code(&named, class) { named.as_str() } else { default };
        format!("{code} {message}")
    };
    match status.code() {
        Code::NotFound => Outcome::PermanentFailure(coded('5', "5.1.1")),
        Code::InvalidArgument => Outcome::PermanentFailure(coded('5', "5.6.0")),
        Code::FailedPrecondition | Code::PermissionDenied => Outcome::PermanentFailure(coded('5', "5.2.0")),
        Code::ResourceExhausted => Outcome::TemporaryFailure(coded('4', "4.2.2")),
        _ => Outcome::TemporaryFailure(format!("4.3.0 mailbox service: {message}")),
    }
}

/// RFC 3463: class.subject.detail, with the class given.
fn is_enhanced_code(code: &str, class: char) -> bool {
    let mut parts = code.split('.');
    parts.next().is_some_and(|c| c.len() == 1 && c.starts_with(class))
        && parts.clone().count() == 2
        && parts.all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_up_ids_are_stable_queue_ids_distinct_per_follow_up() {
        let a = follow_up_queue_id("0190aa", "Bob@example.org", "7.0");
        assert_eq!(a, follow_up_queue_id("0190aa", "bob@example.org", "7.0"), "stable, whatever the case");
        assert_ne!(a, follow_up_queue_id("0190aa", "bob@example.org", "7.1"));
        assert_ne!(a, follow_up_queue_id("0190ab", "bob@example.org", "7.0"));
        assert!(a.parse::<mailbus_address::QueueId>().is_ok(), "{a}");
    }

    #[test]
    fn grpc_failures_are_classified() {
        assert!(matches!(classify(&tonic::Status::unavailable("db down")), Outcome::TemporaryFailure(_)));
        assert!(matches!(classify(&tonic::Status::deadline_exceeded("slow")), Outcome::TemporaryFailure(_)));
        assert_eq!(
            classify(&tonic::Status::not_found("no mailbox")),
            Outcome::PermanentFailure("5.1.1 no mailbox".into())
        );
        // The code comes from the typed refusal, never from the text.
        let refused =
            |code, reason, enhanced| mailbus_proto::refusal::status(code, "mailbox full: storage", reason, enhanced);
        use mailbus_proto::v1::Reason;
        assert_eq!(
            classify(&refused(Code::FailedPrecondition, Reason::OverQuotaPermanent, "5.2.2")),
            Outcome::PermanentFailure("5.2.2 mailbox full: storage".into())
        );
        assert_eq!(
            classify(&refused(Code::ResourceExhausted, Reason::OverQuotaTemporary, "4.2.2")),
            Outcome::TemporaryFailure("4.2.2 mailbox full: storage".into())
        );
        assert_eq!(
            classify(&tonic::Status::failed_precondition("5.7.1 looks like a code")),
            Outcome::PermanentFailure("5.2.0 5.7.1 looks like a code".into())
        );
        // A named code of the wrong class is not used.
        assert_eq!(
            classify(&refused(Code::FailedPrecondition, Reason::OverQuotaTemporary, "4.2.2")),
            Outcome::PermanentFailure("5.2.0 mailbox full: storage".into())
        );
        assert!(!Outcome::TemporaryFailure(String::new()).is_final());
        assert!(Outcome::PermanentFailure(String::new()).is_final());
    }
}
