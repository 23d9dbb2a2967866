//! One SMTP connection: read, decode, let the session decide, carry out its action, write — under the
//! configured timeouts, until QUIT, EOF, a timeout or shutdown. The session decides everything a reply
//! says; this file only moves bytes, keeps message bodies, asks the ports, and upgrades to TLS when told
//! to.
//!
//! Time is bounded per command and per body, not per read, so that a client sending a byte now and then
//! cannot hold a session: a command line must be whole within the command timeout from when we are
//! ready for it, and a body must keep up a minimum rate ([`DataClock`]).

use std::sync::Arc;
use std::time::Duration;

use mailbus_acceptor::wire::{self, ReadError, StartTlsError, Wire};
use mailbus_jetstream::{Limit, LoginThrottle, SubmissionLimits, Verdict as ThrottleVerdict};
use mailbus_sasl::PlaintextAuth;
use mailbus_smtp::command::{Command, CommandDecoder, CommandError};
use mailbus_smtp::data::DataProgress;
use mailbus_smtp::reply::{Enhanced, Reply};
use mailbus_smtp::session::{
    Action, Credentials, DataOutcome, Expect, Message, RecipientCheck, SenderCheck, Session, SessionConfig, SpfCheck,
    SpfVerdict, TlsInfo, Verdict,
};
use mailbus_tls::{MaybeTls, ServerTls, TlsFacts};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::body::{BodySink, BodyStorage};
use crate::metrics::Metrics;
use crate::ports::{ClientInfo, Directory, Spool, SpoolError};
use crate::sender_auth::{Decision, SpfFindings, Verifier, forged_results};

/// How much of a message's start is searched for `Authentication-Results` fields to remove when the
/// message is too large to be verified (and so is not read whole).
const HEADER_SCAN_LIMIT: usize = 256 * 1024;

/// RFC 5321 §4.5.3.2 timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// §4.5.3.2.7: waiting for the next command, at least 5 minutes; the whole line must come within it.
    pub command: Duration,
    /// §4.5.3.2.5: waiting for each block of DATA, at least 3 minutes; also what a body may take on top of
    /// the time its octets earn at `min_data_rate`.
    pub data: Duration,
    /// Postfix's `smtpd_min_data_rate`, in octets per second: see [`DataClock`]. At least 1.
    pub min_data_rate: u32,
    /// Every TLS handshake, on 465 or after STARTTLS (`MAILBUS_TLS_HANDSHAKE_TIMEOUT_SECS`, shared with
    /// IMAP, POP3 and ManageSieve).
    pub tls_handshake: Duration,
}

pub struct Context<D, S> {
    pub directory: D,
    pub spool: S,
    pub tls: ServerTls,
    pub timeouts: Timeouts,
    /// Failed AUTHs, counted with IMAP's and POP3's across replicas: the delay before a 535, and the 454
    /// for an address with too many.
    pub throttle: LoginThrottle,
    /// Messages and recipients of authenticated submissions, counted across replicas: 451 4.7.1 past a
    /// limit.
    pub limits: SubmissionLimits,
    pub bodies: BodyStorage,
    pub metrics: Metrics,
    /// Port 25's sender authentication (SPF, DKIM, ARC, DMARC); `None` when every check is off.
    pub verifier: Option<Verifier>,
}

/// What a listener makes of its connections.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Port 25 or submission, and the rest of the session's policy.
    pub session: SessionConfig,
    /// Port 465: the handshake comes before the greeting (RFC 8314).
    pub implicit_tls: bool,
    /// Whether AUTH is offered before TLS, by client address; the session is told the answer.
    pub plaintext_auth: PlaintextAuth,
}

/// Why a connection ended, for the log.
#[derive(Debug)]
enum End {
    Quit,
    Read(ReadError),
    Io(std::io::Error),
    TlsHandshake(std::io::Error),
}

/// A line from the client, decoded as what the session expects.
enum Input {
    Command(Result<Command, CommandError>),
    SaslResponse(Result<Vec<u8>, CommandError>),
}

pub async fn handle<IO, D, S>(
    io: IO,
    client: ClientInfo,
    listener: Arc<Listener>,
    ctx: Arc<Context<D, S>>,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    D: Directory,
    S: Spool,
{
    let implicit_tls = listener.implicit_tls.then_some(&ctx.tls);
    let Some((stream, facts)) = wire::open(io, implicit_tls, ctx.timeouts.tls_handshake, client.peer).await else {
        return;
    };
    let mut config = listener.session.clone();
    config.plaintext_auth = listener.plaintext_auth.allows(client.peer.ip());
    let session = Session::new(config, facts.map(tls_info));
    let mut conn = Connection {
        wire: Wire::new(stream),
        decoder: CommandDecoder::default(),
        client,
        ctx,
        verb: "CONNECT",
        chunks: None,
        spf: None,
    };
    match conn.run(session, &shutdown).await {
        End::Io(error) | End::Read(ReadError::Io(error)) => {
            tracing::info!(peer = %conn.client.peer, %error, "connection failed")
        }
        End::TlsHandshake(error) => tracing::info!(peer = %conn.client.peer, %error, "STARTTLS handshake failed"),
        other => tracing::debug!(peer = %conn.client.peer, end = ?other, "connection closed"),
    }
}

/// The verb of a command line, as the metrics label it; lines that do not parse are `invalid`.
fn verb(command: &Result<Command, CommandError>) -> &'static str {
    command.as_ref().map_or("invalid", |command| command.name())
}

