//! Directory changes: the mailbox role announces each committed change to accounts, aliases and domains
//! on the core NATS subject [`Names::directory_changes`], and the roles that keep its answers about
//! recipients (`mailbus_grpc::recipients`, in smtp-ingress and the relay) forget them
//! on each announcement. Best effort by design, like the mailbox events: a lost announcement leaves an
//! answer stale for at most the cache's TTL.

use std::time::Duration;

use async_nats::Client;
use futures::StreamExt;

use crate::Names;

/// How long the announcer waits for the server to have the announcement before it gives up (and warns).
const ANNOUNCE_WAIT: Duration = Duration::from_secs(2);

/// Announces a committed directory change, and waits until the server has it (a flush), so that the
/// caller's reply to its own client comes after the announcement is on its way to every subscriber.
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

/// Calls `changed` once the subscription is in place and then on every announcement, until the client
/// is closed. After a reconnect async-nats makes the subscription again by itself; what was announced
/// while the connection was down is lost, which the cache's TTL bounds.
pub fn follow_directory_changes(client: Client, names: &Names, changed: impl Fn() + Send + 'static) {
    let subject = names.directory_changes();
    tokio::spawn(async move {
        let mut announcements = match client.subscribe(subject.clone()).await {
            Ok(announcements) => announcements,
            Err(error) => {
                tracing::warn!(%error, %subject, "cannot follow directory changes");
                return;
            }
        };
        changed();
        while announcements.next().await.is_some() {
            changed();
        }
    });
}
