//! Mail between whole stacks, each with its own database and NATS prefix, over real SMTP on loopback,
//! with a DNS server on loopback publishing the sending domain's SPF, DKIM and DMARC records: what one
//! stack signs, the other verifies.

use mailbus::roles::Role;
use mailbus_tests::clients::{SmtpOutcome, SmtpRaw, SubmitMode, arc_verify, imap_session, smtp_send, smtp_submit};
use mailbus_tests::dns::TestDns;
use mailbus_tests::fake_smtp::{FakeSmtp, Script};
use mailbus_tests::{Infra, TestStack, wait_until};
use serde_json::{Value, json};

use crate::dkim::{dkim_admin, record_of};
use crate::{PATIENCE, message, under_test};

/// A stack whose port 25 verifies sender authentication against `dns` and writes `Authentication-Results`
/// as `hostname`, routing the domains of `routes` (`domain=host:port`) to other stacks.
async fn verifying_stack(dns: &TestDns, hostname: &str, routes: &str) -> TestStack {
    TestStack::builder()
        .set("MAILBUS_HOSTNAME", hostname)
        .set("MAILBUS_DNS_RESOLVER", &dns.addr().to_string())
        .set("MAILBUS_DNS_TIMEOUT_MS", "2000")
        .set("MAILBUS_SPF_POLICY", "tag")
        .set("MAILBUS_DKIM_POLICY", "tag")
        .set("MAILBUS_ARC_POLICY", "tag")
        .set("MAILBUS_DMARC_POLICY", "tag")
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("{routes}*=127.0.0.1:9"))
        .start()
        .await
}

/// Makes an active RSA key for `domain` through `mailbus admin dkim generate` and publishes the record it
/// printed in `dns`; returns the record.
async fn publish_key(stack: &TestStack, dns: &TestDns, domain: &str, selector: &str) -> (String, String) {
    let (code, out) = dkim_admin(stack, &["generate", domain, "--algorithm", "rsa", "--selector", selector]).await;
    assert_eq!(code, 0, "{out}");
    let (name, value) = record_of(&out);
    dns.txt(&name, &value);
    (name, value)
}

/// `user` submits a signed-to-be message to `to` on `stack`'s submission port.
async fn submit(stack: &TestStack, user: &str, to: &str, subject: &str) {
    let body = format!(
        "From: <{user}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@test>\r\n\r\nHello from {user}.\r\n"
    );
    let sent = smtp_submit(
        stack.submission.unwrap(),
        SubmitMode::StartTls,
        &Infra::get().tls_cert,
        (user, "pw"),
        user,
        &[to],
        body.as_bytes(),
    )
    .await;
    assert_eq!(sent.outcome, "ok", "{sent:?}");
}

/// The header section of INBOX message `number` of `user` (password "pw"), as imaplib fetched it.
async fn header_of(stack: &TestStack, user: &str, number: u32) -> String {
    fetch_of(stack, user, number, "BODY.PEEK[HEADER]").await
}