fn tls_info(facts: TlsFacts) -> TlsInfo {
    TlsInfo { version: facts.version, cipher: facts.cipher }
}

struct Connection<IO, D, S> {
    wire: Wire<MaybeTls<IO>>,
    decoder: CommandDecoder,
    client: ClientInfo,
    ctx: Arc<Context<D, S>>,
    /// The verb of the command being answered, for the rejection counts.
    verb: &'static str,
    /// The body of a BDAT transaction under way, from its first chunk to its last.
    chunks: Option<BodySink>,
    /// What SPF found at the MAIL FROM of the transaction under way, for DMARC and the header.
    spf: Option<SpfFindings>,
}

impl<IO, D, S> Connection<IO, D, S>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    D: Directory,
    S: Spool,
{
    async fn run(&mut self, mut session: Session, shutdown: &CancellationToken) -> End {
        self.wire.output.extend(session.greeting().to_bytes());
        // When we became ready for the next command; it must be whole within the command timeout from then.
        let mut waiting_since = None;
        loop {
            // Answer every complete command already received (PIPELINING, RFC 2920), then flush once.
            while let Some(input) = self.next_input(session.expects()) {
                waiting_since = None;
                let action = match input {
                    Input::Command(command) => {
                        self.verb = verb(&command);
                        session.handle(command)
                    }
                    Input::SaslResponse(line) => {
                        self.verb = "AUTH";
                        session.handle_sasl_response(line)
                    }
                };
                if let Some(end) = self.act(&mut session, action).await {
                    return end;
                }
                if !session.chunking() {
                    // No BDAT transaction (any more): nothing of its body is needed.
                    self.chunks = None;
                }
            }
            if let Err(error) = self.wire.flush().await {
                return End::Io(error);
            }
            let deadline = *waiting_since.get_or_insert_with(Instant::now) + self.ctx.timeouts.command;
            if let Err(error) = self.read_command(deadline, shutdown).await {
                return End::Read(error);
            }
        }
    }

    /// Reads more of the next command until `deadline`; a timeout or a shutdown is told to the client first.
    async fn read_command(&mut self, deadline: Instant, shutdown: &CancellationToken) -> Result<(), ReadError> {
        let metrics = &self.ctx.metrics;
        // Counted as rejections too, under what ended the session rather than a command.
        let farewell = |error: &ReadError| match error {
            ReadError::Timeout => {
                metrics.replied("TIMEOUT", 421);
                Some(timed_out().to_bytes())
            }
            ReadError::Shutdown => {
                metrics.replied("SHUTDOWN", 421);
                Some(Reply::new(421, Enhanced(4, 3, 2), "Service shutting down").to_bytes())
            }
            _ => None,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        self.wire.read_or_farewell(left, shutdown, farewell).await
    }

    /// A command line, or after a 334 challenge a SASL response line.
    fn next_input(&mut self, expect: Expect) -> Option<Input> {
        let decoder = &mut self.decoder;
        match expect {
            Expect::Command => self.wire.next_item(|input| decoder.decode(input)).map(Input::Command),
            Expect::SaslResponse => {
                self.wire.next_item(|input| decoder.decode_sasl_line(input)).map(Input::SaslResponse)
            }
        }
    }

    /// Carries out one action; `Some` ends the connection.
    async fn act(&mut self, session: &mut Session, action: Action) -> Option<End> {
        match action {
            Action::Reply(reply) => self.answer(reply),
            Action::CheckRecipient(check) => {
                let reply = self.check_recipient(session, check).await;
                self.answer(reply);
            }
            Action::CheckSender(check) => {
                let reply = self.check_sender(session, check).await;
                self.answer(reply);
            }
            Action::VerifySpf(check) => {
                let reply = self.verify_spf(session, check).await;
                self.answer(reply);
            }
            Action::ReceiveData(go_ahead) => {
                self.wire.output.extend(go_ahead.to_bytes());
                if let Err(error) = self.wire.flush().await {
                    return Some(End::Io(error));
                }
                let span = self.data_span("DATA");
                let reply = match self.receive_data(session).instrument(span).await {
                    Ok(reply) => reply,
                    Err(end) => return Some(end),
                };
                self.answer(reply);
            }
            Action::ReceiveChunk { size, last } => {
                let span = self.data_span("BDAT");
                let reply = match self.receive_chunk(session, size, last).instrument(span).await {
                    Ok(reply) => reply,
                    Err(end) => return Some(end),
                };
                self.answer(reply);
            }
            Action::StartTls(go_ahead) => return self.start_tls(session, go_ahead).await,
            Action::Authenticate(credentials) => {
                let next = self.authenticate(session, credentials).await;
                return Box::pin(self.act(session, next)).await;
            }
            Action::Close(reply) => {
                self.ctx.metrics.replied(self.verb, reply.code);
                self.reply(reply).await;
                return Some(End::Quit);
            }
        }
        None
    }

    /// Queues a reply to the command in hand, counting it when it refuses.
    fn answer(&mut self, reply: Reply) {
        self.ctx.metrics.replied(self.verb, reply.code);
        self.wire.output.extend(reply.to_bytes());
    }

    /// Asks the directory; a recipient it would accept in a submission session is counted against the
    /// account's recipient limits first.
    async fn check_recipient(&self, session: &mut Session, check: RecipientCheck) -> Reply {
        let verdict = self.ctx.directory.verdict(&check.recipient.address).await;
        if matches!(verdict, Verdict::Local | Verdict::NotLocal)
            && let Some(user) = session.authenticated_user()
            && let Err(limit) = self.ctx.limits.recipients(user.account_id, 1).await
        {
            self.rate_limited(limit, &user.address);
            return session.recipient_rate_limited(check, limit.explanation());
        }
        session.recipient_checked(check, verdict)
    }

    /// Asks the directory whether the account owns the sender address (the null sender claims none),
    /// then counts the message against the account's and the client address's limits.
    async fn check_sender(&self, session: &mut Session, check: SenderCheck) -> Reply {
        let allowed = match &check.address {
            Some(address) => self.ctx.directory.sender_allowed(&check.user, address).await.ok(),
            None => Some(true),
        };
        if allowed == Some(true)
            && let Err(limit) = self.ctx.limits.message(check.user.account_id, self.client.peer.ip()).await
        {
            self.rate_limited(limit, &check.user.address);
            return session.sender_rate_limited(check, limit.explanation());
        }
        session.sender_checked(check, allowed)
    }

    /// RFC 7208 at MAIL FROM: the HELO identity and the sender's domain, kept for the end of the
    /// transaction; the session says what the result means to the client.
    async fn verify_spf(&mut self, session: &mut Session, check: SpfCheck) -> Reply {
        let Some(verifier) = &self.ctx.verifier else {
            self.spf = None;
            return session.spf_verified(check, SpfVerdict::None);
        };
        let findings = verifier.spf(self.client.peer.ip(), &check.helo, check.sender.as_ref()).await;
        let verdict = findings.verdict();
        tracing::debug!(peer = %self.client.peer, helo = %check.helo, spf = %verdict, "spf checked");
        self.ctx.metrics.verified("spf", &verdict.to_string());
        self.spf = Some(findings);
        session.spf_verified(check, verdict)
    }

    /// Port 25, after the body: DKIM, ARC and DMARC, an enforced DMARC policy's refusal, and the
    /// `Authentication-Results` field put before the message after the ones claiming our id are taken out.
    /// `Err` is the reply when the message is not to be queued.
    async fn authenticate_message(
        &self,
        session: &mut Session,
        message: &Message,
        body: &mut crate::body::Body,
    ) -> Result<(), Reply> {
        let Some(verifier) = &self.ctx.verifier else { return Ok(()) };
        if message.authenticated.is_some() {
            return Ok(());
        }
        let policy = verifier.policy();
        let whole = body.size() <= policy.max_size;
        let head = body.head(if whole { policy.max_size } else { HEADER_SCAN_LIMIT }).await;
        let head = match head {
            Ok(head) => head,
            Err(error) => {
                tracing::warn!(%error, peer = %self.client.peer, "message body unreadable for verification");
                return Err(session.not_queued());
            }
        };
        let raw = whole.then_some(head.as_slice());
        let findings = verifier.message(self.client.peer.ip(), &message.helo.name, self.spf.as_ref(), raw).await;
        self.ctx.metrics.verified("dmarc", findings.dmarc);
        match findings.decision {
            Decision::Accept => {}
            Decision::Reject { domain } => {
                tracing::info!(peer = %self.client.peer, %domain, "message refused: dmarc p=reject");
                return Err(session.dmarc_rejected(&domain));
            }
            Decision::Defer { domain } => {
                tracing::info!(peer = %self.client.peer, %domain, "message deferred: dmarc temperror");
                return Err(session.dmarc_deferred(&domain));
            }
        }
        let forged = forged_results(&head, &policy.authserv_id);
        if !forged.is_empty() {
            tracing::info!(peer = %self.client.peer, count = forged.len(), "authentication-results claiming our id removed");
        }
        if let Err(error) = body.splice(findings.header.as_bytes(), &forged).await {
            tracing::warn!(%error, peer = %self.client.peer, "message body unreadable for verification");
            return Err(session.not_queued());
        }
        Ok(())
    }

    fn rate_limited(&self, limit: Limit, user: &str) {
        self.ctx.metrics.rate_limited(limit);
        tracing::info!(peer = %self.client.peer, %user, limit = limit.label(), "submission rate limit reached");
    }

    /// RFC 3207 STARTTLS; the session starts over after it.
    async fn start_tls(&mut self, session: &mut Session, go_ahead: Reply) -> Option<End> {
        let upgraded = self.wire.start_tls(&go_ahead.to_bytes(), &self.ctx.tls, self.ctx.timeouts.tls_handshake).await;
        self.decoder = CommandDecoder::default();
        match upgraded {
            Ok(facts) => {
                session.tls_started(tls_info(facts));
                None
            }
            Err(StartTlsError::Write(error)) => Some(End::Io(error)),
            Err(StartTlsError::Handshake(error)) => Some(End::TlsHandshake(error)),
        }
    }

    /// Checks credentials, unless the client's address has failed too often already; a failure is
    /// answered only after a delay that grows with the failures of this address and account (across
    /// sessions, protocols and replicas), which makes guessing slow without costing honest users anything.
    async fn authenticate(&mut self, session: &mut Session, credentials: Credentials) -> Action {
        let client = self.client.peer.ip();
        if self.ctx.throttle.verdict(client).await == ThrottleVerdict::Refuse {
            self.ctx.metrics.auth_throttled.inc();
            return Action::Reply(session.auth_throttled());
        }
        let checked = self.ctx.directory.authenticate(&credentials.username, credentials.password.expose()).await;
        match checked {
            Ok(Some(user)) => {
                tracing::info!(peer = %self.client.peer, user = %user.address, "authenticated");
                self.ctx.throttle.succeeded(&credentials.username).await;
                session.authenticated(Some(user))
            }
            Ok(None) => {
                self.ctx.metrics.auth_failures.inc();
                tokio::time::sleep(self.ctx.throttle.failed("smtp", client, &credentials.username).await).await;
                session.authenticated(None)
            }
            Err(_) => Action::Reply(session.auth_unavailable()),
        }
    }

    fn data_span(&self, verb: &'static str) -> tracing::Span {
        tracing::info_span!(
            "smtp.data",
            otel.kind = "server",
            smtp.command = verb,
            network.peer.address = %self.client.peer.ip(),
            queue_id = tracing::field::Empty,
            mail.message_id = tracing::field::Empty,
            mail.recipients = tracing::field::Empty,
            smtp.reply_code = tracing::field::Empty,
        )
    }

    /// Reads a DATA body, then makes it durable; the reply is 250 only if that succeeded.
    async fn receive_data(&mut self, session: &mut Session) -> Result<Reply, End> {
        let mut reader = session.data_reader();
        let mut sink = BodySink::new(&self.ctx.bodies);
        let mut clock = DataClock::start(self.ctx.timeouts);
        let mut released = Vec::new();
        let progress = loop {
            let (consumed, progress) = reader.feed(&self.wire.input, &mut released);
            self.wire.consume(consumed);
            clock.count(consumed);
            sink.write(&released).await;
            released.clear();
            if progress != DataProgress::Incomplete {
                break progress;
            }
            self.read_body(&clock).await?;
        };
        let outcome = session.data_received(progress);
        Ok(self.settle(session, outcome, Some(sink)).await)
    }

    /// Reads one BDAT chunk, keeping what the session takes of it after the earlier chunks of the
    /// transaction.
    async fn receive_chunk(&mut self, session: &mut Session, size: usize, last: bool) -> Result<Reply, End> {
        let mut reader = session.chunk_reader();
        if reader.keeps() && self.chunks.is_none() {
            self.chunks = Some(BodySink::new(&self.ctx.bodies));
        }
        let mut clock = DataClock::start(self.ctx.timeouts);
        let mut released = Vec::new();
        loop {
            let (consumed, complete) = reader.feed(&self.wire.input, &mut released);
            self.wire.consume(consumed);
            clock.count(consumed);
            if let Some(sink) = &mut self.chunks {
                sink.write(&released).await;
            }
            released.clear();
            if complete {
                break;
            }
            self.read_body(&clock).await?;
        }
        tracing::debug!(size, last, "BDAT chunk read");
        let outcome = session.chunk_received(reader);
        let body = if matches!(outcome, DataOutcome::Enqueue(_)) { self.chunks.take() } else { None };
        Ok(self.settle(session, outcome, body).await)
    }

    /// Reads more of a body, as long as `clock` allows; past that, 421 and close.
    async fn read_body(&mut self, clock: &DataClock) -> Result<(), End> {
        // Shutdown waits for a body in progress; the accept loop's grace period bounds that wait.
        let read = self.wire.read_more(clock.left(), &CancellationToken::new()).await;
        if let Err(ReadError::Timeout) = read {
            self.ctx.metrics.replied("TIMEOUT", 421);
            self.reply(timed_out()).await;
        }
        read.map_err(End::Read)
    }

    /// Makes a finished message durable with `body`, or passes the session's refusal on.
    async fn settle(&mut self, session: &mut Session, outcome: DataOutcome, body: Option<BodySink>) -> Reply {
        let reply = match outcome {
            DataOutcome::Reply(reply) => reply,
            DataOutcome::Enqueue(message) => {
                // A transaction always has a body, if an empty one.
                let body = body.unwrap_or_else(|| BodySink::new(&self.ctx.bodies));
                self.enqueue(session, message, body).await
            }
        };
        self.ctx.metrics.message(reply.code);
        tracing::Span::current().record("smtp.reply_code", reply.code);
        reply
    }

    async fn enqueue(&mut self, session: &mut Session, message: Message, body: BodySink) -> Reply {
        let mut body = match body.finish().await {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, peer = %self.client.peer, "message body not kept");
                return session.not_queued();
            }
        };
        if let Err(reply) = self.authenticate_message(session, &message, &mut body).await {
            return reply;
        }
        let size = body.size();
        let span = tracing::Span::current();
        span.record("mail.recipients", message.recipients.len());
        if let Some(message_id) = body.message_id() {
            span.record("mail.message_id", message_id);
        }
        match self.ctx.spool.enqueue(message, body, &self.client, session.hostname()).await {
            Ok(queue_id) => {
                tracing::Span::current().record("queue_id", queue_id.as_str());
                tracing::info!(%queue_id, peer = %self.client.peer, "message accepted");
                self.ctx.metrics.message_size.observe(size as f64);
                session.queued(&queue_id)
            }
            Err(SpoolError::TooLarge { size, limit }) => {
                tracing::info!(size, limit, peer = %self.client.peer, "message refused: too large");
                Reply::new(552, Enhanced(5, 3, 4), "Message size exceeds fixed maximum message size")
            }
            Err(error) => {
                tracing::warn!(%error, peer = %self.client.peer, "message not queued");
                session.not_queued()
            }
        }
    }

    async fn reply(&mut self, reply: Reply) {
        self.wire.last_words(&reply.to_bytes()).await;
    }
}

