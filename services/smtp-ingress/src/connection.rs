//! One SMTP connection: read, decode, let the session decide, carry out its action, write — under the
//! configured timeouts, until QUIT, EOF, a timeout or shutdown. The session decides everything a reply
//! says; this file only moves bytes, asks the ports, and upgrades to TLS when told to.

use std::sync::Arc;
use std::time::Duration;

use mailbus_acceptor::wire::{ReadError, StartTlsError, Wire};
use mailbus_smtp::command::{Command, CommandDecoder, CommandError};
use mailbus_smtp::data::DataProgress;
use mailbus_smtp::reply::{Enhanced, Reply};
use mailbus_smtp::session::{
    Action, Credentials, DataOutcome, Expect, RecipientCheck, SenderCheck, Session, SessionConfig, TlsInfo,
};
use mailbus_tls::{MaybeTls, ServerTls, TlsFacts};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::ports::{ClientInfo, Directory, Spool, SpoolError};
use crate::spool::message_id;

/// RFC 5321 §4.5.3.2 timeouts, and the delay that slows down password guessing.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// §4.5.3.2.7: waiting for the next command, at least 5 minutes.
    pub command: Duration,
    /// §4.5.3.2.5: waiting for each block of DATA, at least 3 minutes.
    pub data: Duration,
    /// Before each failed AUTH reply, this times the failures so far.
    pub auth_failure_delay: Duration,
}

pub struct Context<D, S> {
    pub directory: D,
    pub spool: S,
    pub tls: ServerTls,
    pub timeouts: Timeouts,
    pub metrics: Metrics,
}

/// What a listener makes of its connections.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Port 25 or submission, and the rest of the session's policy.
    pub session: SessionConfig,
    /// Port 465: the handshake comes before the greeting (RFC 8314).
    pub implicit_tls: bool,
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
    let mut stream = MaybeTls::Plain(io);
    let tls = if listener.implicit_tls {
        match tokio::time::timeout(ctx.timeouts.command, stream.upgrade(&ctx.tls)).await {
            Ok(Ok(facts)) => Some(tls_info(facts)),
            Ok(Err(error)) => return tracing::debug!(peer = %client.peer, %error, "implicit TLS handshake failed"),
            Err(_) => return tracing::debug!(peer = %client.peer, "implicit TLS handshake timed out"),
        }
    } else {
        None
    };
    let session = Session::new(listener.session.clone(), tls);
    let mut conn = Connection {
        wire: Wire::new(stream),
        decoder: CommandDecoder::default(),
        client,
        ctx,
        auth_failures: 0,
        verb: "CONNECT",
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
    auth_failures: u32,
    /// The verb of the command being answered, for the rejection counts.
    verb: &'static str,
}

