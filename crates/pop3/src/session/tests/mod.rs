//! Transcript tests: client bytes go through the real decoder and the session, and a fake answers for the
//! credentials check, the maildrop lock, the message store and the TLS handshake, the way `access` drives
//! them.

mod auth;
mod capa;
mod rfc1939;
mod stls;

use super::*;
use crate::command::CommandDecoder;
use crate::stuffing::{DotStuffer, top};

const HOST: &str = "pop.example.org";

const FIRST: &[u8] = b"Subject: one\r\n\r\nfirst line\r\n.dot line\r\nlast line\r\n";
const SECOND: &[u8] = b"Subject: two\r\n\r\nno final newline";
const THIRD: &[u8] = b"Subject: three\r\n\r\n";

/// What a successful login answers.
const LOGGED_IN: &str = "+OK maildrop has 3 messages (100 octets)";
const AUTH_FAILED: &str = "-ERR [AUTH] Authentication failed";
const PLAINTEXT_DISALLOWED: &str =
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";

/// A certificate, no logins in the clear: ports 110 and 995 in production.
fn config() -> SessionConfig {
    SessionConfig {
        hostname: HOST.into(),
        stls_available: true,
        plaintext_allowed: false,
        max_auth_failures: DEFAULT_MAX_AUTH_FAILURES,
        expire: Expire::Never,
    }
}

fn maildrop() -> Maildrop {
    let info = |uid, body: &[u8]| MessageInfo { uid, size: body.len() as u64 };
    Maildrop { uidvalidity: 7, messages: vec![info(10, FIRST), info(11, SECOND), info(15, THIRD)] }
}

/// The fake directory and lock: alice's password is "open sesame"; "locked" has the right password but
/// another session holds the maildrop; "outage" cannot be checked; "guessed" is refused for the failures
/// its address already has.
fn outcome(user: &str, password: &str) -> AuthOutcome {
    match (user, password) {
        ("alice", "open sesame") => AuthOutcome::Maildrop(maildrop()),
        ("locked", "open sesame") => AuthOutcome::InUse,
        ("outage", _) => AuthOutcome::Unavailable,
        ("guessed", _) => AuthOutcome::Throttled,
        _ => AuthOutcome::Invalid,
    }
}

/// An in-memory stand-in for the connection task and its backends.
struct Server {
    session: Session,
    decoder: CommandDecoder,
    /// Received bytes not yet decoded.
    buf: Vec<u8>,
    /// The user names whose passwords were checked, in order.
    logins: Vec<String>,
    /// Bytes dropped at STLS, unread.
    dropped: Vec<u8>,
    /// The uids the session asked to expunge, once it has.
    expunged: Option<Vec<u32>>,
    expunge_works: bool,
    /// A Close action was carried out.
    closed: bool,
}

impl Server {
    /// Port 995: TLS from the start.
    fn new() -> Self {
        Server::with(config(), true)
    }

    /// Port 110: STLS offered, no login before it.
    fn plain() -> Self {
        Server::with(config(), false)
    }

    fn with(config: SessionConfig, tls: bool) -> Self {
        Server {
            session: Session::new(config, tls),
            decoder: CommandDecoder::default(),
            buf: Vec::new(),
            logins: Vec::new(),
            dropped: Vec::new(),
            expunged: None,
            expunge_works: true,
            closed: false,
        }
    }

    fn logged_in() -> Self {
        let mut server = Server::new();
        assert_eq!(server.run("USER alice\r\nPASS open sesame\r\n")[1], LOGGED_IN);
        server
    }

    fn run(&mut self, client: &str) -> Vec<String> {
        self.receive(client.as_bytes())
    }

    /// Runs received bytes through decoder and session, carrying out every action, and returns what the
    /// server wrote for each complete line, as a transcript.
    fn receive(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(action) = self.next_action() {
            let written = self.carry_out(action);
            out.push(String::from_utf8_lossy(&written).trim_end().to_owned());
        }
        out
    }

    /// Decodes what the session expects next and hands it over; `None` when more bytes are needed.
    fn next_action(&mut self) -> Option<Action> {
        let decoder = &mut self.decoder;
        Some(match self.session.expects() {
            Expect::Command => self.session.handle(mailbus_lines::next_item(&mut self.buf, |b| decoder.decode(b))?),
            Expect::SaslResponse => self
                .session
                .handle_sasl_response(mailbus_lines::next_item(&mut self.buf, |b| decoder.decode_sasl_line(b))?),
        })
    }

    fn carry_out(&mut self, action: Action) -> Vec<u8> {
        match action {
            Action::Reply(response) => response.to_bytes(),
            Action::Close(response) => {
                self.closed = true;
                response.to_bytes()
            }
            Action::Authenticate { user, password } => {
                let outcome = outcome(&user, password.expose());
                self.logins.push(user);
                let action = self.session.authenticated(outcome);
                assert!(matches!(action, Action::Reply(_) | Action::Close(_)), "{action:?}");
                self.carry_out(action)
            }
            Action::StartTls(response) => {
                // RFC 2595 §4: what came in the clear behind STLS is never read.
                self.dropped.append(&mut self.buf);
                self.decoder = CommandDecoder::default();
                self.session.tls_started();
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

/// What a reply or close action writes, for comparing.
fn written(action: Action) -> String {
    match action {
        Action::Reply(response) | Action::Close(response) => response.to_string(),
        other => panic!("not a response: {other:?}"),
    }
}

/// A session that has sent USER and PASS and awaits the credentials check.
fn authenticating() -> Session {
    let mut session = Session::new(config(), true);
    session.handle(Ok(Command::User("alice".into())));
    let action = session.handle(Ok(Command::Pass(Secret::new("pw"))));
    assert_eq!(action, Action::Authenticate { user: "alice".into(), password: Secret::new("pw") });
    session
}

/// A session in TRANSACTION with [`maildrop`].
fn in_transaction() -> Session {
    let mut session = authenticating();
    assert_eq!(written(session.authenticated(AuthOutcome::Maildrop(maildrop()))), LOGGED_IN);
    session
}
