//! STLS (RFC 2595 §4): offered with a certificate and only once, in AUTHORIZATION, and a fresh start after
//! the handshake.

use super::{Action, Session, State};
use crate::response::Response;

impl Session {
    /// Only reached in AUTHORIZATION; in TRANSACTION STLS is not valid.
    pub(super) fn stls(&mut self) -> Action {
        if self.tls {
            return Action::Reply(Response::err("TLS is already active"));
        }
        if !self.config.stls_available {
            return Action::Reply(Response::err("TLS support isn't enabled"));
        }
        Action::StartTls(Response::ok("Begin TLS negotiation"))
    }

    /// The handshake that [`Action::StartTls`] asked for succeeded. RFC 2595 §4: what the client said
    /// before it is forgotten (a pending USER, UTF8 mode), so the session is back at the start of
    /// AUTHORIZATION, and CAPA now lists what TLS allows. Failed logins still count: the limit is per
    /// connection. At any other time this does nothing.
    pub fn tls_started(&mut self) {
        if !matches!(self.state, State::StartingTls) {
            return;
        }
        self.tls = true;
        self.utf8 = false;
        self.state = State::Authorization { user: None };
    }
}
