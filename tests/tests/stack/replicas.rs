//! gRPC spreads over replicas: two mailbox role processes share one PostgreSQL, and every role that
//! calls the mailbox (smtp-ingress, relay, access, http) is given both. Both serve calls, as their own
//! `/metrics` show; then one is killed (`kill -9`) while mail flows, and nothing accepted is lost or
//! stored twice, and all of it reads over IMAP.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mailbus_tests::infra::{Infra, scratch_dir};
use mailbus_tests::processes::Replica;
use mailbus_tests::smtp_client::SmtpClient;
use serde_json::json;

use crate::under_test;

const RECIPIENT: &str = "spread@example.org";
const PASSWORD: &str = "pw";
/// Messages sent while both replicas serve, then while one is killed.
const BEFORE: usize = 20;
const DURING: usize = 40;
/// How long one message may take to get its 250, the client's retries of 4xx included.
const MESSAGE_PATIENCE: Duration = Duration::from_secs(60);

fn body(n: usize) -> Vec<u8> {
    format!(
        "From: load@example.net\r\nTo: {RECIPIENT}\r\nSubject: spread {n}\r\nMessage-ID: <spread-{n}@replicas.test>\r\n\r\nMessage {n}.\r\n"
    )
    .into_bytes()
}

/// Sends message `n` until it gets a 250, as a real client does: a 4xx or a lost connection is tried
/// again; a 5xx fails the test (every message is valid and its recipient exists).
async fn send_until_accepted(smtp: SocketAddr, n: usize) {
    let started = Instant::now();
    loop {
        let attempt = async {
            let mut client = SmtpClient::open_as(smtp, "load.test").await?;
            let reply = client.send("load@example.net", RECIPIENT, &body(n)).await?;
            client.quit().await;
            anyhow::Ok(reply)
        };
        let last = match tokio::time::timeout(Duration::from_secs(30), attempt).await {
            Ok(Ok(reply)) if reply.code == 250 => return,
            Ok(Ok(reply)) if reply.code / 100 == 4 => format!("{} {}", reply.code, reply.text),
            Ok(Ok(reply)) => panic!("message {n} refused for good: {} {}", reply.code, reply.text),
            Ok(Err(error)) => format!("{error:#}"),
            Err(_) => "timed out".to_owned(),
        };
        assert!(started.elapsed() < MESSAGE_PATIENCE, "message {n} never accepted; last: {last}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `mailbus_grpc_server_calls_total` of the mailbus services in one replica's `/metrics`, by method.
fn served_calls(metrics: &str) -> BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("mailbus_grpc_server_calls_total{"))
        .filter_map(|rest| {
            let (labels, value) = rest.split_once("} ")?;
            let service = labels.split("rpc_service=\"").nth(1)?.split('"').next()?;
            let method = labels.split("rpc_method=\"").nth(1)?.split('"').next()?;
            let value = value.trim().parse::<f64>().ok()? as u64;
            service.starts_with("mailbus.v1.").then(|| (format!("{service}/{method}"), value))
        })
        .collect()
}

/// The Message-IDs in the INBOX as imaplib fetches them, each with how often it is there.
async fn inbox_over_imap(imap: SocketAddr) -> HashMap<usize, usize> {
    let steps = json!([
        ["login", RECIPIENT, PASSWORD],
        ["select", "INBOX"],
        ["fetch", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"],
        ["logout"],
    ]);
    let results = mailbus_tests::clients::imap_session(imap, None, steps).await;
    let mut counts = HashMap::new();
    if results.get(3).is_none_or(|fetched| fetched[0] != "OK") {
        // An empty INBOX answers the FETCH of 1:* with an error.
        return counts;
    }
    for n in results[3].to_string().split("<spread-").skip(1).filter_map(|rest| rest.split('@').next()) {
        *counts.entry(n.parse().expect("a message number")).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_spread_over_two_mailbox_replicas_and_a_killed_one_loses_nothing() {
    let infra = tokio::task::spawn_blocking(Infra::get).await.unwrap();
    let logs = scratch_dir().join(format!("replicas-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&logs).unwrap();
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut shared: HashMap<&'static str, String> = HashMap::from([
        ("DATABASE_URL", infra.create_database().await),
        ("NATS_URL", infra.nats_url().to_owned()),
        ("MAILBUS_NATS_PREFIX", prefix),
        ("MAILBUS_HOSTNAME", "mx.replicas.test".into()),
        ("MAILBUS_DB_MAX_CONNECTIONS", "5".into()),
        ("MAILBUS_NATS_TIMEOUT_MS", "2000".into()),
        ("MAILBUS_RELAY_TRANSPORTS", "*=127.0.0.1:9".into()),
        ("MAILBUS_RELAY_ACK_WAIT_SECS", "5".into()),
        ("MAILBUS_RELAY_RETRY_SCHEDULE", "1s".into()),
        // Replicas are probed (and names resolved) every second rather than every five.
        ("MAILBUS_GRPC_RESOLVE_SECS", "1".into()),
        ("RUST_LOG", "warn".into()),
    ]);
    // One after the other: the first runs the migrations.
    let mut mailboxes = Vec::new();
    for name in ["mailbox-1", "mailbox-2"] {
        let replica = Replica::spawn(under_test(), "mailbox", name, &shared, &logs);
        replica.wait_ready(Duration::from_secs(60)).await;
        mailboxes.push(replica);
    }
    let urls: Vec<String> =
        mailboxes.iter().map(|m| format!("http://{}", m.addr("MAILBUS_MAILBOX_GRPC_LISTEN"))).collect();
    shared.insert("MAILBUS_MAILBOX_URL", urls.join(","));
    let others: Vec<Replica> = ["smtp-ingress", "relay", "access", "http"]
        .into_iter()
        .map(|role| Replica::spawn(under_test(), role, role, &shared, &logs))
        .collect();
    for replica in &others {
        replica.wait_ready(Duration::from_secs(60)).await;
    }
    let (smtp, imap) = (others[0].addr("MAILBUS_SMTP_LISTEN"), others[2].addr("MAILBUS_IMAP_LISTEN"));
    mailbus_tests::stack::add_account(&urls[0], RECIPIENT, PASSWORD).await;

    // Both replicas serve: recipient look-ups, deliveries and IMAP's reads go to each.
    for n in 0..BEFORE {
        send_until_accepted(smtp, n).await;
    }
    mailbus_tests::wait_until(Duration::from_secs(60), "the first messages never all arrived", async || {
        inbox_over_imap(imap).await.len() == BEFORE
    })
    .await;
    let mut before = Vec::new();
    for replica in &mailboxes {
        let served = served_calls(&replica.metrics().await);
        println!("{} served {served:?}", replica.name);
        let total: u64 = served.values().sum();
        assert!(total >= 10, "{} served only {total} calls: {served:?}", replica.name);
        assert!(served.keys().any(|m| m.starts_with("mailbus.v1.Mailbox/")), "{}: {served:?}", replica.name);
        before.push(total);
    }

    // One replica is killed while messages flow.
    let accepted = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|client| {
            let accepted = accepted.clone();
            tokio::spawn(async move {
                for n in (BEFORE + client..BEFORE + DURING).step_by(4) {
                    send_until_accepted(smtp, n).await;
                    accepted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();
    mailbus_tests::wait_until(MESSAGE_PATIENCE, "no message accepted before the kill", async || {
        accepted.load(Ordering::SeqCst) >= DURING / 4
    })
    .await;
    let killed_at = accepted.load(Ordering::SeqCst);
    mailboxes[0].kill().await;
    for sender in senders {
        sender.await.unwrap();
    }
    assert!(killed_at < DURING, "the kill came after the last message");

    // Everything accepted arrives, once, and reads over IMAP from the replica left.
    let all = BEFORE + DURING;
    mailbus_tests::wait_until(Duration::from_secs(60), "not every accepted message arrived", async || {
        inbox_over_imap(imap).await.len() == all
    })
    .await;
    let client = mailbus_jetstream::async_nats::connect(infra.nats_url()).await.unwrap();
    let names = mailbus_jetstream::Names::new(&shared["MAILBUS_NATS_PREFIX"]).unwrap();
    let queue = mailbus_jetstream::Queue::open(client, names, Duration::from_secs(5)).await.unwrap();
    mailbus_tests::wait_until(Duration::from_secs(60), "the queue never emptied", async || {
        queue.status().await.is_ok_and(|status| status.messages == 0)
    })
    .await;
    let stored = inbox_over_imap(imap).await;
    let missing: Vec<usize> = (0..all).filter(|n| !stored.contains_key(n)).collect();
    let twice: Vec<usize> = stored.iter().filter(|(_, count)| **count > 1).map(|(n, _)| *n).collect();
    assert!(missing.is_empty() && twice.is_empty(), "missing {missing:?}, stored more than once {twice:?}");

    // The replica left took the load on.
    let served = served_calls(&mailboxes[1].metrics().await);
    let total: u64 = served.values().sum();
    println!("{} served {served:?} in all", mailboxes[1].name);
    assert!(total > before[1], "{} served no more after the kill: {served:?}", mailboxes[1].name);
}
