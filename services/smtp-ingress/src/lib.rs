//! The smtp-ingress role: SMTP sessions on port 25 (mail from the world, for local domains only), 587
//! (submission: STARTTLS, then AUTH, then relaying anywhere) and 465 (submission over implicit TLS). It
//! checks recipients, senders and credentials with the directory (over gRPC), makes each accepted
//! message durable in JetStream, and answers `250` only after the queue has acknowledged it (`451 4.3.0`
//! when it cannot).
//!
//! It holds no state beyond its connections and must never talk to PostgreSQL or deliver mail itself.
//! The protocol lives in the sans-I/O `mailbus-smtp` crate; this crate only does the I/O around it.

mod body;
mod connection;
mod directory;
mod dns_cache;
mod metrics;
mod ports;
mod received;
pub mod sender_auth;
mod spool;

use mailbus_acceptor::local_addr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mailbus_acceptor::proxy::TrustedProxies;
use mailbus_acceptor::{Admit, Caps, ConnectionLimits, accept_loop};
use mailbus_dns::DnsConfig;
use mailbus_grpc::recipients::RecipientCache;
use mailbus_jetstream::{LoginThrottle, Names, Queue, QueueError, RatePolicy, SubmissionLimits, ThrottlePolicy};
use mailbus_sasl::PlaintextAuth;
use mailbus_smtp::reply::{Enhanced, Reply};
use mailbus_smtp::session::{BareLf, Enforcement, LongLines, Mode, SessionConfig};
use mailbus_telemetry::ops::{self, Readiness};
use mailbus_tls::ServerTls;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use body::{Body, BodyStorage};
pub use connection::{Context, Listener, Timeouts};
pub use ports::{ClientInfo, Directory, DirectoryUnavailable, Spool, SpoolError};
pub use sender_auth::{AuthPolicy, Verifier};

/// Where to listen; `None` leaves a listener off.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// Port 25.
    pub mx: SocketAddr,
    /// Port 587.
    pub submission: Option<SocketAddr>,
    /// Port 465.
    pub submissions: Option<SocketAddr>,
}