impl<IO, D, S> Connection<IO, D, S>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    D: Directory,
    S: Spool,
{
    async fn run(&mut self, mut session: Session, shutdown: &CancellationToken) -> End {
        self.wire.output.extend(session.greeting().to_bytes());
        loop {
            // Answer every complete command already received (PIPELINING, RFC 2920), then flush once.
            while let Some(input) = self.next_input(session.expects()) {
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
            }
            if let Err(error) = self.wire.flush().await {
                return End::Io(error);
            }
            let metrics = &self.ctx.metrics;
            // Counted as rejections too, under what ended the session rather than a command.
            let farewell = |error: &ReadError| match error {
                ReadError::Timeout => {
                    metrics.replied("TIMEOUT", 421);
                    Some(Reply::new(421, Enhanced(4, 4, 2), "Timeout exceeded, closing connection").to_bytes())
                }
                ReadError::Shutdown => {
                    metrics.replied("SHUTDOWN", 421);
                    Some(Reply::new(421, Enhanced(4, 3, 2), "Service shutting down").to_bytes())
                }
                _ => None,
            };
            if let Err(error) = self.wire.read_or_farewell(self.ctx.timeouts.command, shutdown, farewell).await {
                return End::Read(error);
            }
        }
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

    async fn check_recipient(&self, session: &mut Session, check: RecipientCheck) -> Reply {
        let verdict = self.ctx.directory.verdict(&check.recipient.address).await;
        session.recipient_checked(check, verdict)
    }

    async fn check_sender(&self, session: &mut Session, check: SenderCheck) -> Reply {
        let allowed = self.ctx.directory.sender_allowed(&check.user, &check.address).await.ok();
        session.sender_checked(check, allowed)
    }

    /// RFC 3207 STARTTLS; the session starts over after it.
    async fn start_tls(&mut self, session: &mut Session, go_ahead: Reply) -> Option<End> {
        let upgraded = self.wire.start_tls(&go_ahead.to_bytes(), &self.ctx.tls, self.ctx.timeouts.command).await;
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

    /// Checks credentials; a failure is answered only after a delay that grows with each failure, which
    /// makes guessing slow without costing honest users anything.
    async fn authenticate(&mut self, session: &mut Session, credentials: Credentials) -> Action {
        let checked = self.ctx.directory.authenticate(&credentials.username, credentials.password.expose()).await;
        match checked {
            Ok(Some(user)) => {
                tracing::info!(peer = %self.client.peer, user = %user.address, "authenticated");
                session.authenticated(Some(user))
            }
            Ok(None) => {
                self.auth_failures += 1;
                self.ctx.metrics.auth_failures.inc();
                tracing::info!(peer = %self.client.peer, username = %credentials.username, "authentication failed");
                tokio::time::sleep(self.ctx.timeouts.auth_failure_delay * self.auth_failures).await;
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
        let progress = loop {
            let (consumed, progress) = reader.feed(&self.wire.input);
            self.wire.consume(consumed);
            if progress != DataProgress::Incomplete {
                break progress;
            }
            // Shutdown waits for a body in progress; the accept loop's grace period bounds that wait.
            self.wire.read_more(self.ctx.timeouts.data, &CancellationToken::new()).await.map_err(End::Read)?;
        };
        let outcome = session.data_received(progress);
        Ok(self.settle(session, outcome).await)
    }

    /// Reads one BDAT chunk: exactly `size` octets, of which at most the size limit (plus one, to show the
    /// excess) are kept.
    async fn receive_chunk(&mut self, session: &mut Session, size: usize, last: bool) -> Result<Reply, End> {
        let keep_limit = session.max_message_size().saturating_add(1);
        let mut chunk = Vec::with_capacity(size.min(keep_limit).min(1 << 20));
        let mut left = size;
        loop {
            let take = left.min(self.wire.input.len());
            let keep = take.min(keep_limit.saturating_sub(chunk.len()));
            chunk.extend_from_slice(&self.wire.input[..keep]);
            self.wire.consume(take);
            left -= take;
            if left == 0 {
                break;
            }
            self.wire.read_more(self.ctx.timeouts.data, &CancellationToken::new()).await.map_err(End::Read)?;
        }
        tracing::debug!(size, last, "BDAT chunk read");
        let outcome = session.chunk_received(chunk);
        Ok(self.settle(session, outcome).await)
    }

    /// Makes a finished message durable, or passes the session's refusal on.
    async fn settle(&mut self, session: &mut Session, outcome: DataOutcome) -> Reply {
        let reply = match outcome {
            DataOutcome::Reply(reply) => reply,
            DataOutcome::Enqueue(message) => {
                let size = message.body.len();
                let span = tracing::Span::current();
                span.record("mail.recipients", message.recipients.len());
                if let Some(message_id) = message_id(&message.body) {
                    span.record("mail.message_id", message_id);
                }
                match self.ctx.spool.enqueue(message, &self.client, session.hostname()).await {
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
        };
        self.ctx.metrics.message(reply.code);
        tracing::Span::current().record("smtp.reply_code", reply.code);
        reply
    }

    async fn reply(&mut self, reply: Reply) {
        self.wire.last_words(&reply.to_bytes()).await;
    }
}

#[cfg(test)]
mod tests {
    //! The connection task against in-memory fakes of the directory and the spool, over an in-memory
    //! stream: what only the I/O layer can get wrong.

    use std::sync::Mutex;

    use mailbus_address::EmailAddress;
    use mailbus_smtp::session::{AuthenticatedUser, BareLf, LongLines, Message, Mode, Verdict};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

    use super::*;
    use crate::ports::DirectoryUnavailable;

    #[test]
    fn the_message_id_comes_from_the_header_section_only() {
        let body = b"Subject: x\r\nMESSAGE-ID:  <a@b.example> \r\n\r\nMessage-ID: <body@x>\r\n";
        assert_eq!(message_id(body), Some("<a@b.example>"));
        assert_eq!(message_id(b"Subject: x\r\n\r\nMessage-ID: <body@x>\r\n"), None);
        assert_eq!(message_id(b"Message-ID:\r\n\r\n"), None);
        let long = format!("Message-ID: <{}\u{e9}@x>\r\n\r\n", "a".repeat(254));
        assert_eq!(message_id(long.as_bytes()).map(str::len), Some(255), "cut at a character boundary");
    }

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
        queued: Mutex<Vec<Message>>,
    }

    /// Shared, so the test can look at what the connection queued.
    impl Spool for Arc<FakeSpool> {
        async fn enqueue(&self, message: Message, _: &ClientInfo, _: &str) -> Result<String, SpoolError> {
            if self.broken {
                return Err(SpoolError::Unavailable("nats down".into()));
            }
            self.queued.lock().unwrap().push(message);
            Ok("q1".into())
        }
    }

    fn session_config() -> SessionConfig {
        SessionConfig {
            hostname: "mx.test".into(),
            max_message_size: 10_000,
            max_recipients: 10,
            mode: Mode::Mx,
            starttls_available: true,
            plaintext_auth: false,
            max_errors: 20,
            max_auth_failures: 3,
            long_lines: LongLines::Accept,
            bare_lf: BareLf::Normalise,
        }
    }

    fn server_tls() -> (ServerTls, String) {
        let generated = mailbus_tls::self_signed(&["mx.test".to_owned()]).unwrap();
        (ServerTls::from_pem(&generated.cert_pem, &generated.key_pem).unwrap(), generated.cert_pem)
    }

    /// Starts a connection task on one end of an in-memory stream and returns the other end.
    fn connect(spool: Arc<FakeSpool>, tls: ServerTls) -> (BufReader<DuplexStream>, tokio::task::JoinHandle<()>) {
        connect_with(spool, tls, Duration::from_secs(5))
    }

    fn connect_with(
        spool: Arc<FakeSpool>,
        tls: ServerTls,
        command_timeout: Duration,
    ) -> (BufReader<DuplexStream>, tokio::task::JoinHandle<()>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let ctx = Arc::new(Context {
            directory: FakeDirectory,
            spool,
            tls,
            timeouts: Timeouts {
                command: command_timeout,
                data: Duration::from_secs(5),
                auth_failure_delay: Duration::ZERO,
            },
            metrics: Metrics::default(),
        });
        let listener = Arc::new(Listener { session: session_config(), implicit_tls: false });
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
                assert_eq!(spool.queued.lock().unwrap().len(), 1);
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
}
