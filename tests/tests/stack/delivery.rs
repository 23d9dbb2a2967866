//! The life of a message: SMTP in, relay, mailbox, POP3 out.

use futures::StreamExt;
use mailbus_proto::v1 as pb;
use mailbus_tests::TestStack;
use mailbus_tests::clients::{Pop3End, SmtpOutcome, pop3_session, smtp_send};
use mailbus_tests::smtp_client::SmtpClient;

use crate::{PATIENCE, message};

#[tokio::test(flavor = "multi_thread")]
async fn smtp_message_is_read_back_byte_identical_over_pop3_and_quit_deletes_it() {
    let stack = TestStack::start().await;
    let account = stack.add_account("alice@example.org", "secret one").await;
    let sent = message("alice@example.org", "roundtrip");

    let outcome = smtp_send(stack.smtp_addr(), "sender@example.net", &["alice@example.org"], &sent).await;
    let SmtpOutcome::Accepted { code: 250, text } = outcome else { panic!("not accepted: {outcome:?}") };
    assert!(text.starts_with("2.0.0 Ok: queued as "), "{text}");
    stack.wait_for_inbox(account, 1, PATIENCE).await;

    // A session that deletes and then drops the connection without QUIT deletes nothing (RFC 1939 §6).
    let first = pop3_session(stack.pop3_addr(), "alice@example.org", "secret one", Pop3End::DeleteAndDrop).await;
    assert_eq!(first.stat.0, 1);
    let received = &first.messages[0];
    let (trace, rest) = split_received(received);
    assert_eq!(rest, sent.as_slice(), "the message must arrive unchanged apart from Received:");
    assert!(trace.starts_with(b"Received: from client.test ([127.0.0.1])\r\n\tby mx.test (mailbus) with ESMTP id "));
    // LIST and STAT count exactly the octets RETR delivers (before dot-stuffing).
    assert_eq!(first.list, vec![(1, received.len() as u64)]);
    assert_eq!(first.stat.1, received.len() as u64);
    stack.wait_for_inbox(account, 1, PATIENCE).await;

    let second = pop3_session(stack.pop3_addr(), "alice@example.org", "secret one", Pop3End::DeleteAndQuit).await;
    assert_eq!(second.messages, first.messages);
    assert_eq!(second.uidl, first.uidl, "UIDL values are stable across sessions");
    assert!(second.quit.as_deref().unwrap_or_default().starts_with("+OK"), "{:?}", second.quit);
    assert!(stack.inbox_uids(account).await.is_empty(), "QUIT applies the deletions");

    let third = pop3_session(stack.pop3_addr(), "alice@example.org", "secret one", Pop3End::Quit).await;
    assert_eq!(third.stat, (0, 0));
    stack.stop().await;
}

