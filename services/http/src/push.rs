//! Push over EventSource (RFC 8620 §7.3). One NATS subscription per process hears every account's
//! mailbox events and fans them out by account through a broadcast channel; a connection holds only a
//! receiver, the last state it sent and a timer. The first change is sent at once; bursts are coalesced:
//! a connection sends at most one event per `COALESCE`, taking everything that arrived meanwhile and
//! asking the mailbox role for the state once, so a STORE on a thousand messages is two `state` events,
//! not a thousand.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use mailbus_jetstream::MailboxEvent;
use mailbus_proto::v1::{self as pb, MailboxEventKind};
use prost::Message as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::App;
use crate::auth::Account;
use crate::problem::Problem;

/// How long a connection gathers events before it asks for the state.
const COALESCE: Duration = Duration::from_millis(75);
/// Events one connection may fall behind by; past it, it is told once (a lag is a change too).
const BACKLOG: usize = 16;
/// RFC 8620 §7.3: the server may raise a too-small ping interval; and a huge one is no ping at all.
const PING_MIN: u64 = 5;
const PING_MAX: u64 = 3600;
/// The types a StateChange can name, for `types=*`.
const TYPES: [&str; 4] = ["Email", "Mailbox", "Thread", "EmailDelivery"];

/// What a connection learns from an event: something changed, and whether it was new mail.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    pub delivery: bool,
}

/// Account → the sender its connections listen on.
#[derive(Default)]
pub struct Push(Mutex<HashMap<i64, broadcast::Sender<Change>>>);

impl Push {
    fn subscribe(&self, account: i64) -> broadcast::Receiver<Change> {
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(account).or_insert_with(|| broadcast::channel(BACKLOG).0).subscribe()
    }

