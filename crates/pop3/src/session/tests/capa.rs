//! CAPA (RFC 2449 §5): what is listed depends on TLS and the plaintext policy, never on the state; and
//! UTF8 (RFC 6856).

use super::*;

fn capa(lines: &[&str]) -> String {
    format!("+OK capability list follows\r\n{}\r\n.", lines.join("\r\n"))
}

const BASE: &[&str] = &["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER", "UTF8", "IMPLEMENTATION mailbus"];

/// The list for a connection that can log in and has TLS: port 995.
fn full() -> String {
    capa(&[&["TOP", "UIDL", "USER", "SASL PLAIN"], BASE].concat())
}

/// (TLS active, certificate configured, plaintext allowed), and what CAPA lists between UIDL and RESP-CODES.
type Case = ((bool, bool, bool), &'static [&'static str]);

#[test]
fn capa_follows_tls_and_the_plaintext_policy() {
    let cases: [Case; 8] = [
        ((false, false, false), &[]),
        ((false, true, false), &["STLS"]),
        ((false, false, true), &["USER", "SASL PLAIN"]),
        ((false, true, true), &["STLS", "USER", "SASL PLAIN"]),
        ((true, false, false), &["USER", "SASL PLAIN"]),
        ((true, true, false), &["USER", "SASL PLAIN"]),
        ((true, false, true), &["USER", "SASL PLAIN"]),
        ((true, true, true), &["USER", "SASL PLAIN"]),
    ];
    for ((tls, stls_available, plaintext_allowed), middle) in cases {
        let config = SessionConfig { stls_available, plaintext_allowed, ..config() };
        let mut server = Server::with(config, tls);
        let expected = capa(&[&["TOP", "UIDL"], middle, BASE].concat());
        assert_eq!(
            server.run("CAPA\r\n"),
            [expected],
            "tls {tls}, stls {stls_available}, plaintext {plaintext_allowed}"
        );
    }
}

#[test]
fn capa_works_in_every_state_with_the_same_list() {
    let mut session = Session::new(config(), true);
    assert_eq!(written(session.handle(Ok(Command::Capa))), full());
    session.handle(Ok(Command::User("alice".into())));
    assert_eq!(written(session.handle(Ok(Command::Capa))), full());
    let action = session.handle(Ok(Command::Pass(Secret::new("pw"))));
    assert!(matches!(action, Action::Authenticate { .. }));
    assert_eq!(written(session.handle(Ok(Command::Capa))), full());
    session.authenticated(AuthOutcome::Maildrop(maildrop()));
    assert_eq!(written(session.handle(Ok(Command::Capa))), full());
    // The pending USER survived the CAPA that came between it and PASS.
    assert_eq!(session.handle(Ok(Command::Stat)), Action::Reply(Response::ok("3 100")));
}

#[test]
fn capa_in_transaction_still_announces_what_authorization_offers() {
    // RFC 2449 §5: the AUTHORIZATION capabilities are announced in both states, STLS included.
    let dev = SessionConfig { plaintext_allowed: true, ..config() };
    let mut server = Server::with(dev, false);
    let before = server.run("CAPA\r\n");
    assert!(before[0].contains("\r\nSTLS\r\nUSER\r\nSASL PLAIN\r\n"), "{before:?}");
    let replies = server.run("USER alice\r\nPASS open sesame\r\nCAPA\r\n");
    assert_eq!(replies[1], LOGGED_IN);
    assert_eq!(replies[2], before[0]);
}

#[test]
fn expire_policy_is_announced() {
    for (expire, line) in
        [(Expire::Days(30), "EXPIRE 30"), (Expire::Days(0), "EXPIRE 0"), (Expire::Never, "EXPIRE NEVER")]
    {
        let mut server = Server::with(SessionConfig { expire, ..config() }, true);
        let replies = server.run("CAPA\r\n");
        assert!(replies[0].contains(&format!("\r\nPIPELINING\r\n{line}\r\nUTF8\r\n")), "{replies:?}");
    }
}

#[test]
fn utf8_is_accepted_only_in_authorization() {
    let mut server = Server::new();
    assert!(!server.session.utf8_enabled());
    let replies = server.run("UTF8\r\nUTF8\r\nUTF8 now\r\nUSER jörg\r\n");
    assert_eq!(replies, ["+OK UTF8 enabled", "+OK UTF8 enabled", "-ERR usage: UTF8", "+OK send PASS"]);
    assert!(server.session.utf8_enabled());

    let mut server = Server::logged_in();
    assert_eq!(server.run("UTF8\r\n"), ["-ERR command not valid in this state"]);
    assert!(!server.session.utf8_enabled());
}
