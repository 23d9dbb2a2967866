//! The SMTP session state machine (RFC 5321 §4.1.4, §3.3) with the extensions we offer: PIPELINING
//! (RFC 2920), SIZE (RFC 1870), STARTTLS (RFC 3207), AUTH PLAIN and LOGIN (RFC 4954), ENHANCEDSTATUSCODES
//! (RFC 2034, RFC 3463), 8BITMIME (RFC 6152), DSN (RFC 3461), SMTPUTF8 (RFC 6531) and CHUNKING (RFC 3030).
//!
//! The state is an enum whose variants carry only what is valid in them: there is no sender before `MAIL`
//! and no `DATA` without an accepted recipient, because no variant could hold them. What outlives a
//! transaction (TLS, the authenticated user, the error counts) lives in [`Session`]. The session never does
//! I/O: it answers a command with an [`Action`], and the connection task carries the action out and reports
//! back (the directory's verdict, the credentials check, the body, the enqueue result).
//!
//! One file per concern: `ehlo` (EHLO, HELO, STARTTLS), `auth` (AUTH and its SASL exchange), `mail` (MAIL
//! and the submission sender check), `rcpt` (RCPT and the directory's verdict), `body` (DATA and BDAT),
//! `sender_auth` (what SPF and DMARC results mean to the client on port 25).

mod auth;
mod body;
mod ehlo;
mod envelope;
mod mail;
mod rcpt;
mod sender_auth;
#[cfg(test)]
mod tests;

use std::mem;

use mailbus_address::EmailAddress;
use smtp_proto::Request;

use crate::command::{Command, CommandError};
use crate::data::BodyFilter;
use crate::reply::{Enhanced, Reply};

pub use crate::data::{BareLf, LongLines};
pub use auth::{Credentials, Secret};
pub use envelope::{BodyType, DsnReturn, Helo, MailFrom, Message, Recipient, ReversePath};
pub use sender_auth::{Enforcement, SpfCheck, SpfVerdict};

/// Postfix's `smtpd_hard_error_limit`.
pub const DEFAULT_MAX_ERRORS: usize = 20;
/// Failed AUTH attempts before the connection is closed.
pub const DEFAULT_MAX_AUTH_FAILURES: usize = 3;

/// Which listener the session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Port 25: mail from the world to local recipients; AUTH is never offered.
    Mx,
    /// Ports 587 and 465 (RFC 6409, RFC 8314): AUTH before MAIL, then relaying to anywhere.
    Submission,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The name we greet with and put in `Received:`; also the domain of a bare `<postmaster>`.
    pub hostname: String,
    /// RFC 1870 SIZE, in octets.
    pub max_message_size: usize,
    /// RFC 5321 §4.5.3.1.8 asks for at least 100.
    pub max_recipients: usize,
    pub mode: Mode,
    /// A certificate is configured, so STARTTLS may be offered.
    pub starttls_available: bool,
    /// Development only: offer and accept AUTH without TLS.
    pub plaintext_auth: bool,
    /// 4xx and 5xx replies in one session before `421 4.7.0` and close ([`DEFAULT_MAX_ERRORS`]); at least 1.
    pub max_errors: usize,
    /// Failed AUTH attempts before `421 4.7.0` and close ([`DEFAULT_MAX_AUTH_FAILURES`]); at least 1.
    pub max_auth_failures: usize,
    pub long_lines: LongLines,
    pub bare_lf: BareLf,
    /// Port 25: SPF at MAIL FROM ([`Action::VerifySpf`]), and what a failure does. Never asked in an
    /// authenticated session.
    pub spf: Enforcement,
}

/// What the TLS handshake settled on, for `Received:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// e.g. `TLSv1.3`.
    pub version: String,
    /// e.g. `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
}

/// The account an AUTH exchange proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    pub account_id: i64,
    /// The account's primary address.
    pub address: String,
}

/// The directory's answer about one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A local account or alias.
    Local,
    /// A local domain without such a user.
    UnknownUser,
    /// Not one of our domains. The session accepts it only from an authenticated client.
    NotLocal,
    /// The directory could not be asked.
    Unavailable,
    /// An SRS address of ours whose signature does not match: no bounce we caused (`550 5.7.1`).
    ForgedReturnPath,
    /// An SRS address of ours past its maximum age (`550 5.1.1`, as libsrs2's "timestamp out of date").
    ExpiredReturnPath,
}

/// A recipient waiting for the directory's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientCheck {
    pub recipient: Recipient,
}

/// Submission: may `user` send as `address`, its own address or an alias of it, and may it send another
/// message now (the submission rate limits)?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderCheck {
    pub user: AuthenticatedUser,
    /// `None` for the null sender, which claims no address: only the rate limits apply to it.
    pub address: Option<EmailAddress>,
    from: MailFrom,
}

