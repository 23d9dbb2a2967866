//! Transcript tests: client bytes go through the real decoder and the session, and fakes answer for the
//! directory, the credentials check and the spool, the way `smtp-ingress` drives them.

mod auth;
mod bdat;
mod commands;
mod extensions;
mod limits;
mod mx;
mod rfc5321;
mod sender_auth;
mod starttls;
mod submission;

use super::*;
use crate::command::CommandDecoder;
use crate::data::{ChunkReader, DataProgress, DataReader};

pub(super) const HOST: &str = "mx.example.org";

pub(super) fn config(mode: Mode) -> SessionConfig {
    SessionConfig {
        hostname: HOST.into(),
        max_message_size: 1000,
        max_recipients: 3,
        mode,
        starttls_available: true,
        plaintext_auth: false,
        max_errors: DEFAULT_MAX_ERRORS,
        max_auth_failures: DEFAULT_MAX_AUTH_FAILURES,
        long_lines: LongLines::Accept,
        bare_lf: BareLf::Normalise,
        spf: Enforcement::Off,
    }
}

pub(super) fn tls_info() -> TlsInfo {
    TlsInfo { version: "TLSv1.3".into(), cipher: "TLS_AES_128_GCM_SHA256".into() }
}

pub(super) fn alice() -> AuthenticatedUser {
    AuthenticatedUser { account_id: 1, address: "alice@example.org".into() }
}

/// The fake directory's accounts at example.org.
const LOCAL_USERS: &[&str] = &["alice", "bob", "carol", "jones", "brown", "jörg"];

fn verdict(address: &EmailAddress) -> Verdict {
    match address.domain().as_str() {
        "example.org" if LOCAL_USERS.contains(&address.local_part().to_lowercase().as_str()) => Verdict::Local,
        "example.org" => Verdict::UnknownUser,
        HOST if address.local_part().eq_ignore_ascii_case("postmaster") => Verdict::Local,
        HOST => Verdict::UnknownUser,
        "down.example" => Verdict::Unavailable,
        // The directory adapter's SRS check, faked: it says forged or expired, the session says how.
        "srs.example" if address.local_part().starts_with("SRS0=bad") => Verdict::ForgedReturnPath,
        "srs.example" => Verdict::ExpiredReturnPath,
        _ => Verdict::NotLocal,
    }
}

/// Takes one from what a rate limit leaves, as the connection's limiter does; `false` when nothing is left.
fn take(left: &mut Option<usize>) -> bool {
    match left {
        None => true,
        Some(0) => false,
        Some(n) => {
            *n -= 1;
            true
        }
    }
}

fn may_send_as(check: &SenderCheck) -> Option<bool> {
    let Some(address) = &check.address else { return Some(true) };
    match address.to_string().as_str() {
        _ if address.domain().as_str() == "down.example" => None,
        "alice@example.org" | "sales@example.org" => Some(check.user == alice()),
        _ => Some(false),
    }
}

/// What the connection is reading.
enum Reading {
    Commands,
    Data(DataReader),
    Chunk(ChunkReader),
}

/// A message the fake spool took, with the body the readers handed out for it.
pub(super) struct Queued {
    pub message: Message,
    pub body: Vec<u8>,
}

/// The tests look at the envelope and at the body alike.
impl std::ops::Deref for Queued {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.message
    }
}

/// Plays the connection task: decodes, lets the session decide, carries out its actions.
pub(super) struct Client {
    pub session: Session,
    decoder: CommandDecoder,
    input: Vec<u8>,
    reading: Reading,
    /// What the readers handed out for the transaction in progress.
    body: Vec<u8>,
    /// Messages enqueued, in order.
    pub messages: Vec<Queued>,
    /// Recipient addresses the directory was asked about.
    pub lookups: Vec<String>,
    /// Credentials the directory was asked to check.
    pub logins: Vec<Credentials>,
    /// Bytes dropped at STARTTLS.
    pub dropped: Vec<u8>,
    pub closed: bool,
    pub spool_down: bool,
    /// The submission rate limits: messages and recipients the account may still send; `None`: no limit.
    pub messages_left: Option<usize>,
    pub recipients_left: Option<usize>,
    /// SPF checks asked for, and the verdict the fake DNS gives each.
    pub spf_checks: Vec<SpfCheck>,
    pub spf_verdict: Option<SpfVerdict>,
}

