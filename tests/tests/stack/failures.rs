//! The promises that hold when parts fail: no loss, no duplicates, strictly increasing UIDs.

use std::time::Duration;

use futures::StreamExt;
use mailbus::roles::Role;
use mailbus_jetstream::Envelope;
use mailbus_proto::v1 as pb;
use mailbus_relay::{Deliverer, Destination, KeyCache, Outcome, Remote, Router};
use mailbus_tests::clients::{SmtpOutcome, smtp_send};
use mailbus_tests::{TestStack, infra};
use prost::Message as _;

use crate::{PATIENCE, message};

#[tokio::test(flavor = "multi_thread")]
async fn nats_outage_gets_451_and_the_clients_retry_succeeds() {
    let mut nats = infra::dedicated_nats("outage");
    let stack = TestStack::builder().nats(&nats.url()).start().await;
    let account = stack.add_account("dave@example.org", "pw").await;
    let body = message("dave@example.org", "outage");

    nats.kill();
    let refused = smtp_send(stack.smtp_addr(), "sender@example.net", &["dave@example.org"], &body).await;
    assert!(
        matches!(refused, SmtpOutcome::Refused { code: 451, ref text } if text.starts_with("4.3.0")),
        "{refused:?}"
    );

    nats.restart().expect("restarting nats-server");
    // A client retries a 451 later; the roles reconnect on their own in the meantime.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match smtp_send(stack.smtp_addr(), "sender@example.net", &["dave@example.org"], &body).await {
            SmtpOutcome::Accepted { code: 250, .. } => break,
            SmtpOutcome::Refused { code: 451, .. } if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("retry after the restart: {other:?}"),
        }
    }
    // Exactly one copy: the refused attempt left nothing behind that could be delivered.
    stack.wait_for_empty_queue(PATIENCE).await;
    assert_eq!(stack.inbox_uids(account).await.len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn relay_dying_after_deliver_but_before_ack_leaves_exactly_one_copy() {
    // No relay at first: the test plays the relay that dies.
    let mut stack = TestStack::builder()
        .roles(&[Role::Mailbox, Role::SmtpIngress])
        .set("MAILBUS_RELAY_ACK_WAIT_SECS", "2")
        .start()
        .await;
    let account = stack.add_account("erin@example.org", "pw").await;
    let sent =
        smtp_send(stack.smtp_addr(), "sender@example.net", &["erin@example.org"], &message("erin", "once")).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { code: 250, .. }), "{sent:?}");

    let queue = stack.queue().await;
    // The partition its queue id chose.
    let queued = queue.list(1).await.unwrap();
    let consumer = queue.relay_consumer(queued[0].0.partition, Duration::from_secs(2)).await.unwrap();
    let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
    let taken = batch.next().await.expect("the message is on the queue").unwrap();
    let envelope = Envelope::decode(taken.payload.clone()).unwrap();
    let nowhere =
        Remote::new(Router::new("*=127.0.0.1:9".parse().unwrap()), "relay.test".into(), Duration::from_secs(5), 1);
    let channel = mailbus_grpc::connect(&stack.mailbox_url()).unwrap();
    let keys = KeyCache::new(channel.clone(), Duration::from_secs(60));
    let deliverer = Deliverer::new(
        queue.clone(),
        channel,
        (nowhere, std::sync::Arc::new(mailbus_grpc::recipients::RecipientCache::new(Duration::ZERO))),
        keys,
        (None, mailbus_relay::Sealer::new("mx.test".into(), &mailbus::roles::dns_config(&stack.settings).unwrap())),
        &mut Default::default(),
    );
    let outcomes = deliverer.deliver(&envelope).await.unwrap();
    assert!(
        matches!(outcomes[..], [(0, Destination::Local, Outcome::Delivered { duplicate: false, .. })]),
        "{outcomes:?}"
    );
    assert_eq!(stack.inbox_uids(account).await.len(), 1);
    // The relay dies here: the delivery is committed, the ack never sent.
    drop(taken);
    drop(batch);

    stack.start_roles(&[Role::Relay]).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    assert_eq!(stack.inbox_uids(account).await.len(), 1, "redelivery must not add a second copy");
    let metrics = reqwest_metrics(stack.mailbox_metrics.unwrap()).await;
    assert!(metrics.contains("mailbus_mailbox_deliveries_total{outcome=\"duplicate\"} 1"), "{metrics}");
    stack.stop().await;
}

