//! AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms, initial responses (SASL-IR) included.
//!
//! The session decodes the exchange and hands the connection [`Credentials`]; checking them is the
//! directory's business. Failures are counted, and after `max_auth_failures` the connection is closed.

use std::mem;

pub use mailbus_sasl::Secret;
use mailbus_sasl::decode_base64;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN};

use super::{Action, AuthenticatedUser, Helo, Mode, Session, State, bad_sequence};
use crate::command::CommandError;
use crate::reply::{Enhanced, Reply};

/// "Username:" and "Password:", the challenges every LOGIN client expects.
const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

/// What the client proved itself with: for PLAIN the authentication identity, for LOGIN the user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

/// Where an AUTH exchange stands.
#[derive(Debug)]
pub(super) enum Step {
    /// PLAIN without an initial response: "334 " is out.
    PlainResponse,
    /// LOGIN: the user-name challenge is out.
    LoginUsername,
    /// LOGIN: the password challenge is out.
    LoginPassword { username: String },
    /// [`Action::Authenticate`] is out; [`Session::authenticated`] comes next.
    Checking,
}

impl Step {
    pub(super) fn awaits_response(&self) -> bool {
        !matches!(self, Step::Checking)
    }
}

impl Session {
    pub(super) fn auth(&mut self, mechanism: u64, initial_response: String) -> Action {
        if let Err(reply) = self.may_authenticate(mechanism) {
            return Action::Reply(reply);
        }
        let helo = match mem::take(&mut self.state) {
            State::Greeted { helo } => helo,
            other => {
                self.state = other;
                return Action::Reply(bad_sequence("send EHLO first"));
            }
        };
        // RFC 4954 §4: no initial response means a challenge; "=" is an initial response that is empty.
        let initial = match initial_response.as_str() {
            "" => None,
            "=" => Some(Vec::new()),
            text => match decode_base64(text) {
                Ok(bytes) => Some(bytes),
                Err(_) => return self.abandon(helo, bad_base64()),
            },
        };
        match (mechanism, initial) {
            (AUTH_PLAIN, None) => self.challenge(helo, Step::PlainResponse, ""),
            (AUTH_PLAIN, Some(response)) => self.plain(helo, &response),
            // AUTH_LOGIN, the only other mechanism may_authenticate lets through.
            (_, None) => self.challenge(helo, Step::LoginUsername, LOGIN_USERNAME),
            (_, Some(username)) => self.login_username(helo, username),
        }
    }

    fn may_authenticate(&self, mechanism: u64) -> Result<(), Reply> {
        if self.config.mode == Mode::Mx {
            // Port 25 takes mail for local recipients from anyone; there is nothing to log in to.
            return Err(Reply::new(503, Enhanced(5, 5, 1), "Error: authentication not enabled"));
        }
        match &self.state {
            State::Greeted { helo } if helo.extended => {}
            State::Connected | State::Greeted { .. } => return Err(bad_sequence("send EHLO first")),
            _ => return Err(bad_sequence("MAIL transaction in progress")),
        }
        // RFC 4954 §4: after a successful AUTH, no other.
        if self.user.is_some() {
            return Err(bad_sequence("already authenticated"));
        }
        if mechanism != AUTH_PLAIN && mechanism != AUTH_LOGIN {
            return Err(Reply::new(504, Enhanced(5, 5, 4), "Unrecognized authentication type"));
        }
        if self.tls.is_none() && !self.config.plaintext_auth {
            // RFC 4954 §6.
            return Err(Reply::new(
                538,
                Enhanced(5, 7, 11),
                "Encryption required for requested authentication mechanism",
            ));
        }
        Ok(())
    }

    fn challenge(&mut self, helo: Helo, step: Step, text: &str) -> Action {
        self.state = State::Authenticating { helo, step };
        Action::Reply(Reply::plain(334, vec![text.to_owned()]))
    }

    /// Ends the exchange with an error reply.
    fn abandon(&mut self, helo: Helo, reply: Reply) -> Action {
        self.state = State::Greeted { helo };
        Action::Reply(reply)
    }

    /// A raw line answering a 334 challenge, CRLF included.
    pub fn handle_sasl_response(&mut self, line: Result<Vec<u8>, CommandError>) -> Action {
        if self.error_limit_reached() {
            return Action::Close(super::too_many_errors());
        }
        let action = self.sasl_response(line);
        self.count(action)
    }

