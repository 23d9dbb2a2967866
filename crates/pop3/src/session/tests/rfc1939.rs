//! RFC 1939: the base protocol's commands in AUTHORIZATION, TRANSACTION and UPDATE.

use super::*;

#[test]
fn a_whole_session_as_in_rfc_1939() {
    let mut server = Server::new();
    assert_eq!(server.session.greeting().to_string(), "+OK pop.example.org POP3 server ready");
    let replies = server
        .run("USER alice\r\nPASS open sesame\r\nSTAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nRETR 2\r\nDELE 2\r\nQUIT\r\n");
    assert_eq!(
        replies,
        [
            "+OK send PASS",
            LOGGED_IN,
            "+OK 3 100",
            "+OK 3 messages (100 octets)\r\n1 50\r\n2 32\r\n3 18\r\n.",
            "+OK 50 octets\r\nSubject: one\r\n\r\nfirst line\r\n..dot line\r\nlast line\r\n.",
            "+OK message 1 deleted",
            "+OK 32 octets\r\nSubject: two\r\n\r\nno final newline\r\n.",
            "+OK message 2 deleted",
            "+OK pop.example.org POP3 server signing off",
        ]
    );
    assert_eq!(server.expunged, Some(vec![10, 11]));
}

#[test]
fn transaction_commands_are_refused_before_login() {
    let mut server = Server::new();
    let commands = ["STAT", "LIST", "LIST 1", "UIDL", "UIDL 1", "RETR 1", "TOP 1 0", "DELE 1", "RSET", "NOOP"];
    let client: String = commands.iter().map(|c| format!("{c}\r\n")).collect();
    let replies = server.run(&client);
    assert_eq!(replies.len(), commands.len());
    assert!(replies.iter().all(|r| r == "-ERR command not valid in this state"), "{replies:?}");
    // The session is still in AUTHORIZATION and can log in.
    assert_eq!(server.run("USER alice\r\nPASS open sesame\r\n")[1], LOGGED_IN);
}

#[test]
fn pass_needs_a_user_and_a_later_user_replaces_the_first() {
    let mut server = Server::new();
    let replies = server.run("PASS open sesame\r\nUSER mallory\r\nUSER alice\r\nPASS open sesame\r\n");
    assert_eq!(replies, ["-ERR send USER first", "+OK send PASS", "+OK send PASS", LOGGED_IN]);
}

#[test]
fn failed_login_returns_to_authorization_without_a_user() {
    let mut server = Server::new();
    let replies = server.run(
        "USER alice\r\nPASS wrong\r\nPASS open sesame\r\nSTAT\r\nUSER outage\r\nPASS x\r\nUSER alice\r\nPASS open sesame\r\n",
    );
    assert_eq!(
        replies,
        [
            "+OK send PASS",
            AUTH_FAILED,
            "-ERR send USER first",
            "-ERR command not valid in this state",
            "+OK send PASS",
            "-ERR [SYS/TEMP] Login temporarily unavailable, try again later",
            "+OK send PASS",
            LOGGED_IN,
        ]
    );
}

#[test]
fn quit_before_login_closes_without_update() {
    let mut session = Session::new(config(), true);
    let quit = session.handle(Ok(Command::Quit));
    assert_eq!(quit, Action::Close(Response::ok("pop.example.org POP3 server signing off")));
    assert_eq!(session.handle(Ok(Command::Noop)), Action::Close(Response::err("session is over")));
    assert_eq!(session.updated(true), Response::err("no update in progress"));
}