/// RFC 5321 §4.5.3.2: a server may close a session that takes too long, with a 421 first.
fn timed_out() -> Reply {
    Reply::new(421, Enhanced(4, 4, 2), "Timeout exceeded, closing connection")
}

/// How long a body (a DATA body, or one BDAT chunk) may take: Postfix's `smtpd_min_data_rate`. It gets the
/// data timeout plus the time its octets so far earn at the minimum rate, and no read may wait longer
/// than the data timeout (RFC 5321 §4.5.3.2.5). A client that keeps up the rate finishes however large
/// its message; one that sends a byte now and then, which a timeout per read would keep for ever, is cut
/// off.
struct DataClock {
    start: Instant,
    timeouts: Timeouts,
    received: u64,
}

impl DataClock {
    fn start(timeouts: Timeouts) -> Self {
        DataClock { start: Instant::now(), timeouts, received: 0 }
    }

    fn count(&mut self, octets: usize) {
        self.received = self.received.saturating_add(octets as u64);
    }

    /// How long the next read may wait.
    fn left(&self) -> Duration {
        let rate = u64::from(self.timeouts.min_data_rate.max(1));
        let earned = Duration::from_millis(self.received.saturating_mul(1000) / rate);
        let allowed = self.timeouts.data.saturating_add(earned);
        allowed.saturating_sub(self.start.elapsed()).min(self.timeouts.data)
    }
}

