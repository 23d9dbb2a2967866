//! Transcript tests: client bytes go through the real decoder and the session, and fakes answer for the
//! directory, the credentials check and the spool, the way `smtp-ingress` drives them.

mod auth;
mod bdat;
mod commands;
mod extensions;
mod limits;
mod mx;
mod rfc5321;
mod starttls;
mod submission;

use super::*;
use crate::command::CommandDecoder;
use crate::data::DataReader;

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
        _ => Verdict::NotLocal,
    }
}

fn may_send_as(check: &SenderCheck) -> Option<bool> {
    match check.address.to_string().as_str() {
        _ if check.address.domain().as_str() == "down.example" => None,
        "alice@example.org" | "sales@example.org" => Some(check.user == alice()),
        _ => Some(false),
    }
}

/// What the connection is reading.
enum Reading {
    Commands,
    Data(DataReader),
    Chunk(usize),
}

/// Plays the connection task: decodes, lets the session decide, carries out its actions.
pub(super) struct Client {
    pub session: Session,
    decoder: CommandDecoder,
    input: Vec<u8>,
    reading: Reading,
    /// Messages enqueued, in order.
    pub messages: Vec<Message>,
    /// Recipient addresses the directory was asked about.
    pub lookups: Vec<String>,
    /// Credentials the directory was asked to check.
    pub logins: Vec<Credentials>,
    /// Bytes dropped at STARTTLS.
    pub dropped: Vec<u8>,
    pub closed: bool,
    pub spool_down: bool,
}

impl Client {
    pub fn new(config: SessionConfig, tls: Option<TlsInfo>) -> Self {
        Client {
            session: Session::new(config, tls),
            decoder: CommandDecoder::default(),
            input: Vec::new(),
            reading: Reading::Commands,
            messages: Vec::new(),
            lookups: Vec::new(),
            logins: Vec::new(),
            dropped: Vec::new(),
            closed: false,
            spool_down: false,
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
                let (consumed, progress) = reader.feed(&self.input);
                self.input.drain(..consumed);
                if progress == crate::data::DataProgress::Incomplete {
                    self.reading = Reading::Data(reader);
                    return false;
                }
                let outcome = self.session.data_received(progress);
                self.outcome(outcome, replies);
                true
            }
            Reading::Chunk(size) if self.input.len() < size => {
                self.reading = Reading::Chunk(size);
                false
            }
            Reading::Chunk(size) => {
                let chunk: Vec<u8> = self.input.drain(..size).collect();
                let outcome = self.session.chunk_received(chunk);
                self.outcome(outcome, replies);
                true
            }
            Reading::Commands => self.command(replies),
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
                replies.push(self.session.recipient_checked(check, verdict).to_string());
            }
            Action::CheckSender(check) => {
                let allowed = may_send_as(&check);
                replies.push(self.session.sender_checked(check, allowed).to_string());
            }
            Action::ReceiveData(go_ahead) => {
                replies.push(go_ahead.to_string());
                self.reading = Reading::Data(self.session.data_reader());
            }
            Action::ReceiveChunk { size, .. } => self.reading = Reading::Chunk(size),
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
        let ok = credentials.username == "alice@example.org" && credentials.password.expose() == "secret";
        let action = self.session.authenticated(ok.then(alice));
        self.act(action, replies);
    }

    fn outcome(&mut self, outcome: DataOutcome, replies: &mut Vec<String>) {
        let reply = match outcome {
            DataOutcome::Reply(reply) => reply,
            DataOutcome::Enqueue(_) if self.spool_down => self.session.not_queued(),
            DataOutcome::Enqueue(message) => {
                self.messages.push(message);
                let id = format!("Q{}", self.messages.len());
                self.session.queued(&id)
            }
        };
        replies.push(reply.to_string());
    }
}

/// The code of each reply.
pub(super) fn codes(replies: &[String]) -> Vec<&str> {
    replies.iter().map(|reply| &reply[..3]).collect()
}
