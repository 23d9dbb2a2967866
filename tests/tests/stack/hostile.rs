//! Hostile clients, one defect each: a client that has not logged in cannot make IMAP buffer a huge line
//! or literal; one address cannot use up a protocol's connections (or port 25's, submission's); a client
//! that dribbles bytes is closed at the login deadline; failed logins are counted across sessions and
//! protocols, so reconnecting does not reset them. The load and memory test with thousands of connections
//! is in `flood.rs`. A TLS handshake that never starts is let go at one limit, whatever the protocol.
//! Sessions that stop reading big replies hold up nobody else's calls to the mailbox role.

use mailbus_tests::TestStack;
use mailbus_tests::raw::RawClient;

const ATTACKER: &str = "127.0.0.1";
const NEIGHBOUR: &str = "127.0.0.2";

/// An IMAP connection that has read its greeting.
async fn imap(source: &str, stack: &TestStack) -> RawClient {
    let mut client = RawClient::connect(source, stack.imap_addr()).await;
    let greeting = client.line().await.expect("a greeting");
    assert!(greeting.starts_with("* OK"), "{greeting}");
    client
}

async fn pop3(source: &str, stack: &TestStack) -> RawClient {
    let mut client = RawClient::connect(source, stack.pop3_addr()).await;
    let greeting = client.line().await.expect("a greeting");
    assert!(greeting.starts_with("+OK"), "{greeting}");
    client
}

async fn imap_login(client: &mut RawClient, tag: &str, user: &str, password: &str) -> String {
    client.send(format!("{tag} LOGIN {user} {password}\r\n").as_bytes()).await;
    client.line_starting(&format!("{tag} ")).await.expect("a LOGIN reply")
}

/// SMTP AUTH PLAIN on submission (the test stacks allow it without TLS); the reply line.
async fn smtp_auth(source: &str, stack: &TestStack, user: &str, password: &str) -> String {
    let mut client = RawClient::connect(source, stack.submission.expect("submission")).await;
    assert!(client.line().await.expect("a greeting").starts_with("220"));
    let plain = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("\0{user}\0{password}"));
    client.send(format!("EHLO client.example\r\nAUTH PLAIN {plain}\r\n").as_bytes()).await;
    client.line_starting("250 ").await.expect("EHLO answered");
    client.line().await.expect("AUTH answered")
}

async fn pop3_login(client: &mut RawClient, user: &str, password: &str) -> String {
    client.send(format!("USER {user}\r\n").as_bytes()).await;
    let user_reply = client.line().await.expect("a USER reply");
    assert!(user_reply.starts_with("+OK"), "{user_reply}");
    client.send(format!("PASS {password}\r\n").as_bytes()).await;
    client.line().await.expect("a PASS reply")
}

