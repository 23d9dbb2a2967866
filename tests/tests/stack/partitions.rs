//! The partitioned queue: a resent transaction lands once whatever partition its id picks, operators
//! see and change mail in every partition, a relay drains partitions beyond its own count (left by a
//! larger setting), and the replica setting reaches every stream and bucket when the queue opens.

use std::collections::BTreeSet;

use mailbus::roles::Role;
use mailbus_tests::clients::{SmtpOutcome, SubmitMode, smtp_send, smtp_submit};
use mailbus_tests::fake_smtp::{FakeSmtp, Script};
use mailbus_tests::{Infra, TestStack, wait_until};

use crate::relay::queue_admin;
use crate::{PATIENCE, message};

async fn send(stack: &TestStack, from: &str, to: &str, body: &[u8]) {
    let sent = smtp_send(stack.smtp_addr(), from, &[to], body).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { code: 250, .. }), "{sent:?}");
}

/// Submits `body` as `from` (password `pw`), over STARTTLS on port 587.
async fn submit(stack: &TestStack, from: &str, to: &str, body: &[u8]) {
    let tls_cert = &Infra::get().tls_cert;
    let sent =
        smtp_submit(stack.submission.unwrap(), SubmitMode::StartTls, tls_cert, (from, "pw"), from, &[to], body).await;
    assert_eq!(sent.outcome, "ok", "{sent:?}");
}

/// The partitions the queued messages are in.
async fn partitions_in_use(stack: &TestStack) -> BTreeSet<u32> {
    stack.queue().await.list(1000).await.unwrap().iter().map(|(position, _)| position.partition).collect()
}

/// Each of twelve transactions is sent twice, as a client that never saw the 250 does. Each send gets a
/// queue id of its own; only the partition chosen from the transaction's `Nats-Msg-Id` brings the
/// repeat to the stream that remembers the first, among eight.
#[tokio::test(flavor = "multi_thread")]
async fn a_resent_transaction_lands_once_in_its_partition() {
    // No relay: the queue keeps what it got, for the test to count.
    let stack = TestStack::builder()
        .roles(&[Role::Mailbox, Role::SmtpIngress])
        .set("MAILBUS_QUEUE_PARTITIONS", "8")
        .start()
        .await;
    stack.add_account("rex@example.org", "pw").await;
    for n in 0..12 {
        let body = message("rex@example.org", &format!("resent-{n}"));
        for _ in 0..2 {
            send(&stack, "sender@example.net", "rex@example.org", &body).await;
        }
    }
    let queued = stack.queue().await.list(1000).await.unwrap();
    assert_eq!(queued.len(), 12, "each transaction queued once");
    assert!(partitions_in_use(&stack).await.len() > 1, "twelve transactions spread over the partitions");
    stack.stop().await;
}

/// Eight messages waiting for a peer that says "not now", spread over four partitions: the operator
/// lists them all, holds them all, deletes one from a partition other than the first, and bounces the
/// rest, each sender getting its report.
#[tokio::test(flavor = "multi_thread")]
async fn operators_list_hold_delete_and_bounce_across_partitions() {
    let fake =
        FakeSmtp::start(Script { rcpt: Box::new(|_, _| "451 4.3.0 not now".into()), ..Default::default() }).await;
    let stack = TestStack::builder()
        .set("MAILBUS_QUEUE_PARTITIONS", "4")
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("remote.test={},*=127.0.0.1:9", fake.addr()))
        .set("MAILBUS_RELAY_RETRY_SCHEDULE", "1h")
        .start()
        .await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    for n in 0..8 {
        submit(&stack, "ann@example.org", "stuck@remote.test", &message("stuck@remote.test", &format!("waits-{n}")))
            .await;
    }
    // Every message had its first attempt and waits an hour for the next, once and only once listed.
    let queue = stack.queue().await;
    wait_until(PATIENCE, "not every message was tried once", async || {
        let queued = queue.list(1000).await.unwrap();
        queued.len() == 8 && queued.iter().all(|(_, e)| e.attempts == 1)
    })
    .await;
    assert!(partitions_in_use(&stack).await.len() > 1, "eight messages spread over the partitions");
    let (code, listing) = queue_admin(&stack, &["list"]).await;
    assert_eq!(code, 0, "{listing}");
    assert_eq!(listing.matches("attempts 1").count(), 8, "{listing}");

    let (code, out) = queue_admin(&stack, &["hold", "--all"]).await;
    assert_eq!(code, 0, "{out}");
    let queued = queue.list(1000).await.unwrap();
    assert!(queued.len() == 8 && queued.iter().all(|(_, e)| e.held), "{queued:?}");

    let (position, victim) = queued.iter().find(|(p, _)| p.partition > 0).expect("a message beyond partition 0");
    let (code, out) = queue_admin(&stack, &["delete", &victim.queue_id]).await;
    assert_eq!(code, 0, "{out}");
    let left = queue.list(1000).await.unwrap();
    assert_eq!(left.len(), 7, "{left:?}");
    assert!(left.iter().all(|(p, e)| p != position && e.queue_id != victim.queue_id), "{left:?}");

    let (code, out) = queue_admin(&stack, &["bounce", "--all"]).await;
    assert_eq!(code, 0, "{out}");
    stack.wait_for_inbox(ann, 7, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    assert_eq!(fake.attempts("stuck@remote.test"), 8, "held, deleted and bounced mail is not tried again");
    stack.stop().await;
}