    fn sasl_response(&mut self, line: Result<Vec<u8>, CommandError>) -> Action {
        let (helo, step) = match mem::take(&mut self.state) {
            State::Authenticating { helo, step } if step.awaits_response() => (helo, step),
            other => {
                self.state = other;
                return Action::Reply(bad_sequence("no AUTH exchange in progress"));
            }
        };
        let line = match line {
            Ok(line) => line,
            // RFC 4954 §4.
            Err(CommandError::LineTooLong) => {
                return self
                    .abandon(helo, Reply::new(500, Enhanced(5, 5, 6), "Authentication Exchange line is too long"));
            }
            Err(_) => return self.abandon(helo, bad_base64()),
        };
        let text = line.trim_ascii();
        // RFC 4954 §4: "*" cancels the exchange, and the server answers 501.
        if text == b"*" {
            return self.abandon(helo, Reply::new(501, Enhanced(5, 0, 0), "Authentication cancelled"));
        }
        let Ok(response) = decode_base64(text) else {
            return self.abandon(helo, bad_base64());
        };
        match step {
            Step::PlainResponse => self.plain(helo, &response),
            Step::LoginUsername => self.login_username(helo, response),
            Step::LoginPassword { username } => match String::from_utf8(response) {
                Ok(password) => self.check(helo, Credentials { username, password: Secret::new(password) }),
                Err(_) => self.failed(helo),
            },
            Step::Checking => self.abandon(helo, bad_sequence("no AUTH exchange in progress")),
        }
    }

    fn plain(&mut self, helo: Helo, response: &[u8]) -> Action {
        match parse_plain(response) {
            Some(credentials) => self.check(helo, credentials),
            None => self.failed(helo),
        }
    }

    fn login_username(&mut self, helo: Helo, username: Vec<u8>) -> Action {
        match String::from_utf8(username) {
            Ok(username) => self.challenge(helo, Step::LoginPassword { username }, LOGIN_PASSWORD),
            Err(_) => self.failed(helo),
        }
    }

    fn check(&mut self, helo: Helo, credentials: Credentials) -> Action {
        self.state = State::Authenticating { helo, step: Step::Checking };
        Action::Authenticate(credentials)
    }

    /// The directory's answer to [`Action::Authenticate`]: the account, or `None` for wrong credentials.
    pub fn authenticated(&mut self, user: Option<AuthenticatedUser>) -> Action {
        let helo = match mem::take(&mut self.state) {
            State::Authenticating { helo, step: Step::Checking } => helo,
            other => {
                self.state = other;
                return self.count(Action::Reply(bad_sequence("no AUTH exchange in progress")));
            }
        };
        let Some(user) = user else {
            return self.failed(helo);
        };
        self.state = State::Greeted { helo };
        self.user = Some(user);
        Action::Reply(Reply::new(235, Enhanced(2, 7, 0), "Authentication successful"))
    }

    /// The credentials could not be checked (the directory is down); the client may try again later.
    pub fn auth_unavailable(&mut self) -> Reply {
        self.auth_not_checked("Temporary authentication failure")
    }

    /// Too many failed logins from the client's address: the credentials were not checked, so this is no
    /// failure of theirs (the session's own count stays), and RFC 4954's 454 tells the client to come back.
    pub fn auth_throttled(&mut self) -> Reply {
        self.auth_not_checked("Too many failed authentications from your address, try again later")
    }

    fn auth_not_checked(&mut self, why: &str) -> Reply {
        if let State::Authenticating { helo, step: Step::Checking } = mem::take(&mut self.state) {
            self.state = State::Greeted { helo };
            return self.note(Reply::new(454, Enhanced(4, 7, 0), why));
        }
        self.note(bad_sequence("no AUTH exchange in progress"))
    }

    /// A failed attempt: 535, or the 421 that ends the connection once there have been too many.
    fn failed(&mut self, helo: Helo) -> Action {
        self.state = State::Greeted { helo };
        self.auth_failures += 1;
        if self.auth_failures >= self.config.max_auth_failures.max(1) {
            return Action::Close(Reply::new(
                421,
                Enhanced(4, 7, 0),
                "Too many authentication failures, closing connection",
            ));
        }
        self.count(Action::Reply(Reply::new(535, Enhanced(5, 7, 8), "Authentication credentials invalid")))
    }
}

fn parse_plain(response: &[u8]) -> Option<Credentials> {
    mailbus_sasl::parse_plain(response).map(|plain| Credentials { username: plain.username, password: plain.password })
}

fn bad_base64() -> Reply {
    Reply::new(501, Enhanced(5, 5, 2), "Invalid base64 data")
}