/// Issue item 1: before login a literal larger than a login needs is refused before its `+`, and a line
/// that keeps growing ends the session at once; after login, APPEND literals up to APPENDLIMIT are taken.
#[tokio::test]
async fn imap_refuses_big_lines_and_literals_before_login_and_takes_them_after() {
    let stack = TestStack::start().await;
    stack.add_account("alice@example.org", "pw").await;

    let mut client = imap(ATTACKER, &stack).await;
    client.send(b"a LOGIN {52428800}\r\n").await;
    let refused = client.line().await.expect("a reply to the literal");
    assert!(refused.starts_with("a BAD"), "a 50 MB literal before login must not get a +: {refused}");
    // A literal a login needs still works, and after the login the framer takes large literals.
    client.send(b"b LOGIN {17}\r\n").await;
    assert!(client.line().await.expect("a continuation").starts_with('+'));
    client.send(b"alice@example.org {2}\r\n").await;
    assert!(client.line().await.expect("a continuation").starts_with('+'));
    client.send(b"pw\r\n").await;
    let login = client.line_starting("b ").await.expect("a LOGIN reply");
    assert!(login.starts_with("b OK"), "{login}");
    let mut message = b"Subject: large\r\n\r\n".to_vec();
    message.resize(1 << 20, b'x');
    client.send(format!("c APPEND INBOX {{{}}}\r\n", message.len()).as_bytes()).await;
    let go_ahead = client.line().await.expect("a continuation");
    assert!(go_ahead.starts_with('+'), "a 1 MiB APPEND after login gets its +: {go_ahead}");
    client.send(&message).await;
    client.send(b"\r\n").await;
    let appended = client.line_starting("c ").await.expect("an APPEND reply");
    assert!(appended.starts_with("c OK"), "{appended}");
    // Logged in, the text of a command outside its literals is still bounded (64 KiB, as Dovecot).
    let mut line = b"d SEARCH TEXT ".to_vec();
    line.resize(1 << 20, b'y');
    client.send_until_closed(&line).await;
    let said = client.rest().await;
    assert!(said.iter().any(|l| l.starts_with("* BYE [LIMIT]")), "{said:?}");

    // A line with no end, before login: BYE, and the connection closes long before 50 MB went in.
    let mut flooder = imap(ATTACKER, &stack).await;
    let line = vec![b'x'; 50 << 20];
    let writer = tokio::spawn(async move {
        let sent = flooder.send_until_closed(&line).await;
        (sent, flooder.rest().await)
    });
    let (sent, said) = writer.await.unwrap();
    assert!(said.iter().any(|l| l.starts_with("* BYE [LIMIT]")), "{said:?}");
    assert!(sent < 50 << 20, "the server read the whole line instead of closing");
}

/// Issue item 2 and the SMTP half of item 7: each protocol (and port 25 apart from submission) caps the
/// connections of one address, and another address still gets in.
#[tokio::test]
async fn one_address_at_its_cap_shuts_nobody_else_out() {
    let stack = TestStack::builder()
        .set("MAILBUS_IMAP_MAX_CONNECTIONS_PER_IP", "3")
        .set("MAILBUS_POP3_MAX_CONNECTIONS_PER_IP", "3")
        .set("MAILBUS_SMTP_MAX_CONNECTIONS_PER_IP", "3")
        .start()
        .await;
    stack.add_account("bob@example.org", "pw").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(imap(ATTACKER, &stack).await);
        held.push(pop3(ATTACKER, &stack).await);
        let mut smtp = RawClient::connect(ATTACKER, stack.smtp_addr()).await;
        assert!(smtp.line().await.expect("a greeting").starts_with("220"));
        held.push(smtp);
    }

    let mut over = RawClient::connect(ATTACKER, stack.imap_addr()).await;
    let refusal = over.line().await.expect("a refusal");
    assert!(refusal.starts_with("* BYE [UNAVAILABLE]"), "{refusal}");
    let mut over = RawClient::connect(ATTACKER, stack.pop3_addr()).await;
    let refusal = over.line().await.expect("a refusal");
    assert!(refusal.starts_with("-ERR [SYS/TEMP]"), "{refusal}");
    let mut over = RawClient::connect(ATTACKER, stack.smtp_addr()).await;
    let refusal = over.line().await.expect("a refusal");
    assert!(refusal.starts_with("421 4.7.0"), "{refusal}");

    // Submission has caps of its own: port 25's full house does not touch it.
    let mut submission = RawClient::connect(ATTACKER, stack.submission.expect("submission")).await;
    assert!(submission.line().await.expect("a greeting").starts_with("220"));

    // The neighbour logs in and reads, on both protocols.
    let mut client = imap(NEIGHBOUR, &stack).await;
    assert!(imap_login(&mut client, "a", "bob@example.org", "pw").await.starts_with("a OK"));
    client.send(b"b SELECT INBOX\r\n").await;
    assert!(client.line_starting("b ").await.expect("a SELECT reply").starts_with("b OK"));
    let mut client = pop3(NEIGHBOUR, &stack).await;
    assert!(pop3_login(&mut client, "bob@example.org", "pw").await.starts_with("+OK"));
    let mut smtp = RawClient::connect(NEIGHBOUR, stack.smtp_addr()).await;
    assert!(smtp.line().await.expect("a greeting").starts_with("220"));
    drop(held);
}

