//! Logging in: AUTH PLAIN (RFC 5034, RFC 4616), the plaintext policy (RFC 2595 §4), failure counting and
//! the response codes of RFC 2449 §8 and RFC 3206.

use super::*;

/// "\0alice\0open sesame".
const ALICE: &str = "AGFsaWNlAG9wZW4gc2VzYW1l";
/// "alice\0alice\0open sesame": the authzid is the authcid.
const ALICE_AS_ALICE: &str = "YWxpY2UAYWxpY2UAb3BlbiBzZXNhbWU=";
/// "bob\0alice\0open sesame": alice asks to act as bob.
const ALICE_AS_BOB: &str = "Ym9iAGFsaWNlAG9wZW4gc2VzYW1l";
/// "\0alice\0wrong".
const WRONG: &str = "AGFsaWNlAHdyb25n";
/// "\0locked\0open sesame".
const LOCKED: &str = "AGxvY2tlZABvcGVuIHNlc2FtZQ==";

const TOO_MANY: &str = "-ERR [AUTH] Too many authentication failures";

#[test]
fn auth_plain_with_an_initial_response() {
    let mut server = Server::new();
    let replies = server.run(&format!("AUTH PLAIN {ALICE}\r\nSTAT\r\n"));
    assert_eq!(replies, [LOGGED_IN, "+OK 3 100"]);
    assert_eq!(server.logins, ["alice"]);
    let mut server = Server::new();
    assert_eq!(server.run(&format!("auth plain {ALICE_AS_ALICE}\r\n")), [LOGGED_IN]);
}

#[test]
fn auth_plain_with_a_continuation() {
    let mut session = Session::new(config(), true);
    let challenge = session.handle(Ok(Command::Auth { mechanism: "PLAIN".into(), initial_response: None }));
    let Action::Reply(challenge) = challenge else { panic!("{challenge:?}") };
    assert_eq!(challenge.to_bytes(), b"+ \r\n");
    assert_eq!(session.expects(), Expect::SaslResponse);
    let action = session.handle_sasl_response(Ok(format!("{ALICE}\r\n").into_bytes()));
    assert_eq!(action, Action::Authenticate { user: "alice".into(), password: Secret::new("open sesame") });
    assert_eq!(session.expects(), Expect::Command);

    let mut server = Server::new();
    let replies = server.run(&format!("AUTH PLAIN\r\n  {ALICE} \r\nLIST 1\r\n"));
    assert_eq!(replies, ["+", LOGGED_IN, "+OK 1 50"]);
}

#[test]
fn auth_plain_cancelled() {
    let mut server = Server::new();
    let replies = server.run("AUTH PLAIN\r\n*\r\nSTAT\r\n");
    assert_eq!(replies, ["+", "-ERR Authentication cancelled", "-ERR command not valid in this state"]);
    // Cancelling is no failed login, however often.
    let replies = server.run(&"AUTH PLAIN\r\n*\r\n".repeat(5));
    assert_eq!(replies.iter().filter(|r| *r == "-ERR Authentication cancelled").count(), 5);
    assert!(!server.closed);
    assert_eq!(server.run(&format!("AUTH PLAIN {ALICE}\r\n")), [LOGGED_IN]);
}

#[test]
fn bad_base64_is_refused_and_not_counted() {
    let mut server = Server::new();
    let replies = server.run("AUTH PLAIN !!!!\r\nAUTH PLAIN\r\nnot base64\r\nAUTH PLAIN\r\nAGFsaWNl=AHB3\r\n");
    let invalid = "-ERR [AUTH] Invalid base64";
    assert_eq!(replies, [invalid, "+", invalid, "+", invalid]);
    assert!(server.logins.is_empty());
    assert_eq!(server.run(&format!("AUTH PLAIN {WRONG}\r\nAUTH PLAIN {WRONG}\r\n")), [AUTH_FAILED, AUTH_FAILED]);
    assert!(!server.closed, "the bad base64 counted as failed logins");
}

#[test]
fn acting_for_another_user_fails_without_a_password_check() {
    let mut server = Server::new();
    let replies = server.run(&format!("AUTH PLAIN {ALICE_AS_BOB}\r\nAUTH PLAIN\r\n{ALICE_AS_BOB}\r\n"));
    assert_eq!(replies, [AUTH_FAILED, "+", AUTH_FAILED]);
    assert!(server.logins.is_empty());
    // Malformed PLAIN messages are failed logins too: these were the second and third.
    assert_eq!(server.run("AUTH PLAIN =\r\n"), [TOO_MANY]);
    assert!(server.closed);
}

