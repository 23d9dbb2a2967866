//! One IMAP connection around `mailbus_imap::Session`, which holds the protocol: this module moves the
//! bytes (TCP, implicit TLS, STARTTLS's handshake, COMPRESS=DEFLATE in the wire), keeps the deadlines (the login timeout, the autologout
//! timer), feeds the session the account's mailbox events from NATS, and gives it the mailbox role over
//! gRPC (`grpc.rs`, the [`Store`](mailbus_imap::Store) adapter), with the failed-login throttle, the
//! per-account connection slots and the metrics around the login.

mod feed;
mod grpc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailbus_acceptor::wire::{self, ReadError, StartTlsError, Wire};
use mailbus_address::AccountId;
use mailbus_grpc::TracedChannel;
use mailbus_imap::{Config, Session, Step};
use mailbus_jetstream::Names;
use mailbus_proto::v1::{self as pb, directory_client::DirectoryClient, mailbox_client::MailboxClient};
use mailbus_sasl::PlaintextAuth;
use mailbus_tls::{MaybeTls, ServerTls};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use grpc::{GrpcStore, Lease};

/// How long a login waits for NATS to confirm the session's event subscription (normally a round trip).
const EVENTS_CONFIRMED: Duration = Duration::from_secs(5);

/// Largest gRPC reply a session accepts (SELECT of a very large mailbox lists every UID).
const MAX_REPLY: usize = 256 * 1024 * 1024;

pub struct ImapContext {
    pub mailbox: MailboxClient<TracedChannel>,
    pub directory: DirectoryClient<TracedChannel>,
    pub nats: async_nats::Client,
    pub names: Names,
    pub tls: ServerTls,
    /// Implicit TLS and STARTTLS alike, never past the login deadline.
    pub tls_handshake_timeout: Duration,
    pub hostname: String,
    pub plaintext_auth: PlaintextAuth,
    pub max_auth_failures: usize,
    /// The autologout timer: RFC 9051 §5.4 asks for at least 30 minutes, IDLE included (RFC 2177).
    pub idle_timeout: Duration,
    /// From connecting to a successful login, TLS handshakes included.
    pub login_timeout: Duration,
    pub throttle: mailbus_jetstream::LoginThrottle,
    pub max_message_size: u64,
    pub commands: Family<Vec<(String, String)>, Counter>,
    pub metrics: crate::metrics::SessionMetrics,
    /// Sessions one account may have open from one address in this process (Dovecot's
    /// `mail_max_userip_connections`).
    pub max_user_connections: usize,
    pub user_connections: std::sync::Mutex<std::collections::HashMap<(AccountId, std::net::IpAddr), usize>>,
    /// Each account's mailbox events, one NATS subscription per account shared by its sessions.
    pub feeds: feed::Feeds,
}

impl ImapContext {
    pub fn new_clients(channel: TracedChannel) -> (MailboxClient<TracedChannel>, DirectoryClient<TracedChannel>) {
        (MailboxClient::new(channel.clone()).max_decoding_message_size(MAX_REPLY), DirectoryClient::new(channel))
    }
}

/// The socket's buffers, lent to the session.
struct SessionWire<IO>(Wire<MaybeTls<IO>>);

impl<IO> mailbus_imap::Wire for SessionWire<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn input(&mut self) -> &mut Vec<u8> {
        &mut self.0.input
    }

    fn output(&mut self) -> &mut Vec<u8> {
        &mut self.0.output
    }

    async fn flush_if_large(&mut self) -> std::io::Result<()> {
        self.0.flush_if_large().await
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().await
    }

    async fn last_words(&mut self, bytes: &[u8]) {
        self.0.last_words(bytes).await
    }
}

#[derive(Debug)]
enum End {
    Closed,
    Read(ReadError),
    Io(std::io::Error),
}

enum Woken {
    Input,
    /// A mailbox event's payload.
    Event(bytes::Bytes),
    /// This session fell behind its account's feed: events were lost to it.
    EventsLagged,
    EventsEnded,
    Resubscribe,
}

struct Connection<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    session: Session<GrpcStore, SessionWire<IO>>,
    ctx: Arc<ImapContext>,
    /// When the session ends if nothing more happens: before login, the login deadline, which input does
    /// not move; after, the idle timeout from the last input that completed a line (a client dribbling one
    /// line forever is logged out as an idle one is).
    deadline: tokio::time::Instant,
    /// The account the session was logged in as when last looked at.
    account: Option<AccountId>,
    /// `imap.session`, which names the account once logged in.
    session_span: tracing::Span,
}

pub async fn handle<IO>(
    io: IO,
    peer: SocketAddr,
    implicit_tls: bool,
    ctx: Arc<ImapContext>,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let span = tracing::info_span!("imap.session", network.peer.address = %peer.ip(), account = tracing::field::Empty);
    let _active = ctx.metrics.open();
    let session_span = span.clone();
    async {
        let login_deadline = tokio::time::Instant::now() + ctx.login_timeout;
        let handshake = ctx.tls_handshake_timeout.min(ctx.login_timeout);
        let Some((stream, _)) = wire::open(io, implicit_tls.then_some(&ctx.tls), handshake, peer).await else {
            return;
        };
        let config = Config {
            max_message_size: ctx.max_message_size,
            max_auth_failures: ctx.max_auth_failures,
            tls: implicit_tls,
            plaintext_allowed: ctx.plaintext_auth.allows(peer.ip()),
        };
        let store = GrpcStore::new(ctx.clone(), peer.ip());
        let mut conn = Connection {
            session: Session::new(store, SessionWire(Wire::new(stream)), config),
            ctx,
            deadline: login_deadline,
            account: None,
            session_span,
        };
        match conn.run(&shutdown).await {
            End::Io(error) | End::Read(ReadError::Io(error)) => tracing::info!(%peer, %error, "imap connection failed"),
            other => tracing::debug!(%peer, end = ?other, "imap connection closed"),
        }
    }
    .instrument(span)
    .await
}

