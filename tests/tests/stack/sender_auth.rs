//! Sender authentication on port 25 against a DNS server on loopback (`mailbus_tests::dns`): a message
//! whose domain publishes SPF for 127.0.0.1, a DKIM key that signed it and a DMARC policy arrives with
//! `spf=pass dkim=pass dmarc=pass`; a forgery of a `p=reject` domain arrives tagged `dmarc=fail`, or is
//! refused in enforce mode; an incoming `Authentication-Results` claiming our authserv-id is removed.
//! Mail is sent with smtplib and read back with imaplib.

use base64::Engine;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mailbus_tests::TestStack;
use mailbus_tests::clients::{SmtpOutcome, imap_session, smtp_send};
use mailbus_tests::dns::TestDns;
use serde_json::{Value, json};

use crate::PATIENCE;

/// An ed25519 DKIM key made for the test.
struct Key(Vec<u8>);

impl Key {
    fn generate() -> Key {
        Key(Ed25519Key::generate_pkcs8().unwrap())
    }

    fn record(&self) -> String {
        let public = Ed25519Key::from_pkcs8_der(&self.0).unwrap().public_key();
        format!("v=DKIM1; k=ed25519; p={}", base64::engine::general_purpose::STANDARD.encode(public))
    }

    /// `message` with a DKIM-Signature of `domain` (selector `s1`) before it.
    fn sign(&self, domain: &str, message: &str) -> Vec<u8> {
        let key = Ed25519Key::from_pkcs8_der(&self.0).unwrap();
        let signature = DkimSigner::from_key(key)
            .domain(domain)
            .selector("s1")
            .headers(["From", "To", "Subject", "Message-ID"])
            .sign(message.as_bytes())
            .unwrap();
        format!("{}{message}", signature.to_header()).into_bytes()
    }
}

fn message(from: &str, subject: &str, extra: &str) -> String {
    format!(
        "{extra}From: <{from}>\r\nTo: <alice@example.org>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@test>\r\n\r\nHello.\r\n"
    )
}

/// The domains of these tests: `sender.example` is genuine (SPF for loopback, a DKIM key, p=reject), as
/// is `bank.example` (whose key the forger does not have); `strict.example` allows no client at all.
fn publish(dns: &TestDns, genuine: &Key, bank: &Key) {
    dns.txt("sender.example", "v=spf1 ip4:127.0.0.1 -all")
        .txt("s1._domainkey.sender.example", &genuine.record())
        .txt("_dmarc.sender.example", "v=DMARC1; p=reject")
        .txt("bank.example", "v=spf1 ip4:192.0.2.1 -all")
        .txt("s1._domainkey.bank.example", &bank.record())
        .txt("_dmarc.bank.example", "v=DMARC1; p=reject")
        .txt("strict.example", "v=spf1 -all")
        .txt("elsewhere.example", "v=spf1 ?all");
}

/// A stack that verifies against `dns`, and alice's account id.
async fn stack(dns: &TestDns, spf: &str, dmarc: &str) -> (TestStack, i64) {
    let stack = TestStack::builder()
        .set("MAILBUS_DNS_RESOLVER", &dns.addr().to_string())
        .set("MAILBUS_DNS_TIMEOUT_MS", "2000")
        .set("MAILBUS_SPF_POLICY", spf)
        .set("MAILBUS_DKIM_POLICY", "tag")
        .set("MAILBUS_ARC_POLICY", "tag")
        .set("MAILBUS_DMARC_POLICY", dmarc)
        .start()
        .await;
    let alice = stack.add_account("alice@example.org", "alice pw").await;
    (stack, alice)
}

