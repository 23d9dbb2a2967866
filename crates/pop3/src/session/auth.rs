//! Logging in: USER and PASS (RFC 1939 §7), AUTH with SASL PLAIN (RFC 5034, RFC 4616) with or without an
//! initial response, and the connection's verdict on the credentials with its response codes (RFC 2449 §8,
//! RFC 3206).
//!
//! The session decodes the exchange and hands the connection a user name and password; checking them and
//! locking the maildrop is the connection's business. Failed logins are counted, and the one that reaches
//! `max_auth_failures` closes the connection. Refusals that check no password (plaintext not allowed, an
//! unknown mechanism, bad base64, a cancelled exchange) are not failed logins.

use mailbus_sasl::decode_base64;

use super::{Action, AuthOutcome, Session, State, transaction::Transaction};
use crate::command::{CommandError, Secret};
use crate::response::Response;

/// The SASL mechanisms we offer, for CAPA and a bare AUTH.
pub(super) const MECHANISMS: &[&str] = &["PLAIN"];

impl Session {
    /// RFC 1939 §7 USER. A second USER replaces the first, so the PASS after it goes with the latest name.
    pub(super) fn user(&mut self, name: String) -> Action {
        if !self.login_allowed() {
            return Action::Reply(plaintext_disallowed());
        }
        self.state = State::Authorization { user: Some(name) };
        Action::Reply(Response::ok("send PASS"))
    }

    /// RFC 1939 §7 PASS. Without TLS where that is not allowed, the password is refused unchecked: it has
    /// been seen on the wire and must not tell anyone whether it was right.
    pub(super) fn pass(&mut self, password: Secret) -> Action {
        if !self.login_allowed() {
            return Action::Reply(plaintext_disallowed());
        }
        let user = match &mut self.state {
            State::Authorization { user } => user.take(),
            _ => None,
        };
        match user {
            Some(user) => Action::Authenticate { user, password },
            None => Action::Reply(Response::err("send USER first")),
        }
    }

    /// RFC 5034 §4 AUTH with a mechanism. A USER that awaited its PASS is dropped: AUTH is a login of its own.
    pub(super) fn auth(&mut self, mechanism: &str, initial_response: Option<Secret>) -> Action {
        self.state = State::Authorization { user: None };
        if !MECHANISMS.contains(&mechanism) {
            return Action::Reply(Response::err("Unsupported authentication mechanism"));
        }
        if !self.login_allowed() {
            return Action::Reply(plaintext_disallowed());
        }
        let Some(initial_response) = initial_response else {
            // RFC 4616 §2: PLAIN's challenge is empty.
            self.state = State::SaslResponse;
            return Action::Reply(Response::Continue(String::new()));
        };
        // RFC 5034 §4: "=" is an initial response that is present and empty.
        match initial_response.expose() {
            "=" => self.plain(&[]),
            text => match decode_base64(text) {
                Ok(response) => self.plain(&response),
                Err(_) => Action::Reply(invalid_base64()),
            },
        }
    }

    /// Lists the mechanisms for a bare AUTH, as a multi-line response like Dovecot's. The list leaves out
    /// what would be refused, as CAPA does.
    pub(super) fn mechanisms(&self) -> Response {
        let lines = if self.login_allowed() { MECHANISMS.iter().map(|&m| m.to_owned()).collect() } else { Vec::new() };
        Response::MultiLine { first: String::new(), lines }
    }

    /// A command while the "+ " challenge is out means the connection did not follow [`Session::expects`];
    /// the exchange is abandoned.
    pub(super) fn abandon_exchange(&mut self) -> Action {
        self.state = State::Authorization { user: None };
        Action::Reply(Response::err("authentication exchange abandoned"))
    }

    /// The line that answers the "+ " challenge, line ending included.
    pub fn handle_sasl_response(&mut self, line: Result<Vec<u8>, CommandError>) -> Action {
        if !matches!(self.state, State::SaslResponse) {
            return Action::Reply(Response::err("no authentication exchange in progress"));
        }
        // Whatever the line says, the exchange is over; only a response to check goes on.
        self.state = State::Authorization { user: None };
        let action = match line {
            Ok(line) => self.sasl_response(line.trim_ascii()),
            Err(CommandError::LineTooLong) => Action::Reply(Response::err("Authentication line too long")),
            Err(_) => Action::Reply(invalid_base64()),
        };
        self.follow(&action);
        action
    }

