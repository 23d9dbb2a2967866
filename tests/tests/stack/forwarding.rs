//! Mail between whole stacks, each with its own database and NATS prefix, over real SMTP on loopback,
//! with a DNS server on loopback publishing the sending domain's SPF, DKIM and DMARC records: what one
//! stack signs, the other verifies.

use mailbus_tests::clients::{SubmitMode, imap_session, smtp_submit};
use mailbus_tests::dns::TestDns;
use mailbus_tests::{Infra, TestStack};
use serde_json::{Value, json};

use crate::PATIENCE;
use crate::dkim::{dkim_admin, record_of};

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
/// printed in `dns`.
async fn publish_key(stack: &TestStack, dns: &TestDns, domain: &str, selector: &str) {
    let (code, out) = dkim_admin(stack, &["generate", domain, "--algorithm", "rsa", "--selector", selector]).await;
    assert_eq!(code, 0, "{out}");
    let (name, value) = record_of(&out);
    dns.txt(&name, &value);
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
    let steps = json!([
        ["login", user, "pw"],
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
    for expected in
        ["dkim=pass", "header.d=a.example", "spf=pass", "smtp.mailfrom=alice@a.example", "dmarc=pass", "header.from=a.example"]
    {
        assert!(results[0].contains(expected), "{expected} in {}", results[0]);
    }
    // A's own results never travel: A's submission port verifies nothing.
    assert!(results_of(&header, "mx.a.example").is_empty(), "{header}");
    a.stop().await;
    b.stop().await;
}