/// GET /metrics over a plain TCP connection.
pub async fn reqwest_metrics(addr: std::net::SocketAddr) -> String {
    crate::ops::http_get(addr, "/metrics").await.1
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_parallel_deliveries_into_one_mailbox_get_distinct_increasing_uids() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let account = stack.add_account("frank@example.org", "pw").await;
    let deliveries = (0..50).map(|i| {
        let stack = &stack;
        async move {
            let body = message("frank@example.org", &format!("parallel-{i}"));
            let reply = stack.deliver(&format!("{i:032x}"), "frank@example.org", &body).await.expect("deliver");
            reply.placements[0].uid
        }
    });
    let mut uids = futures::future::join_all(deliveries).await;
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids.len(), 50, "every delivery got its own UID");
    assert_eq!(uids, (1..=50).collect::<Vec<u32>>(), "UIDs are dense and increasing: no gaps, no reuse");
    assert_eq!(stack.inbox_uids(account).await, uids);
    let listing = stack
        .mailbox()
        .await
        .list_messages(pb::ListMessagesRequest { account_id: account, mailbox: "INBOX".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listing.uidnext, 51);
    stack.stop().await;
}

/// Deliveries into one account at once share transactions (group commit): still one UID per message, dense
/// and increasing, a repeated queue id delivered once whether its twin is in the same batch or another,
/// every message readable under the UID its reply named, and the Appended events in UID order.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_deliveries_with_repeats_keep_dense_uids_dedup_and_events_in_order() {
    const MESSAGES: usize = 80;
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let account = stack.add_account("gus@example.org", "pw").await;
    let mut events = stack.mailbox_events(account).await;
    // Half the messages are sent twice, the twin among the others or after them all.
    let calls = (0..MESSAGES).chain((0..MESSAGES).step_by(2)).map(|i| {
        let stack = &stack;
        async move {
            let body = message("gus@example.org", &format!("batched-{i}"));
            let reply = stack.deliver(&format!("{i:032x}"), "gus@example.org", &body).await.expect("deliver");
            (i, reply.placements[0].uid, reply.duplicate)
        }
    });
    let replies = futures::future::join_all(calls).await;
    let mut uid_of = std::collections::HashMap::new();
    for &(i, uid, _) in &replies {
        assert_eq!(*uid_of.entry(i).or_insert(uid), uid, "both calls for message {i} name one UID");
    }
    let fresh = replies.iter().filter(|(_, _, duplicate)| !duplicate).count();
    assert_eq!(fresh, MESSAGES, "each message stored once; its twin is told it is a duplicate");
    let mut uids: Vec<u32> = uid_of.values().copied().collect();
    uids.sort_unstable();
    assert_eq!(uids, (1..=MESSAGES as u32).collect::<Vec<_>>(), "dense UIDs: no gap, no reuse");
    assert_eq!(stack.inbox_uids(account).await, uids);
    // Every message is readable under the UID its reply named.
    let request = pb::FetchRequest {
        account_id: account,
        mailbox: "INBOX".into(),
        uids: uids.clone(),
        sections: vec![pb::Section { text: pb::SectionText::Header.into(), ..Default::default() }],
        ..Default::default()
    };
    let fetched = crate::store::fetch(&stack, request).await.expect("fetch");
    assert_eq!(fetched.len(), MESSAGES);
    for (i, uid) in &uid_of {
        let message = fetched.iter().find(|f| f.message.uid == *uid).expect("fetched");
        let header = String::from_utf8_lossy(message.sections[0].as_deref().expect("a header"));
        assert!(header.contains(&format!("Subject: batched-{i}\r\n")), "UID {uid}: {header}");
    }
    // The events name every UID once, in increasing order across all of them.
    let mut announced: Vec<u32> = Vec::new();
    while announced.len() < MESSAGES {
        let next = tokio::time::timeout(PATIENCE, events.next()).await.expect("an event").expect("subscribed");
        let event = pb::MailboxEvent::decode(next.payload).unwrap();
        assert_eq!((event.kind(), event.mailbox.as_str()), (pb::MailboxEventKind::Appended, "INBOX"));
        announced.extend(event.uids);
    }
    assert_eq!(announced, uids, "events in UID order, each UID once");
    stack.stop().await;
}

