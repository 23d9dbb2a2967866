//! The access role: IMAP (`imap`), POP3 and ManageSieve (`managesieve`, port 4190) sessions, each a client of the mailbox role's gRPC API for
//! every operation. IMAP listens on 143 (STARTTLS) and 993 (TLS from the first byte); a session learns of
//! changes made elsewhere from the mailbox events on NATS. Port 110 offers STLS (RFC 2595) and 995 is TLS from the first byte. A session holds
//! an exclusive lock on its maildrop (RFC 1939 §8) as a lease in NATS, so that two sessions on different
//! replicas cannot both hold it, and a crashed replica's lock expires by itself.
//!
//! It keeps no state beyond its connections: a session's maildrop listing and deletion marks live in the
//! session, and deletions reach the mailbox only at QUIT (RFC 1939 §6). The protocol lives in the sans-I/O
//! `mailbus-pop3` crate; this crate only does the I/O around it.

mod backend;
pub mod imap;
mod managesieve;
mod metrics;
mod pop3;

use mailbus_acceptor::local_addr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use mailbus_acceptor::proxy::TrustedProxies;
use mailbus_acceptor::{Admit, Caps, ConnectionLimits, accept_loop};
use mailbus_jetstream::{Leases, LoginThrottle, Names, QueueError, ThrottlePolicy};
use mailbus_pop3::response::Response;
use mailbus_sasl::PlaintextAuth;
use mailbus_telemetry::ops::{self, Readiness};
use mailbus_tls::ServerTls;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use backend::{Account, Backend, GrpcBackend, Unavailable};
pub use pop3::DeletePolicy;

/// POP3 sessions have nothing in flight worth waiting for: they are told goodbye at once, and this only
/// bounds waiting for a RETR that is streaming.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What the access role shares between its protocols, and each protocol's own part.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    pub hostname: String,
    pub mailbox_url: mailbus_grpc::Upstream,
    pub nats_url: String,
    pub names: Names,
    pub grpc_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub tls: ServerTls,
    /// Every TLS handshake, implicit or after STARTTLS/STLS, on every protocol.
    pub tls_handshake_timeout: Duration,
    /// Load balancers whose connections start with a PROXY protocol header.
    pub proxies: TrustedProxies,
    /// Failed logins, counted across protocols and replicas.
    pub throttle: ThrottlePolicy,
    pub imap: ImapConfig,
    pub pop3: Pop3Config,
    pub managesieve: ManageSieveConfig,
}

/// What IMAP and POP3 each have of their own doors and sessions.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// Port 143 or 110.
    pub listen: SocketAddr,
    /// Port 993 or 995; `None` leaves it off.
    pub tls_listen: Option<SocketAddr>,
    pub caps: Caps,
    pub plaintext_auth: PlaintextAuth,
    /// From connecting to a successful login (STARTTLS or STLS included).
    pub login_timeout: Duration,
    /// The autologout timer (RFC 9051 §5.4: at least 30 minutes; RFC 1939 §3: at least 10).
    pub idle_timeout: Duration,
    /// Failed logins in one session before it is closed.
    pub max_auth_failures: usize,
}

#[derive(Debug, Clone)]
pub struct ImapConfig {
    pub session: SessionPolicy,
    /// Sessions one account may have from one address (Dovecot's `mail_max_userip_connections`).
    pub max_user_connections: usize,
    /// APPENDLIMIT.
    pub max_message_size: u64,
}

#[derive(Debug, Clone)]
pub struct Pop3Config {
    pub session: SessionPolicy,
    pub delete_policy: DeletePolicy,
    /// The maildrop lock's lease: how long a crashed replica can keep it.
    pub lock_ttl: Duration,
}

