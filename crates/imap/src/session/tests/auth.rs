//! RFC 9051 §6.1–§6.2 (RFC 3501 alike): the greeting, CAPABILITY, STARTTLS, LOGIN, AUTHENTICATE PLAIN
//! (RFC 4616, with RFC 4959's initial response), LOGOUT, and RFC 8437 UNAUTHENTICATE.

use super::*;

const PRE_LOGIN: &str = "IMAP4rev1 LITERAL+ SASL-IR IDLE IMAP4rev2 ID ENABLE NAMESPACE";

#[test]
fn the_greeting_lists_the_capabilities_and_plain_over_tls() {
    let mut session = Session::new(MemoryStore::default(), MemoryWire::default(), config(true));
    futures::executor::block_on(session.advance());
    let greeting = session.wire().take_sent();
    assert_eq!(greeting, format!("* OK [CAPABILITY {PRE_LOGIN} AUTH=PLAIN] mailbus IMAP ready\r\n"));
}

#[test]
fn without_tls_login_is_disabled_until_starttls() {
    let mut client = Client::on(MemoryStore::default(), config(false));
    assert_eq!(
        client.send("a CAPABILITY\r\n"),
        format!("* CAPABILITY {PRE_LOGIN} STARTTLS LOGINDISABLED\r\na OK CAPABILITY completed\r\n")
    );
    assert_eq!(
        client.send(&format!("b LOGIN {USER} {PASSWORD}\r\n")),
        "b NO [PRIVACYREQUIRED] LOGIN is disabled until STARTTLS\r\n"
    );
    assert_eq!(client.send("c AUTHENTICATE PLAIN\r\n"), "c NO [PRIVACYREQUIRED] use STARTTLS first\r\n");
    let (step, reply) = client.send_step("d STARTTLS\r\n");
    assert!(matches!(step, Step::StartTls), "{step:?}");
    assert_eq!(reply, "d OK begin TLS negotiation now\r\n");
    client.session.tls_started();
    assert_eq!(
        client.send("e CAPABILITY\r\n"),
        format!("* CAPABILITY {PRE_LOGIN} AUTH=PLAIN\r\ne OK CAPABILITY completed\r\n")
    );
    assert_eq!(client.send("f STARTTLS\r\n"), "f BAD TLS is already active\r\n");
}

#[test]
fn login_answers_with_the_logged_in_capabilities() {
    let mut client = Client::new();
    let reply = client.send(&format!("a1 LOGIN {USER} {PASSWORD}\r\n"));
    let caps = reply.strip_prefix("a1 OK [CAPABILITY ").and_then(|r| r.strip_suffix("] logged in\r\n")).unwrap();
    for cap in
        ["IMAP4rev1", "IMAP4rev2", "UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC", "LIST-EXTENDED", "APPENDLIMIT=10000"]
    {
        assert!(caps.split(' ').any(|c| c == cap), "{cap} missing from {caps}");
    }
    assert!(!caps.contains("AUTH=PLAIN") && !caps.contains("STARTTLS"), "{caps}");
    assert_eq!(client.send("a2 LOGIN x y\r\n"), "a2 BAD already authenticated\r\n");
}

#[test]
fn commands_of_later_states_need_a_login() {
    let mut client = Client::new();
    assert_eq!(client.send("a SELECT INBOX\r\n"), "a BAD log in first\r\n");
    assert_eq!(client.send("b IDLE\r\n"), "b BAD log in first\r\n");
}

#[test]
fn the_third_wrong_password_ends_the_session() {
    let mut client = Client::new();
    for tag in ["a", "b"] {
        assert_eq!(
            client.send(&format!("{tag} LOGIN {USER} wrong\r\n")),
            format!("{tag} NO [AUTHENTICATIONFAILED] authentication failed\r\n")
        );
    }
    let (step, reply) = client.send_step(&format!("c LOGIN {USER} wrong\r\n"));
    assert_eq!(
        reply,
        "c NO [AUTHENTICATIONFAILED] authentication failed\r\n* BYE too many authentication failures\r\n"
    );
    assert!(matches!(step, Step::Close), "{step:?}");
}

fn plain(authzid: &str, user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{authzid}\0{user}\0{password}"))
}

#[test]
fn authenticate_plain_with_a_continuation_and_with_an_initial_response() {
    let mut client = Client::new();
    assert_eq!(client.send("a AUTHENTICATE PLAIN\r\n"), "+ \r\n");
    assert_eq!(client.send("*\r\n"), "a BAD authentication cancelled\r\n");
    assert_eq!(client.send("b AUTHENTICATE PLAIN\r\n"), "+ \r\n");
    assert_eq!(client.send("!!!\r\n"), "b BAD the SASL response is not base64\r\n");
    let other = plain("bob@example.org", USER, PASSWORD);
    assert_eq!(
        client.send(&format!("c AUTHENTICATE PLAIN {other}\r\n")),
        "c NO [AUTHORIZATIONFAILED] cannot act as another user\r\n"
    );
    assert_eq!(client.send("d AUTHENTICATE CRAM-MD5\r\n"), "d NO [CANNOT] only AUTHENTICATE PLAIN is offered\r\n");
    assert_eq!(client.send("e AUTHENTICATE PLAIN\r\n"), "+ \r\n");
    let reply = client.send(&format!("{}\r\n", plain("", USER, PASSWORD)));
    assert!(reply.starts_with("e OK [CAPABILITY IMAP4rev1 ") && reply.ends_with("] logged in\r\n"), "{reply}");
    assert_eq!(
        client.send(&format!("f AUTHENTICATE PLAIN {}\r\n", plain("", USER, PASSWORD))),
        "f BAD already authenticated\r\n"
    );
}

#[test]
fn logout_says_bye_then_completes_and_closes() {
    let mut client = Client::new();
    let (step, reply) = client.send_step("z LOGOUT\r\n");
    assert_eq!(reply, "* BYE logging out\r\nz OK LOGOUT completed\r\n");
    assert!(matches!(step, Step::Close), "{step:?}");
}

#[test]
fn unauthenticate_drops_the_login_and_its_selection() {
    let mut client = Client::new();
    assert_eq!(client.send("a UNAUTHENTICATE\r\n"), "a BAD not authenticated\r\n");
    client.select_inbox();
    assert_eq!(client.send("b UNAUTHENTICATE\r\n"), "b OK UNAUTHENTICATE completed\r\n");
    assert!(client.session.account().is_none());
    assert_eq!(client.send("c FETCH 1 FLAGS\r\n"), "c BAD log in first\r\n");
}

#[test]
fn a_malformed_command_gets_bad_with_its_tag_and_the_session_goes_on() {
    let mut client = Client::new();
    assert_eq!(client.send("x FROBNICATE\r\n"), "x BAD unknown command or syntax error\r\n");
    assert_eq!(client.send("y NOOP\r\n"), "y OK NOOP completed\r\n");
}
