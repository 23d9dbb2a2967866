//! STARTTLS (RFC 3207): offered only with a certificate and only once, and a full reset after it.

use super::*;

#[test]
fn starttls_resets_the_session_and_drops_pipelined_plaintext() {
    let mut client = Client::mx();
    // CVE-2011-0411: commands sent in the clear behind STARTTLS must not be read as if they came over TLS.
    let replies = client.send("EHLO c.example\r\nSTARTTLS\r\nMAIL FROM:<injected@example.net>\r\n");
    assert_eq!(
        replies,
        [
            "250-mx.example.org Hello c.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING",
            "220 2.0.0 Ready to start TLS"
        ]
    );
    assert_eq!(client.dropped, b"MAIL FROM:<injected@example.net>\r\n");
    assert_eq!(client.session.tls(), Some(&tls_info()));
    // RFC 3207 §4.2: back to the very start, EHLO first; STARTTLS is no longer offered.
    let replies = client.send("MAIL FROM:<a@example.net>\r\nEHLO c.example\r\nSTARTTLS\r\n");
    assert_eq!(replies[0], "503 5.5.1 Bad sequence of commands: send HELO or EHLO first");
    assert!(!replies[1].contains("STARTTLS"));
    assert_eq!(replies[2], "503 5.5.1 Bad sequence of commands: TLS already active");
    let replies = client.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nx\r\n.\r\n");
    assert_eq!(codes(&replies), ["250", "250", "354", "250"]);
    assert_eq!(client.messages[0].tls, Some(tls_info()));
}

#[test]
fn starttls_refusals() {
    let no_cert = SessionConfig { starttls_available: false, ..config(Mode::Mx) };
    let mut client = Client::new(no_cert, None);
    assert_eq!(client.send("EHLO c\r\nSTARTTLS\r\n")[1], "502 5.5.1 STARTTLS command not implemented");

    let mut client = Client::new(config(Mode::Submission), Some(tls_info()));
    assert_eq!(client.send("EHLO c\r\nSTARTTLS\r\n")[1], "503 5.5.1 Bad sequence of commands: TLS already active");

    let mut client = Client::mx();
    let replies = client.send("STARTTLS\r\nEHLO c\r\nSTARTTLS now\r\nMAIL FROM:<a@example.net>\r\nSTARTTLS\r\n");
    assert_eq!(replies[0], "503 5.5.1 Bad sequence of commands: send EHLO first");
    assert_eq!(replies[2], "501 5.5.4 Syntax: STARTTLS");
    assert_eq!(replies[4], "503 5.5.1 Bad sequence of commands: MAIL transaction in progress");
    assert_eq!(client.session.tls(), None);
}

#[test]
fn starttls_on_submission_then_auth() {
    let mut client = Client::new(config(Mode::Submission), None);
    let replies =
        client.send("EHLO c\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==\r\nMAIL FROM:<alice@example.org>\r\n");
    assert_eq!(replies[1], "538 5.7.11 Encryption required for requested authentication mechanism");
    assert_eq!(replies[2], "530 5.7.0 Authentication required");
    assert!(client.logins.is_empty(), "a password sent in the clear must not be checked");
    client.send("STARTTLS\r\n");
    let replies = client.send("EHLO c\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==\r\n");
    assert!(replies[0].contains("AUTH PLAIN LOGIN"));
    assert_eq!(replies[1], "235 2.7.0 Authentication successful");
}

#[test]
fn an_identity_proved_in_the_clear_is_forgotten_at_starttls() {
    let dev = SessionConfig { plaintext_auth: true, ..config(Mode::Submission) };
    let mut client = Client::new(dev, None);
    let replies = client.send("EHLO c\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==\r\nSTARTTLS\r\n");
    assert_eq!(codes(&replies), ["250", "235", "220"]);
    assert_eq!(client.session.authenticated_user(), None);
    assert_eq!(client.send("EHLO c\r\nMAIL FROM:<alice@example.org>\r\n")[1], "530 5.7.0 Authentication required");
}

#[test]
fn commands_during_the_handshake_are_refused() {
    let mut session = Session::new(config(Mode::Mx), None);
    session.handle(Ok(Request::Ehlo { host: "c".into() }));
    assert!(matches!(session.handle(Ok(Request::StartTls)), Action::StartTls(_)));
    let Action::Reply(reply) = session.handle(Ok(Request::Noop { value: String::new() })) else { panic!() };
    assert_eq!(reply.to_string(), "503 5.5.1 Bad sequence of commands: TLS negotiation in progress");
    session.tls_started(tls_info());
    assert!(matches!(session.handle(Ok(Request::Noop { value: String::new() })), Action::Reply(r) if r.code == 250));
}
