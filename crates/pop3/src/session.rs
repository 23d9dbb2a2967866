//! The POP3 session state machine (RFC 1939 §3–§6, with CAPA from RFC 2449 §5).
//!
//! The state is an enum whose variants carry only what is valid in them: a pending user name exists only
//! in AUTHORIZATION and the maildrop only in TRANSACTION, so "RETR before PASS" has nothing to read. The
//! session never does I/O: it answers a command with an [`Action`], and the connection task carries the
//! action out (checks the credentials, streams a message, expunges) and reports back.

mod transaction;

use crate::command::{Command, CommandError, Secret};
use crate::response::Response;
use transaction::Transaction;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageInfo {
    pub uid: u32,
    /// In octets, as stored (CRLF line endings, before dot-stuffing).
    pub size: u64,
}

/// The mailbox as it was when the session logged in. RFC 1939 §5: message numbers stay fixed for the
/// whole session, so this never changes; message number `n` is `messages[n - 1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maildrop {
    pub uidvalidity: u32,
    pub messages: Vec<MessageInfo>,
}

/// What the connection must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Reply(Response),
    /// Check the credentials, then call [`Session::authenticated`] with the maildrop, or with `None` when
    /// they are wrong, or [`Session::auth_unavailable`] when they could not be checked.
    Authenticate {
        user: String,
        password: Secret,
    },
    /// Stream message `uid`: send "+OK <size> octets", then the body dot-stuffed by a
    /// [`DotStuffer`](crate::stuffing::DotStuffer) (for TOP, [`top`](crate::stuffing::top)`(&body, lines)`
    /// stuffed), then ".\r\n" from [`DotStuffer::finish`](crate::stuffing::DotStuffer::finish).
    Retrieve {
        uid: u32,
        size: u64,
        top_lines: Option<u32>,
    },
    /// RFC 1939 §6 UPDATE state: expunge these uids (maybe none), then call [`Session::updated`] for the
    /// final response, send it and close.
    Update {
        deleted_uids: Vec<u32>,
    },
    /// Send the response and close the connection.
    Close(Response),
}

#[derive(Debug)]
enum State {
    /// RFC 1939 §4. `user` is the name from a USER that awaits its PASS.
    Authorization { user: Option<String> },
    /// PASS was sent and the connection task is checking the credentials.
    Authenticating,
    /// RFC 1939 §5.
    Transaction(Transaction),
    /// RFC 1939 §6: QUIT was sent in TRANSACTION and the connection task is expunging.
    Update,
    /// The session is over and the connection is closing.
    Closed,
}

#[derive(Debug)]
pub struct Session {
    hostname: String,
    state: State,
}

impl Session {
    pub fn new(hostname: &str) -> Self {
        Session { hostname: hostname.to_owned(), state: State::Authorization { user: None } }
    }

    /// RFC 1939 §4: the greeting puts the session in AUTHORIZATION.
    pub fn greeting(&self) -> Response {
        Response::ok(format!("{} POP3 server ready", self.hostname))
    }

    /// Answers one decoded command. Errors from the decoder become `-ERR` responses and the session
    /// goes on.
    pub fn handle(&mut self, command: Result<Command, CommandError>) -> Action {
        let action = match (&mut self.state, command) {
            // The connection should already be closing. The state stays as it is, so that an expunge
            // still in progress can report to `updated`.
            (State::Update | State::Closed, _) => {
                return Action::Close(Response::err("session is over"));
            }
            (_, Err(error)) => Action::Reply(command_error(error)),
            (State::Authorization { user }, Ok(command)) => authorization(user, command, &self.hostname),
            (State::Authenticating, Ok(command)) => Action::Reply(authenticating(command)),
            (State::Transaction(transaction), Ok(command)) => transaction_command(transaction, command),
        };
        self.follow(&action);
        action
    }

    /// The state changes that come with an action, kept in one place.
    fn follow(&mut self, action: &Action) {
        self.state = match action {
            Action::Reply(_) | Action::Retrieve { .. } => return,
            Action::Authenticate { .. } => State::Authenticating,
            Action::Update { .. } => State::Update,
            Action::Close(_) => State::Closed,
        };
    }