/// The header section of INBOX message `number`, as imaplib fetched it.
async fn header_of(stack: &TestStack, number: u32) -> String {
    let steps = json!([
        ["login", "alice@example.org", "alice pw"],
        ["select", "INBOX"],
        ["fetch", number.to_string(), "(BODY.PEEK[HEADER])"],
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

/// Our `Authentication-Results` fields in `header`, unfolded.
fn our_results(header: &str) -> Vec<String> {
    let unfolded = header.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded.lines().filter(|line| line.starts_with("Authentication-Results: mx.test")).map(str::to_owned).collect()
}

fn accepted(outcome: &SmtpOutcome) {
    assert!(matches!(outcome, SmtpOutcome::Accepted { code: 250, .. }), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn genuine_mail_is_tagged_pass_and_a_forgery_fail_with_forged_results_removed() {
    let dns = TestDns::start().await;
    let (genuine, bank, forger) = (Key::generate(), Key::generate(), Key::generate());
    publish(&dns, &genuine, &bank);
    let (stack, alice) = stack(&dns, "tag", "tag").await;

    let signed = genuine.sign("sender.example", &message("news@sender.example", "genuine", ""));
    accepted(&smtp_send(stack.smtp_addr(), "bounces@sender.example", &["alice@example.org"], &signed).await);
    stack.wait_for_inbox(alice, 1, PATIENCE).await;
    let header = header_of(&stack, 1).await;
    let results = our_results(&header);
    assert_eq!(results.len(), 1, "{header}");
    for expected in ["spf=pass", "dkim=pass", "dmarc=pass", "header.d=sender.example", "header.from=sender.example"] {
        assert!(results[0].contains(expected), "{expected} in {}", results[0]);
    }
    // Our field follows our Received: and precedes the message's own fields.
    let position = |name: &str| header.find(name).unwrap_or_else(|| panic!("{name} in {header}"));
    assert!(position("Received: ") < position("Authentication-Results: mx.test"), "{header}");
    assert!(position("Authentication-Results: mx.test") < position("DKIM-Signature"), "{header}");

    // A forgery of bank.example: signed with a key bank.example never published, sent from elsewhere,
    // carrying results that claim we checked it already, and others' results, which stay.
    let claims = "Authentication-Results: mx.test; dkim=pass header.d=bank.example;\r\n\tdmarc=pass header.from=bank.example\r\nAuthentication-Results: other.example; spf=pass\r\n";
    let forged = forger.sign("bank.example", &message("ceo@bank.example", "forged", claims));
    accepted(&smtp_send(stack.smtp_addr(), "x@elsewhere.example", &["alice@example.org"], &forged).await);
    stack.wait_for_inbox(alice, 2, PATIENCE).await;
    let header = header_of(&stack, 2).await;
    let results = our_results(&header);
    assert_eq!(results.len(), 1, "only ours, the claimed one removed: {header}");
    for expected in ["dmarc=fail", "header.from=bank.example", "policy.dmarc=reject", "spf=neutral"] {
        assert!(results[0].contains(expected), "{expected} in {}", results[0]);
    }
    assert!(!results[0].contains("dkim=pass"), "{}", results[0]);
    assert!(header.contains("Authentication-Results: other.example; spf=pass"), "{header}");
    assert!(dns.queries().iter().any(|(name, _)| name == "_dmarc.bank.example"), "the loopback DNS was asked");
}

#[tokio::test(flavor = "multi_thread")]
async fn enforce_mode_refuses_a_dmarc_reject_failure_and_an_spf_fail() {
    let dns = TestDns::start().await;
    let (genuine, bank, forger) = (Key::generate(), Key::generate(), Key::generate());
    publish(&dns, &genuine, &bank);
    let (stack, alice) = stack(&dns, "enforce", "enforce").await;

    let forged = forger.sign("bank.example", &message("ceo@bank.example", "forged", ""));
    match smtp_send(stack.smtp_addr(), "x@elsewhere.example", &["alice@example.org"], &forged).await {
        SmtpOutcome::Refused { code: 550, text } => {
            assert!(text.starts_with("5.7.1 ") && text.contains("DMARC") && text.contains("bank.example"), "{text}")
        }
        other => panic!("expected 550 5.7.1, got {other:?}"),
    }
    // SPF -all for a client it does not list: refused at MAIL FROM.
    let plain = message("someone@strict.example", "strict", "");
    match smtp_send(stack.smtp_addr(), "someone@strict.example", &["alice@example.org"], plain.as_bytes()).await {
        SmtpOutcome::Refused { code: 550, text } => assert!(text.starts_with("5.7.23 "), "{text}"),
        other => panic!("expected 550 5.7.23, got {other:?}"),
    }
    // Genuine mail still flows, and only it arrives.
    let signed = genuine.sign("sender.example", &message("news@sender.example", "genuine", ""));
    accepted(&smtp_send(stack.smtp_addr(), "bounces@sender.example", &["alice@example.org"], &signed).await);
    stack.wait_for_inbox(alice, 1, PATIENCE).await;
    assert!(our_results(&header_of(&stack, 1).await)[0].contains("dmarc=pass"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dns_server_that_stops_answering_defers_in_enforce_mode() {
    let dns = TestDns::start().await;
    let (genuine, bank) = (Key::generate(), Key::generate());
    publish(&dns, &genuine, &bank);
    let (stack, _) = stack(&dns, "enforce", "enforce").await;
    let resolver = dns.addr();
    drop(dns);
    // Nothing answers at the resolver's address any more: every lookup fails, and enforce mode defers.
    let signed = genuine.sign("sender.example", &message("news@sender.example", "later", ""));
    match smtp_send(stack.smtp_addr(), "bounces@sender.example", &["alice@example.org"], &signed).await {
        SmtpOutcome::Refused { code: 451, text } => assert!(text.starts_with("4.7."), "{text} ({resolver})"),
        other => panic!("expected 451 4.7.x, got {other:?}"),
    }
}