/// What the connection reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A command line: [`CommandDecoder::decode`](crate::command::CommandDecoder::decode), then
    /// [`Session::handle`].
    Command,
    /// A 334 challenge is out: [`CommandDecoder::decode_sasl_line`](crate::command::CommandDecoder::decode_sasl_line),
    /// then [`Session::handle_sasl_response`].
    SaslResponse,
}

/// What the connection must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Reply(Reply),
    /// Ask the directory, then send what [`Session::recipient_checked`] returns.
    CheckRecipient(RecipientCheck),
    /// Ask the directory and the submission rate limits, then send what [`Session::sender_checked`] or
    /// [`Session::sender_rate_limited`] returns.
    CheckSender(SenderCheck),
    /// Check SPF for the HELO name and the sender, then send what [`Session::spf_verified`] returns.
    VerifySpf(SpfCheck),
    /// Send the 354 reply, read the body with [`Session::data_reader`], keeping what it hands out, then call
    /// [`Session::data_received`].
    ReceiveData(Reply),
    /// RFC 3030 BDAT: read the `size` octets that follow the command line (with no reply in between) with
    /// [`Session::chunk_reader`], keeping what it hands out after what earlier chunks of the transaction
    /// handed out, then call [`Session::chunk_received`]. The reader reads a chunk the session will refuse
    /// too, or the client's data would be taken for commands, but hands nothing of it out.
    ReceiveChunk {
        size: usize,
        last: bool,
    },
    /// Send the 220 reply and flush; then drop every input byte already received, and start a fresh
    /// [`CommandDecoder`](crate::command::CommandDecoder) (RFC 3207 §5, CVE-2011-0411: nothing sent in the
    /// clear may be read as if it came over TLS); handshake; then call [`Session::tls_started`]. If the
    /// handshake fails, close without a reply.
    StartTls(Reply),
    /// Check the credentials, then carry out what [`Session::authenticated`] returns, or send what
    /// [`Session::auth_unavailable`] returns when they could not be checked.
    Authenticate(Credentials),
    /// Send the reply and close the connection.
    Close(Reply),
}

/// What to do with a body that has been read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    /// Make it durable, then send what [`Session::queued`] or [`Session::not_queued`] returns.
    Enqueue(Message),
    Reply(Reply),
}

#[derive(Debug, Default)]
enum State {
    /// Before EHLO or HELO, and again after STARTTLS (RFC 3207 §4.2).
    #[default]
    Connected,
    Greeted {
        helo: Helo,
    },
    /// An AUTH exchange: a 334 challenge is out, or the credentials are being checked.
    Authenticating {
        helo: Helo,
        step: auth::Step,
    },
    Mail {
        helo: Helo,
        from: MailFrom,
    },
    Rcpt {
        helo: Helo,
        from: MailFrom,
        recipients: Vec<Recipient>,
    },
    /// BDAT chunks have come; the connection keeps what they held, and `filter` carries the state of their
    /// line endings and size on to the next chunk.
    Chunking {
        message: Message,
        filter: BodyFilter,
    },
    /// BDAT went over the size limit: later chunks are read and dropped until LAST ends the transaction.
    ChunkingOverSize {
        helo: Helo,
    },
    /// STARTTLS was answered 220 and the handshake is under way.
    StartingTls,
}

#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    tls: Option<TlsInfo>,
    user: Option<AuthenticatedUser>,
    /// The BDAT chunk the connection is reading.
    chunk: Option<body::PendingChunk>,
    errors: usize,
    auth_failures: usize,
}

impl Session {
    /// `tls` is `Some` on a listener with implicit TLS (port 465, RFC 8314).
    pub fn new(config: SessionConfig, tls: Option<TlsInfo>) -> Self {
        Session { config, state: State::Connected, tls, user: None, chunk: None, errors: 0, auth_failures: 0 }
    }

    /// The 220 banner (RFC 5321 §4.3.1).
    pub fn greeting(&self) -> Reply {
        Reply::plain(220, vec![format!("{} ESMTP mailbus", self.config.hostname)])
    }

    pub fn expects(&self) -> Expect {
        match &self.state {
            State::Authenticating { step, .. } if step.awaits_response() => Expect::SaslResponse,
            _ => Expect::Command,
        }
    }

    pub fn handle(&mut self, command: Result<Command, CommandError>) -> Action {
        if self.error_limit_reached() {
            return Action::Close(too_many_errors());
        }
        let action = self.dispatch(command);
        self.count(action)
    }