    /// Takes the result of the credential check that [`Action::Authenticate`] asked for: the user's
    /// maildrop, or `None` if the credentials were wrong.
    pub fn authenticated(&mut self, maildrop: Option<Maildrop>) -> Response {
        if !matches!(self.state, State::Authenticating) {
            return no_authentication_in_progress();
        }
        let Some(maildrop) = maildrop else {
            // RFC 1939 §7 PASS: a failed PASS goes back to AUTHORIZATION, where USER must come again.
            // RFC 3206 §4: [AUTH] says the credentials, not the server, are at fault.
            self.state = State::Authorization { user: None };
            return Response::err("[AUTH] invalid user name or password");
        };
        let transaction = Transaction::new(maildrop);
        let response = Response::ok(transaction.summary());
        self.state = State::Transaction(transaction);
        response
    }

    /// The credentials could not be checked. RFC 3206 §4: [SYS/TEMP] tells the client to try again
    /// later rather than ask the user for a new password.
    pub fn auth_unavailable(&mut self) -> Response {
        if !matches!(self.state, State::Authenticating) {
            return no_authentication_in_progress();
        }
        self.state = State::Authorization { user: None };
        Response::err("[SYS/TEMP] authentication service unavailable")
    }

    /// Takes the result of the expunge that [`Action::Update`] asked for and gives the final response.
    pub fn updated(&mut self, ok: bool) -> Response {
        if !matches!(self.state, State::Update) {
            return Response::err("no update in progress");
        }
        self.state = State::Closed;
        if ok {
            signing_off(&self.hostname)
        } else {
            // RFC 1939 §6: the -ERR for QUIT when removal failed.
            Response::err("[SYS/TEMP] some deleted messages not removed")
        }
    }
}

/// RFC 1939 §4: only USER, PASS, QUIT (and RFC 2449 CAPA) are valid before login.
fn authorization(user: &mut Option<String>, command: Command, hostname: &str) -> Action {
    let response = match command {
        Command::User(name) => {
            // A second USER replaces the first, so the PASS after it goes with the latest name.
            *user = Some(name);
            Response::ok("send PASS")
        }
        Command::Pass(password) => match user.take() {
            Some(user) => return Action::Authenticate { user, password },
            None => Response::err("send USER first"),
        },
        // RFC 1939 §6: QUIT before login ends the session without entering UPDATE.
        Command::Quit => return Action::Close(signing_off(hostname)),
        Command::Capa => capabilities(),
        _ => not_in_this_state(),
    };
    Action::Reply(response)
}

/// The credential check has not answered yet; the connection task should not be sending commands.
fn authenticating(command: Command) -> Response {
    match command {
        Command::Capa => capabilities(),
        _ => Response::err("authentication in progress"),
    }
}

/// RFC 1939 §5: the commands of the TRANSACTION state.
fn transaction_command(transaction: &mut Transaction, command: Command) -> Action {
    let response = match command {
        Command::Stat => transaction.stat(),
        Command::List(msg) => transaction.list(msg),
        Command::Uidl(msg) => transaction.uidl(msg),
        Command::Retr(msg) => return transaction.retrieve(msg, None),
        Command::Top { msg, lines } => return transaction.retrieve(msg, Some(lines)),
        Command::Dele(msg) => transaction.dele(msg),
        Command::Rset => transaction.rset(),
        Command::Noop => Response::ok(""),
        // RFC 1939 §6: QUIT in TRANSACTION enters UPDATE.
        Command::Quit => {
            return Action::Update { deleted_uids: transaction.deleted_uids() };
        }
        Command::Capa => capabilities(),
        Command::User(_) | Command::Pass(_) => not_in_this_state(),
    };
    Action::Reply(response)
}

/// RFC 2449 §5: the same list in every state, since everything we offer works in both.
fn capabilities() -> Response {
    let lines = ["TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION mailbus"];
    Response::MultiLine { first: "capability list follows".into(), lines: lines.map(String::from).into() }
}

fn command_error(error: CommandError) -> Response {
    match error {
        CommandError::LineTooLong => Response::err("line too long"),
        CommandError::Unknown(verb) if verb.is_empty() => Response::err("unknown command"),
        CommandError::Unknown(verb) => Response::err(format!("unknown command {verb}")),
        CommandError::Syntax(usage) => Response::err(usage),
    }
}

fn signing_off(hostname: &str) -> Response {
    Response::ok(format!("{hostname} POP3 server signing off"))
}

fn not_in_this_state() -> Response {
    Response::err("command not valid in this state")
}