    fn sasl_response(&mut self, text: &[u8]) -> Action {
        // RFC 5034 §4: "*" cancels the exchange, and the server answers -ERR.
        if text == b"*" {
            return Action::Reply(Response::err("Authentication cancelled"));
        }
        match decode_base64(text) {
            Ok(response) => self.plain(&response),
            Err(_) => Action::Reply(invalid_base64()),
        }
    }

    /// A decoded PLAIN response: credentials to check, or a failed login if it holds none.
    fn plain(&mut self, response: &[u8]) -> Action {
        match parse_plain(response) {
            Some((user, password)) => Action::Authenticate { user, password },
            None => self.failed(),
        }
    }

    /// Takes the connection's answer to [`Action::Authenticate`].
    pub fn authenticated(&mut self, outcome: AuthOutcome) -> Action {
        if !matches!(self.state, State::Authenticating) {
            return Action::Reply(Response::err("no authentication in progress"));
        }
        // RFC 1939 §7 PASS: a login that does not succeed goes back to AUTHORIZATION, where USER must come
        // again.
        self.state = State::Authorization { user: None };
        let action = match outcome {
            AuthOutcome::Maildrop(maildrop) => {
                let transaction = Transaction::new(maildrop);
                let response = Response::ok(transaction.summary());
                self.state = State::Transaction(transaction);
                Action::Reply(response)
            }
            AuthOutcome::Invalid => self.failed(),
            // RFC 2449 §8.1.1, RFC 1939 §8: the password was right, so this is no failed login.
            AuthOutcome::InUse => Action::Reply(Response::err("[IN-USE] Mailbox is locked by another session")),
            // RFC 3206 §4: [SYS/TEMP] tells the client to try again later rather than ask for a new password.
            AuthOutcome::Unavailable => {
                Action::Reply(Response::err("[SYS/TEMP] Login temporarily unavailable, try again later"))
            }
            // Not a failure of these credentials (they were not checked), so not counted as one; the
            // address's own count keeps refusing until its window passes.
            AuthOutcome::Throttled => {
                Action::Reply(Response::err("[SYS/TEMP] Too many failed logins from your address, try again later"))
            }
        };
        self.follow(&action);
        action
    }

    /// A failed login: RFC 3206 §4 [AUTH] says the credentials, not the server, are at fault. The one that
    /// reaches the limit closes the connection.
    fn failed(&mut self) -> Action {
        self.state = State::Authorization { user: None };
        self.auth_failures += 1;
        if self.auth_failures >= self.config.max_auth_failures.max(1) {
            return Action::Close(Response::err("[AUTH] Too many authentication failures"));
        }
        Action::Reply(Response::err("[AUTH] Authentication failed"))
    }
}

fn parse_plain(response: &[u8]) -> Option<(String, Secret)> {
    mailbus_sasl::parse_plain(response).map(|plain| (plain.username, plain.password))
}

/// RFC 2595 §4: Dovecot's wording, which clients know.
fn plaintext_disallowed() -> Response {
    Response::err("[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.")
}

fn invalid_base64() -> Response {
    Response::err("[AUTH] Invalid base64")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_responses() {
        let alice = |password: &str| Some(("alice".to_owned(), Secret::new(password)));
        assert_eq!(parse_plain(b"\0alice\0secret"), alice("secret"));
        assert_eq!(parse_plain(b"alice\0alice\0secret"), alice("secret"));
        assert_eq!(parse_plain(b"\0alice\0"), alice(""));
        assert_eq!(parse_plain(b"\0alice\0two words"), alice("two words"));
        assert_eq!(parse_plain("\0jörg\0pässword".as_bytes()), Some(("jörg".into(), Secret::new("pässword"))));
        for bad in [
            &b""[..],
            b"alice",
            b"\0alice",
            b"\0\0secret",
            b"bob\0alice\0secret",
            b"\0alice\0secret\0more",
            b"\0al\xffice\0secret",
        ] {
            assert_eq!(parse_plain(bad), None, "{}", bad.escape_ascii());
        }
    }
}
