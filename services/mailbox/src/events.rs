//! Change events, published on NATS after each commit so that sessions on any access replica learn of
//! new mail and expunges, of mailboxes created, renamed and deleted, and of subscriptions (IMAP NOTIFY).

use mailbus_address::{AccountId, MailboxName, Uid};
use mailbus_jetstream::{MailboxEvent, Names};
use mailbus_proto::v1::MailboxEventKind;
use prost::Message as _;
use tokio::sync::mpsc;

/// The publisher: events go to one task that publishes them in the order they were given, so that a
/// session learns of UIDs in the order they were committed.
#[derive(Clone)]
pub struct Events {
    queue: mpsc::UnboundedSender<MailboxEvent>,
    client: async_nats::Client,
    names: Names,
}

impl Events {
    /// Starts the publishing task, which ends when the last `Events` is dropped.
    pub fn new(client: async_nats::Client, names: Names) -> Self {
        let (queue, events) = mpsc::unbounded_channel();
        tokio::spawn(publish_in_order(client.clone(), names.clone(), events));
        Events { queue, client, names }
    }

    /// Best effort by design: the commit is the truth and has already happened. A lost event delays a
    /// notification until the session's next command; it loses no mail. The publish runs on the
    /// publishing task so that a NATS outage never holds up the reply to the caller.
    pub fn publish(
        &self,
        account: AccountId,
        mailbox: &MailboxName,
        kind: MailboxEventKind,
        uids: &[Uid],
        modseq: i64,
        uidvalidity: u32,
    ) {
        let event = MailboxEvent {
            account_id: account.get(),
            mailbox: mailbox.to_string(),
            kind: kind.into(),
            uids: uids.iter().map(|&uid| uid.get()).collect(),
            modseq: modseq as u64,
            uidvalidity,
            renamed_to: String::new(),
        };
        self.send(event);
    }

    /// A change to the hierarchy: CREATED, DELETED, or RENAMED to `renamed_to`.
    pub fn publish_hierarchy(
        &self,
        account: AccountId,
        mailbox: &MailboxName,
        kind: MailboxEventKind,
        renamed_to: Option<&MailboxName>,
    ) {
        self.send(MailboxEvent {
            account_id: account.get(),
            mailbox: mailbox.to_string(),
            kind: kind.into(),
            renamed_to: renamed_to.map(MailboxName::to_string).unwrap_or_default(),
            ..Default::default()
        });
    }

    /// SUBSCRIBED or UNSUBSCRIBED (IMAP NOTIFY's SubscriptionChange); the name need not exist.
    pub fn publish_subscription(&self, account: AccountId, mailbox: &MailboxName, subscribed: bool) {
        let kind = if subscribed { MailboxEventKind::Subscribed } else { MailboxEventKind::Unsubscribed };
        self.publish_hierarchy(account, mailbox, kind, None);
    }

    /// Announces a committed change to accounts, aliases or domains, so that smtp-ingress and the relay
    /// forget the recipient answers they keep; returns once the server has it (or after a warning).
    /// The directory's handlers announce whether or not their change succeeded (one may fail after its
    /// commit), and the announcement runs on a task of its own, so a caller that goes away meanwhile
    /// cannot skip it. The role also announces once at start-up, for what changed while it was down (by
    /// hand, or a new MAILBUS_RECIPIENT_DELIMITER).
    pub async fn directory_changed(&self) {
        let (client, names) = (self.client.clone(), self.names.clone());
        let announcing =
            tokio::spawn(async move { mailbus_jetstream::announce_directory_change(&client, &names).await });
        let _ = announcing.await;
    }

    fn send(&self, event: MailboxEvent) {
        // Fails only once the publishing task is gone, at shutdown.
        let _ = self.queue.send(event);
    }
}

async fn publish_in_order(client: async_nats::Client, names: Names, mut events: mpsc::UnboundedReceiver<MailboxEvent>) {
    while let Some(event) = events.recv().await {
        let account_id = event.account_id;
        let publish = client.publish(names.mailbox_events(account_id), event.encode_to_vec().into());
        match tokio::time::timeout(std::time::Duration::from_secs(5), publish).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                mailbus_telemetry::metrics::nats_client_error(mailbus_telemetry::metrics::NatsOperation::Publish);
                tracing::warn!(account_id, %error, "mailbox event not published");
            }
            Err(_) => {
                mailbus_telemetry::metrics::nats_client_error(mailbus_telemetry::metrics::NatsOperation::Publish);
                tracing::warn!(account_id, "mailbox event not published: timed out");
            }
        }
    }
}