fn no_authentication_in_progress() -> Response {
    Response::err("no authentication in progress")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decode;
    use crate::command::CommandDecoder;
    use crate::stuffing::{DotStuffer, top};

    const FIRST: &[u8] = b"Subject: one\r\n\r\nfirst line\r\n.dot line\r\nlast line\r\n";
    const SECOND: &[u8] = b"Subject: two\r\n\r\nno final newline";
    const THIRD: &[u8] = b"Subject: three\r\n\r\n";

    fn maildrop() -> Maildrop {
        let info = |uid, body: &[u8]| MessageInfo { uid, size: body.len() as u64 };
        Maildrop { uidvalidity: 7, messages: vec![info(10, FIRST), info(11, SECOND), info(15, THIRD)] }
    }

    /// An in-memory stand-in for the connection task and its backends.
    struct Server {
        session: Session,
        decoder: CommandDecoder,
        /// Received bytes not yet decoded.
        buf: Vec<u8>,
        /// The uids the session asked to expunge, once it has.
        expunged: Option<Vec<u32>>,
        expunge_works: bool,
    }

    impl Server {
        fn new() -> Self {
            Server {
                session: Session::new("pop.example.org"),
                decoder: CommandDecoder::default(),
                buf: Vec::new(),
                expunged: None,
                expunge_works: true,
            }
        }

        fn logged_in() -> Self {
            let mut server = Server::new();
            assert_eq!(server.run("USER alice\r\nPASS open sesame\r\n")[1], "+OK maildrop has 3 messages (100 octets)");
            server
        }

        fn run(&mut self, client: &str) -> Vec<String> {
            self.receive(client.as_bytes())
        }

        /// Runs received bytes through decoder and session, carrying out every action, and returns what
        /// the server wrote for each complete command, as a transcript.
        fn receive(&mut self, bytes: &[u8]) -> Vec<String> {
            self.buf.extend_from_slice(bytes);
            let mut out = Vec::new();
            loop {
                let (command, consumed) = match self.decoder.decode(&self.buf) {
                    Decode::Incomplete => break,
                    Decode::Skip { consumed } => {
                        self.buf.drain(..consumed);
                        continue;
                    }
                    Decode::Item { item, consumed } => (Ok(item), consumed),
                    Decode::Invalid { error, consumed } => (Err(error), consumed),
                };
                self.buf.drain(..consumed);
                let action = self.session.handle(command);
                let written = self.carry_out(action);
                out.push(String::from_utf8_lossy(&written).trim_end().to_owned());
            }
            out
        }

        fn carry_out(&mut self, action: Action) -> Vec<u8> {
            match action {
                Action::Reply(response) | Action::Close(response) => response.to_bytes(),
                Action::Authenticate { user, password } => {
                    let response = match (user.as_str(), password.expose()) {
                        ("alice", "open sesame") => self.session.authenticated(Some(maildrop())),
                        ("outage", _) => self.session.auth_unavailable(),
                        _ => self.session.authenticated(None),
                    };
                    response.to_bytes()
                }
                Action::Retrieve { uid, size, top_lines } => retrieve(uid, size, top_lines),
                Action::Update { deleted_uids } => {
                    self.expunged = Some(deleted_uids);
                    self.session.updated(self.expunge_works).to_bytes()
                }
            }
        }
    }

    fn retrieve(uid: u32, size: u64, top_lines: Option<u32>) -> Vec<u8> {
        let body = match uid {
            10 => FIRST,
            11 => SECOND,
            15 => THIRD,
            _ => panic!("no message with uid {uid}"),
        };
        let body = top_lines.map_or(body, |lines| top(body, lines));
        let mut out = Response::ok(format!("{size} octets")).to_bytes();
        let mut stuffer = DotStuffer::new();
        stuffer.push(body, &mut out);
        stuffer.finish(&mut out);
        out
    }

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
                "+OK maildrop has 3 messages (100 octets)",
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
        assert_eq!(server.run("USER alice\r\nPASS open sesame\r\n")[1], "+OK maildrop has 3 messages (100 octets)");
    }

    #[test]
    fn pass_needs_a_user_and_a_later_user_replaces_the_first() {
        let mut server = Server::new();
        let replies = server.run("PASS open sesame\r\nUSER mallory\r\nUSER alice\r\nPASS open sesame\r\n");
        assert_eq!(
            replies,
            ["-ERR send USER first", "+OK send PASS", "+OK send PASS", "+OK maildrop has 3 messages (100 octets)"]
        );
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
                "-ERR [AUTH] invalid user name or password",
                "-ERR send USER first",
                "-ERR command not valid in this state",
                "+OK send PASS",
                "-ERR [SYS/TEMP] authentication service unavailable",
                "+OK send PASS",
                "+OK maildrop has 3 messages (100 octets)",
            ]
        );
    }

    #[test]
    fn quit_before_login_closes_without_update() {
        let mut session = Session::new("pop.example.org");
        let quit = session.handle(Ok(Command::Quit));
        assert_eq!(quit, Action::Close(Response::ok("pop.example.org POP3 server signing off")));
        assert_eq!(session.handle(Ok(Command::Noop)), Action::Close(Response::err("session is over")));
        assert_eq!(session.updated(true), Response::err("no update in progress"));
    }

    #[test]
    fn capa_works_in_every_state() {
        let capa = "+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION mailbus\r\n.";
        let mut session = Session::new("pop.example.org");
        assert_eq!(written(session.handle(Ok(Command::Capa))), capa);
        session.handle(Ok(Command::User("alice".into())));
        assert_eq!(written(session.handle(Ok(Command::Capa))), capa);
        let action = session.handle(Ok(Command::Pass(Secret::new("pw"))));
        assert!(matches!(action, Action::Authenticate { .. }));
        assert_eq!(written(session.handle(Ok(Command::Capa))), capa);
        session.authenticated(Some(maildrop()));
        assert_eq!(written(session.handle(Ok(Command::Capa))), capa);
    }

    /// What a reply or close action writes, for comparing.
    fn written(action: Action) -> String {
        match action {
            Action::Reply(response) | Action::Close(response) => response.to_string(),
            other => panic!("not a response: {other:?}"),
        }
    }

    #[test]
    fn while_authenticating_commands_wait_and_stray_results_are_refused() {
        let mut session = Session::new("pop.example.org");
        assert_eq!(session.authenticated(Some(maildrop())), Response::err("no authentication in progress"));
        assert_eq!(session.auth_unavailable(), Response::err("no authentication in progress"));
        assert_eq!(session.handle(Ok(Command::Stat)), Action::Reply(Response::err("command not valid in this state")));
        session.handle(Ok(Command::User("alice".into())));
        let action = session.handle(Ok(Command::Pass(Secret::new("pw"))));
        assert_eq!(action, Action::Authenticate { user: "alice".into(), password: Secret::new("pw") });
        assert_eq!(session.handle(Ok(Command::Stat)), Action::Reply(Response::err("authentication in progress")));
        assert_eq!(session.handle(Ok(Command::Quit)), Action::Reply(Response::err("authentication in progress")));
        assert_eq!(session.authenticated(Some(maildrop())), Response::ok("maildrop has 3 messages (100 octets)"));
        // A second result for the same PASS cannot log in again or undo the login.
        assert_eq!(session.authenticated(None), Response::err("no authentication in progress"));
        assert_eq!(session.handle(Ok(Command::Stat)), Action::Reply(Response::ok("3 100")));
    }

    #[test]
    fn list_and_uidl_with_and_without_argument() {
        let mut server = Server::logged_in();
        let replies = server
            .run("LIST 2\r\nUIDL 3\r\nUIDL\r\nDELE 2\r\nLIST\r\nUIDL\r\nLIST 2\r\nUIDL 2\r\nLIST 4\r\nUIDL 4\r\n");
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
        let mut session = Session::new("pop.example.org");
        session.handle(Ok(Command::User("alice".into())));
        session.handle(Ok(Command::Pass(Secret::new("pw"))));
        session.authenticated(Some(maildrop()));
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
        assert_eq!(
            replies,
            ["-ERR command not valid in this state", "-ERR command not valid in this state", "+OK 3 100"]
        );
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
        let mut session = Session::new("pop.example.org");
        session.handle(Ok(Command::User("alice".into())));
        session.handle(Ok(Command::Pass(Secret::new("pw"))));
        let login = session.authenticated(Some(Maildrop { uidvalidity: 1, messages: vec![] }));
        assert_eq!(login, Response::ok("maildrop has 0 messages (0 octets)"));
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
}
