//! STLS (RFC 2595 §4): offered with a certificate and only once, only in AUTHORIZATION, and a fresh start
//! after it.

use super::*;

#[test]
fn stls_then_login_and_pipelined_plaintext_is_dropped() {
    let mut server = Server::plain();
    let before = server.run("CAPA\r\n");
    assert!(before[0].contains("\r\nSTLS\r\n") && !before[0].contains("USER") && !before[0].contains("SASL"));
    // CVE-2011-0411: commands sent in the clear behind STLS must not be read as if they came over TLS.
    let replies = server.run("STLS\r\nUSER alice\r\nPASS open sesame\r\n");
    assert_eq!(replies, ["+OK Begin TLS negotiation"]);
    assert_eq!(server.dropped, b"USER alice\r\nPASS open sesame\r\n");
    assert!(server.logins.is_empty());
    assert!(server.session.tls_active());
    let after = server.run("CAPA\r\n");
    assert!(!after[0].contains("STLS") && after[0].contains("\r\nUSER\r\nSASL PLAIN\r\n"), "{after:?}");
    assert_eq!(server.run("USER alice\r\nPASS open sesame\r\nSTAT\r\n"), ["+OK send PASS", LOGGED_IN, "+OK 3 100"]);
}

#[test]
fn stls_forgets_the_pending_user_and_utf8_mode() {
    let dev = SessionConfig { plaintext_allowed: true, ..config() };
    let mut server = Server::with(dev, false);
    assert_eq!(server.run("UTF8\r\nUSER alice\r\n"), ["+OK UTF8 enabled", "+OK send PASS"]);
    assert!(server.session.utf8_enabled());
    assert_eq!(server.run("STLS\r\n"), ["+OK Begin TLS negotiation"]);
    assert!(!server.session.utf8_enabled());
    assert_eq!(server.run("PASS open sesame\r\n"), ["-ERR send USER first"]);
    assert!(server.logins.is_empty());
}

#[test]
fn stls_only_once() {
    let mut server = Server::plain();
    assert_eq!(server.run("STLS\r\n"), ["+OK Begin TLS negotiation"]);
    assert_eq!(server.run("STLS\r\n"), ["-ERR TLS is already active"]);
    // Port 995: TLS from the start.
    let mut server = Server::new();
    assert_eq!(server.run("STLS\r\n"), ["-ERR TLS is already active"]);
    assert!(server.dropped.is_empty());
}

#[test]
fn stls_without_a_certificate_is_refused_and_not_offered() {
    let mut server = Server::with(SessionConfig { stls_available: false, ..config() }, false);
    let replies = server.run("STLS\r\nCAPA\r\n");
    assert_eq!(replies[0], "-ERR TLS support isn't enabled");
    assert!(!replies[1].contains("STLS"));
    assert!(!server.session.tls_active());
}

#[test]
fn stls_with_an_argument_is_a_syntax_error() {
    let mut server = Server::plain();
    assert_eq!(server.run("STLS now\r\nstls\r\n"), ["-ERR usage: STLS", "+OK Begin TLS negotiation"]);
}

#[test]
fn stls_is_refused_in_transaction() {
    let dev = SessionConfig { plaintext_allowed: true, ..config() };
    let mut server = Server::with(dev, false);
    let replies = server.run("USER alice\r\nPASS open sesame\r\nSTLS\r\nSTAT\r\n");
    assert_eq!(replies, ["+OK send PASS", LOGGED_IN, "-ERR command not valid in this state", "+OK 3 100"]);
    assert!(!server.session.tls_active());
}

#[test]
fn commands_during_the_handshake_are_refused() {
    let mut session = Session::new(config(), false);
    session.handle(Ok(Command::User("alice".into())));
    let stls = session.handle(Ok(Command::Stls));
    assert_eq!(stls, Action::StartTls(Response::ok("Begin TLS negotiation")));
    let busy = Action::Reply(Response::err("TLS negotiation in progress"));
    assert_eq!(session.handle(Ok(Command::Noop)), busy);
    assert_eq!(session.handle(Ok(Command::Capa)), busy);
    assert_eq!(session.handle(Err(CommandError::LineTooLong)), busy);
    assert!(!session.tls_active());
    session.tls_started();
    assert!(session.tls_active());
    assert_eq!(session.expects(), Expect::Command);
    assert_eq!(written(session.handle(Ok(Command::User("bob".into())))), "+OK send PASS");
}

#[test]
fn tls_started_without_stls_changes_nothing() {
    let mut session = Session::new(config(), false);
    session.tls_started();
    assert!(!session.tls_active());
    let mut session = in_transaction();
    session.tls_started();
    assert_eq!(session.handle(Ok(Command::Stat)), Action::Reply(Response::ok("3 100")));
}