#[test]
fn unknown_mechanisms_are_refused() {
    let mut server = Server::new();
    let replies = server.run("AUTH CRAM-MD5\r\nauth login dXNlcg==\r\nAUTH GSSAPI =\r\nAUTH PL@IN\r\n");
    let unsupported = "-ERR Unsupported authentication mechanism";
    assert_eq!(replies, [unsupported, unsupported, unsupported, "-ERR usage: AUTH [mechanism [initial-response]]"]);
    assert_eq!(server.session.expects(), Expect::Command);
    // Also where plaintext is refused: the mechanism is looked at first.
    assert_eq!(Server::plain().run("AUTH CRAM-MD5\r\n"), [unsupported]);
}

#[test]
fn bare_auth_lists_the_mechanisms_that_can_be_used() {
    assert_eq!(Server::new().run("AUTH\r\n"), ["+OK\r\nPLAIN\r\n."]);
    let dev = SessionConfig { plaintext_allowed: true, ..config() };
    assert_eq!(Server::with(dev, false).run("AUTH\r\n"), ["+OK\r\nPLAIN\r\n."]);
    // RFC 2595 §4: do not offer what would be refused.
    assert_eq!(Server::plain().run("AUTH\r\n"), ["+OK\r\n."]);
}

#[test]
fn auth_is_refused_in_transaction() {
    let mut server = Server::logged_in();
    let replies = server.run(&format!("AUTH PLAIN {ALICE}\r\nAUTH PLAIN\r\nAUTH\r\nSTAT\r\n"));
    let refused = "-ERR command not valid in this state";
    assert_eq!(replies, [refused, refused, refused, "+OK 3 100"]);
    assert_eq!(server.logins, ["alice"]);
}

#[test]
fn auth_drops_a_pending_user() {
    let mut server = Server::new();
    let replies = server.run("USER alice\r\nAUTH PLAIN\r\n*\r\nPASS open sesame\r\n");
    assert_eq!(replies, ["+OK send PASS", "+", "-ERR Authentication cancelled", "-ERR send USER first"]);
}

#[test]
fn plaintext_logins_are_refused_without_tls_and_not_counted() {
    let mut server = Server::plain();
    let client = format!("USER alice\r\nPASS open sesame\r\nAUTH PLAIN {ALICE}\r\nAUTH PLAIN\r\n{ALICE}\r\n");
    let replies = server.run(&client.repeat(2));
    assert_eq!(replies.len(), 10);
    // The line after the refused AUTH PLAIN is read as a command, not as a response.
    let expected = [
        PLAINTEXT_DISALLOWED,
        PLAINTEXT_DISALLOWED,
        PLAINTEXT_DISALLOWED,
        PLAINTEXT_DISALLOWED,
        "-ERR unknown command AGFsaWNlAG9wZW4gc2VzYW1l",
    ];
    assert_eq!(replies[..5], expected);
    assert_eq!(replies[5..], expected);
    assert!(server.logins.is_empty(), "a password sent in the clear must not be checked");
    assert!(!server.closed);
}

#[test]
fn plaintext_logins_where_allowed() {
    let dev = SessionConfig { plaintext_allowed: true, ..config() };
    let mut server = Server::with(dev.clone(), false);
    assert_eq!(server.run("USER alice\r\nPASS open sesame\r\n"), ["+OK send PASS", LOGGED_IN]);
    let mut server = Server::with(dev, false);
    assert_eq!(server.run(&format!("AUTH PLAIN\r\n{ALICE}\r\n")), ["+", LOGGED_IN]);
}

#[test]
fn the_failure_that_reaches_the_limit_closes() {
    let mut server = Server::new();
    let replies =
        server.run(&format!("USER alice\r\nPASS wrong\r\nAUTH PLAIN {WRONG}\r\nAUTH PLAIN\r\n{WRONG}\r\nNOOP\r\n"));
    assert_eq!(replies, ["+OK send PASS", AUTH_FAILED, AUTH_FAILED, "+", TOO_MANY, "-ERR session is over"]);
    assert!(server.closed);
    assert_eq!(server.logins, ["alice", "alice", "alice"]);
}

#[test]
fn the_limit_is_configurable_and_at_least_one() {
    for max_auth_failures in [0, 1] {
        let mut server = Server::with(SessionConfig { max_auth_failures, ..config() }, true);
        assert_eq!(server.run(&format!("AUTH PLAIN {WRONG}\r\n")), [TOO_MANY]);
    }
    let mut server = Server::with(SessionConfig { max_auth_failures: 5, ..config() }, true);
    let replies = server.run(&format!("AUTH PLAIN {WRONG}\r\n").repeat(5));
    assert_eq!(replies, [AUTH_FAILED, AUTH_FAILED, AUTH_FAILED, AUTH_FAILED, TOO_MANY]);
}

