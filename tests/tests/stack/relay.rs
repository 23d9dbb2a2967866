//! The relay as the outgoing half of a mail server: remote delivery over SMTP, retries, partial success,
//! bounces and expiry, the 7-bit downgrade, and the textbook path between two domains.

use mailbus_tests::clients::{Pop3End, SmtpOutcome, SubmitMode, pop3_session, smtp_send, smtp_submit};
use mailbus_tests::fake_smtp::{FakeSmtp, Script};
use mailbus_tests::{Infra, TestStack, wait_until};

use crate::{PATIENCE, message};

/// A submission session on the bare wire, logged in with AUTH PLAIN (the stack must allow AUTH in the
/// clear: MAILBUS_SMTP_PLAINTEXT_AUTH=true), for tests that need exact MAIL and RCPT parameters.
async fn raw_submission(stack: &TestStack, user: &str, password: &str) -> mailbus_tests::clients::SmtpRaw {
    use base64::Engine as _;
    let (mut smtp, _) = mailbus_tests::clients::SmtpRaw::connect(stack.submission.unwrap()).await;
    smtp.command("EHLO client.test").await;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    assert_eq!(smtp.command(&format!("AUTH PLAIN {token}")).await.code, 235);
    smtp
}

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
    let stack = stack_towards(&fake, "4").await;
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