/// Issue item 3 for IMAP and POP3: a connection that has not logged in by the login deadline is closed,
/// however it keeps feeding bytes; the per-read timeout alone never ended it.
#[tokio::test]
async fn a_client_dribbling_bytes_before_login_is_closed_at_the_login_deadline() {
    let stack = TestStack::builder()
        .set("MAILBUS_IMAP_LOGIN_TIMEOUT_SECS", "2")
        .set("MAILBUS_POP3_LOGIN_TIMEOUT_SECS", "2")
        .start()
        .await;
    for (server, farewell) in
        [(stack.imap_addr(), "* BYE [UNAVAILABLE] login timed out"), (stack.pop3_addr(), "-ERR login timed out")]
    {
        let mut client = RawClient::connect(ATTACKER, server).await;
        client.line().await.expect("a greeting");
        // One byte every 200 ms for up to 20 s: far past the deadline, never a whole line.
        let mut stream = client.into_inner();
        let dribble = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut said = Vec::new();
            for _ in 0..100 {
                if stream.write_all(b"x").await.is_err() {
                    break;
                }
                let mut buf = [0u8; 512];
                match tokio::time::timeout(std::time::Duration::from_millis(200), stream.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return (true, String::from_utf8_lossy(&said).into_owned()),
                    Ok(Ok(n)) => said.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
            }
            (false, String::from_utf8_lossy(&said).into_owned())
        });
        let (closed, said) = dribble.await.unwrap();
        assert!(closed, "the dribbling client was still connected after 20 s: {said:?}");
        assert!(said.contains(farewell), "{said:?}");
    }
}

/// Issue item 6: failures count per address across sessions and protocols (a new connection starts no
/// new count), the address is then refused even with the right password, and another address is not.
#[tokio::test]
async fn failed_logins_count_across_sessions_and_protocols() {
    let stack = TestStack::builder()
        .set("MAILBUS_AUTH_MAX_FAILURES_PER_IP", "3")
        .set("MAILBUS_SMTP_PLAINTEXT_AUTH", "true")
        .start()
        .await;
    stack.add_account("carol@example.org", "right").await;
    let mut client = imap(ATTACKER, &stack).await;
    assert!(imap_login(&mut client, "a", "carol@example.org", "wrong").await.starts_with("a NO"));
    let mut client = pop3(ATTACKER, &stack).await;
    assert!(pop3_login(&mut client, "carol@example.org", "wrong").await.starts_with("-ERR [AUTH]"));
    let failed = smtp_auth(ATTACKER, &stack, "nobody@example.org", "wrong").await;
    assert!(failed.starts_with("535"), "{failed}");

    // Three failures from this address: even the right password is not checked now.
    let mut client = imap(ATTACKER, &stack).await;
    let refused = imap_login(&mut client, "a", "carol@example.org", "right").await;
    assert!(refused.starts_with("a NO [UNAVAILABLE]"), "{refused}");
    let mut client = pop3(ATTACKER, &stack).await;
    let refused = pop3_login(&mut client, "carol@example.org", "right").await;
    assert!(refused.starts_with("-ERR [SYS/TEMP]"), "{refused}");
    let refused = smtp_auth(ATTACKER, &stack, "carol@example.org", "right").await;
    assert!(refused.starts_with("454 4.7.0"), "{refused}");

    let mut client = imap(NEIGHBOUR, &stack).await;
    assert!(imap_login(&mut client, "a", "carol@example.org", "right").await.starts_with("a OK"));
    let mut client = pop3(NEIGHBOUR, &stack).await;
    assert!(pop3_login(&mut client, "carol@example.org", "right").await.starts_with("+OK"));
    assert!(smtp_auth(NEIGHBOUR, &stack, "carol@example.org", "right").await.starts_with("235"));
}