    fn publish(&self, account: i64, change: Change) {
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sender) = map.get(&account)
            && sender.send(change).is_err()
        {
            // Nobody listens any more.
            map.remove(&account);
        }
    }

    #[cfg(test)]
    fn accounts(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// The process's one subscription to every account's mailbox events.
pub async fn listen(nats: async_nats::Client, subject: String, app: Arc<App>) {
    let mut subscriber = match nats.subscribe(subject.clone()).await {
        Ok(subscriber) => subscriber,
        Err(error) => return tracing::error!(%error, %subject, "push: cannot subscribe to mailbox events"),
    };
    loop {
        let message = tokio::select! {
            _ = app.shutdown.cancelled() => return,
            message = subscriber.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        // An IMAP session's check that its own subscription is in place, not a change.
        if mailbus_jetstream::is_probe(&message) {
            continue;
        }
        let Ok(event) = MailboxEvent::decode(message.payload.as_ref()) else { continue };
        let delivery = event.kind() == MailboxEventKind::Appended && event.mailbox.eq_ignore_ascii_case("INBOX");
        app.push.publish(event.account_id, Change { delivery });
    }
}

#[derive(Deserialize)]
pub struct EventSourceQuery {
    types: Option<String>,
    closeafter: Option<String>,
    ping: Option<String>,
}

/// What a connection asked for, validated.
struct Wanted {
    types: Option<Vec<String>>,
    close_after_state: bool,
    ping: Option<Duration>,
}

fn wanted(query: EventSourceQuery) -> Result<Wanted, Problem> {
    let types = match query.types.as_deref() {
        None | Some("*") | Some("") => None,
        Some(list) => Some(list.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect()),
    };
    let close_after_state = match query.closeafter.as_deref() {
        None | Some("no") | Some("") => false,
        Some("state") => true,
        Some(_) => return Err(Problem::bad_request("closeafter must be state or no")),
    };
    let ping = match query.ping.as_deref() {
        None | Some("") => None,
        Some(text) => match text.parse::<u64>() {
            Ok(0) => None,
            Ok(secs) => Some(Duration::from_secs(secs.clamp(PING_MIN, PING_MAX))),
            Err(_) => return Err(Problem::bad_request("ping must be a number of seconds")),
        },
    };
    Ok(Wanted { types, close_after_state, ping })
}

pub async fn eventsource(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<EventSourceQuery>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let account = app.auth.authenticate(&headers, peer.ip()).await?;
    let wanted = wanted(query)?;
    let Some(slot) = app.eventsources.enter(account.id, crate::MAX_EVENTSOURCES) else {
        return Err(Problem::too_many_eventsources());
    };
    let receiver = app.push.subscribe(account.id);
    // The state now: an event is sent only when it moves on from here.
    let last = state(&app, &account).await?;
    let open = app.metrics.eventsource_opened();
    let directory_changes = app.auth.directory_changes();
    let connection = Connection {
        app,
        account,
        wanted,
        receiver,
        directory_changes,
        last,
        last_sent: None,
        done: false,
        _open: open,
        _slot: slot,
    };
    let stream = futures::stream::unfold(connection, |mut c| async move {
        let event = c.next_event().await?;
        Some((Ok::<_, std::convert::Infallible>(event), c))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies (nginx) must pass events on as they come.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

async fn state(app: &App, account: &Account) -> Result<String, Problem> {
    match app.jmap.clone().state(pb::StateRequest { account_id: account.id }).await {
        Ok(reply) => Ok(reply.into_inner().state),
        Err(status) => Err(Problem::from_status(&status)),
    }
}

struct Connection {
    app: Arc<App>,
    account: Account,
    wanted: Wanted,
    receiver: broadcast::Receiver<Change>,
    /// Moves with every directory change: the connection then checks that its credentials still hold.
    directory_changes: tokio::sync::watch::Receiver<u64>,
    last: String,
    /// When the last state event went out: the next waits until COALESCE after it.
    last_sent: Option<tokio::time::Instant>,
    done: bool,
    _open: crate::metrics::OpenGuard,
    _slot: crate::api::Slot,
}

impl Connection {
    /// The next bytes to send, `None` to close: after the last one asked for, at shutdown, and once the
    /// credentials that opened the connection are no longer the account's (a new password), which is
    /// checked before every event and on every directory change.
    async fn next_event(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        loop {
            let event = self.next_event_unchecked().await?;
            match self.app.auth.current(&self.account).await {
                Ok(true) => {}
                Ok(false) => return None,
                // The directory is away: the connection goes on, and asks again at its next wake.
                Err(_) => {}
            }
            if let Some(event) = event {
                return Some(event);
            }
        }
    }

    /// The next event, or `Some(None)` when the directory changed and the credentials are to be checked.
    async fn next_event_unchecked(&mut self) -> Option<Option<Bytes>> {
        loop {
            let ping = async {
                match self.wanted.ping {
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending().await,
                }
            };
            let mut delivery = tokio::select! {
                _ = self.app.shutdown.cancelled() => return None,
                changed = self.directory_changes.changed() => match changed {
                    Ok(()) => return Some(None),
                    // The authenticator is gone: the role is shutting down.
                    Err(_) => return None,
                },
                _ = ping => {
                    let interval = self.wanted.ping.map(|p| p.as_secs()).unwrap_or(0);
                    return Some(Some(Bytes::from(format!("event: ping\ndata: {}\n\n", json!({"interval": interval})))));
                }
                received = self.receiver.recv() => match received {
                    Ok(change) => change.delivery,
                    Err(broadcast::error::RecvError::Lagged(_)) => true,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            // The first change goes out at once; later ones wait until COALESCE after the last event sent,
            // and whatever arrived meanwhile goes out as one.
            if let Some(sent) = self.last_sent {
                tokio::time::sleep_until(sent + COALESCE).await;
            }
            loop {
                match self.receiver.try_recv() {
                    Ok(change) => delivery |= change.delivery,
                    Err(broadcast::error::TryRecvError::Lagged(_)) => delivery = true,
                    Err(_) => break,
                }
            }
            let Ok(state) = state(&self.app, &self.account).await else { continue };
            if state == self.last {
                continue;
            }
            self.last = state;
            self.last_sent = Some(tokio::time::Instant::now());
            let Some(changed) = state_change(&self.account, &self.last, delivery, self.wanted.types.as_deref()) else {
                continue;
            };
            self.done = self.wanted.close_after_state;
            return Some(Some(Bytes::from(format!("event: state\ndata: {changed}\n\n"))));
        }
    }
}

/// RFC 8620 §7.1 StateChange: every type shares the account's one counter; EmailDelivery only for new
/// mail in the INBOX. `None` when nothing the client asked for changed.
fn state_change(account: &Account, state: &str, delivery: bool, types: Option<&[String]>) -> Option<Value> {
    let mut changed = Map::new();
    for kind in TYPES {
        if kind == "EmailDelivery" && !delivery {
            continue;
        }
        if types.is_some_and(|wanted| !wanted.iter().any(|w| w == kind)) {
            continue;
        }
        changed.insert(kind.to_owned(), json!(state));
    }
    if changed.is_empty() {
        return None;
    }
    Some(json!({"@type": "StateChange", "changed": {account.jmap_id(): changed}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account { id: 7, address: "a@b.test".into(), credential_epoch: 0 }
    }

    #[test]
    fn state_changes_name_the_wanted_types() {
        let all = state_change(&account(), "12", true, None).unwrap();
        assert_eq!(
            all,
            json!({"@type": "StateChange", "changed": {"a7": {"Email": "12", "Mailbox": "12", "Thread": "12", "EmailDelivery": "12"}}})
        );
        let no_delivery = state_change(&account(), "12", false, None).unwrap();
        assert!(no_delivery["changed"]["a7"].get("EmailDelivery").is_none());
        let mailbox = vec!["Mailbox".to_owned()];
        assert_eq!(
            state_change(&account(), "3", false, Some(&mailbox)).unwrap()["changed"]["a7"],
            json!({"Mailbox": "3"})
        );
        let delivery = vec!["EmailDelivery".to_owned()];
        assert!(state_change(&account(), "3", false, Some(&delivery)).is_none());
    }

    #[test]
    fn query_parameters_are_validated_and_ping_clamped() {
        let q = |types: &str, closeafter: &str, ping: &str| {
            wanted(EventSourceQuery {
                types: Some(types.into()),
                closeafter: Some(closeafter.into()),
                ping: Some(ping.into()),
            })
        };
        let w = q("*", "state", "1").ok().unwrap();
        assert!(w.types.is_none() && w.close_after_state);
        assert_eq!(w.ping, Some(Duration::from_secs(PING_MIN)));
        assert_eq!(q("Email,Mailbox", "no", "0").ok().unwrap().types.unwrap(), ["Email", "Mailbox"]);
        assert!(q("*", "maybe", "0").is_err());
        assert!(q("*", "no", "-1").is_err());
    }

    #[test]
    fn senders_without_listeners_are_dropped() {
        let push = Push::default();
        let mut receiver = push.subscribe(1);
        push.publish(1, Change { delivery: true });
        assert!(receiver.try_recv().unwrap().delivery);
        drop(receiver);
        push.publish(1, Change { delivery: false });
        assert_eq!(push.accounts(), 0);
    }
}
