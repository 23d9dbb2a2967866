//! One POP3 connection: read, decode, let the session decide, carry out its action, write. This file
//! moves bytes, upgrades to TLS when told to, checks credentials, holds the maildrop lock for the life of
//! the session, and applies the deletion policy at QUIT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mailbus_acceptor::wire::{self, ReadError, SessionClock, StartTlsError, Wire};
use mailbus_jetstream::{Lease, Leases, LoginThrottle, Verdict};
use mailbus_pop3::command::Secret;
use mailbus_pop3::command::{Command, CommandDecoder, CommandError};
use mailbus_pop3::response::Response;
use mailbus_pop3::session::{Action, AuthOutcome, Expect, Expire, Session, SessionConfig};
use mailbus_pop3::stuffing::{DotStuffer, top};
use mailbus_sasl::PlaintextAuth;
use mailbus_tls::{MaybeTls, ServerTls};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backend::{Account, Backend};
use crate::metrics::SessionMetrics;

/// What DELE does to a message once the session QUITs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletePolicy {
    /// Remove it (RFC 1939's download-and-delete).
    Expunge,
    /// Move it to the account's Trash, where IMAP clients can still find it.
    MoveToTrash,
    /// Leave it in the maildrop, for sites that keep a server copy.
    Keep,
}

impl std::str::FromStr for DeletePolicy {
    type Err = String;

    /// `expunge`, `trash` or `keep`, as `MAILBUS_POP3_DELETE` spells them.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "expunge" => Ok(DeletePolicy::Expunge),
            "trash" => Ok(DeletePolicy::MoveToTrash),
            "keep" => Ok(DeletePolicy::Keep),
            _ => Err("must be expunge, trash or keep".to_owned()),
        }
    }
}

/// The mailbox DELE moves to under [`DeletePolicy::MoveToTrash`].
const TRASH: &str = "Trash";

pub struct Context<B> {
    pub backend: B,
    pub locks: Leases,
    pub tls: ServerTls,
    /// STARTTLS or STLS, and implicit TLS where the listener has it; never past the login deadline.
    pub tls_handshake_timeout: Duration,
    pub hostname: String,
    pub plaintext_auth: PlaintextAuth,
    pub delete_policy: DeletePolicy,
    pub max_auth_failures: usize,
    /// RFC 1939 §3: the autologout timer, at least 10 minutes. A command line must also be complete within
    /// it, counted from when the server started waiting for it, so a client dribbling bytes cannot hold a
    /// session open.
    pub idle_timeout: Duration,
    /// From connecting to a successful login, STLS included.
    pub login_timeout: Duration,
    pub throttle: LoginThrottle,
    pub metrics: SessionMetrics,
}

#[derive(Debug)]
enum End {
    Closed,
    Read(ReadError),
    Io(std::io::Error),
    TlsHandshake(std::io::Error),
}

/// A line from the client, decoded as what the session expects.
enum Input {
    Command(Result<Command, CommandError>),
    SaslResponse(Result<Vec<u8>, CommandError>),
}

pub async fn handle<IO, B>(
    io: IO,
    peer: SocketAddr,
    implicit_tls: bool,
    ctx: Arc<Context<B>>,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    let span = tracing::info_span!("pop3.session", network.peer.address = %peer.ip(), account = tracing::field::Empty);
    let _active = ctx.metrics.open();
    let session_span = span.clone();
    async {
        let started = tokio::time::Instant::now();
        let handshake = ctx.tls_handshake_timeout.min(ctx.login_timeout);
        let Some((stream, _)) = wire::open(io, implicit_tls.then_some(&ctx.tls), handshake, peer).await else {
            return;
        };
        let config = SessionConfig {
            hostname: ctx.hostname.clone(),
            stls_available: true,
            plaintext_allowed: ctx.plaintext_auth.allows(peer.ip()),
            max_auth_failures: ctx.max_auth_failures,
            expire: Expire::Never,
        };
        let session = Session::new(config, implicit_tls);
        let login_deadline = started + ctx.login_timeout;
        let mut conn = Connection {
            peer,
            wire: Wire::new(stream),
            decoder: CommandDecoder::default(),
            ctx,
            login: None,
            login_deadline,
            session_span,
        };
        match conn.run(session, &shutdown).await {
            End::Io(error) | End::Read(ReadError::Io(error)) => tracing::info!(%peer, %error, "pop3 connection failed"),
            End::TlsHandshake(error) => tracing::info!(%peer, %error, "STLS handshake failed"),
            other => tracing::debug!(%peer, end = ?other, "pop3 connection closed"),
        }
        // Dropping the login releases the maildrop lock, whatever way the session ended.
    }
    .instrument(span)
    .await
}

/// A logged-in account and its maildrop lock.
struct Login {
    account: Account,
    lock: Lease,
}