#[test]
fn while_authenticating_commands_wait_and_stray_results_are_refused() {
    let mut session = Session::new(config(), true);
    let stray = Action::Reply(Response::err("no authentication in progress"));
    assert_eq!(session.authenticated(AuthOutcome::Maildrop(maildrop())), stray);
    assert_eq!(session.authenticated(AuthOutcome::Unavailable), stray);
    assert_eq!(session.handle(Ok(Command::Stat)), Action::Reply(Response::err("command not valid in this state")));
    session.handle(Ok(Command::User("alice".into())));
    let action = session.handle(Ok(Command::Pass(Secret::new("pw"))));
    assert_eq!(action, Action::Authenticate { user: "alice".into(), password: Secret::new("pw") });
    assert_eq!(session.handle(Ok(Command::Stat)), Action::Reply(Response::err("authentication in progress")));
    assert_eq!(session.handle(Ok(Command::Quit)), Action::Reply(Response::err("authentication in progress")));
    assert_eq!(written(session.authenticated(AuthOutcome::Maildrop(maildrop()))), LOGGED_IN);
    // A second result for the same PASS cannot log in again or undo the login.
    assert_eq!(session.authenticated(AuthOutcome::Invalid), stray);
    assert_eq!(session.handle(Ok(Command::Stat)), Action::Reply(Response::ok("3 100")));
}

#[test]
fn list_and_uidl_with_and_without_argument() {
    let mut server = Server::logged_in();
    let replies =
        server.run("LIST 2\r\nUIDL 3\r\nUIDL\r\nDELE 2\r\nLIST\r\nUIDL\r\nLIST 2\r\nUIDL 2\r\nLIST 4\r\nUIDL 4\r\n");
    assert_eq!(
        replies,
        [
            "+OK 2 32",
            "+OK 3 7.15",
            "+OK unique-id listing follows\r\n1 7.10\r\n2 7.11\r\n3 7.15\r\n.",
            "+OK message 2 deleted",
            "+OK 2 messages (68 octets)\r\n1 50\r\n3 18\r\n.",
            "+OK unique-id listing follows\r\n1 7.10\r\n3 7.15\r\n.",
            "-ERR no such message",
            "-ERR no such message",
            "-ERR no such message",
            "-ERR no such message",
        ]
    );
}

#[test]
fn retr_and_top_stream_stuffed_bodies() {
    let mut server = Server::logged_in();
    let replies = server.run("TOP 1 0\r\nTOP 1 2\r\nTOP 1 99\r\nTOP 3 5\r\nRETR 3\r\nRETR 4\r\nTOP 9 1\r\n");
    assert_eq!(
        replies,
        [
            "+OK 50 octets\r\nSubject: one\r\n\r\n.",
            "+OK 50 octets\r\nSubject: one\r\n\r\nfirst line\r\n..dot line\r\n.",
            "+OK 50 octets\r\nSubject: one\r\n\r\nfirst line\r\n..dot line\r\nlast line\r\n.",
            "+OK 18 octets\r\nSubject: three\r\n\r\n.",
            "+OK 18 octets\r\nSubject: three\r\n\r\n.",
            "-ERR no such message",
            "-ERR no such message",
        ]
    );
}

#[test]
fn retr_and_top_ask_for_the_uid_and_refuse_deleted_messages() {
    let mut session = in_transaction();
    let retr = session.handle(Ok(Command::Retr(2)));
    assert_eq!(retr, Action::Retrieve { uid: 11, size: 32, top_lines: None });
    let top = session.handle(Ok(Command::Top { msg: 1, lines: 0 }));
    assert_eq!(top, Action::Retrieve { uid: 10, size: 50, top_lines: Some(0) });
    session.handle(Ok(Command::Dele(2)));
    let no_such = Action::Reply(Response::err("no such message"));
    assert_eq!(session.handle(Ok(Command::Retr(2))), no_such);
    assert_eq!(session.handle(Ok(Command::Top { msg: 2, lines: 1 })), no_such);
    // Commands built by hand can hold numbers the decoder never yields.
    assert_eq!(session.handle(Ok(Command::Retr(0))), no_such);
    assert_eq!(session.handle(Ok(Command::Top { msg: u32::MAX, lines: u32::MAX })), no_such);
}

#[test]
fn dele_rset_noop_and_stat() {
    let mut server = Server::logged_in();
    let replies = server.run("DELE 1\r\nDELE 1\r\nSTAT\r\nDELE 3\r\nSTAT\r\nNOOP\r\nRSET\r\nSTAT\r\nDELE 5\r\n");
    assert_eq!(
        replies,
        [
            "+OK message 1 deleted",
            "-ERR message 1 already deleted",
            "+OK 2 50",
            "+OK message 3 deleted",
            "+OK 1 32",
            "+OK",
            "+OK maildrop has 3 messages (100 octets)",
            "+OK 3 100",
            "-ERR no such message",
        ]
    );
}