/// Mail queued into eight partitions is all delivered by a relay told of two: it consumes every
/// partition stream it finds, so lowering the setting leaves nothing behind.
#[tokio::test(flavor = "multi_thread")]
async fn a_relay_drains_partitions_beyond_its_own_count() {
    let mut stack = TestStack::builder()
        .roles(&[Role::Mailbox, Role::SmtpIngress])
        .set("MAILBUS_QUEUE_PARTITIONS", "8")
        .start()
        .await;
    let account = stack.add_account("dora@example.org", "pw").await;
    for n in 0..16 {
        send(&stack, "sender@example.net", "dora@example.org", &message("dora@example.org", &format!("left-{n}")))
            .await;
    }
    let used = partitions_in_use(&stack).await;
    assert!(used.iter().any(|&p| p >= 2), "some mail beyond the first two partitions: {used:?}");
    stack.settings.set("MAILBUS_QUEUE_PARTITIONS", "2");
    stack.start_roles(&[Role::Relay]).await;
    stack.wait_for_inbox(account, 16, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    stack.stop().await;
}

/// On a three-node cluster: opening the queue with three replicas brings every stream and bucket of the
/// prefix to three (those made with one before, a key-value bucket of another role's included), and
/// opening it with one brings them back.
#[tokio::test(flavor = "multi_thread")]
async fn opening_the_queue_brings_every_stream_to_the_replica_setting() {
    use futures::TryStreamExt as _;
    let cluster =
        tokio::task::spawn_blocking(|| mailbus_tests::infra::dedicated_nats_cluster("replicas")).await.unwrap();
    let client = mailbus_jetstream::connect(&cluster.url(), "test").await.unwrap();
    let jetstream = mailbus_jetstream::async_nats::jetstream::new(client.clone());
    let names = mailbus_jetstream::Names::new("replicas").unwrap().with_partitions(2);
    let timeout = std::time::Duration::from_secs(10);
    mailbus_jetstream::Queue::open(client.clone(), names.clone(), timeout).await.unwrap();
    let policy = mailbus_jetstream::ThrottlePolicy {
        max_failures_per_address: 5,
        window: std::time::Duration::from_secs(60),
        delay: std::time::Duration::ZERO,
    };
    mailbus_jetstream::LoginThrottle::open(&jetstream, (names.auth_failures_bucket(), 1), policy).await.unwrap();
    let replicas = async |expected: usize| {
        let streams: Vec<String> = jetstream.stream_names().try_collect().await.unwrap();
        assert_eq!(
            streams.len(),
            7,
            "two partitions and their claims, dead letters, bodies, failed logins: {streams:?}"
        );
        for name in streams {
            let info = jetstream.get_stream(&name).await.unwrap().info().await.unwrap().clone();
            assert_eq!(info.config.num_replicas, expected, "{name}");
        }
    };
    replicas(1).await;
    mailbus_jetstream::Queue::open(client.clone(), names.clone().with_replicas(3), timeout).await.unwrap();
    replicas(3).await;
    mailbus_jetstream::Queue::open(client, names.with_replicas(1), timeout).await.unwrap();
    replicas(1).await;
    drop(cluster);
}
