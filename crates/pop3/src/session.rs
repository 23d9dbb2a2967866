//! The POP3 session state machine (RFC 1939 §3–§6), with CAPA (RFC 2449 §5), STLS (RFC 2595 §4), AUTH
//! PLAIN (RFC 5034, RFC 4616), the response codes of RFC 2449 §8 and RFC 3206, and UTF8 (RFC 6856).
//!
//! The state is an enum whose variants carry only what is valid in them: a pending user name exists only
//! in AUTHORIZATION and the maildrop only in TRANSACTION, so "RETR before PASS" has nothing to read. What
//! outlives a state (TLS, UTF8 mode, the failed logins) lives in [`Session`]. The session never does I/O: it
//! answers a command with an [`Action`], and the connection task carries the action out (checks the
//! credentials, handshakes, streams a message, expunges) and reports back.
//!
//! One file per concern: `auth` (USER, PASS, AUTH and its SASL exchange, the login's outcome), `stls`
//! (STLS and the handshake's end), `transaction` (the TRANSACTION state's data and commands).

mod auth;
mod stls;
#[cfg(test)]
mod tests;
mod transaction;

use crate::command::{Command, CommandError, Secret};
use crate::response::Response;
use transaction::Transaction;

/// Failed logins on one connection before `-ERR [AUTH]` and close.
pub const DEFAULT_MAX_AUTH_FAILURES: usize = 3;

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

/// RFC 2449 §6.7: how long the server keeps messages a client has retrieved and left behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Expire {
    #[default]
    Never,
    /// 0 says the server may delete a message once it has been retrieved.
    Days(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The name we greet and sign off with.
    pub hostname: String,
    /// A certificate is configured: STLS (RFC 2595) is offered while the connection is not yet TLS.
    pub stls_available: bool,
    /// This connection may authenticate without TLS; the connection works it out with
    /// `mailbus_sasl::PlaintextAuth::allows`.
    pub plaintext_allowed: bool,
    /// Failed logins before `-ERR [AUTH]` and close ([`DEFAULT_MAX_AUTH_FAILURES`]); at least 1.
    pub max_auth_failures: usize,
    /// For CAPA's EXPIRE.
    pub expire: Expire,
}

/// What the connection reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A command line: [`CommandDecoder::decode`](crate::command::CommandDecoder::decode), then
    /// [`Session::handle`].
    Command,
    /// A "+ " challenge is out: [`CommandDecoder::decode_sasl_line`](crate::command::CommandDecoder::decode_sasl_line),
    /// then [`Session::handle_sasl_response`].
    SaslResponse,
}

/// What the connection must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Reply(Response),
    /// From PASS or AUTH PLAIN: check the credentials and lock the maildrop, then carry out what
    /// [`Session::authenticated`] returns.
    Authenticate {
        user: String,
        password: Secret,
    },
    /// Send the response and flush; then drop every input byte already received and start a fresh
    /// [`CommandDecoder`](crate::command::CommandDecoder) (RFC 2595 §4, CVE-2011-0411: nothing sent in the
    /// clear may be read as if it came over TLS); handshake; then call [`Session::tls_started`]. If the
    /// handshake fails, close without a response.
    StartTls(Response),
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

/// The connection's answer to [`Action::Authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The credentials are good and the maildrop is locked for this session.
    Maildrop(Maildrop),
    /// Wrong user name or password.
    Invalid,
    /// The credentials are good, but another session holds the maildrop's lock (RFC 1939 §8).
    InUse,
    /// The credentials or the maildrop could not be checked; the client should try again later.
    Unavailable,
    /// Too many failed logins from the client's address: refused without checking the password.
    Throttled,
}

#[derive(Debug)]
enum State {
    /// RFC 1939 §4. `user` is the name from a USER that awaits its PASS.
    Authorization { user: Option<String> },
    /// AUTH PLAIN without an initial response: the "+ " challenge is out and the response line comes next.
    SaslResponse,
    /// PASS or AUTH gave credentials and the connection task is checking them.
    Authenticating,
    /// STLS was answered and the handshake is under way.
    StartingTls,
    /// RFC 1939 §5.
    Transaction(Transaction),
    /// RFC 1939 §6: QUIT was sent in TRANSACTION and the connection task is expunging.
    Update,
    /// The session is over and the connection is closing.
    Closed,
}

#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    /// From the start (port 995) or since [`Session::tls_started`].
    tls: bool,
    /// RFC 6856 §2: the client sent UTF8.
    utf8: bool,
    /// Failed logins so far on this connection; STLS does not reset them.
    auth_failures: usize,
}

impl Session {
    /// `tls` is true on a listener with implicit TLS (port 995, RFC 8314).
    pub fn new(config: SessionConfig, tls: bool) -> Self {
        Session { config, state: State::Authorization { user: None }, tls, utf8: false, auth_failures: 0 }
    }

    /// RFC 1939 §4: the greeting puts the session in AUTHORIZATION.
    pub fn greeting(&self) -> Response {
        Response::ok(format!("{} POP3 server ready", self.config.hostname))
    }

    /// What the connection decodes next.
    pub fn expects(&self) -> Expect {
        match self.state {
            State::SaslResponse => Expect::SaslResponse,
            _ => Expect::Command,
        }
    }

    /// Whether the connection is TLS, from the start or since STLS.
    pub fn tls_active(&self) -> bool {
        self.tls
    }