/// A batch of deliveries into one account is written one statement per delivery, with no savepoint: the
/// triggers still do for each what they do for a delivery alone. Parents and their replies arrive at
/// once, in any order and often in one batch; every reply joins its parent's thread, the account's usage
/// counts every message and octet, and the change log names every new email once.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_delivered_at_once_keeps_threads_usage_and_the_change_log() {
    const PAIRS: usize = 20;
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let account = stack.add_account("hal@example.org", "pw").await;
    let body = |i: usize, reply: bool| {
        let (id, references) = if reply {
            (format!("<reply-{i}@example.net>"), format!("References: <parent-{i}@example.net>\r\n"))
        } else {
            (format!("<parent-{i}@example.net>"), String::new())
        };
        format!(
            "From: someone@example.net\r\nTo: hal@example.org\r\nSubject: topic {i}\r\nMessage-ID: {id}\r\n\
             {references}\r\nbody of {id}\r\n"
        )
        .into_bytes()
    };
    let bodies: Vec<(String, Vec<u8>)> = (0..PAIRS)
        .flat_map(|i| [(format!("{i:030x}01"), body(i, true)), (format!("{i:030x}00"), body(i, false))])
        .collect();
    let calls = bodies.iter().map(|(queue_id, body)| stack.deliver(queue_id, "hal@example.org", body));
    for reply in futures::future::join_all(calls).await {
        assert!(!reply.expect("deliver").duplicate);
    }
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url).await.unwrap();
    let threads: Vec<(String, i64)> = sqlx::query_as(
        "SELECT header_values[array_position(header_names, 'message-id')], thread_id FROM messages WHERE account_id = $1",
    )
    .bind(account)
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(threads.len(), 2 * PAIRS, "{threads:?}");
    let thread_of = |id: &str| threads.iter().find(|(m, _)| m.contains(id)).map(|(_, t)| *t).expect(id);
    for i in 0..PAIRS {
        let (parent, reply) = (format!("<parent-{i}@"), format!("<reply-{i}@"));
        assert_eq!(thread_of(&parent), thread_of(&reply), "pair {i} is one thread: {threads:?}");
    }
    let distinct: std::collections::HashSet<i64> = threads.iter().map(|(_, t)| *t).collect();
    assert_eq!(distinct.len(), PAIRS, "one thread per pair: {threads:?}");
    let usage: (i64, i64) = sqlx::query_as("SELECT used_messages, used_bytes FROM accounts WHERE id = $1")
        .bind(account)
        .fetch_one(&mut db)
        .await
        .unwrap();
    let octets: usize = bodies.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(usage, (2 * PAIRS as i64, octets as i64), "usage counts every message and octet");
    let created: Vec<i64> = sqlx::query_scalar(
        "SELECT object_id FROM changes WHERE account_id = $1 AND kind = 'E' AND op = 'c' ORDER BY object_id",
    )
    .bind(account)
    .fetch_all(&mut db)
    .await
    .unwrap();
    let stored: Vec<i64> = sqlx::query_scalar("SELECT id FROM messages WHERE account_id = $1 ORDER BY id")
        .bind(account)
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert_eq!(created, stored, "the change log names each new email once");
    stack.stop().await;
}