/// Splits a delivered message into its leading `Received:` field (with folded lines) and the rest.
fn split_received(message: &[u8]) -> (&[u8], &[u8]) {
    assert!(message.starts_with(b"Received: "), "no Received: first");
    let mut end = 0;
    while let Some(pos) = message[end..].windows(2).position(|w| w == b"\r\n") {
        end += pos + 2;
        if !matches!(message.get(end), Some(b' ' | b'\t')) {
            break;
        }
    }
    message.split_at(end)
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_users_get_550_and_other_domains_554() {
    let stack = TestStack::start().await;
    let bob = stack.add_account("bob@example.org", "pw").await;
    let body = message("x", "refused");
    let unknown = smtp_send(stack.smtp_addr(), "sender@example.net", &["nobody@example.org"], &body).await;
    assert_eq!(unknown, SmtpOutcome::RecipientsRefused(vec![("nobody@example.org".into(), 550)]));
    let relay = smtp_send(stack.smtp_addr(), "sender@example.net", &["someone@elsewhere.net"], &body).await;
    assert_eq!(relay, SmtpOutcome::RecipientsRefused(vec![("someone@elsewhere.net".into(), 554)]));
    // One good recipient among bad ones: the message goes to the good one only.
    let mixed =
        smtp_send(stack.smtp_addr(), "sender@example.net", &["nobody@example.org", "bob@example.org"], &body).await;
    assert!(matches!(mixed, SmtpOutcome::Accepted { code: 250, .. }), "{mixed:?}");
    stack.wait_for_inbox(bob, 1, PATIENCE).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_pop3_password_is_refused_and_unknown_users_look_the_same() {
    let stack = TestStack::start().await;
    stack.add_account("carol@example.org", "right").await;
    let pop3 = stack.pop3_addr();
    for (user, password) in [("carol@example.org", "wrong"), ("nobody@example.org", "right")] {
        let result = tokio::process::Command::new("python3")
            .args(["-c", "import poplib,sys\np=poplib.POP3(sys.argv[1],int(sys.argv[2]))\np.user(sys.argv[3])\ntry:\n  p.pass_(sys.argv[4]); print('accepted')\nexcept poplib.error_proto as e: print(e.args[0].decode())"])
            .args([pop3.ip().to_string(), pop3.port().to_string(), user.into(), password.into()])
            .output()
            .await
            .expect("python3");
        let said = String::from_utf8_lossy(&result.stdout);
        assert_eq!(said.trim(), "-ERR [AUTH] Authentication failed", "{user}");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_message_goes_through_the_body_store_and_arrives_intact() {
    let stack = TestStack::start().await;
    let account = stack.add_account("lars@example.org", "pw").await;
    // Over the inline limit, so the body travels through the object store, not inside the envelope.
    let line = "The quick brown fox jumps over the lazy dog. 0123456789 ".repeat(16);
    let mut sent = b"From: sender@example.net\r\nTo: lars@example.org\r\nSubject: large\r\n\r\n".to_vec();
    while sent.len() <= mailbus_jetstream::INLINE_LIMIT * 2 {
        sent.extend_from_slice(line.as_bytes());
        sent.extend_from_slice(b"\r\n");
    }
    let outcome = smtp_send(stack.smtp_addr(), "sender@example.net", &["lars@example.org"], &sent).await;
    assert!(matches!(outcome, SmtpOutcome::Accepted { code: 250, .. }), "{outcome:?}");
    stack.wait_for_inbox(account, 1, PATIENCE).await;
    let read = pop3_session(stack.pop3_addr(), "lars@example.org", "pw", Pop3End::Quit).await;
    let (_, rest) = split_received(&read.messages[0]);
    assert_eq!(rest.len(), sent.len());
    assert!(rest == sent.as_slice(), "the large message changed on the way");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_sent_again_is_queued_once_and_one_without_a_message_id_twice() {
    let stack = TestStack::start().await;
    let account = stack.add_account("rex@example.org", "pw").await;
    let accepted =
        |outcome: SmtpOutcome| assert!(matches!(outcome, SmtpOutcome::Accepted { code: 250, .. }), "{outcome:?}");
    // A client that never saw the 250 sends the same transaction again: small, and large enough for
    // the body store. Each send gets a queue id of its own, so only the queue stream's deduplication
    // keeps the repeat from being delivered.
    let small = message("rex@example.org", "sent-twice");
    let mut large = message("rex@example.org", "large-sent-twice");
    large.extend(b"x".repeat(70).iter().chain(b"\r\n").cycle().take(400 * 1024));
    for body in [&small, &large] {
        for _ in 0..2 {
            accepted(smtp_send(stack.smtp_addr(), "sender@example.net", &["rex@example.org"], body).await);
        }
    }
    // The same message from another sender is another transaction.
    let other = smtp_send(stack.smtp_addr(), "other@example.net", &["rex@example.org"], &small).await;
    assert!(matches!(other, SmtpOutcome::Accepted { code: 250, .. }), "{other:?}");
    // Without a Message-ID, two identical messages are two messages.
    let anonymous = b"From: a@example.net\r\nSubject: no id\r\n\r\nSame words.\r\n".to_vec();
    for _ in 0..2 {
        let sent = smtp_send(stack.smtp_addr(), "sender@example.net", &["rex@example.org"], &anonymous).await;
        assert!(matches!(sent, SmtpOutcome::Accepted { code: 250, .. }), "{sent:?}");
    }
    stack.wait_for_empty_queue(PATIENCE).await;
    assert_eq!(stack.inbox_uids(account).await.len(), 5, "small, large, from another sender, two without id");
    // The repeat's copy of the large body was deleted, and the first one once it was delivered.
    let queue = stack.queue().await;
    let bodies = queue.jetstream().get_object_store(queue.names().bodies_bucket()).await.unwrap();
    let left: Vec<String> = bodies.list().await.unwrap().map(|info| info.unwrap().name).collect().await;
    assert!(left.is_empty(), "bodies left in the store: {left:?}");
    stack.stop().await;
}

/// How many large messages the burst sends at once (issue 18 asks for 200 of 1 MiB: this 2-core machine
/// takes them in well under a minute).
const BURST: usize = 200;
/// Connections the burst is sent over.
const BURST_CONNECTIONS: usize = 8;

/// A message of about 1 MiB, distinct for each `index`: a short text part and a base64 attachment of
/// octets no two messages share (so the store's deduplication or compression could hide nothing).
fn large_message(index: usize) -> Vec<u8> {
    use base64::Engine as _;
    let mut message = format!(
        "From: sender@example.net\r\nTo: burst@example.org\r\nSubject: burst-{index}\r\nMessage-ID: <burst-{index}@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nNumber {index}.\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    let mut state = index as u64 + 1;
    let mut octets = Vec::with_capacity(57);
    while message.len() < (1 << 20) - 100 {
        octets.clear();
        for _ in 0..57 {
            // xorshift64: cheap octets that differ between messages.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            octets.push(state as u8);
        }
        message.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(&octets).as_bytes());
        message.extend_from_slice(b"\r\n");
    }
    message.extend_from_slice(b"--b--\r\n");
    message
}

/// The number of consumers on the body store's stream right now, as nats-server counts them.
async fn body_consumers(queue: &mailbus_jetstream::Queue) -> usize {
    let mut stream = queue.jetstream().get_stream(queue.names().bodies_stream()).await.expect("the body stream");
    stream.info().await.expect("body stream info").state.consumer_count
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_large_messages_arrives_intact_without_a_consumer_per_body() {
    let stack = TestStack::start().await;
    let account = stack.add_account("burst@example.org", "pw").await;
    let queue = stack.queue().await;
    let before = body_consumers(&queue).await;

    // Sample nats-server's consumer count on the body stream for as long as the burst lasts.
    let stop = tokio_util::sync::CancellationToken::new();
    let sampler = {
        let (queue, stop) = (queue.clone(), stop.clone());
        tokio::spawn(async move {
            let mut most = 0;
            while !stop.is_cancelled() {
                most = most.max(body_consumers(&queue).await);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            most
        })
    };
    let smtp = stack.smtp_addr();
    let senders = (0..BURST_CONNECTIONS).map(|connection| {
        tokio::spawn(async move {
            let mut client = SmtpClient::open(smtp).await.expect("connecting to SMTP");
            for index in (connection..BURST).step_by(BURST_CONNECTIONS) {
                let reply =
                    client.send("sender@example.net", "burst@example.org", &large_message(index)).await.unwrap();
                assert_eq!(reply.code, 250, "message {index}: {}", reply.text);
            }
            client.quit().await;
        })
    });
    for sender in futures::future::join_all(senders).await {
        sender.expect("a sender failed");
    }
    let uids = stack.wait_for_inbox(account, BURST, PATIENCE * 2).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    stop.cancel();
    let during = sampler.await.unwrap();
    let after = body_consumers(&queue).await;

    // Every message arrived as it was sent, each once.
    let mut seen = std::collections::BTreeSet::new();
    for uid in uids {
        let request = pb::FetchMessageRequest { account_id: account, mailbox: "INBOX".into(), uid };
        let mut chunks = stack.mailbox().await.fetch_message(request).await.unwrap().into_inner();
        let mut stored = Vec::new();
        while let Some(chunk) = chunks.message().await.unwrap() {
            stored.extend_from_slice(&chunk.data);
        }
        let (_, rest) = split_received(&stored);
        let subject =
            String::from_utf8_lossy(rest).lines().find_map(|l| l.strip_prefix("Subject: burst-")?.parse().ok());
        let index: usize = subject.expect("a burst subject");
        assert!(rest == large_message(index).as_slice(), "message {index} changed on the way");
        assert!(seen.insert(index), "message {index} delivered twice");
    }
    assert_eq!(seen.len(), BURST);
    // Reading the bodies made no consumers on the body stream: before, during and after.
    assert_eq!((before, during, after), (0, 0, 0), "consumers on the body stream before, during and after");
    stack.stop().await;
}