impl<IO> Connection<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn run(&mut self, shutdown: &CancellationToken) -> End {
        let mut step = self.session.advance().await;
        loop {
            self.follow_login();
            match step {
                Step::NeedInput => {}
                Step::Close => return End::Closed,
                Step::Failed(error) => return End::Io(error),
                Step::StartTls => {
                    if !self.start_tls().await {
                        return End::Closed;
                    }
                    step = self.session.advance().await;
                    continue;
                }
                Step::Compress => {
                    // RFC 4978 §3: the OK went out plain; the client waits for it before compressing, so
                    // anything received meanwhile is dropped unread, as after STARTTLS.
                    let wire = &mut self.session.wire().0;
                    wire.input.clear();
                    wire.start_deflate();
                    self.session.compression_started();
                    step = self.session.advance().await;
                    continue;
                }
            }
            step = match self.wait(shutdown).await {
                Ok(Woken::Input) => {
                    if self.account.is_some() && self.session.wire().0.input.contains(&b'\n') {
                        self.deadline = tokio::time::Instant::now() + self.ctx.idle_timeout;
                    }
                    self.session.advance().await
                }
                Ok(Woken::Event(payload)) => {
                    let Ok(event) = <pb::MailboxEvent as prost::Message>::decode(payload) else { continue };
                    self.session.mailbox_event(&event).await
                }
                Ok(Woken::EventsLagged) => {
                    // As after a lost subscription: the session looks at the store on its next occasion.
                    self.session.events_missed();
                    Step::NeedInput
                }
                Ok(Woken::EventsEnded) => {
                    if let (_, Some(lease)) = self.session.wire_and_lease() {
                        lease.events = None;
                    }
                    Step::NeedInput
                }
                Ok(Woken::Resubscribe) => {
                    self.resubscribe().await;
                    Step::NeedInput
                }
                Err(error) => {
                    let farewell = match error {
                        ReadError::Timeout if self.account.is_none() => Some("login timed out"),
                        ReadError::Timeout => Some("autologout: idle for too long"),
                        ReadError::Shutdown => Some("server shutting down"),
                        _ => None,
                    };
                    if let ReadError::Corrupt = error {
                        // As Dovecot: the BYE goes out through the compressor, the only stream the client
                        // is reading now.
                        let bye = mailbus_imap::session::bye(None, "compressed input is not valid DEFLATE");
                        self.session.wire().0.last_words(&bye).await;
                    }
                    if let Some(why) = farewell {
                        let bye = mailbus_imap::session::bye(Some("UNAVAILABLE"), why);
                        self.session.wire().0.last_words(&bye).await;
                    }
                    return End::Read(error);
                }
            };
        }
    }

    /// A login (or UNAUTHENTICATE) the session just answered: the autologout timer starts at the login,
    /// and the span names the account.
    fn follow_login(&mut self) {
        let account = self.session.account().map(|(id, _)| id);
        if account == self.account {
            return;
        }
        if let Some((_, address)) = self.session.account() {
            self.deadline = tokio::time::Instant::now() + self.ctx.idle_timeout;
            self.session_span.record("account", address);
        }
        self.account = account;
    }

    /// RFC 9051 §6.2.1: the go-ahead is sent; anything the client sent after STARTTLS is dropped unread;
    /// then the handshake, within the TLS limit and what is left of the login time. `false` when the
    /// connection is over.
    async fn start_tls(&mut self) -> bool {
        let wire = &mut self.session.wire().0;
        let go_ahead = std::mem::take(&mut wire.output);
        let login_left = self.deadline.saturating_duration_since(tokio::time::Instant::now());
        let handshake = self.ctx.tls_handshake_timeout.min(login_left);
        match wire.start_tls(&go_ahead, &self.ctx.tls, handshake).await {
            Ok(_) => {
                self.session.tls_started();
                true
            }
            Err(StartTlsError::Write(error)) => {
                tracing::debug!(%error, "STARTTLS go-ahead not written");
                false
            }
            Err(error) => {
                tracing::info!(?error, "STARTTLS handshake failed");
                false
            }
        }
    }

    /// The next input, or a mailbox event for this account, whichever comes first. The autologout clock
    /// runs from the client's last input: events do not keep a silent session alive.
    async fn wait(&mut self, shutdown: &CancellationToken) -> Result<Woken, ReadError> {
        let timeout = self.deadline.saturating_duration_since(tokio::time::Instant::now());
        let (wire, lease) = self.session.wire_and_lease();
        let event = async {
            match lease {
                Some(Lease { events: Some(events), .. }) => match events.next().await {
                    feed::Next::Event(payload) => Woken::Event(payload),
                    feed::Next::Lagged => Woken::EventsLagged,
                    feed::Next::Ended => Woken::EventsEnded,
                },
                Some(_) => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Woken::Resubscribe
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = wire.0.read_more(timeout, shutdown) => read.map(|()| Woken::Input),
            woken = event => Ok(woken),
        }
    }

    /// After the event subscription was lost (NATS restarted): subscribe again, and look for what was
    /// missed meanwhile.
    async fn resubscribe(&mut self) {
        let Some((account_id, _)) = self.session.account() else { return };
        if let Ok(events) = feed::join(&self.ctx, account_id).await
            && let (_, Some(lease)) = self.session.wire_and_lease()
        {
            lease.events = Some(events);
            self.session.events_missed();
        }
    }
}