/// A batch of deliveries locks its mailboxes once, and each entry takes its UID from the row as it is
/// added: the last UIDs before 2^32 go to the first two deliveries, and the rest are refused, stored
/// nowhere, with the others of their batch kept (RFC 9051 §2.3.1.1: a UID is never reused or passed).
#[tokio::test(flavor = "multi_thread")]
async fn a_mailbox_out_of_uids_refuses_the_deliveries_past_the_last_and_keeps_the_rest() {
    const LAST: u32 = u32::MAX;
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let account = stack.add_account("ivy@example.org", "pw").await;
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url).await.unwrap();
    sqlx::query("UPDATE mailboxes SET uidnext = $1 WHERE account_id = $2 AND name = 'INBOX'")
        .bind(i64::from(LAST - 1))
        .bind(account)
        .execute(&mut db)
        .await
        .unwrap();
    let calls = (0..6).map(|i| {
        let stack = &stack;
        async move {
            let body = message("ivy@example.org", &format!("near-the-end-{i}"));
            stack.deliver(&format!("uids-{i:028x}"), "ivy@example.org", &body).await
        }
    });
    let replies = futures::future::join_all(calls).await;
    let mut stored: Vec<u32> = replies.iter().flatten().map(|r| r.placements[0].uid).collect();
    stored.sort_unstable();
    assert_eq!(stored, [LAST - 1, LAST], "the two UIDs left are given, once each: {replies:?}");
    for refused in replies.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
        assert!(refused.message().contains("run out of UIDs"), "{refused:?}");
    }
    assert_eq!(stack.inbox_uids(account).await, stored, "nothing stored past the last UID");
    let used: (i64, i64) = sqlx::query_as("SELECT used_messages, uidnext FROM accounts a JOIN mailboxes m ON m.account_id = a.id WHERE a.id = $1 AND m.name = 'INBOX'")
        .bind(account)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(used, (2, i64::from(LAST) + 1), "the quota counts the two, and UIDNEXT stops past the last");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recipient_that_fails_for_good_gets_the_sender_one_dsn() {
    let mut stack = TestStack::builder().roles(&[Role::Mailbox, Role::SmtpIngress, Role::Access]).start().await;
    let sender = stack.add_account("henry@example.org", "pw").await;
    stack.add_account("grace@example.org", "pw").await;
    let sent =
        smtp_send(stack.smtp_addr(), "henry@example.org", &["grace@example.org"], &message("grace", "gone")).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { code: 250, .. }), "{sent:?}");
    // Between RCPT and delivery the account goes away: delivery now fails permanently.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url).await.unwrap();
    sqlx::query("UPDATE accounts SET disabled = true WHERE address = 'grace@example.org'")
        .execute(&mut db)
        .await
        .unwrap();

    stack.start_roles(&[Role::Relay]).await;
    stack.wait_for_inbox(sender, 1, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    let read = mailbus_tests::clients::pop3_session(
        stack.pop3_addr(),
        "henry@example.org",
        "pw",
        mailbus_tests::clients::Pop3End::Quit,
    )
    .await;
    let dsn = String::from_utf8_lossy(&read.messages[0]);
    assert!(dsn.contains("Subject: Undelivered Mail Returned to Sender"), "{dsn}");
    assert!(dsn.contains("Content-Type: multipart/report; report-type=delivery-status"), "{dsn}");
    assert!(dsn.contains("Final-Recipient: rfc822; grace@example.org\r\nAction: failed\r\nStatus: 5.1.1"), "{dsn}");
    assert!(dsn.contains("Subject: gone"), "the original message comes back: {dsn}");
    assert_eq!(stack.inbox_uids(sender).await.len(), 1, "exactly one DSN");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bounce_that_fails_for_good_is_kept_on_the_dead_letter_stream_not_bounced() {
    let mut stack = TestStack::builder().roles(&[Role::Mailbox, Role::SmtpIngress]).start().await;
    stack.add_account("grace@example.org", "pw").await;
    let sent = smtp_send(stack.smtp_addr(), "", &["grace@example.org"], &message("grace", "dead")).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { code: 250, .. }), "{sent:?}");
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url).await.unwrap();
    sqlx::query("UPDATE accounts SET disabled = true").execute(&mut db).await.unwrap();

    stack.start_roles(&[Role::Relay]).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    let queue = stack.queue().await;
    let mut dead = queue.jetstream().get_stream(queue.names().dead_letter_stream()).await.unwrap();
    assert_eq!(dead.info().await.unwrap().state.messages, 1, "the message is kept for an operator");
    let kept = dead.get_last_raw_message_by_subject(&queue.names().dead_letter_subject()).await.unwrap();
    let envelope = Envelope::decode(kept.payload.clone()).unwrap();
    let reason = kept.headers.get("Mailbus-Dead-Reason").map(|v| v.as_str().to_owned()).unwrap_or_default();
    assert!(reason.contains("null sender"), "{reason}");
    assert!(queue.body_of(&envelope).await.is_ok(), "its body is kept with it");
    stack.stop().await;
}