/// The octets of INBOX message `number` of `user` (password "pw"), as imaplib fetched them.
async fn message_of(stack: &TestStack, user: &str, number: u32) -> Vec<u8> {
    let steps =
        json!([["login", user, "pw"], ["select", "INBOX"], ["fetch", number.to_string(), "(BODY.PEEK[])"], ["logout"]]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    // imaplib's answer: [("1 (BODY[] {n}", literal), ")"], the literal read as Latin-1.
    let literal = results[3][1][0][1].as_str().unwrap_or_else(|| panic!("a literal in {results:?}"));
    literal.chars().map(|c| c as u8).collect()
}

/// `item` of INBOX message `number` of `user` (password "pw"), as imaplib fetched it.
async fn fetch_of(stack: &TestStack, user: &str, number: u32, item: &str) -> String {
    let steps = json!([
        ["login", user, "pw"],
        ["select", "INBOX"],
        ["fetch", number.to_string(), format!("({item})")],
        ["logout"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert_eq!(results[3][0], "OK", "{results:?}");
    let mut text = String::new();
    flatten(&results[3][1], &mut text);
    text
}

fn flatten(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        _ => {}
    }
}

/// The `Authentication-Results` fields of `authserv_id` in `header`, unfolded.
fn results_of(header: &str, authserv_id: &str) -> Vec<String> {
    let unfolded = header.replace("\r\n\t", " ").replace("\r\n ", " ");
    let start = format!("Authentication-Results: {authserv_id};");
    unfolded.lines().filter(|line| line.starts_with(&start)).map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_signed_by_one_stack_passes_spf_dkim_and_dmarc_at_another() {
    let dns = TestDns::start().await;
    dns.txt("a.example", "v=spf1 ip4:127.0.0.1 -all").txt("_dmarc.a.example", "v=DMARC1; p=reject");
    let b = verifying_stack(&dns, "mx.b.example", "").await;
    let bob = b.add_account("bob@b.example", "pw").await;
    let a = verifying_stack(&dns, "mx.a.example", &format!("b.example={},", b.smtp_addr())).await;
    a.add_account("alice@a.example", "pw").await;
    publish_key(&a, &dns, "a.example", "sel1").await;

    submit(&a, "alice@a.example", "bob@b.example", "across").await;
    b.wait_for_inbox(bob, 1, PATIENCE).await;
    let header = header_of(&b, "bob@b.example", 1).await;
    let results = results_of(&header, "mx.b.example");
    assert_eq!(results.len(), 1, "{header}");
    for expected in [
        "dkim=pass",
        "header.d=a.example",
        "spf=pass",
        "smtp.mailfrom=alice@a.example",
        "dmarc=pass",
        "header.from=a.example",
    ] {
        assert!(results[0].contains(expected), "{expected} in {}", results[0]);
    }
    // A's own results never travel: A's submission port verifies nothing.
    assert!(results_of(&header, "mx.a.example").is_empty(), "{header}");
    a.stop().await;
    b.stop().await;
}

/// Stack A (hosting a.example, as mx.a.example) and stack B (b.example, mx.b.example), each relay routing
/// the other's domain to the other's port 25, with settings of their own. A's relay starts last, once B's
/// port is known.
async fn two_stacks(a_settings: &[(&str, &str)], b_settings: &[(&str, &str)]) -> (TestStack, TestStack) {
    let without_relay = [Role::Mailbox, Role::SmtpIngress, Role::Access];
    let mut a = TestStack::builder().roles(&without_relay).set("MAILBUS_HOSTNAME", "mx.a.example");
    for (name, value) in a_settings {
        a = a.set(name, value);
    }
    let mut a = a.start().await;
    let mut b = TestStack::builder()
        .set("MAILBUS_HOSTNAME", "mx.b.example")
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("a.example={},*=127.0.0.1:9", a.smtp_addr()));
    for (name, value) in b_settings {
        b = b.set(name, value);
    }
    let b = b.start().await;
    a.settings.set("MAILBUS_RELAY_TRANSPORTS", &format!("b.example={},*=127.0.0.1:9", b.smtp_addr()));
    a.start_roles(&[Role::Relay]).await;
    (a, b)
}

/// `mailbus admin alias …` against `stack`'s mailbox role; returns (exit code, stdout and stderr).
async fn alias_admin(stack: &TestStack, args: &[&str]) -> (i32, String) {
    let output = tokio::process::Command::new(under_test())
        .args(["admin", "alias"])
        .args(args)
        .env_clear()
        .env("MAILBUS_MAILBOX_URL", stack.mailbox_url())
        .output()
        .await
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

async fn settled(stacks: &[&TestStack]) {
    for stack in stacks {
        stack.wait_for_empty_queue(PATIENCE).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alias_delivers_here_and_forwards_to_another_domain_once() {
    let (a, b) = two_stacks(&[], &[]).await;
    let carol = a.add_account("carol@a.example", "pw").await;
    let bob = b.add_account("bob@b.example", "pw").await;

    let (code, out) = alias_admin(&b, &["add", "team@b.example", "bob@b.example", "carol@a.example"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("alias team@b.example -> bob@b.example, carol@a.example"), "{out}");
    let (code, out) = alias_admin(&b, &["add", "out@b.example", "carol@a.example"]).await;
    assert_eq!(code, 0, "{out}");
    // A target in a hosted domain must be an account there: a typo is not forwarded anywhere.
    let (code, out) = alias_admin(&b, &["add", "typo@b.example", "nobody@b.example"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no account nobody@b.example"), "{out}");
    let (_, list) = alias_admin(&b, &["list"]).await;
    assert!(list.lines().any(|l| l.starts_with("out@b.example") && l.contains("carol@a.example")), "{list}");

    // One message to the alias: bob here, carol there, each once.
    let sent = smtp_send(b.smtp_addr(), "sender@elsewhere.test", &["team@b.example"], &message("team", "team")).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { .. }), "{sent:?}");
    b.wait_for_inbox(bob, 1, PATIENCE).await;
    a.wait_for_inbox(carol, 1, PATIENCE).await;
    let header = header_of(&a, "carol@a.example", 1).await;
    assert!(
        header.contains("Received: from mx.b.example") && header.contains("Delivered-To: team@b.example\r\n"),
        "{header}"
    );
    assert!(header.contains("Subject: team"), "{header}");

    // An alias with remote targets only is a valid recipient on port 25.
    let sent = smtp_send(b.smtp_addr(), "sender@elsewhere.test", &["out@b.example"], &message("out", "out")).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { .. }), "{sent:?}");
    a.wait_for_inbox(carol, 2, PATIENCE).await;
    settled(&[&a, &b]).await;
    assert_eq!((a.inbox_uids(carol).await.len(), b.inbox_uids(bob).await.len()), (2, 1), "nothing sent twice");

    // Removing the remote target leaves the alias to bob alone.
    let (code, out) = alias_admin(&b, &["remove", "team@b.example", "carol@a.example"]).await;
    assert_eq!(code, 0, "{out}");
    let (_, list) = alias_admin(&b, &["list", "--domain", "b.example"]).await;
    assert!(list.lines().any(|l| l.starts_with("team@b.example") && !l.contains("carol")), "{list}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alias_loop_between_two_domains_ends_in_one_bounce() {
    // With SRS on both sides, the report travels back as SRS1 and SRS0 addresses through both forwarders.
    let (a, b) = two_stacks(&[("MAILBUS_SRS_SECRET", "a's secret")], &[("MAILBUS_SRS_SECRET", "b's secret")]).await;
    let carol = a.add_account("carol@a.example", "pw").await;
    b.add_account("bob@b.example", "pw").await;
    assert_eq!(alias_admin(&b, &["add", "loop@b.example", "back@a.example"]).await.0, 0);
    assert_eq!(alias_admin(&a, &["add", "back@a.example", "loop@b.example"]).await.0, 0);

    submit(&a, "carol@a.example", "loop@b.example", "round").await;
    // B forwards to A, A back to B, and B finds its own Delivered-To: the sender hears of it once.
    a.wait_for_inbox(carol, 1, PATIENCE).await;
    settled(&[&a, &b]).await;
    settled(&[&a, &b]).await;
    assert_eq!(a.inbox_uids(carol).await.len(), 1, "one report, no mail going round");
    let report = fetch_of(&a, "carol@a.example", 1, "BODY.PEEK[]").await;
    assert!(report.contains("Status: 5.4.6") && report.contains("mail forwarding loop for loop@b.example"), "{report}");
    assert!(report.contains("Final-Recipient: rfc822; loop@b.example"), "{report}");
    a.stop().await;
    b.stop().await;
}

/// The SRS secret of [`srs_forwarder`].
const SECRET: &str = "forwarding secret";

/// b.example with an SRS secret and the alias `fwd@b.example` forwarding to `target`; remote.test and
/// origin.test are `sink`.
async fn srs_forwarder(sink: &FakeSmtp, target: &str) -> TestStack {
    let b = TestStack::builder()
        .set("MAILBUS_HOSTNAME", "mx.b.example")
        .set("MAILBUS_SRS_SECRET", SECRET)
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("remote.test={0},origin.test={0},*=127.0.0.1:9", sink.addr()))
        .start()
        .await;
    b.add_account("bob@b.example", "pw").await;
    assert_eq!(alias_admin(&b, &["add", "fwd@b.example", target]).await.0, 0);
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_mail_leaves_with_an_srs_sender_and_a_bounce_to_it_goes_back_after_its_check() {
    let sink = FakeSmtp::start(Script::default()).await;
    let b = srs_forwarder(&sink, "Dave@remote.test").await;

    let sent = smtp_send(b.smtp_addr(), "Alice@origin.test", &["fwd@b.example"], &message("fwd", "srs")).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { .. }), "{sent:?}");
    wait_until(PATIENCE, "the forwarded copy arrives", async || !sink.received().is_empty()).await;
    let forwarded = sink.received()[0].clone();
    assert_eq!(forwarded.rcpt_to, ["Dave@remote.test"]);
    let srs_sender = forwarded.mail_from.clone();
    let (local, domain) = srs_sender.rsplit_once('@').unwrap();
    assert_eq!(domain, "b.example", "{srs_sender}");
    assert!(local.starts_with("SRS0=") && local.ends_with("=origin.test=Alice"), "{srs_sender}");

    // A null sender stays null when forwarded.
    let sent = smtp_send(b.smtp_addr(), "", &["fwd@b.example"], &message("fwd", "null")).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { .. }), "{sent:?}");
    wait_until(PATIENCE, "the second copy arrives", async || sink.received().len() >= 2).await;
    assert_eq!(sink.received()[1].mail_from, "");

    // The bounce from the next hop to the SRS address reaches the original sender, still a bounce.
    let sent = smtp_send(b.smtp_addr(), "", &[&srs_sender], &message("alice", "bounce")).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { .. }), "{sent:?}");
    wait_until(PATIENCE, "the bounce is passed back", async || sink.received().len() >= 3).await;
    let bounce = sink.received()[2].clone();
    assert_eq!((bounce.mail_from.as_str(), bounce.rcpt_to.as_slice()), ("", &["Alice@origin.test".to_owned()][..]));
    // A hop that lowercased the whole address changes nothing (libsrs2 compares the hash so too).
    let sent = smtp_send(b.smtp_addr(), "", &[&srs_sender.to_lowercase()], &message("alice", "lower")).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { .. }), "{sent:?}");

    // Forged, foreign or stale SRS addresses are refused at RCPT.
    let tampered = srs_sender.replace("=Alice@", "=Mallory@");
    let now = chrono::Utc::now().timestamp() as u64;
    let foreign = mailbus_srs::Srs::new(b"other", 21).forward("alice@origin.test", "b.example", now);
    let stale =
        mailbus_srs::Srs::new(SECRET.as_bytes(), 21).forward("alice@origin.test", "b.example", now - 30 * 86_400);
    let (mut raw, _) = SmtpRaw::connect(b.smtp_addr()).await;
    raw.command("EHLO client.test").await;
    assert_eq!(raw.command("MAIL FROM:<>").await.code, 250);
    for (address, code, status) in [(&tampered, 550, "5.7.1 "), (&foreign, 550, "5.7.1 "), (&stale, 550, "5.1.1 ")] {
        let reply = raw.command(&format!("RCPT TO:<{address}>")).await;
        assert_eq!(reply.code, code, "{address}: {reply:?}");
        assert!(reply.text.starts_with(status), "{address}: {reply:?}");
    }
    raw.command("QUIT").await;
    b.wait_for_empty_queue(PATIENCE).await;
    assert_eq!(sink.received().len(), 4, "the lowercased bounce went back too, nothing else");

    // A sender of another domain hosted here: rewritten as any other, and the bounce goes to its mailbox.
    let erin = b.add_account("erin@e.example", "pw").await;
    submit(&b, "erin@e.example", "fwd@b.example", "from-erin").await;
    wait_until(PATIENCE, "erin's copy arrives", async || sink.received().len() >= 5).await;
    let erin_srs = sink.received()[4].mail_from.clone();
    assert!(erin_srs.starts_with("SRS0=") && erin_srs.ends_with("=e.example=erin@b.example"), "{erin_srs}");
    let sent = smtp_send(b.smtp_addr(), "", &[&erin_srs], &message("erin", "erin-bounce")).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { .. }), "{sent:?}");
    b.wait_for_inbox(erin, 1, PATIENCE).await;
    b.wait_for_empty_queue(PATIENCE).await;
    assert_eq!(sink.received().len(), 5, "the bounce to a sender hosted here stays here");
    b.stop().await;
}

