//! The ManageSieve session state machine (RFC 5804 §1.8, §2).
//!
//! The state is an enum whose variants carry only what is valid in them; what outlives a state (TLS, the
//! failed logins) lives in [`Session`]. The session never does I/O: it answers a command with an
//! [`Action`], and the connection task carries it out (checks the credentials, handshakes, calls the
//! mailbox role) and reports back through [`Session::authenticated`], [`Session::tls_started`] or
//! [`Session::answered`].
//!
//! One file per concern: `auth` (AUTHENTICATE and its exchange, UNAUTHENTICATE, the login's outcome),
//! `scripts` (the commands on scripts, the requests they make and how their answers read).

mod auth;
mod scripts;
#[cfg(test)]
mod tests;

use crate::command::{Command, CommandError, Line, Secret};
use crate::response::{Code, Data, Response, Status};

pub use scripts::{Answer, Failure, Request, ScriptEntry};

/// Failed logins on one connection before BYE, as POP3 and IMAP.
pub const DEFAULT_MAX_AUTH_FAILURES: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// For the greeting and IMPLEMENTATION.
    pub hostname: String,
    /// A certificate is configured: STARTTLS is offered while the connection is not yet TLS.
    pub starttls_available: bool,
    /// This connection may authenticate without TLS (the access role's plaintext-login policy, decided
    /// per peer by the connection).
    pub plaintext_allowed: bool,
    /// Failed logins before BYE; at least 1.
    pub max_auth_failures: usize,
    /// MAXREDIRECTS (§1.7): the redirects one script run may make.
    pub max_redirects: usize,
}

/// What the connection reads next: a command, or (while a challenge is out) a SASL response, both
/// through the same [`CommandDecoder`](crate::command::CommandDecoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Command,
    SaslResponse,
}

/// What the connection must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Reply(Response),
    /// Check the credentials, then call [`Session::authenticated`].
    Authenticate {
        user: String,
        password: Secret,
    },
    /// Send the response and flush; drop every byte received after the command (RFC 5804 §2.2: nothing
    /// sent in the clear may be read as if it came over TLS); handshake; then send what
    /// [`Session::tls_started`] returns. If the handshake fails, close.
    StartTls(Response),
    /// Make this request of the account's scripts, then call [`Session::answered`].
    Call(Request),
    /// Send the response and close.
    Close(Response),
}

/// The connection's answer to [`Action::Authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok,
    /// Wrong user name or password.
    Invalid,
    /// The credentials could not be checked now.
    Unavailable,
    /// Too many failed logins from the client's address: refused without checking.
    Throttled,
}

#[derive(Debug)]
enum State {
    /// §1.8: before AUTHENTICATE succeeds.
    NotAuthenticated,
    /// AUTHENTICATE "PLAIN" without an initial response: the empty challenge is out.
    SaslResponse,
    /// Credentials are being checked.
    Authenticating,
    StartingTls,
    Authenticated,
    /// A request is with the mailbox role; its answer comes to [`Session::answered`].
    Calling(Request),
    Closed,
}

#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    tls: bool,
    auth_failures: usize,
}

impl Session {
    pub fn new(config: SessionConfig, tls: bool) -> Self {
        Session { config, state: State::NotAuthenticated, tls, auth_failures: 0 }
    }

    /// §1.7: the server greets with its capabilities and OK.
    pub fn greeting(&self) -> Response {
        Response::with_data(self.capabilities(), format!("{} ManageSieve ready", self.config.hostname))
    }

    pub fn expects(&self) -> Expect {
        match self.state {
            State::SaslResponse => Expect::SaslResponse,
            _ => Expect::Command,
        }
    }

