//! SMTP ingress as the Internet and mail clients see it: submission with TLS and AUTH, port 25's
//! refusals, protocol extensions on the wire, limits, and real clients (smtplib, swaks, curl).

use mailbus::roles::Role;
use mailbus_tests::clients::{Pop3End, SmtpRaw, SubmitMode, curl_submit, pop3_session, smtp_submit, swaks_submit};
use mailbus_tests::{Infra, TestStack};

use crate::{PATIENCE, message};

fn cafile() -> std::path::PathBuf {
    Infra::get().tls_cert.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn submission_on_587_needs_starttls_then_auth_and_then_relays_anywhere() {
    let stack = TestStack::start().await;
    stack.add_account("alice@example.org", "alice pw").await;
    let bob = stack.add_account("bob@example.org", "bob pw").await;
    let port = stack.submission.expect("submission listener");
    let alice = ("alice@example.org", "alice pw");
    let to = ["bob@example.org", "carol@elsewhere.net"];

    let sent =
        smtp_submit(port, SubmitMode::StartTls, &cafile(), alice, "alice@example.org", &to, &message("bob", "sub"))
            .await;
    assert_eq!(sent.outcome, "ok", "{sent:?}");
    assert!(sent.features_before_tls.contains(&"STARTTLS".to_owned()), "{sent:?}");
    assert!(!sent.features_before_tls.iter().any(|f| f.starts_with("AUTH")), "no AUTH in the clear: {sent:?}");
    assert!(sent.features.contains(&"AUTH= PLAIN LOGIN".to_owned()), "{sent:?}");
    assert!(!sent.features.contains(&"STARTTLS".to_owned()), "STARTTLS is not offered twice: {sent:?}");
    stack.wait_for_inbox(bob, 1, PATIENCE).await;
    let read = pop3_session(stack.pop3_addr(), "bob@example.org", "bob pw", Pop3End::Quit).await;
    let received = String::from_utf8_lossy(&read.messages[0]);
    assert!(received.contains("(Authenticated sender: alice@example.org)"), "{received}");
    assert!(received.contains("with ESMTPSA id"), "{received}");
    assert!(received.contains("(using TLSv1.3 with cipher "), "{received}");

    // MAIL FROM must be an address the account owns (553 5.7.1).
    let forged = smtp_submit(port, SubmitMode::StartTls, &cafile(), alice, "bob@example.org", &to, b"x\r\n").await;
    assert_eq!((forged.outcome.as_str(), forged.code), ("send refused", 553), "{forged:?}");
    assert!(forged.text.starts_with("5.7.1"), "{forged:?}");
    // A wrong password is 535 5.7.8.
    let wrong = smtp_submit(
        port,
        SubmitMode::StartTls,
        &cafile(),
        ("alice@example.org", "nope"),
        "alice@example.org",
        &to,
        b"x\r\n",
    )
    .await;
    assert_eq!((wrong.outcome.as_str(), wrong.code), ("auth refused", 535), "{wrong:?}");
    // Without AUTH, MAIL gets 530 5.7.0.
    let anonymous =
        smtp_submit(port, SubmitMode::StartTlsNoAuth, &cafile(), alice, "alice@example.org", &to, b"x\r\n").await;
    assert_eq!((anonymous.outcome.as_str(), anonymous.code), ("send refused", 530), "{anonymous:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn submission_on_465_is_tls_from_the_first_byte_with_auth_login() {
    let stack = TestStack::start().await;
    let dave = stack.add_account("dave@example.org", "dave pw").await;
    let port = stack.submissions.expect("implicit TLS listener");
    let sent = smtp_submit(
        port,
        SubmitMode::ImplicitTls,
        &cafile(),
        ("dave@example.org", "dave pw"),
        "dave@example.org",
        &["dave@example.org"],
        &message("dave", "465"),
    )
    .await;
    assert_eq!(sent.outcome, "ok", "{sent:?}");
    assert!(sent.features.contains(&"AUTH= PLAIN LOGIN".to_owned()), "{sent:?}");
    stack.wait_for_inbox(dave, 1, PATIENCE).await;
    // A client that speaks plain SMTP to 465 gets no greeting.
    let mut plain = tokio::net::TcpStream::connect(port).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut plain, b"EHLO client.test\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n =
        tokio::time::timeout(PATIENCE, tokio::io::AsyncReadExt::read(&mut plain, &mut buf)).await.unwrap().unwrap_or(0);
    assert!(!buf[..n].starts_with(b"220"), "no plaintext SMTP on 465");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn port_25_offers_starttls_but_never_auth_and_delivers_locally() {
    let stack = TestStack::start().await;
    let erin = stack.add_account("erin@example.org", "pw").await;
    let sent = smtp_submit(
        stack.smtp_addr(),
        SubmitMode::Mx,
        &cafile(),
        ("", ""),
        "someone@elsewhere.net",
        &["erin@example.org"],
        &message("erin", "mx-tls"),
    )
    .await;
    assert_eq!(sent.outcome, "ok", "{sent:?}");
    assert!(sent.features_before_tls.contains(&"STARTTLS".to_owned()), "{sent:?}");
    for features in [&sent.features_before_tls, &sent.features] {
        assert!(!features.iter().any(|f| f.starts_with("AUTH")), "port 25 never offers AUTH: {sent:?}");
        for keyword in ["PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN", "SIZE"] {
            assert!(features.contains(&keyword.to_owned()), "{keyword} missing: {sent:?}");
        }
    }
    stack.wait_for_inbox(erin, 1, PATIENCE).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_open_relay_battery_is_refused_on_port_25() {
    let stack = TestStack::start().await;
    stack.add_account("frank@example.org", "pw").await;
    let (mut smtp, _) = SmtpRaw::connect(stack.smtp_addr()).await;
    assert_eq!(smtp.command("EHLO attacker.test").await.code, 250);
    assert_eq!(smtp.command("MAIL FROM:<spammer@attacker.test>").await.code, 250);
    let attempts = [
        "<victim@elsewhere.net>",
        "<victim@elsewhere.net.>",
        "<victim%elsewhere.net@example.org>",
        "<victim!elsewhere.net@example.org>",
        "<elsewhere.net!victim@example.org>",
        "<\"victim@elsewhere.net\"@example.org>",
        "<@example.org:victim@elsewhere.net>",
        "<@example.org,@relay.test:victim@elsewhere.net>",
        "<victim@[127.0.0.1]>",
        "<victim@[IPv6:::1]>",
        "<victim@example.org.elsewhere.net>",
        "<victim@elsewhere.net@example.org>",
        "<frank@example.org@elsewhere.net>",
        "<VICTIM@ELSEWHERE.NET>",
    ];
    for attempt in attempts {
        let reply = smtp.command(&format!("RCPT TO:{attempt}")).await;
        assert!(reply.code >= 500, "{attempt} got {reply:?}");
    }
    // The session is still usable, and a local recipient is still accepted.
    assert_eq!(smtp.command("RCPT TO:<frank@example.org>").await.code, 250);
    assert_eq!(smtp.command("QUIT").await.code, 221);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_transactions_and_bdat_on_the_wire() {
    let stack = TestStack::start().await;
    let gina = stack.add_account("gina@example.org", "pw").await;
    let (mut smtp, greeting) = SmtpRaw::connect(stack.smtp_addr()).await;
    assert_eq!(greeting.code, 220);
    // RFC 2920: a whole transaction, and the next MAIL, in one write.
    smtp.send(
        b"EHLO client.test\r\nMAIL FROM:<a@elsewhere.net>\r\nRCPT TO:<gina@example.org>\r\nRCPT TO:<nobody@example.org>\r\nDATA\r\n",
    )
    .await;
    let codes: Vec<u16> =
        [smtp.reply().await, smtp.reply().await, smtp.reply().await, smtp.reply().await, smtp.reply().await]
            .iter()
            .map(|r| r.code)
            .collect();
    assert_eq!(codes, [250, 250, 250, 550, 354]);
    smtp.send(b"Subject: one\r\n\r\npipelined\r\n.\r\nMAIL FROM:<a@elsewhere.net>\r\nRCPT TO:<gina@example.org>\r\n")
        .await;
    assert_eq!(smtp.reply().await.code, 250, "end of data");
    assert_eq!(smtp.reply().await.code, 250, "MAIL");
    assert_eq!(smtp.reply().await.code, 250, "RCPT");
    // RFC 3030: the body in two chunks; the second chunk ends with bytes that look like commands.
    smtp.send(b"BDAT 22\r\nSubject: two\r\n\r\nchunk ").await;
    let first = smtp.reply().await;
    assert_eq!(first.code, 250, "{first:?}");
    smtp.send(b"BDAT 16 LAST\r\nQUIT\r\n.\r\nbytes\r\n").await;
    let last = smtp.reply().await;
    assert_eq!(last.code, 250, "{last:?}");
    assert!(last.text.contains("queued as"), "{last:?}");
    assert_eq!(smtp.command("QUIT").await.code, 221);
    stack.wait_for_inbox(gina, 2, PATIENCE).await;
    let read = pop3_session(stack.pop3_addr(), "gina@example.org", "pw", Pop3End::Quit).await;
    // The relay delivers concurrently, so the two may arrive in either order.
    let chunked = read.messages.iter().find(|m| m.windows(12).any(|w| w == b"Subject: two"));
    let chunked = chunked.expect("the BDAT message arrived");
    assert!(chunked.ends_with(b"Subject: two\r\n\r\nchunk QUIT\r\n.\r\nbytes\r\n"), "{chunked:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn smuggled_commands_stay_inside_the_one_message() {
    let stack = TestStack::start().await;
    let hank = stack.add_account("hank@example.org", "pw").await;
    let (mut smtp, _) = SmtpRaw::connect(stack.smtp_addr()).await;
    smtp.command("EHLO client.test").await;
    smtp.command("MAIL FROM:<a@elsewhere.net>").await;
    smtp.command("RCPT TO:<hank@example.org>").await;
    assert_eq!(smtp.command("DATA").await.code, 354);
    // The 2023 SMTP smuggling payloads: none of these ends the message.
    smtp.send(b"Subject: smuggle\r\n\r\nbefore\n.\nMAIL FROM:<ceo@example.org>\r\nRCPT TO:<hank@example.org>\r\nDATA\r\n\r.\rsecond\r\n.\r\r\n\n.\r\nthird\r\n.\r\n").await;
    let reply = smtp.reply().await;
    assert_eq!(reply.code, 250, "{reply:?}");
    assert_eq!(smtp.command("QUIT").await.code, 221, "the smuggled DATA left no transaction open");
    stack.wait_for_empty_queue(PATIENCE).await;
    assert_eq!(stack.inbox_uids(hank).await.len(), 1, "one message, not two");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_bit_bodies_and_utf8_addresses_arrive_intact() {
    let stack = TestStack::start().await;
    let jorg = stack.add_account("jörg@example.org", "pw").await;
    let (mut smtp, _) = SmtpRaw::connect(stack.smtp_addr()).await;
    smtp.command("EHLO client.test").await;
    let refused = smtp.command("MAIL FROM:<zoë@elsewhere.net>").await;
    assert_eq!((refused.code, refused.text.get(..5)), (553, Some("5.6.7")), "UTF-8 needs SMTPUTF8: {refused:?}");
    assert_eq!(smtp.command("MAIL FROM:<zoë@elsewhere.net> SMTPUTF8 BODY=8BITMIME").await.code, 250);
    assert_eq!(smtp.command("RCPT TO:<jörg@example.org>").await.code, 250);
    assert_eq!(smtp.command("DATA").await.code, 354);
    let body = "From: zoë@elsewhere.net\r\nSubject: Grüße\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nÄrger, Öl, Übel — ça va? 日本語\r\n";
    smtp.send(format!("{body}.\r\n").as_bytes()).await;
    assert_eq!(smtp.reply().await.code, 250);
    stack.wait_for_inbox(jorg, 1, PATIENCE).await;
    let read = pop3_session(stack.pop3_addr(), "jörg@example.org", "pw", Pop3End::Quit).await;
    assert!(read.messages[0].ends_with(body.as_bytes()), "8-bit body changed");
    let received = String::from_utf8_lossy(&read.messages[0]);
    assert!(received.contains("with UTF8SMTP id"), "{received}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_answer_with_the_rfc_codes() {
    let stack = TestStack::builder()
        .set("MAILBUS_SMTP_MAX_CONNECTIONS_PER_IP", "2")
        .set("MAILBUS_MAX_MESSAGE_SIZE", "2048")
        .set("MAILBUS_SMTP_LONG_LINES", "reject")
        .start()
        .await;
    stack.add_account("ivy@example.org", "pw").await;
    let (mut smtp, _) = SmtpRaw::connect(stack.smtp_addr()).await;
    let long = smtp.command(&format!("NOOP {}", "x".repeat(600))).await;
    assert_eq!((long.code, long.text.get(..5)), (500, Some("5.5.2")), "{long:?}");
    smtp.command("EHLO client.test").await;
    let size = smtp.command("MAIL FROM:<a@elsewhere.net> SIZE=4096").await;
    assert_eq!((size.code, size.text.get(..5)), (552, Some("5.3.4")), "{size:?}");
    smtp.command("MAIL FROM:<a@elsewhere.net>").await;
    smtp.command("RCPT TO:<ivy@example.org>").await;
    smtp.command("DATA").await;
    smtp.send(format!("Subject: big\r\n\r\n{}\r\n.\r\n", "y".repeat(3000)).as_bytes()).await;
    let too_big = smtp.reply().await;
    assert_eq!((too_big.code, too_big.text.get(..5)), (552, Some("5.3.4")), "{too_big:?}");
    smtp.command("MAIL FROM:<a@elsewhere.net>").await;
    smtp.command("RCPT TO:<ivy@example.org>").await;
    smtp.command("DATA").await;
    smtp.send(format!("Subject: long line\r\n\r\n{}\r\n.\r\n", "z".repeat(1200)).as_bytes()).await;
    let long_line = smtp.reply().await;
    assert_eq!((long_line.code, long_line.text.get(..5)), (500, Some("5.5.2")), "{long_line:?}");
    // Per-address connection cap: this is the second; the third is refused with 421 4.7.0.
    let (_second, greeting) = SmtpRaw::connect(stack.smtp_addr()).await;
    assert_eq!(greeting.code, 220);
    let (_, refused) = SmtpRaw::connect(stack.smtp_addr()).await;
    assert_eq!((refused.code, refused.text.get(..5)), (421, Some("4.7.0")), "{refused:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_directory_gets_451_not_a_hang_or_a_250() {
    let stack =
        TestStack::builder().roles(&[Role::SmtpIngress]).set("MAILBUS_MAILBOX_URL", "http://127.0.0.1:9").start().await;
    let (mut smtp, _) = SmtpRaw::connect(stack.smtp_addr()).await;
    smtp.command("EHLO client.test").await;
    smtp.command("MAIL FROM:<a@elsewhere.net>").await;
    let reply = smtp.command("RCPT TO:<anyone@example.org>").await;
    assert_eq!((reply.code, reply.text.get(..5)), (451, Some("4.3.0")), "{reply:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_says_421_to_idle_sessions() {
    let stack = TestStack::start().await;
    let (mut smtp, _) = SmtpRaw::connect(stack.smtp_addr()).await;
    assert_eq!(smtp.command("EHLO client.test").await.code, 250);
    let stopping = tokio::spawn(stack.stop());
    let goodbye = smtp.reply().await;
    assert_eq!((goodbye.code, goodbye.text.get(..5)), (421, Some("4.3.2")), "{goodbye:?}");
    tokio::time::timeout(PATIENCE, stopping).await.expect("shutdown finished").unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn swaks_and_curl_submit_over_tls_with_auth() {
    let stack = TestStack::start().await;
    let kim = stack.add_account("kim@example.org", "kim pw").await;
    let submission = stack.submission.unwrap();
    let kim_login = ("kim@example.org", "kim pw");
    let extra = ["--header", "Subject: swaks", "--pipeline"];
    let (ok, output) = swaks_submit(submission, &cafile(), kim_login, "kim@example.org", &extra).await;
    assert!(ok, "swaks failed:\n{output}");
    let (ok, output) = curl_submit(submission, &cafile(), kim_login, "kim@example.org", &message("kim", "curl")).await;
    assert!(ok, "curl failed:\n{output}");
    stack.wait_for_inbox(kim, 2, PATIENCE).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_is_refused_in_the_clear_and_repeated_failures_end_the_session() {
    fn plain(user: &str, password: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
    }
    let stack = TestStack::start().await;
    stack.add_account("lea@example.org", "right").await;
    let (mut smtp, _) = SmtpRaw::connect(stack.submission.unwrap()).await;
    smtp.command("EHLO client.test").await;
    let clear = smtp.command(&format!("AUTH PLAIN {}", plain("lea@example.org", "right"))).await;
    assert_eq!((clear.code, clear.text.get(..6)), (538, Some("5.7.11")), "{clear:?}");
    stack.stop().await;

    // With the development flag, AUTH works in the clear, and the third failure ends the session.
    let stack = TestStack::builder()
        .set("MAILBUS_SMTP_PLAINTEXT_AUTH", "true")
        .set("MAILBUS_SMTP_MAX_AUTH_FAILURES", "3")
        .start()
        .await;
    stack.add_account("lea@example.org", "right").await;
    let (mut smtp, _) = SmtpRaw::connect(stack.submission.unwrap()).await;
    smtp.command("EHLO client.test").await;
    for attempt in 1..=2 {
        let failed = smtp.command(&format!("AUTH PLAIN {}", plain("lea@example.org", "wrong"))).await;
        assert_eq!((failed.code, failed.text.get(..5)), (535, Some("5.7.8")), "attempt {attempt}: {failed:?}");
    }
    let last = smtp.command(&format!("AUTH PLAIN {}", plain("lea@example.org", "wrong"))).await;
    assert_eq!((last.code, last.text.get(..5)), (421, Some("4.7.0")), "{last:?}");
    assert_eq!(smtp.reply().await.code, 0, "the server closed the connection");
    let (mut again, _) = SmtpRaw::connect(stack.submission.unwrap()).await;
    again.command("EHLO client.test").await;
    let ok = again.command(&format!("AUTH PLAIN {}", plain("lea@example.org", "right"))).await;
    assert_eq!((ok.code, ok.text.get(..5)), (235, Some("2.7.0")), "{ok:?}");
    stack.stop().await;
}

/// Reads one reply (all its lines) from a raw connection; what there was when the connection ended.
async fn raw_reply(reader: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        // A server that closes with our bytes unread resets the connection: that is an end too.
        if matches!(reader.read_line(&mut line).await, Ok(0) | Err(_)) {
            return reply;
        }
        reply.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return reply;
        }
    }
}

/// A connection through a load balancer that speaks the PROXY protocol: `header`, then the session.
async fn through_proxy(addr: std::net::SocketAddr, header: &[u8]) -> tokio::io::BufReader<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(header).await.unwrap();
    tokio::io::BufReader::new(stream)
}

fn proxy_v2(client: std::net::SocketAddrV4) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend(client.ip().octets());
    header.extend([127, 0, 0, 1]);
    header.extend(client.port().to_be_bytes());
    header.extend(25u16.to_be_bytes());
    header
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_proxy_the_client_named_in_its_header_is_the_client() {
    use tokio::io::AsyncWriteExt;
    let stack = TestStack::builder()
        .set("MAILBUS_PROXY_PROTOCOL_FROM", "127.0.0.0/8")
        .set("MAILBUS_SMTP_MAX_CONNECTIONS_PER_IP", "1")
        .start()
        .await;
    let account = stack.add_account("pia@example.org", "pw").await;
    let smtp = stack.smtp_addr();

    // The header's client is the one in Received:, and the one the per-address cap counts.
    let mut first = through_proxy(smtp, b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 25\r\n").await;
    assert!(raw_reply(&mut first).await.starts_with("220 "));
    let mut same_client = through_proxy(smtp, &proxy_v2("198.51.100.7:40001".parse().unwrap())).await;
    assert!(raw_reply(&mut same_client).await.starts_with("421 4.7.0"), "one session per client address");
    let mut other_client = through_proxy(smtp, &proxy_v2("203.0.113.5:5000".parse().unwrap())).await;
    assert!(raw_reply(&mut other_client).await.starts_with("220 "), "another client behind the same proxy");
    for (line, code) in [
        ("EHLO client.example\r\n", "250"),
        ("MAIL FROM:<someone@example.net>\r\n", "250"),
        ("RCPT TO:<pia@example.org>\r\n", "250"),
        ("DATA\r\n", "354"),
    ] {
        first.get_mut().write_all(line.as_bytes()).await.unwrap();
        let reply = raw_reply(&mut first).await;
        assert!(reply.starts_with(code), "{line:?}: {reply}");
    }
    first.get_mut().write_all(&message("pia", "proxied")).await.unwrap();
    first.get_mut().write_all(b".\r\n").await.unwrap();
    assert!(raw_reply(&mut first).await.starts_with("250 "));
    stack.wait_for_inbox(account, 1, PATIENCE).await;
    let request = mailbus_proto::v1::FetchRequest {
        account_id: account,
        mailbox: "INBOX".into(),
        uids: vec![1],
        sections: vec![crate::store::section(&[], mailbus_proto::v1::SectionText::Header)],
        ..Default::default()
    };
    let fetched = crate::store::fetch(&stack, request).await.unwrap();
    let header = String::from_utf8_lossy(fetched[0].sections[0].as_deref().unwrap()).into_owned();
    assert!(header.contains("[198.51.100.7]"), "Received: names the proxied client: {header}");
    assert!(!header.contains("[127.0.0.1]"), "{header}");

    // From a trusted proxy the header is required: a bare session is dropped without a greeting.
    let mut bare = through_proxy(smtp, b"EHLO client.example\r\n").await;
    assert_eq!(raw_reply(&mut bare).await, "");

    // IMAP judges the proxied client: a remote one gets LOGINDISABLED in the clear, a loopback one (a
    // v1 header naming 127.0.0.1) may log in.
    let imap = stack.imap_addr();
    let mut remote = through_proxy(imap, &proxy_v2("198.51.100.7:40002".parse().unwrap())).await;
    let greeting = raw_reply(&mut remote).await;
    assert!(greeting.contains("LOGINDISABLED"), "{greeting}");
    let mut local = through_proxy(imap, b"PROXY TCP4 127.0.0.1 127.0.0.1 40003 143\r\n").await;
    let greeting = raw_reply(&mut local).await;
    assert!(greeting.starts_with("* OK") && !greeting.contains("LOGINDISABLED"), "{greeting}");
    stack.stop().await;
}

/// smtp-ingress and the relay keep the mailbox role's answers about recipients (60 s by default), yet a
/// change to the directory is seen by the next RCPT TO: the mailbox role announces it on NATS before it
/// replies (the followers have it within milliseconds), and both roles forget what they kept.
#[tokio::test(flavor = "multi_thread")]
async fn rcpt_answers_are_kept_and_a_directory_change_is_seen_by_the_next_rcpt() {
    use mailbus_tests::clients::{SmtpOutcome, smtp_send};
    let stack = TestStack::start().await;
    let erin = stack.add_account("erin@example.org", "pw").await;
    let send = async |to: &str, subject: &str| {
        smtp_send(stack.smtp_addr(), "a@elsewhere.net", &[to], &message(to, subject)).await
    };
    let accepted = |sent: &SmtpOutcome| matches!(sent, SmtpOutcome::Accepted { code: 250, .. });
    let refused = |sent: &SmtpOutcome| matches!(sent, SmtpOutcome::RecipientsRefused(codes) if codes[0].1 == 550);
    let sent = send("erin@example.org", "1").await;
    assert!(accepted(&sent), "{sent:?}");
    stack.wait_for_inbox(erin, 1, PATIENCE).await;

    // Disabled behind the mailbox role's back (no announcement): the kept answer still stands...
    let pool = sqlx::PgPool::connect(&stack.database_url).await.unwrap();
    sqlx::query("UPDATE accounts SET disabled = true WHERE id = $1").bind(erin).execute(&pool).await.unwrap();
    let sent = send("erin@example.org", "2").await;
    assert!(accepted(&sent), "the answer was not kept: {sent:?}");
    // ...until any change through the mailbox role is announced, which clears every kept answer.
    let refused_before = send("newbie@example.org", "3").await;
    assert!(refused(&refused_before), "{refused_before:?}");
    let newbie = stack.add_account("newbie@example.org", "pw").await;
    let sent = send("newbie@example.org", "4").await;
    assert!(accepted(&sent), "a new account refused: {sent:?}");
    stack.wait_for_inbox(newbie, 1, PATIENCE).await;
    let sent = send("erin@example.org", "5").await;
    assert!(refused(&sent), "a disabled account still accepted after the announcement: {sent:?}");

    let request = mailbus_proto::v1::RemoveAccountRequest { address: "newbie@example.org".into() };
    stack.directory().await.remove_account(request).await.expect("removing newbie");
    let sent = send("newbie@example.org", "6").await;
    assert!(refused(&sent), "a removed account still accepted: {sent:?}");
    stack.stop().await;
}

/// A relay acting on a kept answer gone stale (an alias that led to an account now only forwards, and
/// the announcement was lost) calls Deliver for it: Deliver refuses for a retry, so the relay asks the
/// directory again, instead of storing the message nowhere and calling that a success.
#[tokio::test(flavor = "multi_thread")]
async fn deliver_refuses_for_a_retry_an_address_that_leads_to_no_account_any_more() {
    let stack = TestStack::start().await;
    stack.add_account("someone@example.org", "pw").await;
    let request = mailbus_proto::v1::AddAliasRequest {
        address: "fwd@example.org".into(),
        targets: vec!["out@remote.test".into()],
    };
    stack.directory().await.add_alias(request).await.expect("adding a forwarding alias");
    let refused = stack.deliver(&format!("{:032x}", 7), "fwd@example.org", &message("fwd", "stale")).await;
    assert_eq!(refused.map(|r| r.duplicate).unwrap_err().code(), tonic::Code::Aborted);
    stack.stop().await;
}
