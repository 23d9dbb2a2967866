//! EHLO and HELO (RFC 5321 §4.1.1.1) with the extension keywords, and STARTTLS (RFC 3207).

use std::mem;

use super::{Action, Helo, Mode, Session, State, TlsInfo, bad_sequence};
use crate::reply::{Enhanced, Reply};

impl Session {
    /// RFC 2034 §3: the greeting and the EHLO/HELO reply carry no enhanced code.
    pub(super) fn hello(&mut self, host: String, extended: bool) -> Reply {
        // RFC 5321 §4.1.4: EHLO or HELO in the middle of a transaction also resets it.
        self.state = State::Greeted { helo: Helo { name: host.clone(), extended } };
        let first = format!("{} Hello {host}", self.config.hostname);
        if !extended {
            return Reply::plain(250, vec![first]);
        }
        Reply::plain(250, std::iter::once(first).chain(self.extensions()).collect())
    }

    /// Postfix's order.
    fn extensions(&self) -> Vec<String> {
        let mut keywords = vec!["PIPELINING".to_owned(), format!("SIZE {}", self.config.max_message_size)];
        if self.starttls_offered() {
            keywords.push("STARTTLS".into());
        }
        if self.auth_offered() {
            keywords.push("AUTH PLAIN LOGIN".into());
        }
        let fixed = ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"];
        keywords.extend(fixed.map(String::from));
        keywords
    }

    fn starttls_offered(&self) -> bool {
        self.config.starttls_available && self.tls.is_none()
    }

    /// RFC 4954 §4, RFC 8314: passwords travel only inside TLS, unless a developer said otherwise.
    pub(super) fn auth_offered(&self) -> bool {
        self.config.mode == Mode::Submission && (self.tls.is_some() || self.config.plaintext_auth)
    }

    pub(super) fn starttls(&mut self) -> Action {
        if self.tls.is_some() {
            return Action::Reply(bad_sequence("TLS already active"));
        }
        if !self.config.starttls_available {
            return Action::Reply(Reply::new(502, Enhanced(5, 5, 1), "STARTTLS command not implemented"));
        }
        match mem::take(&mut self.state) {
            State::Greeted { .. } => {}
            State::Connected => return Action::Reply(bad_sequence("send EHLO first")),
            other => {
                self.state = other;
                return Action::Reply(bad_sequence("MAIL transaction in progress"));
            }
        }
        self.state = State::StartingTls;
        Action::StartTls(Reply::new(220, Enhanced(2, 0, 0), "Ready to start TLS"))
    }

    /// The handshake that [`Action::StartTls`] asked for succeeded. RFC 3207 §4.2: everything learnt from the
    /// client before it is forgotten (the EHLO, and an identity proved in the clear with `plaintext_auth`),
    /// so the client starts again with EHLO.
    pub fn tls_started(&mut self, tls: TlsInfo) {
        self.tls = Some(tls);
        self.user = None;
        self.state = State::Connected;
    }
}