    /// Whether the client turned on UTF-8 mode (RFC 6856 §2).
    pub fn utf8_enabled(&self) -> bool {
        self.utf8
    }

    /// Answers one decoded command. Errors from the decoder become `-ERR` responses and the session
    /// goes on.
    pub fn handle(&mut self, command: Result<Command, CommandError>) -> Action {
        let action = match &mut self.state {
            // The connection should already be closing. The state stays as it is, so that an expunge
            // still in progress can report to `updated`.
            State::Update | State::Closed => return Action::Close(Response::err("session is over")),
            State::StartingTls => Action::Reply(Response::err("TLS negotiation in progress")),
            State::SaslResponse => self.abandon_exchange(),
            State::Authenticating => Action::Reply(match command {
                Ok(Command::Capa) => self.capabilities(),
                Ok(_) => Response::err("authentication in progress"),
                Err(error) => command_error(error),
            }),
            State::Authorization { .. } => match command {
                Ok(command) => self.authorization(command),
                Err(error) => Action::Reply(command_error(error)),
            },
            State::Transaction(transaction) => match command {
                Ok(command) => transaction_command(transaction, command, &self.config, self.tls),
                Err(error) => Action::Reply(command_error(error)),
            },
        };
        self.follow(&action);
        action
    }

    /// The state each kind of action leads to, whichever entry point made it; a reply that changes the
    /// state (a challenge, a failed login) sets it where it is made.
    fn follow(&mut self, action: &Action) {
        self.state = match action {
            Action::Reply(_) | Action::Retrieve { .. } => return,
            Action::Authenticate { .. } => State::Authenticating,
            Action::StartTls(_) => State::StartingTls,
            Action::Update { .. } => State::Update,
            Action::Close(_) => State::Closed,
        };
    }

    /// RFC 1939 §4: USER, PASS and QUIT, and the extensions' CAPA, STLS, AUTH and UTF8.
    fn authorization(&mut self, command: Command) -> Action {
        match command {
            Command::User(name) => self.user(name),
            Command::Pass(password) => self.pass(password),
            Command::Auth { mechanism, initial_response } => self.auth(&mechanism, initial_response),
            Command::AuthList => Action::Reply(self.mechanisms()),
            Command::Stls => self.stls(),
            // RFC 6856 §2: only in AUTHORIZATION. USER and PASS take UTF-8 either way.
            Command::Utf8 => {
                self.utf8 = true;
                Action::Reply(Response::ok("UTF8 enabled"))
            }
            Command::Capa => Action::Reply(self.capabilities()),
            // RFC 1939 §6: QUIT before login ends the session without entering UPDATE.
            Command::Quit => Action::Close(signing_off(&self.config.hostname)),
            Command::Stat
            | Command::List(_)
            | Command::Uidl(_)
            | Command::Retr(_)
            | Command::Dele(_)
            | Command::Rset
            | Command::Noop
            | Command::Top { .. } => Action::Reply(not_in_this_state()),
        }
    }

    fn capabilities(&self) -> Response {
        capabilities(&self.config, self.tls)
    }

    /// RFC 2595 §4: USER and AUTH only inside TLS, unless the connection allows otherwise.
    fn login_allowed(&self) -> bool {
        self.tls || self.config.plaintext_allowed
    }

    /// Takes the result of the expunge that [`Action::Update`] asked for and gives the final response.
    pub fn updated(&mut self, ok: bool) -> Response {
        if !matches!(self.state, State::Update) {
            return Response::err("no update in progress");
        }
        self.state = State::Closed;
        if ok {
            signing_off(&self.config.hostname)
        } else {
            // RFC 1939 §6: the -ERR for QUIT when removal failed.
            Response::err("[SYS/TEMP] some deleted messages not removed")
        }
    }
}

/// RFC 1939 §5: the commands of the TRANSACTION state. CAPA needs what the connection offers.
fn transaction_command(transaction: &mut Transaction, command: Command, config: &SessionConfig, tls: bool) -> Action {
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
        Command::Capa => capabilities(config, tls),
        // RFC 2595 §4, RFC 5034 §4, RFC 6856 §2: STLS, AUTH and UTF8 belong to AUTHORIZATION.
        Command::User(_)
        | Command::Pass(_)
        | Command::Stls
        | Command::Auth { .. }
        | Command::AuthList
        | Command::Utf8 => not_in_this_state(),
    };
    Action::Reply(response)
}

/// RFC 2449 §5: the capabilities of AUTHORIZATION are announced in both states, so the list depends only
/// on the connection. RFC 2595 §4: USER and SASL PLAIN are left out where they would be refused.
fn capabilities(config: &SessionConfig, tls: bool) -> Response {
    let mut lines = vec!["TOP".to_owned(), "UIDL".to_owned()];
    if config.stls_available && !tls {
        lines.push("STLS".into());
    }
    if tls || config.plaintext_allowed {
        lines.extend(["USER".into(), format!("SASL {}", auth::MECHANISMS.join(" "))]);
    }
    lines.extend(["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"].map(String::from));
    lines.push(match config.expire {
        Expire::Never => "EXPIRE NEVER".into(),
        Expire::Days(days) => format!("EXPIRE {days}"),
    });
    lines.extend(["UTF8", "IMPLEMENTATION mailbus"].map(String::from));
    Response::MultiLine { first: "capability list follows".into(), lines }
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