/// Issue item 9: without a configured certificate, one process presents one generated certificate on
/// every TLS port (465, 993, 995), not one per protocol.
#[tokio::test]
async fn a_process_without_a_certificate_presents_one_generated_certificate_everywhere() {
    let stack = TestStack::builder().set("MAILBUS_TLS_CERT", "").set("MAILBUS_TLS_KEY", "").start().await;
    let connector = tokio_rustls::TlsConnector::from(mailbus_tls::opportunistic_client_config());
    let mut certificates = Vec::new();
    for port in [stack.submissions, stack.imaps, stack.pop3s] {
        let tcp = tokio::net::TcpStream::connect(port.expect("an implicit-TLS listener")).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("mx.test").unwrap();
        let tls = connector.connect(name, tcp).await.expect("a TLS handshake");
        let presented = tls.get_ref().1.peer_certificates().expect("a certificate")[0].clone();
        certificates.push(presented.as_ref().to_vec());
    }
    assert!(certificates.windows(2).all(|w| w[0] == w[1]), "SMTP, IMAP and POP3 present different certificates");
}

/// IMAP and POP3 each have a total cap of their own: POP3's no longer limits IMAP (it used to cap both),
/// and each holds for its own protocol, whatever address a client comes from.
#[tokio::test]
async fn imap_and_pop3_have_total_caps_of_their_own() {
    let stack = TestStack::builder()
        .set("MAILBUS_POP3_MAX_CONNECTIONS", "2")
        .set("MAILBUS_IMAP_MAX_CONNECTIONS", "3")
        .start()
        .await;
    let mut held = vec![pop3(ATTACKER, &stack).await, pop3(NEIGHBOUR, &stack).await];
    let mut over = RawClient::connect("127.0.0.4", stack.pop3_addr()).await;
    let refusal = over.line().await.expect("a refusal");
    assert!(refusal.starts_with("-ERR [SYS/TEMP]"), "POP3's third session: {refusal}");
    for source in [ATTACKER, NEIGHBOUR, "127.0.0.4"] {
        held.push(imap(source, &stack).await);
    }
    let mut over = RawClient::connect("127.0.0.5", stack.imap_addr()).await;
    let refusal = over.line().await.expect("a refusal");
    assert!(refusal.starts_with("* BYE [UNAVAILABLE]"), "IMAP's fourth session: {refusal}");
    drop(held);
}

/// One TLS-handshake limit for every protocol (`MAILBUS_TLS_HANDSHAKE_TIMEOUT_SECS`): a client that opens
/// an implicit-TLS port, or asks for STARTTLS/STLS, and then never starts its handshake is let go when it
/// passes, not at the login deadline (60 s here) or SMTP's command timeout (5 minutes).
#[tokio::test]
async fn a_handshake_that_never_starts_is_let_go_at_the_one_tls_limit_on_every_protocol() {
    let stack = TestStack::builder().set("MAILBUS_TLS_HANDSHAKE_TIMEOUT_SECS", "1").start().await;
    for port in [stack.submissions, stack.imaps, stack.pop3s] {
        let port = port.expect("an implicit-TLS listener");
        let mut silent = RawClient::connect(ATTACKER, port).await;
        assert_eq!(silent.line().await, None, "{port}: still open after the handshake limit");
    }

    let mut imap = imap(ATTACKER, &stack).await;
    imap.send(b"a STARTTLS\r\n").await;
    assert!(imap.line().await.expect("a go-ahead").starts_with("a OK"));
    assert_eq!(imap.line().await, None, "IMAP STARTTLS without a handshake was kept");

    let mut pop3 = pop3(ATTACKER, &stack).await;
    pop3.send(b"STLS\r\n").await;
    assert!(pop3.line().await.expect("a go-ahead").starts_with("+OK"));
    assert_eq!(pop3.line().await, None, "POP3 STLS without a handshake was kept");

    let mut smtp = RawClient::connect(ATTACKER, stack.submission.expect("submission")).await;
    assert!(smtp.line().await.expect("a greeting").starts_with("220"));
    smtp.send(b"EHLO client.example\r\n").await;
    smtp.line_starting("250 ").await.expect("EHLO answered");
    smtp.send(b"STARTTLS\r\n").await;
    assert!(smtp.line().await.expect("a go-ahead").starts_with("220"));
    assert_eq!(smtp.line().await, None, "SMTP STARTTLS without a handshake was kept");

    let mut sieve = RawClient::connect(ATTACKER, stack.managesieve.expect("managesieve")).await;
    sieve.line_starting("OK").await.expect("a greeting");
    sieve.send(b"STARTTLS\r\n").await;
    assert!(sieve.line().await.expect("a go-ahead").starts_with("OK"));
    assert_eq!(sieve.line().await, None, "ManageSieve STARTTLS without a handshake was kept");
}