#[test]
fn failures_count_across_stls() {
    let dev = SessionConfig { plaintext_allowed: true, ..config() };
    let mut server = Server::with(dev, false);
    let replies = server.run(&format!("AUTH PLAIN {WRONG}\r\nAUTH PLAIN {WRONG}\r\nSTLS\r\n"));
    assert_eq!(replies, [AUTH_FAILED, AUTH_FAILED, "+OK Begin TLS negotiation"]);
    assert_eq!(server.run(&format!("AUTH PLAIN {WRONG}\r\n")), [TOO_MANY]);
}

#[test]
fn a_locked_maildrop_is_in_use_and_no_failed_login() {
    let mut server = Server::new();
    let in_use = "-ERR [IN-USE] Mailbox is locked by another session";
    let replies = server.run(&format!("USER locked\r\nPASS open sesame\r\nAUTH PLAIN {LOCKED}\r\n").repeat(3));
    assert_eq!(replies, ["+OK send PASS", in_use, in_use].repeat(3));
    assert!(!server.closed);
    // Back in AUTHORIZATION, without a user.
    assert_eq!(
        server.run("PASS open sesame\r\nUSER alice\r\nPASS open sesame\r\n"),
        ["-ERR send USER first", "+OK send PASS", LOGGED_IN]
    );
}

#[test]
fn an_unavailable_check_is_no_failed_login() {
    let mut server = Server::new();
    let unavailable = "-ERR [SYS/TEMP] Login temporarily unavailable, try again later";
    let replies = server.run(&"USER outage\r\nPASS x\r\n".repeat(4));
    assert_eq!(replies, ["+OK send PASS", unavailable].repeat(4));
    assert!(!server.closed);
}

#[test]
fn a_throttled_address_is_told_to_come_back_later_and_the_session_goes_on() {
    let mut server = Server::new();
    let throttled = "-ERR [SYS/TEMP] Too many failed logins from your address, try again later";
    let replies = server.run(&"USER guessed\r\nPASS x\r\n".repeat(4));
    assert_eq!(replies, ["+OK send PASS", throttled].repeat(4));
    assert!(!server.closed, "a refusal is not a failed login: the session limit does not close it");
}

#[test]
fn an_over_long_response_line_ends_the_exchange_and_its_tail_is_skipped() {
    let mut server = Server::new();
    let mut client = b"AUTH PLAIN\r\n".to_vec();
    client.extend(std::iter::repeat_n(b'A', crate::command::MAX_SASL_LINE + 100));
    client.extend_from_slice(b"\r\nCAPA\r\n");
    let replies = server.receive(&client);
    assert_eq!(replies[..2], ["+", "-ERR Authentication line too long"]);
    assert!(replies[2].starts_with("+OK capability list follows"), "{replies:?}");
    assert_eq!(replies.len(), 3);
    assert!(server.logins.is_empty());
}

#[test]
fn out_of_order_calls_abandon_or_refuse() {
    let mut session = Session::new(config(), true);
    let nothing = Action::Reply(Response::err("no authentication exchange in progress"));
    assert_eq!(session.handle_sasl_response(Ok(format!("{ALICE}\r\n").into_bytes())), nothing);
    // A command while the challenge is out: the connection did not follow expects().
    session.handle(Ok(Command::Auth { mechanism: "PLAIN".into(), initial_response: None }));
    let abandoned = Action::Reply(Response::err("authentication exchange abandoned"));
    assert_eq!(session.handle(Ok(Command::Capa)), abandoned);
    assert_eq!(session.expects(), Expect::Command);
    assert_eq!(session.handle_sasl_response(Ok(format!("{ALICE}\r\n").into_bytes())), nothing);
    // A response during the credentials check is refused too, and the check's result still counts.
    let mut session = authenticating();
    assert_eq!(session.handle_sasl_response(Ok(b"*\r\n".to_vec())), nothing);
    assert_eq!(written(session.authenticated(AuthOutcome::Maildrop(maildrop()))), LOGGED_IN);
}

#[test]
fn pipelined_auth_gives_the_same_transcript_at_every_split() {
    let client =
        format!("CAPA\r\nAUTH PLAIN\r\n{WRONG}\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN\r\n{ALICE}\r\nSTAT\r\nQUIT\r\n");
    let client = client.as_bytes();
    let whole = Server::new().receive(client);
    assert_eq!(
        whole[1..],
        [
            "+",
            AUTH_FAILED,
            "+",
            "-ERR Authentication cancelled",
            "+",
            LOGGED_IN,
            "+OK 3 100",
            "+OK pop.example.org POP3 server signing off"
        ]
    );
    for split in 0..=client.len() {
        let mut server = Server::new();
        let mut replies = server.receive(&client[..split]);
        replies.extend(server.receive(&client[split..]));
        assert_eq!(replies, whole, "split at {split}");
    }
}