    pub fn tls_active(&self) -> bool {
        self.tls
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated | State::Calling(_))
    }

    /// Answers one decoded line. Protocol errors become NO and the session goes on; an over-long line
    /// (the stream can no longer be followed) and, before login, an oversized literal end it with BYE.
    pub fn handle(&mut self, line: Result<Line, CommandError>) -> Action {
        if let State::SaslResponse = self.state {
            return self.handle_sasl_response(line);
        }
        let command = line.and_then(Command::parse);
        let action = match (&self.state, command) {
            (State::Closed, _) => Action::Close(Response::bye("session is over")),
            (_, Err(CommandError::LineTooLong)) => Action::Close(Response::bye("line too long")),
            (State::NotAuthenticated, Err(CommandError::LiteralTooLarge)) => {
                Action::Close(Response::bye("literal too large before login"))
            }
            (_, Err(error)) => Action::Reply(command_error(error)),
            (State::StartingTls | State::Authenticating | State::Calling(_) | State::SaslResponse, _) => {
                Action::Reply(Response::no("a command is already in progress"))
            }
            (_, Ok(command)) => self.command(command),
        };
        self.follow(&action);
        action
    }

    /// The state each kind of action leads to, whichever entry point made it.
    fn follow(&mut self, action: &Action) {
        self.state = match action {
            Action::Reply(_) => return,
            Action::Authenticate { .. } => State::Authenticating,
            Action::StartTls(_) => State::StartingTls,
            Action::Call(request) => State::Calling(request.clone()),
            Action::Close(_) => State::Closed,
        };
    }

    fn command(&mut self, command: Command) -> Action {
        let authenticated = matches!(self.state, State::Authenticated);
        match command {
            Command::Capability => Action::Reply(Response::with_data(self.capabilities(), "")),
            // §2.4: the server answers OK and closes.
            Command::Logout => Action::Close(Response::ok("Logout completed")),
            Command::Noop { tag } => Action::Reply(Response::status(Status::Ok, tag.map(Code::Tag), "Done")),
            Command::StartTls => self.starttls(),
            Command::Authenticate { .. } if authenticated => Action::Reply(Response::no("already authenticated")),
            Command::Authenticate { mechanism, initial_response } => self.authenticate(&mechanism, initial_response),
            Command::Unauthenticate if authenticated => self.unauthenticate(),
            _ if !authenticated => Action::Reply(Response::no("authenticate first")),
            command => self.script_command(command),
        }
    }

    /// §2.2: only before login, once, and only with a certificate.
    fn starttls(&mut self) -> Action {
        if self.tls {
            return Action::Reply(Response::no("TLS is already active"));
        }
        if !self.config.starttls_available {
            return Action::Reply(Response::no("TLS is not available"));
        }
        if !matches!(self.state, State::NotAuthenticated) {
            return Action::Reply(Response::no("STARTTLS is only allowed before authentication"));
        }
        Action::StartTls(Response::ok("Begin TLS negotiation now"))
    }

    /// The handshake asked for by [`Action::StartTls`] succeeded. §2.2: the server re-issues its
    /// capabilities, now without STARTTLS and with what TLS allows, followed by OK.
    pub fn tls_started(&mut self) -> Response {
        if matches!(self.state, State::StartingTls) {
            self.tls = true;
            self.state = State::NotAuthenticated;
        }
        Response::with_data(self.capabilities(), "TLS negotiation successful")
    }

    fn login_allowed(&self) -> bool {
        self.tls || self.config.plaintext_allowed
    }

    /// §1.7. SASL lists nothing where a login would be refused; RFC 5804 allows the empty list only while
    /// STARTTLS is offered, which is the case whenever plaintext logins are refused and a certificate is
    /// configured.
    fn capabilities(&self) -> Vec<Data> {
        let capability = |name, value: Option<String>| Data::Capability { name, value };
        let mut lines = vec![
            capability("IMPLEMENTATION", Some("mailbus".into())),
            capability("SASL", Some(if self.login_allowed() { auth::MECHANISMS.join(" ") } else { String::new() })),
            capability("SIEVE", Some(sieve_extensions())),
        ];
        if self.config.starttls_available && !self.tls && matches!(self.state, State::NotAuthenticated) {
            lines.push(capability("STARTTLS", None));
        }
        lines.extend([
            capability("MAXREDIRECTS", Some(self.config.max_redirects.to_string())),
            capability("UNAUTHENTICATE", None),
            capability("VERSION", Some("1.0".into())),
        ]);
        lines
    }
}

/// The SIEVE capability: every extension the interpreter runs, as `require` names them.
pub fn sieve_extensions() -> String {
    mailbus_sieve::Extension::ALL.iter().map(|extension| extension.name()).collect::<Vec<_>>().join(" ")
}

fn command_error(error: CommandError) -> Response {
    match error {
        CommandError::Unknown(name) if name.is_empty() => Response::no("empty command"),
        CommandError::Unknown(name) => Response::no(format!("unknown command {name}")),
        CommandError::Syntax(text) => Response::no(text),
        CommandError::LiteralTooLarge => {
            Response::status(Status::No, Some(Code::QuotaMaxSize), "script is larger than the server allows")
        }
        CommandError::LineTooLong => Response::bye("line too long"),
    }
}
