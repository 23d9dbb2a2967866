//! The access role: POP3 sessions on port 110 (IMAP comes next), each a client of the mailbox role's gRPC
//! API for every operation. It keeps no state beyond its connections: a POP3 session's maildrop listing
//! and deletion marks live in the session, and deletions reach the mailbox only at QUIT (RFC 1939 §6).
//!
//! The protocol lives in the sans-I/O `mailbus-pop3` crate; this crate only does the I/O around it.

mod backend;
mod pop3;

use std::net::SocketAddr;
use std::sync::Arc;

use mailbus_acceptor::{Limits, accept_loop};
use mailbus_pop3::response::Response;
use mailbus_telemetry::ops::{self, Readiness};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use backend::{Account, Backend, GrpcBackend, Unavailable};

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
    max_connections: usize,
}

pub async fn bind(config: AccessConfig) -> Result<Access, StartError> {
    let backend = GrpcBackend::new(mailbus_grpc::connect(&config.mailbox_url)?);
    Ok(Access {
        pop3: mailbus_acceptor::bind(config.pop3_listen).await?,
        grpc: mailbus_acceptor::bind(config.grpc_listen).await?,
        ops: mailbus_acceptor::bind(config.metrics_listen).await?,
        context: Arc::new(pop3::Context { backend, hostname: config.hostname }),
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
        readiness.set(true);
        let ops = tokio::spawn(ops::serve(self.ops, Arc::new(registry), readiness, shutdown.clone()));
        let grpc =
            tokio::spawn(mailbus_grpc::serve(self.grpc, Routes::default(), &["mailbus.access"], shutdown.clone()));
        let limits = Limits {
            max_connections: self.max_connections,
            refusal: Response::err("[SYS/TEMP] too many connections, try again later").to_bytes(),
        };
        let (context, session_shutdown) = (self.context, shutdown.clone());
        accept_loop(
            self.pop3,
            limits,
            shutdown,
            move || {
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

pub async fn serve(config: AccessConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    bind(config).await?.serve(shutdown).await
}
