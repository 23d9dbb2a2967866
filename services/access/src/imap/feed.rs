//! One NATS subscription per account per process, shared by that account's IMAP sessions.
//!
//! A NATS subscription costs its subscriber a channel whose first block holds 32 messages (about 6 KiB)
//! however quiet the account is; a client (Thunderbird keeps up to five) or a user on several devices
//! opens many sessions to one account. So the first session of an account subscribes (confirmed, as
//! before, so that a change committed after its SELECT reaches it), and every session of the account
//! takes a receiver of one small broadcast ring fed from that subscription. The feed ends when its last
//! receiver goes.
//!
//! A session that falls more than [`RING`] events behind (a long FETCH while mail pours in) is told it
//! lagged and looks again for what changed (`Session::events_missed`), as after a lost subscription.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use futures::StreamExt;
use mailbus_address::AccountId;
use tokio::sync::broadcast;

use super::{EVENTS_CONFIRMED, ImapContext};

/// Events one session may fall behind by before it must look again: small, because it is allocated per
/// account even for an account's only session.
const RING: usize = 16;

/// The feeds of this process, by account.
#[derive(Default)]
pub struct Feeds {
    by_account: Mutex<HashMap<AccountId, Weak<Feed>>>,
}

/// One account's subscription, and the ring its sessions read. The subscription's task holds the ring's
/// only sender, so that the ring closes (each session hears `Ended`) when the subscription ends.
struct Feed {
    ring: broadcast::WeakSender<Bytes>,
    task: tokio::task::AbortHandle,
    account: AccountId,
    ctx: Weak<ImapContext>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(ctx) = self.ctx.upgrade() {
            let mut feeds = lock(&ctx);
            // Only a dead entry: a new feed for the account may have replaced this one already.
            if feeds.get(&self.account).is_some_and(|weak| weak.strong_count() == 0) {
                feeds.remove(&self.account);
            }
        }
    }
}

/// One session's share of its account's feed.
pub(super) struct Events {
    receiver: broadcast::Receiver<Bytes>,
    _feed: Arc<Feed>,
}

/// What [`Events::next`] found.
pub(super) enum Next {
    /// A mailbox event's payload (a `MailboxEvent`).
    Event(Bytes),
    /// Events were lost to this session (it fell behind the ring): it must look again.
    Lagged,
    /// The subscription ended (NATS went away): subscribe again later.
    Ended,
}

impl Events {
    pub(super) async fn next(&mut self) -> Next {
        match self.receiver.recv().await {
            Ok(payload) => Next::Event(payload),
            Err(broadcast::error::RecvError::Lagged(_)) => Next::Lagged,
            Err(broadcast::error::RecvError::Closed) => Next::Ended,
        }
    }
}

/// A receiver of `account`'s events, subscribing (and waiting for NATS to confirm it) if this process
/// has no live feed for the account yet.
pub(super) async fn join(ctx: &Arc<ImapContext>, account: AccountId) -> Result<Events, async_nats::SubscribeError> {
    if let Some(events) = existing(ctx, account) {
        return Ok(events);
    }
    let subject = ctx.names.mailbox_events(account.get());
    let mut subscriber = mailbus_jetstream::subscribe_confirmed(&ctx.nats, subject, EVENTS_CONFIRMED).await?;
    // Another session of the account may have made one meanwhile: use it, and let ours go.
    if let Some(events) = existing(ctx, account) {
        return Ok(events);
    }
    let (sender, receiver) = broadcast::channel(RING);
    let ring = sender.downgrade();
    let task = tokio::spawn(async move {
        while let Some(message) = subscriber.next().await {
            if mailbus_jetstream::is_probe(&message) {
                continue;
            }
            // No receiver left means the feed is being dropped; nothing to do.
            let _ = sender.send(message.payload);
        }
        // The subscription ended: the ring's only sender goes, and each session hears Ended.
    })
    .abort_handle();
    let feed = Arc::new(Feed { ring, task, account, ctx: Arc::downgrade(ctx) });
    lock(ctx).insert(account, Arc::downgrade(&feed));
    Ok(Events { receiver, _feed: feed })
}

/// A receiver of the account's live feed, if there is one. The map's lock is never held while a feed
/// may be dropped (a feed's Drop takes it).
fn existing(ctx: &ImapContext, account: AccountId) -> Option<Events> {
    let weak = lock(ctx).get(&account)?.clone();
    let feed = weak.upgrade()?;
    // A feed whose subscription ended (its sender gone) is not joined: the session would hear Ended.
    let sender = feed.ring.upgrade()?;
    Some(Events { receiver: sender.subscribe(), _feed: feed })
}

fn lock(ctx: &ImapContext) -> std::sync::MutexGuard<'_, HashMap<AccountId, Weak<Feed>>> {
    ctx.feeds.by_account.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
