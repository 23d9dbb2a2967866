//! The access role: POP3 sessions on port 110 (IMAP comes next), each a client of the mailbox role's gRPC
//! API for every operation. It keeps no state beyond its connections: a POP3 session's maildrop listing
//! and deletion marks live in the session, and deletions reach the mailbox only at QUIT (RFC 1939 §6).
//!
//! The protocol lives in the sans-I/O `mailbus-pop3` crate; this crate only does the I/O around it.

mod backend;
mod pop3;

use std::net::SocketAddr;
use std::sync::Arc;

use mailbus_acceptor::{Admit, ConnectionLimits, accept_loop};
use mailbus_pop3::response::Response;
use mailbus_telemetry::ops::{self, Readiness};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use backend::{Account, Backend, GrpcBackend, Unavailable};

/// POP3 sessions have nothing in flight worth waiting for: they are told goodbye at once, and this only
/// bounds waiting for a RETR that is streaming.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct AccessConfig {
    pub hostname: String,
    pub mailbox_url: String,
    pub pop3_listen: SocketAddr,
    pub grpc_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub max_connections: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] mailbus_acceptor::BindError),
    #[error(transparent)]
    Grpc(#[from] mailbus_grpc::GrpcError),
    #[error("metrics endpoint: {0}")]
    Ops(std::io::Error),
}

pub struct Access {
    pop3: TcpListener,
    grpc: TcpListener,
    ops: TcpListener,
    context: Arc<pop3::Context<GrpcBackend>>,
    /// For readiness: every POP3 command needs the mailbox role.
    mailbox: mailbus_grpc::TracedChannel,
    max_connections: usize,
}

pub async fn bind(config: AccessConfig) -> Result<Access, StartError> {
    let mailbox = mailbus_grpc::connect(&config.mailbox_url)?;
    let backend = GrpcBackend::new(mailbox.clone());
    Ok(Access {
        pop3: mailbus_acceptor::bind(config.pop3_listen).await?,
        grpc: mailbus_acceptor::bind(config.grpc_listen).await?,
        ops: mailbus_acceptor::bind(config.metrics_listen).await?,
        context: Arc::new(pop3::Context { backend, hostname: config.hostname }),
        mailbox,
        max_connections: config.max_connections,
    })
}

impl Access {
    pub fn pop3_addr(&self) -> SocketAddr {
        self.pop3.local_addr().expect("bound listener has an address")
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().expect("bound listener has an address")
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.ops.local_addr().expect("bound listener has an address")
    }

    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let mut registry = Registry::with_prefix("mailbus_access");
        let sessions = Counter::<u64>::default();
        let refused = Counter::<u64>::default();
        registry.register("pop3_sessions", "POP3 sessions accepted", sessions.clone());
        registry.register("refused_connections", "Connections refused at the connection cap", refused.clone());
        let readiness = Readiness::default();
        tokio::spawn(watch_mailbox(self.mailbox.clone(), readiness.clone(), shutdown.clone()));
        let ops = tokio::spawn(ops::serve(self.ops, Arc::new(registry), readiness, shutdown.clone()));
        let grpc =
            tokio::spawn(mailbus_grpc::serve(self.grpc, Routes::default(), &["mailbus.access"], shutdown.clone()));
        let admit = Admit {
            limits: ConnectionLimits::new(self.max_connections, self.max_connections),
            refusal: Response::err("[SYS/TEMP] too many connections, try again later").to_bytes(),
            grace: SHUTDOWN_GRACE,
        };
        let (context, session_shutdown) = (self.context, shutdown.clone());
        accept_loop(
            self.pop3,
            admit,
            shutdown,
            move |_| {
                refused.inc();
            },
            move |stream, peer| {
                sessions.inc();
                pop3::handle(stream, peer, context.clone(), session_shutdown.clone())
            },
        )
        .await;
        grpc.await.map_err(|e| StartError::Ops(std::io::Error::other(e)))??;
        ops.await.map_err(|e| StartError::Ops(std::io::Error::other(e)))?.map_err(StartError::Ops)?;
        Ok(())
    }
}

/// `/readyz` follows the mailbox role: without it no session can log in or read mail.
async fn watch_mailbox(mailbox: mailbus_grpc::TracedChannel, readiness: Readiness, shutdown: CancellationToken) {
    loop {
        readiness.set(mailbus_grpc::is_serving(mailbox.clone(), "mailbus.v1.Mailbox").await);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
    }
}

pub async fn serve(config: AccessConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    bind(config).await?.serve(shutdown).await
}
