//! DKIM signing of what leaves for other domains: keys made with `mailbus admin dkim`, mail from
//! submission and our DSNs signed with them, checked by dkimpy (a verifier we did not write) on the
//! message as the remote sink received it, and a rotation to a second selector.

use mailbus_tests::clients::{DkimVerdict, SmtpOutcome, SubmitMode, dkim_verify, smtp_send, smtp_submit};
use mailbus_tests::fake_smtp::{FakeSmtp, Script};
use mailbus_tests::{Infra, TestStack, wait_until};

use crate::{PATIENCE, message};

/// `mailbus admin dkim …` against this stack's mailbox role; returns (exit code, stdout and stderr).
pub(crate) async fn dkim_admin(stack: &TestStack, args: &[&str]) -> (i32, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailbus-under-test"))
        .args(["admin", "dkim"])
        .args(args)
        .env_clear()
        .env("MAILBUS_MAILBOX_URL", stack.mailbox_url())
        .output()
        .await
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

/// The record a `generate` printed, as (name, value): the zone line's quoted strings joined.
pub(crate) fn record_of(output: &str) -> (String, String) {
    let line = output.lines().find(|l| l.contains(" IN TXT ")).unwrap_or_else(|| panic!("no record in {output}"));
    let (name, strings) = line.split_once(". IN TXT ").unwrap();
    let value: String = strings.split('"').skip(1).step_by(2).collect();
    (name.to_owned(), value)
}

async fn generate(stack: &TestStack, algorithm: &str, selector: &str) -> ((String, String), String) {
    let (code, out) =
        dkim_admin(stack, &["generate", "example.org", "--algorithm", algorithm, "--selector", selector]).await;
    assert_eq!(code, 0, "{out}");
    (record_of(&out), out)
}

async fn submit(stack: &TestStack, to: &str, subject: &str) {
    let sent = smtp_submit(
        stack.submission.unwrap(),
        SubmitMode::StartTls,
        &Infra::get().tls_cert,
        ("alice@example.org", "pw"),
        "alice@example.org",
        &[to],
        &format!(
            "From: Alice <alice@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n\r\nHello from alice.\r\n"
        )
        .into_bytes(),
    )
    .await;
    assert_eq!(sent.outcome, "ok", "{sent:?}");
}

async fn nth_received(fake: &FakeSmtp, n: usize) -> mailbus_tests::fake_smtp::Received {
    wait_until(PATIENCE, "the sink receives the message", async || fake.received().len() >= n).await;
    fake.received()[n - 1].clone()
}

fn selectors(verdicts: &[DkimVerdict]) -> Vec<(&str, &str, bool)> {
    verdicts.iter().map(|v| (v.selector.as_str(), v.algorithm.as_str(), v.ok)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn submitted_mail_and_our_dsns_are_signed_and_a_rotation_moves_to_the_new_selector() {
    let fake = FakeSmtp::start(Script::default()).await;
    let stack = TestStack::builder()
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("remote.test={},*=127.0.0.1:9", fake.addr()))
        .set("MAILBUS_HOSTNAME", "mx.example.org")
        // Every delivery asks for the keys, so the rotation below is seen at once.
        .set("MAILBUS_DKIM_KEY_CACHE_SECS", "0")
        .start()
        .await;
    stack.add_account("alice@example.org", "pw").await;
    stack.add_account("bob@example.org", "pw").await;

    // Unsigned before any key exists.
    submit(&stack, "early@remote.test", "early").await;
    let early = nth_received(&fake, 1).await;
    assert!(!String::from_utf8_lossy(&early.data).contains("DKIM-Signature"));

    let (ed1, out) = generate(&stack, "ed25519", "ed1").await;
    assert!(out.contains("key ed1 of example.org generated (active)"), "{out}");
    assert_eq!(ed1.0, "ed1._domainkey.example.org");
    assert!(ed1.1.starts_with("v=DKIM1; k=ed25519; p="), "{}", ed1.1);
    let (rsa1, _) = generate(&stack, "rsa", "rsa1").await;
    assert!(rsa1.1.starts_with("v=DKIM1; k=rsa; p=MIIBIjANBg"), "an RSA SubjectPublicKeyInfo: {}", rsa1.1);
    let (code, out) =
        dkim_admin(&stack, &["generate", "example.org", "--algorithm", "rsa", "--selector", "rsa1"]).await;
    assert_eq!(code, 3, "a selector taken is 'already exists': {out}");

    // Submission: signed with both keys, and dkimpy verifies both on what the sink received.
    submit(&stack, "bob@remote.test", "signed").await;
    let signed = nth_received(&fake, 2).await;
    let verdicts = dkim_verify(&signed.data, &[ed1.clone(), rsa1.clone()]).await;
    assert_eq!(selectors(&verdicts), [("ed1", "ed25519-sha256", true), ("rsa1", "rsa-sha256", true)], "{verdicts:?}");
    assert!(verdicts.iter().all(|v| v.domain == "example.org"));
    // The same octets with the body changed do not verify: the check can fail.
    let tampered = String::from_utf8_lossy(&signed.data).replace("Hello from alice", "Hello from mallory");
    let verdicts = dkim_verify(tampered.as_bytes(), &[ed1.clone(), rsa1.clone()]).await;
    assert!(verdicts.iter().all(|v| !v.ok), "{verdicts:?}");

    // A DSN from us to a remote sender (bob's mailbox is full): signed by example.org, the parent of the
    // MAILER-DAEMON@mx.example.org it comes from.
    let full = mailbus_proto::v1::UpdateAccountRequest {
        address: "bob@example.org".into(),
        quota_bytes: Some(1),
        ..Default::default()
    };
    stack.directory().await.update_account(full).await.unwrap();
    let sent = smtp_send(stack.smtp_addr(), "carol@remote.test", &["bob@example.org"], &message("bob", "full")).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { .. }), "{sent:?}");
    let dsn = nth_received(&fake, 3).await;
    assert_eq!((dsn.mail_from.as_str(), dsn.rcpt_to.as_slice()), ("", &["carol@remote.test".to_owned()][..]));
    assert!(String::from_utf8_lossy(&dsn.data).contains("From: Mail Delivery System <MAILER-DAEMON@mx.example.org>"));
    let verdicts = dkim_verify(&dsn.data, &[ed1.clone(), rsa1.clone()]).await;
    assert_eq!(selectors(&verdicts), [("ed1", "ed25519-sha256", true), ("rsa1", "rsa-sha256", true)], "{verdicts:?}");

    // Rotation: the next RSA key is published first, then activated, then the old one retired.
    let (rsa2, out) = generate(&stack, "rsa", "rsa2").await;
    assert!(out.contains("key rsa2 of example.org generated (published)"), "{out}");
    submit(&stack, "bob@remote.test", "before-activation").await;
    let before = nth_received(&fake, 4).await;
    let verdicts = dkim_verify(&before.data, &[ed1.clone(), rsa1.clone(), rsa2.clone()]).await;
    assert_eq!(selectors(&verdicts), [("ed1", "ed25519-sha256", true), ("rsa1", "rsa-sha256", true)], "{verdicts:?}");
    let (code, out) = dkim_admin(&stack, &["activate", "example.org", "rsa2"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = dkim_admin(&stack, &["retire", "example.org", "rsa1"]).await;
    assert_eq!(code, 0, "{out}");
    let (_, list) = dkim_admin(&stack, &["list", "example.org"]).await;
    let state = |selector: &str| {
        let line = list.lines().find(|l| l.split_whitespace().nth(1) == Some(selector)).unwrap();
        line.split_whitespace().nth(3).unwrap().to_owned()
    };
    assert_eq!((state("ed1"), state("rsa1"), state("rsa2")), ("active".into(), "retired".into(), "active".into()));
    submit(&stack, "bob@remote.test", "rotated").await;
    let rotated = nth_received(&fake, 5).await;
    let verdicts = dkim_verify(&rotated.data, &[ed1.clone(), rsa2.clone()]).await;
    assert_eq!(selectors(&verdicts), [("ed1", "ed25519-sha256", true), ("rsa2", "rsa-sha256", true)], "{verdicts:?}");

    // Removing the last keys stops signing; a key that is not there is an error.
    for selector in ["ed1", "rsa1", "rsa2"] {
        assert_eq!(dkim_admin(&stack, &["remove", "example.org", selector]).await.0, 0);
    }
    let (code, out) = dkim_admin(&stack, &["remove", "example.org", "rsa2"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no DKIM key rsa2 for example.org"), "{out}");
    submit(&stack, "bob@remote.test", "unsigned").await;
    assert!(!String::from_utf8_lossy(&nth_received(&fake, 6).await.data).contains("DKIM-Signature"));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_8bit_message_is_signed_after_its_downgrade_for_a_7bit_peer_and_bad_requests_are_refused() {
    let fake = FakeSmtp::start(Script { eight_bit_mime: false, ..Default::default() }).await;
    let stack = TestStack::builder()
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("remote.test={},*=127.0.0.1:9", fake.addr()))
        .start()
        .await;
    stack.add_account("alice@example.org", "pw").await;
    for (args, refusal) in [
        (&["generate", "example.org", "--selector", "bad_selector"][..], "selector \"bad_selector\""),
        (&["generate", "nowhere.test"][..], "domain nowhere.test is not hosted here"),
        (&["activate", "example.org", "missing"][..], "no DKIM key missing for example.org"),
    ] {
        let (code, out) = dkim_admin(&stack, args).await;
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(out.contains(refusal), "{args:?}: {out}");
    }
    let (ed, _) = generate(&stack, "ed25519", "ed").await;
    let body = "From: Alice <alice@example.org>\r\nTo: bob@remote.test\r\nSubject: greetings\r\nMIME-Version: 1.0\r\n\
                Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln.\r\n";
    let sent = smtp_submit(
        stack.submission.unwrap(),
        SubmitMode::StartTls,
        &Infra::get().tls_cert,
        ("alice@example.org", "pw"),
        "alice@example.org",
        &["bob@remote.test"],
        body.as_bytes(),
    )
    .await;
    assert_eq!(sent.outcome, "ok", "{sent:?}");
    let received = nth_received(&fake, 1).await;
    let text = String::from_utf8_lossy(&received.data);
    assert!(text.contains("Content-Transfer-Encoding: quoted-printable"), "the peer got the 7-bit form: {text}");
    assert!(received.data.is_ascii());
    let verdicts = dkim_verify(&received.data, &[ed]).await;
    assert_eq!(selectors(&verdicts), [("ed", "ed25519-sha256", true)], "{verdicts:?}");
    stack.stop().await;
}

/// A Sieve redirect carries the original's sender and client, as an alias's forwarded copy does: a
/// null-sender message from port 25 whose From claims our domain is passed on unsigned, where it used
/// to be taken for a report of ours and signed with that domain's key; a vacation reply is ours, and
/// signed.
#[tokio::test(flavor = "multi_thread")]
async fn a_redirected_null_sender_message_is_not_signed_and_a_vacation_reply_is() {
    let fake = FakeSmtp::start(Script::default()).await;
    let stack = TestStack::builder()
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("remote.test={},*=127.0.0.1:9", fake.addr()))
        .start()
        .await;
    let alice = stack.add_account("alice@example.org", "pw").await;
    let ((name, value), _) = generate(&stack, "ed25519", "ed1").await;
    crate::sieve::activate(&stack, alice, "redirect \"dave@remote.test\";").await;
    let forged = "From: CEO <ceo@example.org>\r\nTo: alice@example.org\r\nSubject: wire the money\r\n\
                  Message-ID: <forged@elsewhere.test>\r\n\r\nNow, please.\r\n";
    let sent = smtp_send(stack.smtp_addr(), "", &["alice@example.org"], forged.as_bytes()).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { .. }), "{sent:?}");
    let redirected = nth_received(&fake, 1).await;
    assert_eq!(redirected.rcpt_to, ["dave@remote.test"]);
    assert!(!String::from_utf8_lossy(&redirected.data).contains("DKIM-Signature"), "a forged From is not signed");

    crate::sieve::activate(&stack, alice, "require \"vacation\";\nvacation \"Away.\";").await;
    let asks = "From: <dave@remote.test>\r\nTo: alice@example.org\r\nSubject: lunch?\r\n\r\nLunch?\r\n";
    let sent = smtp_send(stack.smtp_addr(), "dave@remote.test", &["alice@example.org"], asks.as_bytes()).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { .. }), "{sent:?}");
    let reply = nth_received(&fake, 2).await;
    let verdicts = dkim_verify(&reply.data, &[(name, value)]).await;
    assert_eq!(selectors(&verdicts), [("ed1", "ed25519-sha256", true)], "{verdicts:?}");
    stack.stop().await;
}