    fn dispatch(&mut self, command: Result<Command, CommandError>) -> Action {
        if let Some(reply) = self.refuse_while_busy() {
            return Action::Reply(reply);
        }
        let command = match command {
            Ok(command) => command,
            Err(error) => return Action::Reply(command_error(error)),
        };
        match command {
            Request::Ehlo { host } => Action::Reply(self.hello(host, true)),
            Request::Helo { host } => Action::Reply(self.hello(host, false)),
            Request::StartTls => self.starttls(),
            Request::Auth { mechanism, initial_response } => self.auth(mechanism, initial_response),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Bdat { chunk_size, is_last } => self.bdat(chunk_size, is_last),
            Request::Rset => {
                self.reset_transaction();
                Action::Reply(Reply::ok("Ok"))
            }
            Request::Noop { .. } => Action::Reply(Reply::ok("Ok")),
            // RFC 5321 §3.5.3: 252 says "cannot verify, will try"; it tells a harvester nothing.
            Request::Vrfy { .. } => Action::Reply(Reply::new(
                252,
                Enhanced(2, 5, 0),
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => Action::Reply(Reply::new(214, Enhanced(2, 0, 0), "See RFC 5321")),
            Request::Quit => Action::Close(Reply::new(221, Enhanced(2, 0, 0), "Bye")),
            other => {
                Action::Reply(Reply::new(502, Enhanced(5, 5, 1), format!("{} command not implemented", other.name())))
            }
        }
    }

    /// A command while an AUTH exchange or a TLS handshake is under way means the connection did not
    /// follow [`Session::expects`] or [`Action::StartTls`]; an AUTH exchange is abandoned.
    fn refuse_while_busy(&mut self) -> Option<Reply> {
        match mem::take(&mut self.state) {
            State::Authenticating { helo, .. } => {
                self.state = State::Greeted { helo };
                Some(bad_sequence("AUTH exchange in progress"))
            }
            State::StartingTls => {
                self.state = State::StartingTls;
                Some(bad_sequence("TLS negotiation in progress"))
            }
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Counts an error reply of [`Self::handle`]; the one that reaches the limit becomes the 421 instead.
    fn count(&mut self, action: Action) -> Action {
        match action {
            Action::Reply(reply) if reply.is_error() => {
                self.errors += 1;
                if self.error_limit_reached() { Action::Close(too_many_errors()) } else { Action::Reply(reply) }
            }
            other => other,
        }
    }

    /// Counts an error reply that goes out outside [`Self::handle`]; if it reached the limit, the next
    /// command gets the 421.
    fn note(&mut self, reply: Reply) -> Reply {
        if reply.is_error() {
            self.errors += 1;
        }
        reply
    }

    fn error_limit_reached(&self) -> bool {
        self.errors >= self.config.max_errors.max(1)
    }

    fn reset_transaction(&mut self) {
        self.state = match mem::take(&mut self.state) {
            State::Connected => State::Connected,
            State::StartingTls => State::StartingTls,
            State::Greeted { helo }
            | State::Authenticating { helo, .. }
            | State::Mail { helo, .. }
            | State::Rcpt { helo, .. }
            | State::ChunkingOverSize { helo }
            | State::Chunking { message: Message { helo, .. }, .. } => State::Greeted { helo },
        };
    }

    /// The TLS in effect: from the start with implicit TLS, or since [`Session::tls_started`].
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    pub fn authenticated_user(&self) -> Option<&AuthenticatedUser> {
        self.user.as_ref()
    }

    pub fn hostname(&self) -> &str {
        &self.config.hostname
    }

    /// RFC 1870 SIZE: the most a message (a DATA body, or all BDAT chunks together) may hold.
    pub fn max_message_size(&self) -> usize {
        self.config.max_message_size
    }
}

fn too_large() -> Reply {
    Reply::new(552, Enhanced(5, 3, 4), "Message size exceeds fixed maximum message size")
}

fn bad_sequence(text: &str) -> Reply {
    Reply::new(503, Enhanced(5, 5, 1), format!("Bad sequence of commands: {text}"))
}

/// RFC 5321 §4.1.1.11, §4.1.4: a parameter we did not advertise.
fn unsupported_parameter(text: &str) -> Reply {
    Reply::new(555, Enhanced(5, 5, 4), text)
}

fn too_many_errors() -> Reply {
    Reply::new(421, Enhanced(4, 7, 0), "Too many errors, closing connection")
}

fn command_error(error: CommandError) -> Reply {
    match error {
        CommandError::LineTooLong => Reply::new(500, Enhanced(5, 5, 2), "Line too long"),
        CommandError::Unknown => Reply::new(500, Enhanced(5, 5, 1), "Command unrecognized"),
        CommandError::InvalidSender => Reply::new(501, Enhanced(5, 1, 7), "Bad sender address syntax"),
        CommandError::InvalidRecipient => Reply::new(501, Enhanced(5, 1, 3), "Bad recipient address syntax"),
        CommandError::Syntax(text) => Reply::new(501, Enhanced(5, 5, 4), text),
    }
}
