//! Logging in and out: AUTHENTICATE "PLAIN" (RFC 5804 §2.1, RFC 4616) with or without an initial
//! response, the connection's verdict, and UNAUTHENTICATE (§2.14).
//!
//! Failed logins are counted, and the one that reaches `max_auth_failures` ends the session with BYE.
//! Refusals that check no password (plaintext not allowed, an unknown mechanism, bad base64, a cancelled
//! exchange) are not failed logins. The delay before a failure's answer and the per-address refusal are
//! the connection's (the shared login throttle).

use mailbus_sasl::decode_base64;

use super::{Action, AuthOutcome, Session, State};
use crate::command::{CommandError, Line, Secret, parse_sasl_response};
use crate::response::{Code, Response, Status};

pub(super) const MECHANISMS: &[&str] = &["PLAIN"];

impl Session {
    pub(super) fn authenticate(&mut self, mechanism: &str, initial_response: Option<Secret>) -> Action {
        if !MECHANISMS.contains(&mechanism) {
            return Action::Reply(Response::no("unsupported authentication mechanism"));
        }
        if !self.login_allowed() {
            // §1.3 ENCRYPT-NEEDED: the client must STARTTLS first.
            return Action::Reply(Response::status(
                Status::No,
                Some(Code::EncryptNeeded),
                "plaintext authentication disallowed without TLS",
            ));
        }
        match initial_response {
            // RFC 4616 §2: PLAIN's challenge is empty.
            None => {
                self.state = State::SaslResponse;
                Action::Reply(Response::Challenge(Vec::new()))
            }
            Some(response) => self.plain_base64(response.expose()),
        }
    }

    /// The client's answer to the challenge: a string, base64 or `"*"` to cancel (§2.1).
    pub(super) fn handle_sasl_response(&mut self, line: Result<Line, CommandError>) -> Action {
        self.state = State::NotAuthenticated;
        let action = match line {
            Err(CommandError::LineTooLong) => Action::Close(Response::bye("line too long")),
            Err(CommandError::LiteralTooLarge) => Action::Close(Response::bye("literal too large before login")),
            Err(_) => Action::Reply(Response::no("bad authentication response")),
            Ok(line) => match parse_sasl_response(line) {
                Ok(response) if response.expose() == "*" => Action::Reply(Response::no("authentication cancelled")),
                Ok(response) => self.plain_base64(response.expose()),
                Err(_) => Action::Reply(Response::no("bad authentication response")),
            },
        };
        self.follow(&action);
        action
    }

    fn plain_base64(&mut self, text: &str) -> Action {
        let Ok(response) = decode_base64(text) else {
            return Action::Reply(Response::no("invalid base64"));
        };
        match mailbus_sasl::parse_plain(&response) {
            Some(plain) => Action::Authenticate { user: plain.username, password: plain.password },
            None => self.failed(),
        }
    }

    /// Takes the connection's answer to [`Action::Authenticate`].
    pub fn authenticated(&mut self, outcome: AuthOutcome) -> Action {
        if !matches!(self.state, State::Authenticating) {
            return Action::Reply(Response::no("no authentication in progress"));
        }
        self.state = State::NotAuthenticated;
        let action = match outcome {
            AuthOutcome::Ok => {
                self.state = State::Authenticated;
                Action::Reply(Response::ok("Logged in"))
            }
            AuthOutcome::Invalid => self.failed(),
            // §1.3 TRYLATER: the client may retry the same credentials later.
            AuthOutcome::Unavailable => Action::Reply(Response::status(
                Status::No,
                Some(Code::TryLater),
                "login temporarily unavailable, try again later",
            )),
            AuthOutcome::Throttled => Action::Reply(Response::status(
                Status::No,
                Some(Code::TryLater),
                "too many failed logins from your address, try again later",
            )),
        };
        self.follow(&action);
        action
    }

    fn failed(&mut self) -> Action {
        self.state = State::NotAuthenticated;
        self.auth_failures += 1;
        if self.auth_failures >= self.config.max_auth_failures.max(1) {
            return Action::Close(Response::bye("too many authentication failures"));
        }
        Action::Reply(Response::no("authentication failed"))
    }

    /// §2.14: back to the non-authenticated state, on the same TLS layer.
    pub(super) fn unauthenticate(&mut self) -> Action {
        self.state = State::NotAuthenticated;
        Action::Reply(Response::ok("Unauthenticate completed"))
    }
}