/// A UTF-8 sender whose local part starts like an SRS tag (`SRSé=`: the `é` straddles where the tag
/// would end) is an ordinary sender: port 25 takes it, the forwarded copy leaves with its SRS0 form, and
/// the relay goes on with the next message. Slicing that local part as a string once panicked the relay,
/// which took its process down again after every restart (the message, never acknowledged, came back).
#[tokio::test(flavor = "multi_thread")]
async fn a_utf8_sender_that_looks_like_an_srs_tag_is_forwarded_and_the_relay_goes_on() {
    let sink = FakeSmtp::start(Script::default()).await;
    let b = srs_forwarder(&sink, "dave@remote.test").await;
    let (mut smtp, _) = SmtpRaw::connect(b.smtp_addr()).await;
    smtp.command("EHLO client.test").await;
    for (sender, subject) in [("SRSé=x@origin.test", "first"), ("SRS1é=y@origin.test", "second")] {
        assert_eq!(smtp.command(&format!("MAIL FROM:<{sender}> SMTPUTF8")).await.code, 250);
        assert_eq!(smtp.command("RCPT TO:<fwd@b.example>").await.code, 250);
        assert_eq!(smtp.command("DATA").await.code, 354);
        smtp.send(format!("Subject: {subject}\r\nMessage-ID: <{subject}@origin.test>\r\n\r\nhi\r\n.\r\n").as_bytes())
            .await;
        assert_eq!(smtp.reply().await.code, 250);
    }
    smtp.command("QUIT").await;
    let sent = smtp_send(b.smtp_addr(), "alice@origin.test", &["fwd@b.example"], &message("fwd", "third")).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { .. }), "{sent:?}");
    wait_until(PATIENCE, "all three forwarded copies arrive", async || sink.received().len() >= 3).await;
    let senders: Vec<String> = sink.received().iter().map(|r| r.mail_from.clone()).collect();
    assert_eq!(senders.len(), 3, "{senders:?}");
    // In whatever order they arrived (the hash in front of each differs by day).
    for local in ["alice", "SRS1é=y", "SRSé=x"] {
        let srs0 = |s: &String| s.starts_with("SRS0=") && s.ends_with(&format!("=origin.test={local}@b.example"));
        assert!(senders.iter().any(srs0), "{local}: {senders:?}");
    }
    b.wait_for_empty_queue(PATIENCE).await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forwarded_copy_is_arc_sealed_and_passes_dmarc_at_the_final_receiver_though_spf_fails() {
    let dns = TestDns::start().await;
    // a.example: SPF for loopback, DMARC p=reject. b.example, the forwarder: SPF that allows nobody, so
    // the forwarded copy (sent from b.example's SRS address) fails SPF at C.
    dns.txt("a.example", "v=spf1 ip4:127.0.0.1 -all")
        .txt("_dmarc.a.example", "v=DMARC1; p=reject")
        .txt("b.example", "v=spf1 -all")
        .txt("_dmarc.b.example", "v=DMARC1; p=reject");
    let c = TestStack::builder()
        .set("MAILBUS_HOSTNAME", "mx.c.example")
        .set("MAILBUS_DNS_RESOLVER", &dns.addr().to_string())
        .set("MAILBUS_DNS_TIMEOUT_MS", "2000")
        .set("MAILBUS_SPF_POLICY", "tag")
        .set("MAILBUS_DKIM_POLICY", "tag")
        .set("MAILBUS_ARC_POLICY", "tag")
        // C refuses a DMARC failure of a p=reject domain: the copy must pass to arrive at all.
        .set("MAILBUS_DMARC_POLICY", "enforce")
        .start()
        .await;
    let dave = c.add_account("dave@c.example", "pw").await;
    let b = TestStack::builder()
        .set("MAILBUS_HOSTNAME", "mx.b.example")
        .set("MAILBUS_DNS_RESOLVER", &dns.addr().to_string())
        .set("MAILBUS_DNS_TIMEOUT_MS", "2000")
        .set("MAILBUS_SPF_POLICY", "tag")
        .set("MAILBUS_DKIM_POLICY", "tag")
        .set("MAILBUS_ARC_POLICY", "tag")
        .set("MAILBUS_DMARC_POLICY", "tag")
        .set("MAILBUS_SRS_SECRET", "b's secret")
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("c.example={},*=127.0.0.1:9", c.smtp_addr()))
        .start()
        .await;
    b.add_account("bob@b.example", "pw").await;
    assert_eq!(alias_admin(&b, &["add", "team@b.example", "dave@c.example"]).await.0, 0);
    let b_key = publish_key(&b, &dns, "b.example", "arc1").await;
    let a = verifying_stack(&dns, "mx.a.example", &format!("b.example={},", b.smtp_addr())).await;
    a.add_account("alice@a.example", "pw").await;
    let a_key = publish_key(&a, &dns, "a.example", "sel1").await;

    submit(&a, "alice@a.example", "team@b.example", "forwarded").await;
    c.wait_for_inbox(dave, 1, PATIENCE).await;
    let header = header_of(&c, "dave@c.example", 1).await;
    let results = results_of(&header, "mx.c.example");
    assert_eq!(results.len(), 1, "{header}");
    for expected in ["spf=fail", "smtp.mailfrom=\"SRS0=", "dkim=pass", "header.d=a.example", "arc=pass", "dmarc=pass"] {
        assert!(results[0].contains(expected), "{expected} in {}", results[0]);
    }
    // B's seal carries what B's port 25 found: the AAR repeats B's results, with i=1 and cv=none.
    let unfolded = header.replace("\r\n\t", " ").replace("\r\n ", " ");
    let aar =
        unfolded.lines().find(|l| l.starts_with("ARC-Authentication-Results:")).unwrap_or_else(|| panic!("{header}"));
    assert!(aar.contains("i=1; mx.b.example;") && aar.contains("dkim=pass") && aar.contains("spf=pass"), "{aar}");
    let seal = unfolded.lines().find(|l| l.starts_with("ARC-Seal:")).unwrap();
    assert!(seal.contains("cv=none") && seal.contains("d=b.example") && seal.contains("s=arc1"), "{seal}");
    // No DKIM signature of b.example: From is a.example's, and the author's signature is what aligns.
    assert!(!unfolded.contains("DKIM-Signature: v=1; a=rsa-sha256; s=arc1; d=b.example"), "{header}");

    // An independent verifier agrees on the chain, and on the message as dave has it.
    let octets = message_of(&c, "dave@c.example", 1).await;
    let (cv, comment) = arc_verify(&octets, &[a_key.clone(), b_key.clone()]).await;
    assert_eq!(cv, "pass", "{comment}");
    let tampered = String::from_utf8_lossy(&octets).replace("Hello from alice", "Hello from mallory");
    let (cv, _) = arc_verify(tampered.as_bytes(), &[a_key, b_key]).await;
    assert_eq!(cv, "fail", "the verifier can fail");
    a.stop().await;
    b.stop().await;
    c.stop().await;
}