struct Connection<IO, B> {
    peer: SocketAddr,
    wire: Wire<MaybeTls<IO>>,
    decoder: CommandDecoder,
    ctx: Arc<Context<B>>,
    login: Option<Login>,
    /// Until a login succeeds, the session ends here (Dovecot and Stalwart close silent pre-login
    /// connections too): an address cannot hold connections open without credentials.
    login_deadline: tokio::time::Instant,
    session_span: tracing::Span,
}

impl<IO, B> Connection<IO, B>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    async fn run(&mut self, mut session: Session, shutdown: &CancellationToken) -> End {
        self.wire.output.extend(session.greeting().to_bytes());
        let mut clock = SessionClock::new(self.login_deadline, self.ctx.idle_timeout);
        loop {
            while let Some(input) = self.next_input(session.expects()) {
                let name = match &input {
                    Input::Command(Ok(command)) => command.keyword(),
                    Input::Command(Err(_)) => "invalid",
                    Input::SaslResponse(_) => "AUTH",
                };
                let span = tracing::info_span!(
                    "pop3.command",
                    otel.name = %format!("POP3 {name}"),
                    command = name,
                    account = self.login.as_ref().map(|login| login.account.address.as_str()),
                    mailbox = tracing::field::Empty,
                );
                let started = std::time::Instant::now();
                let action = match input {
                    Input::Command(command) => session.handle(command),
                    Input::SaslResponse(line) => session.handle_sasl_response(line),
                };
                let end = self.act(&mut session, action).instrument(span.clone()).await;
                if let Some(login) = &self.login {
                    // POP3's maildrop is the INBOX.
                    span.record("account", login.account.address.as_str());
                    span.record("mailbox", "INBOX");
                }
                self.ctx.metrics.observe(name, started);
                if let Some(end) = end {
                    return end;
                }
                if let Err(error) = self.wire.flush_if_large().await {
                    return End::Io(error);
                }
            }
            if let Err(error) = self.wire.flush().await {
                return End::Io(error);
            }
            // A new command gets the whole idle timeout; the rest of a partial one only what is left of it.
            let partial = !self.wire.input.is_empty();
            let (timeout, logging_in) = clock.next_read(tokio::time::Instant::now(), partial, self.login.is_some());
            // RFC 1939 §3: an autologout does not enter UPDATE, so nothing is deleted.
            let farewell = |error: &ReadError| match error {
                ReadError::Timeout if logging_in => Some(Response::err("login timed out").to_bytes()),
                ReadError::Timeout => Some(Response::err("autologout: idle too long").to_bytes()),
                ReadError::Shutdown => Some(Response::err("[SYS/TEMP] server shutting down").to_bytes()),
                _ => None,
            };
            if let Err(error) = self.wire.read_or_farewell(timeout, shutdown, farewell).await {
                return End::Read(error);
            }
        }
    }

    fn next_input(&mut self, expect: Expect) -> Option<Input> {
        let decoder = &mut self.decoder;
        match expect {
            Expect::Command => self.wire.next_item(|input| decoder.decode(input)).map(Input::Command),
            Expect::SaslResponse => {
                self.wire.next_item(|input| decoder.decode_sasl_line(input)).map(Input::SaslResponse)
            }
        }
    }

    async fn act(&mut self, session: &mut Session, action: Action) -> Option<End> {
        match action {
            Action::Reply(response) => self.wire.output.extend(response.to_bytes()),
            Action::Authenticate { user, password } => {
                let outcome = self.log_in(&user, password).await;
                let next = session.authenticated(outcome);
                return Box::pin(self.act(session, next)).await;
            }
            Action::StartTls(go_ahead) => return self.start_tls(session, go_ahead).await,
            Action::Retrieve { uid, size, top_lines } => {
                if let Err(end) = self.retrieve(uid, size, top_lines).await {
                    return Some(end);
                }
            }
            Action::Update { deleted_uids } => {
                let ok = self.apply_deletions(deleted_uids).await;
                self.release_lock().await;
                self.wire.last_words(&session.updated(ok).to_bytes()).await;
                return Some(End::Closed);
            }
            Action::Close(response) => {
                self.release_lock().await;
                self.wire.last_words(&response.to_bytes()).await;
                return Some(End::Closed);
            }
        }
        None
    }

    /// The handshake may take the shared TLS limit, and never runs past the login deadline.
    fn handshake_timeout(&self) -> Duration {
        let login_left = self.login_deadline.saturating_duration_since(tokio::time::Instant::now());
        self.ctx.tls_handshake_timeout.min(login_left)
    }

    /// RFC 2595 STLS; the session starts over after it.
    async fn start_tls(&mut self, session: &mut Session, go_ahead: Response) -> Option<End> {
        let upgraded = self.wire.start_tls(&go_ahead.to_bytes(), &self.ctx.tls, self.handshake_timeout()).await;
        self.decoder = CommandDecoder::default();
        match upgraded {
            Ok(_) => {
                session.tls_started();
                None
            }
            Err(StartTlsError::Write(error)) => Some(End::Io(error)),
            Err(StartTlsError::Handshake(error)) => Some(End::TlsHandshake(error)),
        }
    }

    /// Checks the credentials, takes the maildrop lock (RFC 1939 §8) and lists the maildrop.
    async fn log_in(&mut self, user: &str, password: Secret) -> AuthOutcome {
        let client = self.peer.ip();
        if self.ctx.throttle.verdict(client).await == Verdict::Refuse {
            self.ctx.metrics.throttled();
            return AuthOutcome::Throttled;
        }
        let account = match self.ctx.backend.authenticate(user, password.expose()).await {
            Ok(Some(account)) => account,
            Ok(None) => {
                self.ctx.metrics.auth_failed();
                tokio::time::sleep(self.ctx.throttle.failed("pop3", client, user).await).await;
                return AuthOutcome::Invalid;
            }
            Err(error) => {
                tracing::warn!(%error, "authentication unavailable");
                return AuthOutcome::Unavailable;
            }
        };
        self.ctx.throttle.succeeded(user).await;
        let holder = format!("{}@{}", std::process::id(), self.ctx.hostname);
        let lock = match self.ctx.locks.acquire(&account.id.to_string(), &holder).await {
            Ok(Some(lock)) => lock,
            Ok(None) => return AuthOutcome::InUse,
            Err(error) => {
                tracing::warn!(%error, "maildrop lock unavailable");
                return AuthOutcome::Unavailable;
            }
        };
        match self.ctx.backend.maildrop(&account).await {
            Ok(maildrop) => {
                self.session_span.record("account", account.address.as_str());
                self.login = Some(Login { account, lock });
                AuthOutcome::Maildrop(maildrop)
            }
            Err(error) => {
                tracing::warn!(%error, "maildrop unavailable");
                AuthOutcome::Unavailable
            }
        }
    }

    /// Lets go of the maildrop lock before the last reply, so that a client logging in again at once finds
    /// the maildrop free.
    async fn release_lock(&mut self) {
        if let Some(login) = self.login.take() {
            login.lock.release().await;
        }
    }

    /// RFC 1939 §6, the UPDATE state, under the site's deletion policy.
    async fn apply_deletions(&self, uids: Vec<u32>) -> bool {
        if uids.is_empty() {
            return true;
        }
        let Some(login) = &self.login else { return false };
        // Without the lock another session may hold the maildrop now: change nothing.
        if login.lock.is_lost() {
            tracing::warn!(account = %login.account.address, "maildrop lock lost; deletions not applied");
            return false;
        }
        let applied = match self.ctx.delete_policy {
            DeletePolicy::Expunge => self.ctx.backend.expunge(&login.account, uids).await,
            DeletePolicy::MoveToTrash => self.ctx.backend.move_to(&login.account, uids, TRASH).await,
            DeletePolicy::Keep => Ok(()),
        };
        applied.map_err(|error| tracing::warn!(%error, "deletions at QUIT failed")).is_ok()
    }

    /// RETR and TOP. Once "+OK" is out, a failure can only be reported by closing the connection.
    async fn retrieve(&mut self, uid: u32, size: u64, top_lines: Option<u32>) -> Result<(), End> {
        let Some(login) = &self.login else {
            self.wire.output.extend(Response::err("not logged in").to_bytes());
            return Ok(());
        };
        let mut chunks = match self.ctx.backend.fetch(&login.account, uid).await {
            Ok(chunks) => chunks,
            Err(error) => {
                tracing::warn!(%error, uid, "message unavailable");
                self.wire.output.extend(Response::err("[SYS/TEMP] message unavailable, try again later").to_bytes());
                return Ok(());
            }
        };
        let mut stuffer = DotStuffer::new();
        match top_lines {
            None => {
                self.wire.output.extend(Response::ok(format!("{size} octets")).to_bytes());
                while let Some(chunk) = chunks.next().await {
                    let chunk = chunk.map_err(|e| End::Io(std::io::Error::other(e)))?;
                    stuffer.push(&chunk, &mut self.wire.output);
                    // Keep memory flat for big messages: write as we go.
                    self.wire.flush_if_large().await.map_err(End::Io)?;
                }
            }
            Some(lines) => {
                let mut message = Vec::with_capacity(size.min(1 << 20) as usize);
                while let Some(chunk) = chunks.next().await {
                    message.extend(chunk.map_err(|e| End::Io(std::io::Error::other(e)))?);
                }
                self.wire.output.extend(Response::ok("top of message follows").to_bytes());
                stuffer.push(top(&message, lines), &mut self.wire.output);
            }
        }
        stuffer.finish(&mut self.wire.output);
        Ok(())
    }
}
