//! The relay as the outgoing half of a mail server: remote delivery over SMTP, retries, partial success,
//! bounces and expiry, the 7-bit downgrade, and the textbook path between two domains.

use mailbus_tests::clients::{Pop3End, SmtpOutcome, SubmitMode, pop3_session, smtp_send, smtp_submit};
use mailbus_tests::fake_smtp::{FakeSmtp, Script};
use mailbus_tests::{Infra, TestStack};

use crate::{PATIENCE, message};

/// A stack whose relay sends `remote.test` to `fake` and retries every second.
async fn stack_towards(fake: &FakeSmtp, lifetime_secs: &str) -> TestStack {
    TestStack::builder()
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("remote.test={},*=127.0.0.1:9", fake.addr()))
        .set("MAILBUS_RELAY_RETRY_SCHEDULE", "1s")
        .set("MAILBUS_RELAY_MAX_LIFETIME_SECS", lifetime_secs)
        .set("MAILBUS_RELAY_SMTP_TIMEOUT_SECS", "10")
        .start()
        .await
}

async fn send(stack: &TestStack, from: &str, to: &[&str], body: &[u8]) {
    let sent = smtp_submit(
        stack.submission.unwrap(),
        SubmitMode::StartTls,
        &Infra::get().tls_cert,
        (from, "pw"),
        from,
        to,
        body,
    )
    .await;
    assert_eq!(sent.outcome, "ok", "{sent:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_recipients_get_one_transaction_and_partial_failures_are_retried_alone() {
    let fake = FakeSmtp::start(Script {
        rcpt: Box::new(|to, attempt| match (to, attempt) {
            ("later@remote.test", 1) => "450 4.2.1 mailbox busy, try later".into(),
            _ => "250 2.1.5 Ok".into(),
        }),
        ..Default::default()
    })
    .await;
    let stack = stack_towards(&fake, "3600").await;
    stack.add_account("ann@example.org", "pw").await;
    let body = message("now@remote.test, later@remote.test", "remote");
    send(&stack, "ann@example.org", &["now@remote.test", "later@remote.test"], &body).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    let received = fake.received();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0].rcpt_to, ["now@remote.test"], "first attempt: only the recipient that accepted");
    assert_eq!(received[1].rcpt_to, ["later@remote.test"], "the retry goes to the failed recipient alone");
    assert_eq!(fake.attempts("now@remote.test"), 1, "a recipient that accepted is never sent to again");
    assert_eq!(received[0].mail_from, "ann@example.org");
    assert!(
        received[1].data.ends_with(b"\r\n.A line that starts with a dot.\r\n\r\nBye.\r\n"),
        "dot-stuffing is undone by the peer"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_refusal_bounces_once_and_a_never_ending_delay_expires_into_one_dsn() {
    let fake = FakeSmtp::start(Script {
        rcpt: Box::new(|to, _| match to {
            "nobody@remote.test" => "550 5.1.1 <nobody@remote.test>: user unknown".into(),
            _ => "451 4.3.0 try again".into(),
        }),
        ..Default::default()
    })
    .await;
    let stack = stack_towards(&fake, "3").await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    send(&stack, "ann@example.org", &["nobody@remote.test"], &message("nobody", "bounced")).await;
    stack.wait_for_inbox(ann, 1, PATIENCE).await;
    send(&stack, "ann@example.org", &["slow@remote.test"], &message("slow", "expired")).await;
    stack.wait_for_inbox(ann, 2, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    assert_eq!(stack.inbox_uids(ann).await.len(), 2, "one DSN each, no more");
    let read = pop3_session(stack.pop3_addr(), "ann@example.org", "pw", Pop3End::Quit).await;
    let (bounce, expiry) = (String::from_utf8_lossy(&read.messages[0]), String::from_utf8_lossy(&read.messages[1]));
    assert!(bounce.contains("Status: 5.1.1") && bounce.contains("Diagnostic-Code: smtp; 550 5.1.1"), "{bounce}");
    assert!(expiry.contains("Status: 4.4.7") && expiry.contains("Action: failed"), "{expiry}");
    assert!(fake.attempts("slow@remote.test") >= 2, "the delay was retried before it expired");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_8bit_message_reaches_a_7bit_peer_as_quoted_printable_that_decodes_to_the_same_text() {
    let fake = FakeSmtp::start(Script { eight_bit_mime: false, ..Default::default() }).await;
    let stack = stack_towards(&fake, "3600").await;
    stack.add_account("ann@example.org", "pw").await;
    let text = "Grüße aus Köln — ça va? Ärger, Öl, Übel.\r\n";
    let body = format!(
        "From: ann@example.org\r\nTo: peer@remote.test\r\nSubject: 8bit\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}"
    );
    send(&stack, "ann@example.org", &["peer@remote.test"], body.as_bytes()).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    let received = fake.received();
    assert_eq!(received.len(), 1);
    let data = &received[0].data;
    assert!(data.iter().all(|&b| b < 0x80), "8-bit octets reached a 7-bit peer");
    let sent = String::from_utf8(data.clone()).unwrap();
    assert!(sent.contains("Content-Transfer-Encoding: quoted-printable\r\n"), "{sent}");
    let encoded = sent.split("\r\n\r\n").nth(1).unwrap();
    let decoded = tokio::process::Command::new("python3")
        .args(["-c", "import quopri,sys; sys.stdout.buffer.write(quopri.decodestring(sys.argv[1].encode()))", encoded])
        .output()
        .await
        .unwrap();
    // Quoted-printable line breaks are canonical CRLF; Python gives them back as LF.
    assert_eq!(String::from_utf8(decoded.stdout).unwrap().trim_end(), text.trim_end());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_domains_two_stacks_the_textbook_path() {
    // b.test: the receiving domain, its own full stack.
    let b = TestStack::start().await;
    b.add_account("bob@b.test", "bob pw").await;
    let bob = b.add_account("bob2@b.test", "pw").await;
    // a.test: the sending domain; its relay finds b.test's port 25 through the transport map.
    let a = TestStack::builder()
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("b.test={},*=127.0.0.1:9", b.smtp_addr()))
        .start()
        .await;
    a.add_account("alice@a.test", "pw").await;
    let body = message("bob2@b.test", "across");
    let sent = smtp_submit(
        a.submission.unwrap(),
        SubmitMode::StartTls,
        &Infra::get().tls_cert,
        ("alice@a.test", "pw"),
        "alice@a.test",
        &["bob2@b.test"],
        &body,
    )
    .await;
    assert_eq!(sent.outcome, "ok", "{sent:?}");
    b.wait_for_inbox(bob, 1, PATIENCE).await;
    let read = pop3_session(b.pop3_addr(), "bob2@b.test", "pw", Pop3End::DeleteAndQuit).await;
    let arrived = String::from_utf8_lossy(&read.messages[0]);
    assert!(arrived.ends_with(std::str::from_utf8(&body).unwrap()), "{arrived}");
    // Two Received: fields, newest first: b.test's port 25 (over STARTTLS, from a.test's relay), then
    // a.test's submission.
    assert!(arrived.starts_with("Received: from "), "{arrived}");
    assert_eq!(arrived.matches("Received: ").count(), 2, "{arrived}");
    assert!(arrived.contains("with ESMTPS id"), "a.test's relay used STARTTLS: {arrived}");
    assert!(arrived.contains("with ESMTPSA id"), "{arrived}");
    // Mail from b.test back to a.test over port 25 without a route is refused: no open relay.
    let back = smtp_send(b.smtp_addr(), "bob2@b.test", &["alice@a.test"], &message("alice", "no")).await;
    assert!(matches!(back, SmtpOutcome::RecipientsRefused(_)), "{back:?}");
    a.stop().await;
    b.stop().await;
}