#[test]
fn user_and_pass_are_refused_after_login() {
    let mut server = Server::logged_in();
    let replies = server.run("USER bob\r\nPASS x\r\nSTAT\r\n");
    assert_eq!(replies, ["-ERR command not valid in this state", "-ERR command not valid in this state", "+OK 3 100"]);
}

#[test]
fn quit_expunges_in_message_number_order_and_then_the_session_is_over() {
    let mut server = Server::logged_in();
    let replies = server.run("DELE 3\r\nDELE 1\r\nQUIT\r\nNOOP\r\nFOO\r\n");
    assert_eq!(replies[2], "+OK pop.example.org POP3 server signing off");
    assert_eq!(server.expunged, Some(vec![10, 15]));
    assert_eq!(replies[3..], ["-ERR session is over", "-ERR session is over"]);
    assert_eq!(server.session.handle(Ok(Command::Noop)), Action::Close(Response::err("session is over")));
}

#[test]
fn quit_with_nothing_deleted_still_updates() {
    let mut server = Server::logged_in();
    assert_eq!(server.run("RETR 1\r\nQUIT\r\n")[1], "+OK pop.example.org POP3 server signing off");
    assert_eq!(server.expunged, Some(vec![]));
}

#[test]
fn failed_expunge_is_reported() {
    let mut server = Server::logged_in();
    server.expunge_works = false;
    let replies = server.run("DELE 2\r\nQUIT\r\n");
    assert_eq!(replies[1], "-ERR [SYS/TEMP] some deleted messages not removed");
    assert_eq!(server.expunged, Some(vec![11]));
}

#[test]
fn empty_maildrop() {
    let mut session = authenticating();
    let login = session.authenticated(AuthOutcome::Maildrop(Maildrop { uidvalidity: 1, messages: vec![] }));
    assert_eq!(written(login), "+OK maildrop has 0 messages (0 octets)");
    assert_eq!(written(session.handle(Ok(Command::Stat))), "+OK 0 0");
    assert_eq!(written(session.handle(Ok(Command::List(None)))), "+OK 0 messages (0 octets)\r\n.");
    assert_eq!(written(session.handle(Ok(Command::Uidl(None)))), "+OK unique-id listing follows\r\n.");
    assert_eq!(written(session.handle(Ok(Command::Dele(1)))), "-ERR no such message");
    assert_eq!(session.handle(Ok(Command::Quit)), Action::Update { deleted_uids: vec![] });
    // A command that slips in before the expunge reports does not lose the final response.
    assert_eq!(session.handle(Ok(Command::Noop)), Action::Close(Response::err("session is over")));
    assert_eq!(session.updated(true), Response::ok("pop.example.org POP3 server signing off"));
    assert_eq!(session.updated(true), Response::err("no update in progress"));
}

#[test]
fn command_errors_get_err_and_the_session_goes_on() {
    let mut server = Server::new();
    let mut client = b"FOO bar\r\n\r\nRETR x\r\nNOOP ".to_vec();
    client.extend(std::iter::repeat_n(b'x', 300));
    client.extend_from_slice(b"\r\nQUIT\r\n");
    let replies = server.receive(&client);
    assert_eq!(
        replies,
        [
            "-ERR unknown command FOO",
            "-ERR unknown command",
            "-ERR usage: RETR msg",
            "-ERR line too long",
            "+OK pop.example.org POP3 server signing off",
        ]
    );
}

#[test]
fn pipelined_session_gives_the_same_transcript_at_every_split() {
    let client = b"CAPA\r\nUSER alice\r\nPASS open sesame\r\nUIDL\r\nTOP 1 1\r\nDELE 2\r\nLIST\r\nQUIT\r\n";
    let whole = Server::new().receive(client);
    assert_eq!(whole.len(), 8);
    for split in 0..=client.len() {
        let mut server = Server::new();
        let mut replies = server.receive(&client[..split]);
        replies.extend(server.receive(&client[split..]));
        assert_eq!(replies, whole, "split at {split}");
        assert_eq!(server.expunged, Some(vec![11]));
    }
}