/// What every session on every listener shares.
#[derive(Debug, Clone)]
pub struct Policy {
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_errors: usize,
    pub max_auth_failures: usize,
    /// AUTH before TLS on submission, decided per client address (development, or loopback only).
    pub plaintext_auth: PlaintextAuth,
    pub long_lines: LongLines,
    pub bare_lf: BareLf,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub hostname: String,
    pub nats_url: String,
    pub names: Names,
    pub mailbox_url: mailbus_grpc::Upstream,
    pub listeners: Listeners,
    pub grpc_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub tls: ServerTls,
    pub policy: Policy,
    pub timeouts: Timeouts,
    /// Where a message body larger than it is worth keeping in memory waits while it arrives.
    pub spool_dir: PathBuf,
    /// Failed AUTHs, counted with IMAP's and POP3's across replicas.
    pub throttle: ThrottlePolicy,
    /// Submission rate limits, counted across replicas.
    pub rates: RatePolicy,
    /// Port 25's caps.
    pub mx_caps: Caps,
    /// The caps of 587 and 465 together, apart from port 25's, so that servers (or an attacker) filling
    /// port 25 from an address never lock the users behind that address out of submission.
    pub submission_caps: Caps,
    /// Load balancers whose connections start with a PROXY protocol header.
    pub proxies: TrustedProxies,
    /// On shutdown, how long sessions in the middle of a message get to finish.
    pub shutdown_grace: Duration,
    /// How long to wait for JetStream to acknowledge a body or envelope before answering 451.
    pub nats_timeout: Duration,
    /// How long a recipient's answer from the mailbox role is kept (a directory change clears them all).
    pub recipient_cache_ttl: Duration,
    /// Port 25's sender authentication.
    pub auth: AuthPolicy,
    /// The resolvers its lookups ask.
    pub dns: DnsConfig,
    /// SRS, to accept bounces to the addresses forwarded mail left with; `None`: off.
    pub srs: Option<mailbus_srs::Srs>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("connecting to NATS: {0}")]
    Nats(#[from] async_nats::ConnectError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Bind(#[from] mailbus_acceptor::BindError),
    #[error(transparent)]
    Grpc(#[from] mailbus_grpc::GrpcError),
    #[error("metrics endpoint: {0}")]
    Ops(std::io::Error),
    #[error("DNS resolver for sender authentication: {0}")]
    Dns(#[from] mail_auth::hickory_resolver::net::NetError),
    #[error("message spool directory {}: {error}", dir.display())]
    SpoolDir { dir: PathBuf, error: std::io::Error },
}

type ProductionContext = Context<directory::GrpcDirectory, spool::JetStreamSpool>;

/// A bound SMTP listener and what its sessions are.
struct Bound {
    listener: TcpListener,
    kind: Arc<Listener>,
}

pub struct SmtpIngress {
    mx: Bound,
    submission: Option<Bound>,
    submissions: Option<Bound>,
    grpc: TcpListener,
    ops: TcpListener,
    context: Arc<ProductionContext>,
    registry: Registry,
    mx_caps: Caps,
    submission_caps: Caps,
    proxies: TrustedProxies,
    shutdown_grace: Duration,
}

fn session_config(config: &SmtpConfig, mode: Mode) -> SessionConfig {
    let policy = &config.policy;
    SessionConfig {
        hostname: config.hostname.clone(),
        max_message_size: policy.max_message_size,
        max_recipients: policy.max_recipients,
        mode,
        starttls_available: true,
        // Decided per connection, from the client's address (`Listener::plaintext_auth`).
        plaintext_auth: false,
        max_errors: policy.max_errors,
        max_auth_failures: policy.max_auth_failures,
        long_lines: policy.long_lines,
        bare_lf: policy.bare_lf,
        // Authenticated submission is not verified: the account vouches for its mail.
        spf: if mode == Mode::Mx { config.auth.spf } else { Enforcement::Off },
    }
}

/// Port 25's verifier, unless every check is off.
fn verifier(config: &SmtpConfig) -> Result<Option<Verifier>, StartError> {
    let auth = &config.auth;
    if !auth.spf.is_on() && !auth.checks_content() {
        return Ok(None);
    }
    Ok(Some(Verifier::new(&config.dns, auth.clone())?))
}

async fn bind_listener(
    addr: SocketAddr,
    config: &SmtpConfig,
    mode: Mode,
    implicit_tls: bool,
) -> Result<Bound, StartError> {
    let kind =
        Listener { session: session_config(config, mode), implicit_tls, plaintext_auth: config.policy.plaintext_auth };
    Ok(Bound { listener: mailbus_acceptor::bind(addr).await?, kind: Arc::new(kind) })
}

pub async fn bind(config: SmtpConfig) -> Result<SmtpIngress, StartError> {
    let nats = mailbus_jetstream::connect(&config.nats_url, "mailbus-smtp-ingress").await?;
    let recipients = Arc::new(RecipientCache::new(config.recipient_cache_ttl));
    let forget = recipients.clone();
    mailbus_jetstream::follow_directory_changes(nats.clone(), &config.names, move || forget.clear());
    let queue = Queue::open(nats, config.names.clone(), config.nats_timeout).await?;
    let throttle = LoginThrottle::open(
        queue.jetstream(),
        (config.names.auth_failures_bucket(), config.names.replicas()),
        config.throttle,
    )
    .await?;
    let limits = SubmissionLimits::open(
        queue.jetstream(),
        (config.names.submission_rates_bucket(), config.names.replicas()),
        config.rates,
    )
    .await?;
    let mut registry = Registry::with_prefix("mailbus_smtp");
    let bodies = BodyStorage { memory_limit: body::MEMORY_LIMIT, dir: config.spool_dir.as_path().into() };
    bodies.check().map_err(|error| StartError::SpoolDir { dir: config.spool_dir.clone(), error })?;
    let context = Arc::new(Context {
        directory: directory::GrpcDirectory::new(
            mailbus_grpc::connect_upstream(&config.mailbox_url),
            config.srs.clone(),
            recipients,
        ),
        spool: spool::JetStreamSpool::new(queue, config.policy.max_message_size),
        tls: config.tls.clone(),
        timeouts: config.timeouts,
        throttle,
        limits,
        bodies,
        metrics: metrics::Metrics::register(&mut registry),
        verifier: verifier(&config)?,
    });
    let mx = bind_listener(config.listeners.mx, &config, Mode::Mx, false).await?;
    let submission = match config.listeners.submission {
        Some(addr) => Some(bind_listener(addr, &config, Mode::Submission, false).await?),
        None => None,
    };
    let submissions = match config.listeners.submissions {
        Some(addr) => Some(bind_listener(addr, &config, Mode::Submission, true).await?),
        None => None,
    };
    Ok(SmtpIngress {
        mx,
        submission,
        submissions,
        grpc: mailbus_acceptor::bind(config.grpc_listen).await?,
        ops: mailbus_acceptor::bind(config.metrics_listen).await?,
        context,
        registry,
        mx_caps: config.mx_caps,
        submission_caps: config.submission_caps,
        proxies: config.proxies,
        shutdown_grace: config.shutdown_grace,
    })
}

impl SmtpIngress {
    pub fn smtp_addr(&self) -> SocketAddr {
        local_addr(&self.mx.listener)
    }

    pub fn submission_addr(&self) -> Option<SocketAddr> {
        self.submission.as_ref().map(|b| local_addr(&b.listener))
    }

    pub fn submissions_addr(&self) -> Option<SocketAddr> {
        self.submissions.as_ref().map(|b| local_addr(&b.listener))
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        local_addr(&self.grpc)
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        local_addr(&self.ops)
    }

    /// Accepts connections until `shutdown`, then tells idle sessions 421 and gives the ones in the middle
    /// of a message the grace period to finish.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let readiness = Readiness::default();
        let ops = tokio::spawn(ops::serve(self.ops, Arc::new(self.registry), readiness.clone(), shutdown.clone()));
        let grpc = tokio::spawn(mailbus_grpc::serve(self.grpc, Routes::default(), &["mailbus.smtp"], shutdown.clone()));
        tokio::spawn(watch_queue(self.context.clone(), readiness, shutdown.clone()));
        let mx_limits = ConnectionLimits::with(self.mx_caps);
        let submission_limits = ConnectionLimits::with(self.submission_caps);
        let listeners = [Some(self.mx), self.submission, self.submissions];
        let loops = listeners.into_iter().flatten().map(|bound| {
            let limits = match bound.kind.session.mode {
                Mode::Mx => mx_limits.clone(),
                Mode::Submission => submission_limits.clone(),
            };
            let admit = Admit {
                limits,
                refusal: Reply::new(421, Enhanced(4, 7, 0), "Too many connections, try again later").to_bytes(),
                implicit_tls: bound.kind.implicit_tls.then(|| self.context.tls.clone()),
                grace: self.shutdown_grace,
                proxies: self.proxies.clone(),
            };
            serve_listener(bound, admit, self.context.clone(), shutdown.clone())
        });
        futures::future::join_all(loops).await;
        grpc.await.map_err(|e| StartError::Ops(std::io::Error::other(e)))??;
        ops.await.map_err(|e| StartError::Ops(std::io::Error::other(e)))?.map_err(StartError::Ops)?;
        Ok(())
    }
}

async fn serve_listener(bound: Bound, admit: Admit, context: Arc<ProductionContext>, shutdown: CancellationToken) {
    let metrics = context.metrics.clone();
    let sessions = shutdown.clone();
    let kind = bound.kind;
    accept_loop(
        bound.listener,
        admit,
        shutdown,
        move |_| {
            metrics.refused_connections.inc();
        },
        move |stream, peer| {
            let (context, shutdown, kind) = (context.clone(), sessions.clone(), kind.clone());
            context.metrics.sessions.inc();
            async move {
                context.metrics.active_sessions.inc();
                connection::handle(stream, ClientInfo { peer }, kind, context.clone(), shutdown).await;
                context.metrics.active_sessions.dec();
            }
        },
    )
    .await;
}

/// `/readyz` follows the NATS connection: without it every message would get 451.
async fn watch_queue(context: Arc<ProductionContext>, readiness: Readiness, shutdown: CancellationToken) {
    loop {
        readiness.set(context.spool.is_connected());
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

pub async fn serve(config: SmtpConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    bind(config).await?.serve(shutdown).await
}