impl Client {
    pub fn new(config: SessionConfig, tls: Option<TlsInfo>) -> Self {
        Client {
            session: Session::new(config, tls),
            decoder: CommandDecoder::default(),
            input: Vec::new(),
            reading: Reading::Commands,
            body: Vec::new(),
            messages: Vec::new(),
            lookups: Vec::new(),
            logins: Vec::new(),
            dropped: Vec::new(),
            closed: false,
            spool_down: false,
            messages_left: None,
            recipients_left: None,
            spf_checks: Vec::new(),
            spf_verdict: None,
        }
    }

    pub fn mx() -> Self {
        Client::new(config(Mode::Mx), None)
    }

    /// A submission session on port 465, TLS from the start.
    pub fn submission() -> Self {
        Client::new(config(Mode::Submission), Some(tls_info()))
    }

    /// A submission session that has said EHLO and logged in as alice.
    pub fn logged_in() -> Self {
        let mut client = Client::submission();
        let replies = client.send("EHLO c.example\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==\r\n");
        assert_eq!(replies[1], "235 2.7.0 Authentication successful");
        client
    }

    pub fn send(&mut self, text: &str) -> Vec<String> {
        self.send_bytes(text.as_bytes())
    }

    /// Sends bytes and returns every reply they drew, until the input runs out or the session closes.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Vec<String> {
        assert!(!self.closed || bytes.is_empty(), "the session is closed");
        self.input.extend_from_slice(bytes);
        let mut replies = Vec::new();
        while !self.closed && self.step(&mut replies) {}
        replies
    }

    /// Makes one step of progress; `false` when more input is needed.
    fn step(&mut self, replies: &mut Vec<String>) -> bool {
        match std::mem::replace(&mut self.reading, Reading::Commands) {
            Reading::Data(mut reader) => {
                let (consumed, progress) = reader.feed(&self.input, &mut self.body);
                self.input.drain(..consumed);
                if progress == DataProgress::Incomplete {
                    self.reading = Reading::Data(reader);
                    return false;
                }
                let outcome = self.session.data_received(progress);
                self.outcome(outcome, replies);
                true
            }
            Reading::Chunk(mut reader) => {
                let (consumed, complete) = reader.feed(&self.input, &mut self.body);
                self.input.drain(..consumed);
                if !complete {
                    self.reading = Reading::Chunk(reader);
                    return false;
                }
                let outcome = self.session.chunk_received(reader);
                self.outcome(outcome, replies);
                true
            }
            Reading::Commands => {
                let progress = self.command(replies);
                self.drop_body_unless_chunking();
                progress
            }
        }
    }

    /// As the connection does: the body of a transaction that is over is gone (RSET, a refusal, a new
    /// EHLO), and the next one starts from nothing.
    fn drop_body_unless_chunking(&mut self) {
        if !self.session.chunking() {
            self.body.clear();
        }
    }

    fn command(&mut self, replies: &mut Vec<String>) -> bool {
        let decoder = &mut self.decoder;
        let action = match self.session.expects() {
            Expect::Command => match mailbus_lines::next_item(&mut self.input, |bytes| decoder.decode(bytes)) {
                None => return false,
                Some(command) => self.session.handle(command),
            },
            Expect::SaslResponse => {
                match mailbus_lines::next_item(&mut self.input, |bytes| decoder.decode_sasl_line(bytes)) {
                    None => return false,
                    Some(line) => self.session.handle_sasl_response(line),
                }
            }
        };
        self.act(action, replies);
        true
    }

    fn act(&mut self, action: Action, replies: &mut Vec<String>) {
        match action {
            Action::Reply(reply) => replies.push(reply.to_string()),
            Action::Close(reply) => {
                replies.push(reply.to_string());
                self.closed = true;
            }
            Action::CheckRecipient(check) => {
                self.lookups.push(check.recipient.address.to_string());
                let verdict = verdict(&check.recipient.address);
                let accepted = matches!(verdict, Verdict::Local | Verdict::NotLocal);
                if accepted && self.session.authenticated_user().is_some() && !take(&mut self.recipients_left) {
                    let reply = self.session.recipient_rate_limited(check, "Too many recipients");
                    return replies.push(reply.to_string());
                }
                replies.push(self.session.recipient_checked(check, verdict).to_string());
            }
            Action::CheckSender(check) => {
                let allowed = may_send_as(&check);
                if allowed == Some(true) && !take(&mut self.messages_left) {
                    return replies.push(self.session.sender_rate_limited(check, "Too many messages").to_string());
                }
                replies.push(self.session.sender_checked(check, allowed).to_string());
            }
            Action::VerifySpf(check) => {
                self.spf_checks.push(check.clone());
                let verdict = self.spf_verdict.expect("the test says what SPF finds");
                replies.push(self.session.spf_verified(check, verdict).to_string());
            }
            Action::ReceiveData(go_ahead) => {
                replies.push(go_ahead.to_string());
                self.reading = Reading::Data(self.session.data_reader());
            }
            Action::ReceiveChunk { .. } => self.reading = Reading::Chunk(self.session.chunk_reader()),
            Action::StartTls(reply) => {
                replies.push(reply.to_string());
                self.dropped = std::mem::take(&mut self.input);
                self.decoder = CommandDecoder::default();
                self.session.tls_started(tls_info());
            }
            Action::Authenticate(credentials) => self.authenticate(credentials, replies),
        }
    }

    fn authenticate(&mut self, credentials: Credentials, replies: &mut Vec<String>) {
        self.logins.push(credentials.clone());
        if credentials.username == "down@example.org" {
            replies.push(self.session.auth_unavailable().to_string());
            return;
        }
        // The connection's throttle refuses this one's address before any password is checked.
        if credentials.username == "guessed@example.org" {
            replies.push(self.session.auth_throttled().to_string());
            return;
        }
        let ok = credentials.username == "alice@example.org" && credentials.password.expose() == "secret";
        let action = self.session.authenticated(ok.then(alice));
        self.act(action, replies);
    }

    fn outcome(&mut self, outcome: DataOutcome, replies: &mut Vec<String>) {
        let reply = match outcome {
            DataOutcome::Reply(reply) => reply,
            DataOutcome::Enqueue(_) if self.spool_down => self.session.not_queued(),
            DataOutcome::Enqueue(message) => {
                self.messages.push(Queued { message, body: std::mem::take(&mut self.body) });
                let id = format!("Q{}", self.messages.len());
                self.session.queued(&id)
            }
        };
        self.drop_body_unless_chunking();
        replies.push(reply.to_string());
    }
}

/// LFs without a CR before them and CRs without an LF after them: none may be stored.
pub(super) fn bare_line_endings(text: &[u8]) -> usize {
    let bare_lf = text.iter().enumerate().filter(|&(i, &b)| b == b'\n' && (i == 0 || text[i - 1] != b'\r'));
    let bare_cr = text.iter().enumerate().filter(|&(i, &b)| b == b'\r' && text.get(i + 1) != Some(&b'\n'));
    bare_lf.count() + bare_cr.count()
}

/// The code of each reply.
pub(super) fn codes(replies: &[String]) -> Vec<&str> {
    replies.iter().map(|reply| &reply[..3]).collect()
}