/// Every IMAP session of an access process reaches a mailbox replica over one HTTP/2 connection, whose
/// flow-control window comes back only as replies are read. Sessions that ask for big messages and then
/// stop reading leave their replies unread; that must not hold up another user's FETCH (with hyper's
/// default window, three such sessions did, until the 60-second call timeout).
#[tokio::test(flavor = "multi_thread")]
async fn sessions_that_stop_reading_big_fetches_hold_up_nobody_else() {
    let stack = TestStack::start().await;
    let hoarder = stack.add_account("hoarder@example.org", "pw").await;
    let neighbour = stack.add_account("neighbour@example.org", "pw").await;
    let big = {
        let mut message = b"From: <a@example.net>\r\nSubject: big\r\n\r\n".to_vec();
        message.extend(b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n".repeat(160_000));
        message
    };
    for _ in 0..2 {
        crate::store::append(&stack, hoarder, "INBOX", &[], None, &big).await.expect("a big message stored");
    }
    crate::store::append(&stack, neighbour, "INBOX", &[], None, &crate::message("neighbour", "small"))
        .await
        .expect("a small message stored");
    let mut stalled = Vec::new();
    for i in 0..6 {
        let mut client = imap(ATTACKER, &stack).await;
        assert!(imap_login(&mut client, "l", "hoarder@example.org", "pw").await.starts_with("l OK"));
        client.send(b"s SELECT INBOX\r\n").await;
        assert!(client.line_starting("s ").await.expect("SELECT answered").starts_with("s OK"));
        // Asks for both (about 23 MB) and reads none of it.
        client.send(format!("f{i} FETCH 1:2 BODY.PEEK[]\r\n").as_bytes()).await;
        // Its reply has begun: the rest of it fills the socket, then the stream's window, unread. (Had the
        // hoarders before it used up the connection's window, this one would not start either.)
        let started = tokio::time::timeout(std::time::Duration::from_secs(15), client.line_starting("* 1 FETCH")).await;
        assert!(started.expect("held up by the hoarders before it").is_some(), "the hoarder's FETCH starts");
        stalled.push(client);
    }
    let mut other = imap(NEIGHBOUR, &stack).await;
    assert!(imap_login(&mut other, "l", "neighbour@example.org", "pw").await.starts_with("l OK"));
    other.send(b"s SELECT INBOX\r\nf FETCH 1 BODY.PEEK[]\r\n").await;
    let answered = tokio::time::timeout(std::time::Duration::from_secs(15), other.line_starting("f ")).await;
    assert_eq!(
        answered.expect("the neighbour's FETCH is answered while the hoarder's replies wait").as_deref(),
        Some("f OK FETCH completed")
    );
    drop(stalled);
    stack.stop().await;
}