/// ManageSieve (RFC 5804) on port 4190: STARTTLS only (`tls_listen` unused), scripts kept by the mailbox
/// role's `Sieve` service.
#[derive(Debug, Clone)]
pub struct ManageSieveConfig {
    pub session: SessionPolicy,
    /// MAXREDIRECTS: what the mailbox role allows one script run.
    pub max_redirects: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("connecting to NATS: {0}")]
    Nats(#[from] async_nats::ConnectError),
    #[error(transparent)]
    Locks(#[from] QueueError),
    #[error(transparent)]
    Bind(#[from] mailbus_acceptor::BindError),
    #[error(transparent)]
    Grpc(#[from] mailbus_grpc::GrpcError),
    #[error("metrics endpoint: {0}")]
    Ops(std::io::Error),
}

pub struct Access {
    pop3: TcpListener,
    pop3s: Option<TcpListener>,
    imap: TcpListener,
    imaps: Option<TcpListener>,
    imap_context: Arc<imap::ImapContext>,
    managesieve: TcpListener,
    managesieve_context: Arc<managesieve::Context>,
    managesieve_caps: Caps,
    grpc: TcpListener,
    ops: TcpListener,
    context: Arc<pop3::Context<GrpcBackend>>,
    /// For readiness: every POP3 command needs the mailbox role.
    mailbox: mailbus_grpc::TracedChannel,
    pop3_caps: Caps,
    imap_caps: Caps,
    proxies: TrustedProxies,
}

pub async fn bind(config: AccessConfig) -> Result<Access, StartError> {
    let mailbox = mailbus_grpc::connect_upstream(&config.mailbox_url);
    let nats = mailbus_jetstream::connect(&config.nats_url, "mailbus-access").await?;
    let jetstream = async_nats::jetstream::new(nats.clone());
    let locks =
        Leases::open(&jetstream, (config.names.pop3_locks_bucket(), config.names.replicas()), config.pop3.lock_ttl)
            .await?;
    let throttle = LoginThrottle::open(
        &jetstream,
        (config.names.auth_failures_bucket(), config.names.replicas()),
        config.throttle,
    )
    .await?;
    let (mailbox_client, directory_client) = imap::ImapContext::new_clients(mailbox.clone());
    let imap_context = Arc::new(imap::ImapContext {
        mailbox: mailbox_client,
        directory: directory_client,
        nats: nats.clone(),
        names: config.names.clone(),
        tls: config.tls.clone(),
        tls_handshake_timeout: config.tls_handshake_timeout,
        hostname: config.hostname.clone(),
        plaintext_auth: config.imap.session.plaintext_auth,
        max_auth_failures: config.imap.session.max_auth_failures,
        idle_timeout: config.imap.session.idle_timeout,
        login_timeout: config.imap.session.login_timeout,
        throttle: throttle.clone(),
        max_message_size: config.imap.max_message_size,
        commands: Default::default(),
        metrics: Default::default(),
        max_user_connections: config.imap.max_user_connections,
        user_connections: Default::default(),
        feeds: Default::default(),
    });
    let managesieve_context = Arc::new(managesieve::Context {
        directory: mailbus_proto::v1::directory_client::DirectoryClient::new(mailbox.clone()),
        sieve: mailbus_proto::v1::sieve_client::SieveClient::new(mailbox.clone()),
        tls: config.tls.clone(),
        tls_handshake_timeout: config.tls_handshake_timeout,
        hostname: config.hostname.clone(),
        plaintext_auth: config.managesieve.session.plaintext_auth,
        max_auth_failures: config.managesieve.session.max_auth_failures,
        max_redirects: config.managesieve.max_redirects,
        idle_timeout: config.managesieve.session.idle_timeout,
        login_timeout: config.managesieve.session.login_timeout,
        throttle: throttle.clone(),
        metrics: Default::default(),
    });
    let context = Arc::new(pop3::Context {
        backend: GrpcBackend::new(mailbox.clone()),
        locks,
        tls: config.tls,
        tls_handshake_timeout: config.tls_handshake_timeout,
        hostname: config.hostname,
        plaintext_auth: config.pop3.session.plaintext_auth,
        delete_policy: config.pop3.delete_policy,
        max_auth_failures: config.pop3.session.max_auth_failures,
        idle_timeout: config.pop3.session.idle_timeout,
        login_timeout: config.pop3.session.login_timeout,
        throttle,
        metrics: Default::default(),
    });
    Ok(Access {
        pop3: mailbus_acceptor::bind(config.pop3.session.listen).await?,
        pop3s: match config.pop3.session.tls_listen {
            Some(addr) => Some(mailbus_acceptor::bind(addr).await?),
            None => None,
        },
        imap: mailbus_acceptor::bind(config.imap.session.listen).await?,
        imaps: match config.imap.session.tls_listen {
            Some(addr) => Some(mailbus_acceptor::bind(addr).await?),
            None => None,
        },
        imap_context,
        managesieve: mailbus_acceptor::bind(config.managesieve.session.listen).await?,
        managesieve_context,
        managesieve_caps: config.managesieve.session.caps,
        grpc: mailbus_acceptor::bind(config.grpc_listen).await?,
        ops: mailbus_acceptor::bind(config.metrics_listen).await?,
        context,
        mailbox,
        pop3_caps: config.pop3.session.caps,
        imap_caps: config.imap.session.caps,
        proxies: config.proxies,
    })
}

impl Access {
    pub fn pop3_addr(&self) -> SocketAddr {
        local_addr(&self.pop3)
    }

    pub fn pop3s_addr(&self) -> Option<SocketAddr> {
        self.pop3s.as_ref().map(local_addr)
    }

    pub fn imap_addr(&self) -> SocketAddr {
        local_addr(&self.imap)
    }

    pub fn imaps_addr(&self) -> Option<SocketAddr> {
        self.imaps.as_ref().map(local_addr)
    }

    pub fn managesieve_addr(&self) -> SocketAddr {
        local_addr(&self.managesieve)
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        local_addr(&self.grpc)
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        local_addr(&self.ops)
    }

    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let mut registry = Registry::with_prefix("mailbus_access");
        let sessions = Counter::<u64>::default();
        let refused = Counter::<u64>::default();
        registry.register("pop3_sessions", "POP3 sessions accepted", sessions.clone());
        registry.register("refused_connections", "Connections refused at the connection cap", refused.clone());
        let imap_sessions = Counter::<u64>::default();
        registry.register("imap_sessions", "IMAP sessions accepted", imap_sessions.clone());
        registry.register("imap_commands", "IMAP commands by name", self.imap_context.commands.clone());
        self.imap_context.metrics.register(&mut registry, "imap");
        self.context.metrics.register(&mut registry, "pop3");
        let managesieve_sessions = Counter::<u64>::default();
        registry.register("managesieve_sessions", "ManageSieve sessions accepted", managesieve_sessions.clone());
        self.managesieve_context.metrics.register(&mut registry, "managesieve");
        let readiness = Readiness::default();
        tokio::spawn(watch_mailbox(self.mailbox.clone(), readiness.clone(), shutdown.clone()));
        let ops = tokio::spawn(ops::serve(self.ops, Arc::new(registry), readiness, shutdown.clone()));
        let grpc =
            tokio::spawn(mailbus_grpc::serve(self.grpc, Routes::default(), &["mailbus.access"], shutdown.clone()));
        // Each protocol has caps of its own, so that a flood on one never shuts the other out.
        let tls = self.context.tls.clone();
        let pop3 = accept_loops(
            [Some((self.pop3, false)), self.pop3s.map(|l| (l, true))],
            Response::err("[SYS/TEMP] too many connections, try again later").to_bytes(),
            (ConnectionLimits::with(self.pop3_caps), &self.proxies, &tls),
            &shutdown,
            sessions,
            refused.clone(),
            {
                let context = self.context.clone();
                move |stream, peer, implicit_tls, shutdown| {
                    pop3::handle(stream, peer, implicit_tls, context.clone(), shutdown)
                }
            },
        );
        let imap = accept_loops(
            [Some((self.imap, false)), self.imaps.map(|l| (l, true))],
            b"* BYE [UNAVAILABLE] too many connections, try again later\r\n".to_vec(),
            (ConnectionLimits::with(self.imap_caps), &self.proxies, &tls),
            &shutdown,
            imap_sessions,
            refused.clone(),
            {
                let context = self.imap_context.clone();
                move |stream, peer, implicit_tls, shutdown| {
                    imap::handle(stream, peer, implicit_tls, context.clone(), shutdown)
                }
            },
        );
        let managesieve = accept_loops(
            [Some((self.managesieve, false)), None],
            mailbus_managesieve::response::Response::status(
                mailbus_managesieve::response::Status::Bye,
                Some(mailbus_managesieve::response::Code::TryLater),
                "too many connections, try again later",
            )
            .to_bytes(),
            (ConnectionLimits::with(self.managesieve_caps), &self.proxies, &tls),
            &shutdown,
            managesieve_sessions,
            refused,
            {
                let context = self.managesieve_context.clone();
                move |stream, peer, _implicit_tls, shutdown| {
                    managesieve::handle(stream, peer, context.clone(), shutdown)
                }
            },
        );
        futures::future::join3(pop3, imap, managesieve).await;
        grpc.await.map_err(|e| StartError::Ops(std::io::Error::other(e)))??;
        ops.await.map_err(|e| StartError::Ops(std::io::Error::other(e)))?.map_err(StartError::Ops)?;
        Ok(())
    }
}

/// One protocol's accept loops, on its plain and implicit-TLS listeners (either may be absent), under the
/// protocol's connection caps (a refusal on the implicit-TLS port goes out over TLS); `handle` runs each
/// admitted session.
fn accept_loops<F, Fut>(
    listeners: [Option<(TcpListener, bool)>; 2],
    refusal: Vec<u8>,
    (limits, proxies, tls): (Arc<ConnectionLimits>, &TrustedProxies, &ServerTls),
    shutdown: &CancellationToken,
    sessions: Counter<u64>,
    refused: Counter<u64>,
    handle: F,
) -> impl std::future::Future<Output = ()>
where
    F: Fn(tokio::net::TcpStream, SocketAddr, bool, CancellationToken) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let loops = listeners.into_iter().flatten().map(|(listener, implicit_tls)| {
        let admit = Admit {
            limits: limits.clone(),
            refusal: refusal.clone(),
            implicit_tls: implicit_tls.then(|| tls.clone()),
            grace: SHUTDOWN_GRACE,
            proxies: proxies.clone(),
        };
        let (handle, session_shutdown, sessions, refused) =
            (handle.clone(), shutdown.clone(), sessions.clone(), refused.clone());
        accept_loop(
            listener,
            admit,
            shutdown.clone(),
            move |_| {
                refused.inc();
            },
            move |stream, peer| {
                sessions.inc();
                handle(stream, peer, implicit_tls, session_shutdown.clone())
            },
        )
    });
    futures::future::join_all(loops.collect::<Vec<_>>()).map(drop)
}

/// `/readyz` follows the mailbox role: without it no session can log in or read mail.
async fn watch_mailbox(mailbox: mailbus_grpc::TracedChannel, readiness: Readiness, shutdown: CancellationToken) {
    loop {
        readiness.set(mailbus_grpc::is_serving(mailbox.clone(), "mailbus.v1.Mailbox").await);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

pub async fn serve(config: AccessConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    bind(config).await?.serve(shutdown).await
}