#[cfg(test)]
mod tests {
    //! The connection task against in-memory fakes of the directory and the spool, over an in-memory
    //! stream: what only the I/O layer can get wrong.

    use std::sync::Mutex;

    use mailbus_address::EmailAddress;
    use mailbus_jetstream::ThrottlePolicy;
    use mailbus_smtp::session::{AuthenticatedUser, BareLf, LongLines, Message, Mode, Verdict};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};

    use super::*;
    use crate::body::{Body, MEMORY_LIMIT};
    use crate::ports::DirectoryUnavailable;

    struct FakeDirectory;

    impl Directory for FakeDirectory {
        async fn verdict(&self, address: &EmailAddress) -> Verdict {
            if address.domain().as_str() == "example.org" { Verdict::Local } else { Verdict::NotLocal }
        }

        async fn sender_allowed(&self, _: &AuthenticatedUser, _: &EmailAddress) -> Result<bool, DirectoryUnavailable> {
            Ok(true)
        }

        async fn authenticate(&self, _: &str, _: &str) -> Result<Option<AuthenticatedUser>, DirectoryUnavailable> {
            Ok(None)
        }
    }

    #[derive(Default)]
    struct FakeSpool {
        broken: bool,
        queued: Mutex<Vec<Queued>>,
    }

    /// What the fake spool took.
    struct Queued {
        body: Vec<u8>,
        message_id: Option<String>,
        spilled: bool,
        memory_peak: usize,
    }

    /// Shared, so the test can look at what the connection queued.
    impl Spool for Arc<FakeSpool> {
        async fn enqueue(&self, _: Message, body: Body, _: &ClientInfo, _: &str) -> Result<String, SpoolError> {
            if self.broken {
                return Err(SpoolError::Unavailable("nats down".into()));
            }
            let (message_id, spilled, memory_peak) =
                (body.message_id().map(str::to_owned), body.spilled(), body.memory_peak());
            let mut content = Vec::new();
            body.into_reader().read_to_end(&mut content).await.unwrap();
            self.queued.lock().unwrap().push(Queued { body: content, message_id, spilled, memory_peak });
            Ok("q1".into())
        }
    }

    fn session_config() -> SessionConfig {
        SessionConfig {
            hostname: "mx.test".into(),
            max_message_size: 16 << 20,
            max_recipients: 10,
            mode: Mode::Mx,
            starttls_available: true,
            plaintext_auth: false,
            max_errors: 20,
            max_auth_failures: 3,
            long_lines: LongLines::Accept,
            bare_lf: BareLf::Normalise,
            spf: mailbus_smtp::session::Enforcement::Off,
        }
    }

    fn server_tls() -> (ServerTls, String) {
        let generated = mailbus_tls::self_signed(&["mx.test".to_owned()]).unwrap();
        (ServerTls::from_pem(&generated.cert_pem, &generated.key_pem).unwrap(), generated.cert_pem)
    }

    /// What a test connection runs with, the defaults short enough for a test.
    struct Setup {
        command_timeout: Duration,
        data_timeout: Duration,
        min_data_rate: u32,
        memory_limit: usize,
    }

    impl Default for Setup {
        fn default() -> Self {
            Setup {
                command_timeout: Duration::from_secs(5),
                data_timeout: Duration::from_secs(5),
                min_data_rate: 500,
                memory_limit: MEMORY_LIMIT,
            }
        }
    }

    /// Starts a connection task on one end of an in-memory stream and returns the other end.
    fn connect(spool: Arc<FakeSpool>, tls: ServerTls) -> (BufReader<DuplexStream>, tokio::task::JoinHandle<()>) {
        start(spool, tls, Setup::default())
    }

    fn connect_with(
        spool: Arc<FakeSpool>,
        tls: ServerTls,
        command_timeout: Duration,
    ) -> (BufReader<DuplexStream>, tokio::task::JoinHandle<()>) {
        start(spool, tls, Setup { command_timeout, ..Setup::default() })
    }

    fn start(
        spool: Arc<FakeSpool>,
        tls: ServerTls,
        setup: Setup,
    ) -> (BufReader<DuplexStream>, tokio::task::JoinHandle<()>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let ctx = Arc::new(Context {
            directory: FakeDirectory,
            spool,
            tls,
            timeouts: Timeouts {
                command: setup.command_timeout,
                data: setup.data_timeout,
                min_data_rate: setup.min_data_rate,
                tls_handshake: mailbus_acceptor::wire::DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            },
            throttle: LoginThrottle::in_memory(ThrottlePolicy {
                delay: Duration::ZERO,
                max_failures_per_address: 1000,
                window: Duration::from_secs(60),
            }),
            limits: SubmissionLimits::in_memory(mailbus_jetstream::RatePolicy {
                window: Duration::from_secs(3600),
                messages_per_account: 0,
                recipients_per_account: 0,
                messages_per_address: 0,
                recipients_per_account_per_day: 0,
            }),
            bodies: BodyStorage { memory_limit: setup.memory_limit, dir: std::env::temp_dir().into() },
            metrics: Metrics::default(),
            verifier: None,
        });
        let listener =
            Arc::new(Listener { session: session_config(), implicit_tls: false, plaintext_auth: PlaintextAuth::Never });
        let client_info = ClientInfo { peer: "192.0.2.1:1000".parse().unwrap() };
        let task = tokio::spawn(handle(server, client_info, listener, ctx, CancellationToken::new()));
        (BufReader::new(client), task)
    }

    async fn reply<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all.trim_end().to_owned();
            }
        }
    }

    const TRANSACTION: &[u8] = b"EHLO c.test\r\nMAIL FROM:<a@elsewhere.net>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n";

    #[tokio::test]
    async fn the_250_comes_only_from_a_spool_that_took_the_message_and_a_failure_is_451() {
        for broken in [false, true] {
            let spool = Arc::new(FakeSpool { broken, ..Default::default() });
            let (mut client, task) = connect(spool.clone(), server_tls().0);
            assert!(reply(&mut client).await.starts_with("220 "));
            client.get_mut().write_all(TRANSACTION).await.unwrap();
            for expected in ["250-mx.test", "250 2.1.0", "250 2.1.5", "354 "] {
                let got = reply(&mut client).await;
                assert!(got.starts_with(expected), "{got} is not {expected}");
            }
            client.get_mut().write_all(b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n").await.unwrap();
            let end = reply(&mut client).await;
            if broken {
                assert!(end.starts_with("451 4.3.0"), "{end}");
                assert!(spool.queued.lock().unwrap().is_empty());
            } else {
                assert_eq!(end, "250 2.0.0 Ok: queued as q1");
                let queued = spool.queued.lock().unwrap();
                assert_eq!(queued.len(), 1);
                assert_eq!(queued[0].body, b"Subject: x\r\n\r\nbody\r\n");
                assert!(!queued[0].spilled);
            }
            assert!(reply(&mut client).await.starts_with("221 "), "QUIT pipelined after the body is answered");
            task.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_client_silent_past_the_command_timeout_gets_421_4_4_2_and_is_closed() {
        let (mut client, task) = connect_with(Arc::default(), server_tls().0, Duration::from_millis(200));
        assert!(reply(&mut client).await.starts_with("220 "));
        client.get_mut().write_all(b"EHLO c.test\r\n").await.unwrap();
        assert!(reply(&mut client).await.starts_with("250"));
        // RFC 5321 §4.5.3.2: the server may close an idle session, with a 421 first.
        assert_eq!(reply(&mut client).await, "421 4.4.2 Timeout exceeded, closing connection");
        let mut rest = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut client, &mut rest).await.unwrap();
        assert_eq!(rest, "", "nothing after the 421, and the connection is closed");
        task.await.unwrap();
    }

    #[tokio::test]
    async fn commands_pipelined_after_starttls_are_dropped_not_run_inside_tls() {
        let (tls, cert_pem) = server_tls();
        let spool = Arc::new(FakeSpool::default());
        let (mut client, task) = connect(spool, tls);
        reply(&mut client).await;
        client.get_mut().write_all(b"EHLO c.test\r\n").await.unwrap();
        assert!(reply(&mut client).await.contains("STARTTLS"));
        // CVE-2011-0411: the injected FOO must never be answered, in the clear or over TLS.
        client.get_mut().write_all(b"STARTTLS\r\nFOO\r\n").await.unwrap();
        assert!(reply(&mut client).await.starts_with("220 2.0.0"));
        let connector = tokio_rustls::TlsConnector::from(mailbus_tls::client_config_trusting(&cert_pem).unwrap());
        let name = rustls_pki_types::ServerName::try_from("mx.test").unwrap();
        let stream = connector.connect(name, client.into_inner()).await.unwrap();
        let mut secure = BufReader::new(stream);
        secure.get_mut().write_all(b"NOOP\r\n").await.unwrap();
        assert_eq!(reply(&mut secure).await, "250 2.0.0 Ok", "the first reply over TLS answers NOOP, not FOO");
        secure.get_mut().write_all(b"MAIL FROM:<a@elsewhere.net>\r\n").await.unwrap();
        assert!(reply(&mut secure).await.starts_with("503 5.5.1"), "TLS starts a new session: EHLO first");
        secure.get_mut().write_all(b"QUIT\r\n").await.unwrap();
        assert!(reply(&mut secure).await.starts_with("221"));
        task.await.unwrap();
    }

    /// Reads the greeting and opens a transaction for a local recipient, with DATA if `data`.
    async fn open_transaction(client: &mut BufReader<DuplexStream>, data: bool) {
        assert!(reply(client).await.starts_with("220 "));
        let (commands, replies) = if data { (TRANSACTION, 4) } else { (&TRANSACTION[..TRANSACTION.len() - 6], 3) };
        client.get_mut().write_all(commands).await.unwrap();
        for expected in ["250-mx.test", "250 2.1.0", "250 2.1.5", "354 "].into_iter().take(replies) {
            let got = reply(client).await;
            assert!(got.starts_with(expected), "{got} is not {expected}");
        }
    }

    /// A message of about `size` octets, with a Message-ID, and a dot at the start of every seventh line.
    fn message_of(size: usize) -> Vec<u8> {
        let mut text = b"Message-ID: <large@c.test>\r\nSubject: large\r\n\r\n".to_vec();
        for n in 0.. {
            if text.len() >= size {
                break;
            }
            let dot = if n % 7 == 0 { "." } else { "" };
            text.extend_from_slice(format!("{dot}line {n:07} {}\r\n", "x".repeat(60)).as_bytes());
        }
        text
    }

    /// `text` as DATA sends it: dot-stuffed (RFC 5321 §4.5.2), then the end mark.
    fn stuffed(text: &[u8]) -> Vec<u8> {
        let mut wire = Vec::with_capacity(text.len() + text.len() / 50);
        for line in text.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                wire.push(b'.');
            }
            wire.extend_from_slice(line);
        }
        wire.extend_from_slice(b".\r\n");
        wire
    }

    /// Checks the one message queued: `text` exactly, kept on disk, never more than `limit` of it in memory.
    fn assert_queued_from_disk(spool: &FakeSpool, text: &[u8], limit: usize) {
        let queued = spool.queued.lock().unwrap();
        assert_eq!(queued.len(), 1);
        assert!(
            queued[0].body == text,
            "the body changed on its way ({} octets of {})",
            queued[0].body.len(),
            text.len()
        );
        assert!(queued[0].spilled, "a body over the limit goes to disk");
        assert!(
            queued[0].memory_peak <= limit,
            "{} octets in memory, over the limit of {limit}",
            queued[0].memory_peak
        );
        assert_eq!(queued[0].message_id.as_deref(), Some("<large@c.test>"));
    }

    #[tokio::test]
    async fn a_large_data_body_goes_to_disk_and_arrives_whole() {
        let spool = Arc::new(FakeSpool::default());
        let limit = 64 * 1024;
        let (mut client, task) =
            start(spool.clone(), server_tls().0, Setup { memory_limit: limit, ..Setup::default() });
        open_transaction(&mut client, true).await;
        let text = message_of(5 << 20);
        client.get_mut().write_all(&stuffed(&text)).await.unwrap();
        client.get_mut().write_all(b"QUIT\r\n").await.unwrap();
        assert_eq!(reply(&mut client).await, "250 2.0.0 Ok: queued as q1");
        assert!(reply(&mut client).await.starts_with("221 "));
        task.await.unwrap();
        assert_queued_from_disk(&spool, &text, limit);
    }

    #[tokio::test]
    async fn a_large_bdat_body_goes_to_disk_and_arrives_whole() {
        let spool = Arc::new(FakeSpool::default());
        let limit = 64 * 1024;
        let (mut client, task) =
            start(spool.clone(), server_tls().0, Setup { memory_limit: limit, ..Setup::default() });
        open_transaction(&mut client, false).await;
        let text = message_of(5 << 20);
        // Odd-sized chunks, so that some CRLFs straddle two of them.
        let chunks: Vec<&[u8]> = text.chunks(1_000_003).collect();
        let mut wire = Vec::new();
        for (n, chunk) in chunks.iter().enumerate() {
            let last = if n + 1 == chunks.len() { " LAST" } else { "" };
            wire.extend_from_slice(format!("BDAT {}{last}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
        }
        wire.extend_from_slice(b"QUIT\r\n");
        client.get_mut().write_all(&wire).await.unwrap();
        for chunk in &chunks[..chunks.len() - 1] {
            assert_eq!(reply(&mut client).await, format!("250 2.0.0 {} octets received", chunk.len()));
        }
        assert_eq!(reply(&mut client).await, "250 2.0.0 Ok: queued as q1");
        assert!(reply(&mut client).await.starts_with("221 "));
        task.await.unwrap();
        assert_queued_from_disk(&spool, &text, limit);
    }

    /// Sends `bytes` in pieces of `piece` octets, `every` apart, until they are all sent or the server has
    /// closed the connection.
    fn dribble(
        mut write: tokio::io::WriteHalf<DuplexStream>,
        bytes: Vec<u8>,
        piece: usize,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            for piece in bytes.chunks(piece) {
                tokio::time::sleep(every).await;
                if write.write_all(piece).await.is_err() {
                    return;
                }
            }
        })
    }

    /// Reads the 421 for a client that was too slow, and then the end of the connection.
    async fn assert_timed_out(read: tokio::io::ReadHalf<DuplexStream>, task: tokio::task::JoinHandle<()>) {
        let mut read = BufReader::new(read);
        assert_eq!(reply(&mut read).await, "421 4.4.2 Timeout exceeded, closing connection");
        let mut rest = String::new();
        read.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "", "nothing after the 421, and the connection is closed");
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_line_sent_a_byte_at_a_time_gets_421_4_4_2_at_the_command_timeout() {
        let setup = Setup { command_timeout: Duration::from_secs(10), ..Setup::default() };
        let (mut client, task) = start(Arc::default(), server_tls().0, setup);
        assert!(reply(&mut client).await.starts_with("220 "));
        let (read, write) = tokio::io::split(client.into_inner());
        // Each byte comes well within the timeout; the line as a whole would take 26 s.
        let writer = dribble(write, b"EHLO c.test\r\n".to_vec(), 1, Duration::from_secs(2));
        assert_timed_out(read, task).await;
        writer.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_data_body_below_the_minimum_rate_gets_421_4_4_2() {
        let spool = Arc::new(FakeSpool::default());
        let setup = Setup { data_timeout: Duration::from_secs(10), min_data_rate: 500, ..Setup::default() };
        let (mut client, task) = start(spool.clone(), server_tls().0, setup);
        open_transaction(&mut client, true).await;
        let (read, write) = tokio::io::split(client.into_inner());
        // 400 octets every second: each read comes well within the data timeout, but the body falls behind
        // the 500 a second it must keep up, and would take over 8 minutes.
        let writer = dribble(write, stuffed(&message_of(200_000)), 400, Duration::from_secs(1));
        assert_timed_out(read, task).await;
        writer.await.unwrap();
        assert!(spool.queued.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_bdat_chunk_below_the_minimum_rate_gets_421_4_4_2() {
        let spool = Arc::new(FakeSpool::default());
        let setup = Setup { data_timeout: Duration::from_secs(10), min_data_rate: 500, ..Setup::default() };
        let (mut client, task) = start(spool.clone(), server_tls().0, setup);
        open_transaction(&mut client, false).await;
        let (read, write) = tokio::io::split(client.into_inner());
        let text = message_of(20_000);
        let mut wire = format!("BDAT {} LAST\r\n", text.len()).into_bytes();
        wire.extend_from_slice(&text);
        let writer = dribble(write, wire, 1, Duration::from_secs(2));
        assert_timed_out(read, task).await;
        writer.await.unwrap();
        assert!(spool.queued.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_keeping_up_the_minimum_rate_finishes_a_body_that_takes_many_data_timeouts() {
        let spool = Arc::new(FakeSpool::default());
        let setup = Setup { data_timeout: Duration::from_secs(10), min_data_rate: 500, ..Setup::default() };
        let (mut client, task) = start(spool.clone(), server_tls().0, setup);
        open_transaction(&mut client, true).await;
        let (read, write) = tokio::io::split(client.into_inner());
        // 1000 octets a second, twice the minimum: the body takes five minutes, thirty data timeouts.
        let text = message_of(300_000);
        let mut wire = stuffed(&text);
        wire.extend_from_slice(b"QUIT\r\n");
        let writer = dribble(write, wire, 1000, Duration::from_secs(1));
        let mut read = BufReader::new(read);
        assert_eq!(reply(&mut read).await, "250 2.0.0 Ok: queued as q1");
        assert!(reply(&mut read).await.starts_with("221 "));
        writer.await.unwrap();
        task.await.unwrap();
        assert!(spool.queued.lock().unwrap()[0].body == text);
    }
}
