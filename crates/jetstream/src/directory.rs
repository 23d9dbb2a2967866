//! Directory changes: the mailbox role announces each committed change to accounts, aliases and domains
//! on the core NATS subject [`Names::directory_changes`], and the roles that keep its answers about
//! recipients (`mailbus_grpc::recipients`, in smtp-ingress and the relay) forget them on each
//! announcement. Best effort by design, like the mailbox events: a lost announcement leaves an answer
//! stale for at most the cache's TTL.

use std::time::Duration;

use async_nats::Client;
use async_nats::connection::State;
use futures::StreamExt;

use crate::Names;

/// How long the announcer waits for the server to have the announcement before it gives up (and warns).
const ANNOUNCE_WAIT: Duration = Duration::from_secs(2);
/// How long a follower waits for its subscription to be confirmed before it goes on anyway.
const CONFIRM_WAIT: Duration = Duration::from_secs(5);
/// How often a follower looks whether its connection came back.
const CONNECTION_CHECK: Duration = Duration::from_secs(1);

/// Announces a committed directory change, and flushes it to the server, so that it is on its way to
/// every subscriber before the caller replies to its own client (subscribers see it within
/// milliseconds, not in the same instant).
pub async fn announce_directory_change(client: &Client, names: &Names) {
    let subject = names.directory_changes();
    let announced = tokio::time::timeout(ANNOUNCE_WAIT, async {
        client.publish(subject.clone(), Default::default()).await?;
        client.flush().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })
    .await;
    match announced {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, %subject, "cannot announce a directory change"),
        Err(_) => tracing::warn!(%subject, "announcing a directory change timed out"),
    }
}

/// Calls `changed` once the server is known to deliver announcements to this subscriber, then on every
/// announcement, and again whenever the connection comes back after being down (announcements made
/// meanwhile went to nobody), until the client is closed.
pub fn follow_directory_changes(client: Client, names: &Names, changed: impl Fn() + Send + 'static) {
    let subject = names.directory_changes();
    tokio::spawn(async move {
        let mut announcements = match crate::subscribe_confirmed(&client, subject.clone(), CONFIRM_WAIT).await {
            Ok(announcements) => announcements,
            Err(error) => {
                tracing::warn!(%error, %subject, "cannot follow directory changes");
                return;
            }
        };
        changed();
        let mut watch = tokio::time::interval(CONNECTION_CHECK);
        let mut was_connected = true;
        loop {
            tokio::select! {
                announcement = announcements.next() => match announcement {
                    Some(_) => changed(),
                    None => return,
                },
                _ = watch.tick() => {
                    let connected = client.connection_state() == State::Connected;
                    if connected && !was_connected {
                        changed();
                    }
                    was_connected = connected;
                }
            }
        }
    });
}