/// A repeated enqueue (a DSN queued again after a lost ack, a client's resend) is stored once, and the
/// first envelope's large body is neither overwritten nor deleted by the repeat, whatever body key the
/// caller had in mind.
#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_enqueue_keeps_the_first_body_and_leaves_no_other() {
    // No relay: the envelope stays on the queue for the test to look at.
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let queue = stack.queue().await;
    let envelope = Envelope { queue_id: "0".repeat(31) + "1", body_key: "shared".into(), ..Default::default() };
    let first = vec![b'a'; mailbus_jetstream::INLINE_LIMIT + 1];
    let second = vec![b'b'; mailbus_jetstream::INLINE_LIMIT + 1];
    queue.enqueue(&envelope, &first, "dsn-once").await.unwrap();
    queue.enqueue(&envelope, &second, "dsn-once").await.unwrap();
    let queued = queue.list(10).await.unwrap();
    assert_eq!(queued.len(), 1, "stored once");
    assert!(queue.body_of(&queued[0].1).await.unwrap() == first, "the first body, intact");
    let bodies = queue.jetstream().get_object_store(queue.names().bodies_bucket()).await.unwrap();
    let names: Vec<String> = bodies.list().await.unwrap().map(|info| info.unwrap().name).collect().await;
    assert_eq!(names, [queued[0].1.body_key.clone()], "the repeat's body is gone");
    stack.stop().await;
}

/// A body bucket whose stream has `allow_direct` off (async-nats turns it on, but a bucket made by
/// another client or by hand may not have it) is turned over to direct gets when the queue opens, and its
/// bodies read as before; a body that is gone, or was deleted, is `MissingBody`, which the relay
/// dead-letters.
#[tokio::test(flavor = "multi_thread")]
async fn an_old_body_bucket_gets_direct_gets_on_start_up_and_a_gone_body_is_missing() {
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let names = mailbus_jetstream::Names::new(&prefix).unwrap();
    let infra = tokio::task::spawn_blocking(infra::Infra::get).await.unwrap();
    let nats = mailbus_jetstream::connect(infra.nats_url(), "test").await.unwrap();
    let jetstream = async_nats::jetstream::new(nats.clone());
    // The object store's own stream, as async-nats makes it, with allow_direct off.
    let bucket = names.bodies_bucket();
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: names.bodies_stream(),
            subjects: vec![format!("$O.{bucket}.C.>"), format!("$O.{bucket}.M.>")],
            discard: async_nats::jetstream::stream::DiscardPolicy::New,
            allow_rollup: true,
            allow_direct: false,
            ..Default::default()
        })
        .await
        .unwrap();
    let old = jetstream.get_object_store(&bucket).await.unwrap();
    let body: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    old.put("kept", &mut body.as_slice()).await.unwrap();
    old.put("deleted", &mut body.as_slice()).await.unwrap();
    old.delete("deleted").await.unwrap();
    let mut stream = jetstream.get_stream(names.bodies_stream()).await.unwrap();
    assert!(!stream.info().await.unwrap().config.allow_direct, "made the old way");

    let queue = mailbus_jetstream::Queue::open(nats, names.clone(), Duration::from_secs(5)).await.unwrap();
    assert!(stream.info().await.unwrap().config.allow_direct, "direct gets turned on");
    assert!(queue.body("kept").await.unwrap() == body, "the old body reads back intact");
    for key in ["deleted", "never-there"] {
        let read = queue.body(key).await;
        assert!(matches!(read, Err(mailbus_jetstream::QueueError::MissingBody { .. })), "{key}: {read:?}");
    }
    assert_eq!(stream.info().await.unwrap().state.consumer_count, 0, "no consumer made");
}