/// `mailbus admin queue …` against this stack's relay; returns (exit code, stdout).
pub(crate) async fn queue_admin(stack: &TestStack, args: &[&str]) -> (i32, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailbus-under-test"))
        .args(["admin", "queue"])
        .args(args)
        .env_clear()
        .env("MAILBUS_RELAY_URL", format!("http://{}", stack.relay_grpc.unwrap()))
        .output()
        .await
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_list_hold_release_and_bounce_queued_mail() {
    let fake =
        FakeSmtp::start(Script { rcpt: Box::new(|_, _| "451 4.3.0 not now".into()), ..Default::default() }).await;
    let stack = TestStack::builder()
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("remote.test={},*=127.0.0.1:9", fake.addr()))
        .set("MAILBUS_RELAY_RETRY_SCHEDULE", "1h")
        .start()
        .await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    send(&stack, "ann@example.org", &["stuck@remote.test"], &message("stuck", "queued")).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let listing = loop {
        let (code, listing) = queue_admin(&stack, &["list"]).await;
        assert_eq!(code, 0, "{listing}");
        // Between a requeue and the ack of the attempt before it, both copies are listed; wait for one.
        if listing.contains("attempts 1") && listing.matches("ann@example.org").count() == 1 {
            break listing;
        }
        assert!(tokio::time::Instant::now() < deadline, "the first attempt never happened: {listing}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(listing.contains("ann@example.org") && listing.contains("next attempt"), "{listing}");
    assert!(listing.contains("stuck@remote.test") && listing.contains("pending  (451 4.3.0 not now)"), "{listing}");
    let queue_id = listing.split_whitespace().next().unwrap().to_owned();

    let (code, out) = queue_admin(&stack, &["hold", &queue_id]).await;
    assert_eq!(code, 0, "{out}");
    assert!(queue_admin(&stack, &["show", &queue_id]).await.1.contains("held"));
    let (code, out) = queue_admin(&stack, &["release", &queue_id]).await;
    assert_eq!(code, 0, "{out}");
    // Released means due now: the relay tries again at once.
    wait_until(PATIENCE, "release did not trigger an attempt", async || fake.attempts("stuck@remote.test") >= 2).await;
    let (code, out) = queue_admin(&stack, &["bounce", "--all"]).await;
    assert_eq!(code, 0, "{out}");
    stack.wait_for_inbox(ann, 1, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    let read = pop3_session(stack.pop3_addr(), "ann@example.org", "pw", Pop3End::Quit).await;
    assert!(String::from_utf8_lossy(&read.messages[0]).contains("returned to sender by the mail system administrator"));
    let (code, out) = queue_admin(&stack, &["show", &queue_id]).await;
    assert_ne!(code, 0, "a bounced message has left the queue: {out}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_killed_in_the_middle_of_a_delivery_loses_nothing() {
    let fake =
        FakeSmtp::start(Script { first_data_delay: std::time::Duration::from_secs(60), ..Default::default() }).await;
    let transports = format!("remote.test={},*=127.0.0.1:9", fake.addr());
    let mut stack = TestStack::builder()
        .roles(&[mailbus::roles::Role::Mailbox, mailbus::roles::Role::SmtpIngress])
        .set("MAILBUS_RELAY_TRANSPORTS", &transports)
        .set("MAILBUS_RELAY_ACK_WAIT_SECS", "2")
        .start()
        .await;
    stack.add_account("ann@example.org", "pw").await;
    // The relay that will die runs as its own process.
    let port = || format!("127.0.0.1:{}", mailbus_devstack::free_port().unwrap());
    let mut relay = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailbus-under-test"))
        .arg("relay")
        .env_clear()
        .env("NATS_URL", stack.settings.string("NATS_URL").unwrap())
        .env("MAILBUS_NATS_PREFIX", stack.settings.string("MAILBUS_NATS_PREFIX").unwrap())
        .env("MAILBUS_MAILBOX_URL", stack.mailbox_url())
        .env("MAILBUS_RELAY_TRANSPORTS", &transports)
        .env("MAILBUS_RELAY_ACK_WAIT_SECS", "2")
        .env("MAILBUS_RELAY_GRPC_LISTEN", port())
        .env("MAILBUS_RELAY_METRICS_LISTEN", port())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    send(&stack, "ann@example.org", &["far@remote.test"], &message("far", "killed")).await;
    // Wait until the remote has the message and is slow to answer, then kill the relay (SIGKILL).
    wait_until(PATIENCE, "the first relay never reached DATA", async || !fake.received().is_empty()).await;
    relay.kill().await.unwrap();
    // Another relay takes the unacknowledged message over and delivers it.
    stack.start_roles(&[mailbus::roles::Role::Relay]).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    assert!(fake.attempts("far@remote.test") >= 2, "the message was delivered again after the kill");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dsn_parameters_are_honoured_success_never_ret_and_envid() {
    let fake = FakeSmtp::start(Script {
        rcpt: Box::new(|to, _| if to == "bad@remote.test" { "550 5.1.1 no".into() } else { "250 2.1.5 Ok".into() }),
        ..Default::default()
    })
    .await;
    let stack = TestStack::builder()
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("remote.test={},*=127.0.0.1:9", fake.addr()))
        .set("MAILBUS_SMTP_PLAINTEXT_AUTH", "true")
        .start()
        .await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    let mut smtp = raw_submission(&stack, "ann@example.org", "pw").await;
    assert_eq!(smtp.command("MAIL FROM:<ann@example.org> RET=HDRS ENVID=env-42").await.code, 250);
    assert_eq!(smtp.command("RCPT TO:<ok@remote.test> NOTIFY=SUCCESS ORCPT=rfc822;ok@remote.test").await.code, 250);
    assert_eq!(smtp.command("RCPT TO:<bad@remote.test> NOTIFY=NEVER").await.code, 250);
    assert_eq!(smtp.command("DATA").await.code, 354);
    smtp.send(b"Subject: dsn params\r\n\r\nsecret body\r\n.\r\n").await;
    assert_eq!(smtp.reply().await.code, 250);
    stack.wait_for_empty_queue(PATIENCE).await;
    stack.wait_for_inbox(ann, 1, PATIENCE).await;
    let read = pop3_session(stack.pop3_addr(), "ann@example.org", "pw", Pop3End::Quit).await;
    assert_eq!(read.messages.len(), 1, "a success report, and no failure report for NOTIFY=NEVER");
    let report = String::from_utf8_lossy(&read.messages[0]);
    assert!(report.contains("Subject: Successful Mail Delivery Report"), "{report}");
    assert!(report.contains("Original-Envelope-Id: env-42"), "{report}");
    // The fake peer does not speak DSN, so the report can only say the message was relayed (RFC 3461 §6.2).
    assert!(
        report.contains(
            "Final-Recipient: rfc822; ok@remote.test\r\nOriginal-Recipient: rfc822; ok@remote.test\r\nAction: relayed"
        ),
        "{report}"
    );
    assert!(!report.contains("bad@remote.test"), "{report}");
    assert!(
        report.contains("Content-Type: text/rfc822-headers") && !report.contains("secret body"),
        "RET=HDRS: {report}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_to_one_destination_share_a_connection() {
    let fake = FakeSmtp::start(Script::default()).await;
    let stack = TestStack::builder()
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("remote.test={},*=127.0.0.1:9", fake.addr()))
        .set("MAILBUS_RELAY_DESTINATION_CONCURRENCY", "1")
        .start()
        .await;
    stack.add_account("ann@example.org", "pw").await;
    for n in 0..4 {
        send(&stack, "ann@example.org", &[&format!("r{n}@remote.test")], &message("r", &format!("reuse-{n}"))).await;
        wait_until(PATIENCE, &format!("message {n} never arrived"), async || fake.received().len() > n).await;
    }
    assert_eq!(fake.received().len(), 4);
    assert_eq!(fake.connections(), 1, "four messages in a row, one connection");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_delay_gets_one_warning_before_the_final_report() {
    let fake =
        FakeSmtp::start(Script { rcpt: Box::new(|_, _| "451 4.3.0 not now".into()), ..Default::default() }).await;
    let stack = TestStack::builder()
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("remote.test={},*=127.0.0.1:9", fake.addr()))
        .set("MAILBUS_RELAY_RETRY_SCHEDULE", "1s")
        .set("MAILBUS_RELAY_DELAY_WARNING_SECS", "1")
        .set("MAILBUS_RELAY_MAX_LIFETIME_SECS", "5")
        .set("MAILBUS_SMTP_PLAINTEXT_AUTH", "true")
        .start()
        .await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    let mut smtp = raw_submission(&stack, "ann@example.org", "pw").await;
    assert_eq!(smtp.command("MAIL FROM:<ann@example.org>").await.code, 250);
    assert_eq!(smtp.command("RCPT TO:<slow@remote.test> NOTIFY=DELAY,FAILURE").await.code, 250);
    assert_eq!(smtp.command("DATA").await.code, 354);
    smtp.send(b"Subject: slow\r\n\r\nbody\r\n.\r\n").await;
    assert_eq!(smtp.reply().await.code, 250);
    stack.wait_for_inbox(ann, 2, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    let read = pop3_session(stack.pop3_addr(), "ann@example.org", "pw", Pop3End::Quit).await;
    assert_eq!(read.messages.len(), 2, "one warning, one final report");
    let (warning, last) = (String::from_utf8_lossy(&read.messages[0]), String::from_utf8_lossy(&read.messages[1]));
    assert!(
        warning.contains("Subject: Delayed Mail (still being retried)") && warning.contains("Action: delayed"),
        "{warning}"
    );
    assert!(last.contains("Action: failed") && last.contains("Status: 4.4.7"), "{last}");
    stack.stop().await;
}

/// A stack whose relay is in the middle of its first attempt at a message to `now@remote.test` (which
/// accepts) and `later@remote.test` (which never does): the peer has seen both RCPTs and sits on DATA for
/// a few seconds. Returns the stack, the message's queue id and the sender's account.
async fn attempt_in_flight(fake: &FakeSmtp) -> (TestStack, String, i64) {
    let stack = stack_towards(fake, "3600").await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    let body = message("now@remote.test, later@remote.test", "raced");
    send(&stack, "ann@example.org", &["now@remote.test", "later@remote.test"], &body).await;
    wait_until(PATIENCE, "the attempt never reached RCPT", async || fake.attempts("later@remote.test") == 1).await;
    let queued = stack.queue().await.list(10).await.unwrap();
    assert_eq!(queued.len(), 1, "one message in flight");
    (stack, queued[0].1.queue_id.clone(), ann)
}

fn slow_peer() -> Script {
    slow_peer_answering_later("451 4.3.0 not now")
}

/// A peer slow at its first DATA that takes every recipient but `later@remote.test`, answered `reply`.
fn slow_peer_answering_later(reply: &'static str) -> Script {
    Script {
        rcpt: Box::new(move |to, _| match to {
            "later@remote.test" => reply.into(),
            _ => "250 2.1.5 Ok".into(),
        }),
        first_data_delay: std::time::Duration::from_secs(3),
        ..Default::default()
    }
}

/// An operator's hold during an attempt wins: the attempt's outcome is not requeued as pending beside
/// the held message (it goes into it), so nothing is tried until the release, and the recipient who
/// accepted during that attempt is not sent the message again after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_hold_during_an_attempt_wins_and_keeps_who_accepted() {
    use mailbus_proto::v1::RecipientStatus;
    let fake = FakeSmtp::start(slow_peer()).await;
    let (stack, queue_id, _) = attempt_in_flight(&fake).await;
    let (code, out) = queue_admin(&stack, &["hold", &queue_id]).await;
    assert_eq!(code, 0, "{out}");
    wait_until(PATIENCE, "the attempt never ended", async || fake.received().len() == 1).await;
    let queue = stack.queue().await;
    wait_until(PATIENCE, "not one held message with the attempt's outcome", async || {
        let queued = queue.list(10).await.unwrap();
        queued.len() == 1
            && queued[0].1.held
            && queued[0]
                .1
                .recipients
                .iter()
                .any(|r| r.address == "now@remote.test" && r.status() == RecipientStatus::Delivered)
    })
    .await;
    assert_eq!(fake.attempts("later@remote.test"), 1, "a held message is not tried");

    let (code, out) = queue_admin(&stack, &["release", &queue_id]).await;
    assert_eq!(code, 0, "{out}");
    wait_until(PATIENCE, "release did not trigger an attempt", async || fake.attempts("later@remote.test") >= 2).await;
    assert_eq!(fake.attempts("now@remote.test"), 1, "who accepted during the held attempt is not sent it again");
    stack.stop().await;
}

/// Waits for the attempt to end by yielding to the operator (the relay counts it as
/// `disposition="operator"`; an attempt that did not yield requeues instead, and this never comes), then
/// for the message to be gone from the queue.
async fn yielded_to_operator(stack: &TestStack, what: &str) {
    let metrics = stack.relay_metrics.expect("the relay's metrics");
    let yielded = format!("{what}: the attempt did not yield to the operator");
    wait_until(PATIENCE, &yielded, async || {
        let body = crate::ops::http_get(metrics, "/metrics").await.1;
        body.lines().any(|line| line == "mailbus_relay_messages_total{disposition=\"operator\"} 1")
    })
    .await;
    let gone = format!("{what} is queued again");
    wait_until(PATIENCE, &gone, async || stack.queue().await.list(10).await.unwrap().is_empty()).await;
}

/// An operator's delete during an attempt wins: the attempt does not queue the message again.
#[tokio::test(flavor = "multi_thread")]
async fn a_delete_during_an_attempt_wins() {
    let fake = FakeSmtp::start(slow_peer()).await;
    let (stack, queue_id, _) = attempt_in_flight(&fake).await;
    let (code, out) = queue_admin(&stack, &["delete", &queue_id]).await;
    assert_eq!(code, 0, "{out}");
    wait_until(PATIENCE, "the attempt never ended", async || fake.received().len() == 1).await;
    yielded_to_operator(&stack, "the deleted message").await;
    assert_eq!(fake.attempts("later@remote.test"), 1, "a deleted message is not tried again");
    stack.stop().await;
}

/// An operator's bounce during an attempt wins: the sender gets one report, and the attempt does not
/// queue the message again.
#[tokio::test(flavor = "multi_thread")]
async fn a_bounce_during_an_attempt_wins() {
    let fake = FakeSmtp::start(slow_peer()).await;
    let (stack, queue_id, ann) = attempt_in_flight(&fake).await;
    let (code, out) = queue_admin(&stack, &["bounce", &queue_id]).await;
    assert_eq!(code, 0, "{out}");
    wait_until(PATIENCE, "the attempt never ended", async || fake.received().len() == 1).await;
    stack.wait_for_inbox(ann, 1, PATIENCE).await;
    yielded_to_operator(&stack, "the bounced message").await;
    assert_eq!(fake.attempts("later@remote.test"), 1, "a bounced message is not tried again");
    assert_eq!(stack.inbox_uids(ann).await.len(), 1, "one report");
    stack.stop().await;
}

/// Makes every queue partition refuse anything new (the one holding the in-flight message is full;
/// the others take nothing), so that whatever the attempt queues when it ends fails; returns the
/// partitions' configurations, for [`accept_new_messages`].
async fn refuse_new_messages(stack: &TestStack) -> Vec<async_nats::jetstream::stream::Config> {
    use async_nats::jetstream::stream::{Config, DiscardPolicy};
    let queue = stack.queue().await;
    let jetstream = queue.jetstream();
    let mut configs = Vec::new();
    for partition in queue.partitions().await.unwrap() {
        let mut stream = jetstream.get_stream(queue.names().queue_partition_stream(partition)).await.unwrap();
        let config = stream.info().await.unwrap().config.clone();
        let full = Config { max_messages: 1, discard: DiscardPolicy::New, ..config.clone() };
        let refusing =
            if stream.info().await.unwrap().state.messages == 0 { Config { max_bytes: 1, ..full } } else { full };
        jetstream.update_stream(&refusing).await.unwrap();
        configs.push(config);
    }
    configs
}

async fn accept_new_messages(stack: &TestStack, configs: &[async_nats::jetstream::stream::Config]) {
    let queue = stack.queue().await;
    for config in configs {
        queue.jetstream().update_stream(config).await.unwrap();
    }
}

/// Waits until an attempt's outcome is kept, in the claims bucket of the message's partition.
async fn wait_for_a_kept_outcome(stack: &TestStack) {
    use futures::StreamExt as _;
    let queue = stack.queue().await;
    let mut claims = Vec::new();
    for partition in 0..queue.names().partitions() {
        let bucket = queue.names().queue_partition_claims_bucket(partition);
        claims.push(queue.jetstream().get_key_value(bucket).await.unwrap());
    }
    wait_until(PATIENCE, "the attempt's outcome was never kept", async || {
        for bucket in &claims {
            let keys: Vec<String> = bucket.keys().await.unwrap().filter_map(async |k| k.ok()).collect().await;
            if keys.iter().any(|k| k.ends_with(".outcome")) {
                return true;
            }
        }
        false
    })
    .await;
}

/// A requeue that keeps failing does not drop the attempt's outcome: the message comes back as it was,
/// but the next attempt starts from the kept outcome, so the recipient who accepted is not sent it again.
#[tokio::test(flavor = "multi_thread")]
async fn an_attempt_whose_requeue_fails_is_not_repeated_for_who_accepted() {
    let fake = FakeSmtp::start(slow_peer()).await;
    let (stack, _, _) = attempt_in_flight(&fake).await;
    let configs = refuse_new_messages(&stack).await;
    wait_for_a_kept_outcome(&stack).await;
    accept_new_messages(&stack, &configs).await;
    wait_until(PATIENCE, "the message was never tried again", async || fake.attempts("later@remote.test") >= 2).await;
    assert_eq!(fake.attempts("now@remote.test"), 1, "who accepted before the failed requeue is not sent it again");
    stack.stop().await;
}

/// The same when the attempt ended every recipient and only its DSN could not be queued: the message
/// comes back, the next attempt queues the DSN from the kept outcome, and nobody is sent it twice.
#[tokio::test(flavor = "multi_thread")]
async fn an_attempt_whose_dsn_cannot_be_queued_is_not_repeated_for_who_accepted() {
    let fake = FakeSmtp::start(slow_peer_answering_later("550 5.1.1 no such user")).await;
    let (stack, _, ann) = attempt_in_flight(&fake).await;
    let configs = refuse_new_messages(&stack).await;
    wait_for_a_kept_outcome(&stack).await;
    accept_new_messages(&stack, &configs).await;
    stack.wait_for_inbox(ann, 1, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    assert_eq!(fake.attempts("now@remote.test"), 1, "who accepted is not sent it again");
    assert_eq!(fake.attempts("later@remote.test"), 1, "nor is a recipient that failed for good tried again");
    assert_eq!(stack.inbox_uids(ann).await.len(), 1, "one report");
    stack.stop().await;
}
