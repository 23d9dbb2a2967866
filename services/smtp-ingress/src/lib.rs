//! The smtp-ingress role: SMTP sessions on port 25. It checks each recipient with the directory (over
//! gRPC), makes each accepted message durable in JetStream, and answers `250` only after the queue has
//! acknowledged it (`451 4.3.0` when it cannot).
//!
//! It holds no state beyond its connections and must never talk to PostgreSQL or deliver mail itself.
//! The protocol lives in the sans-I/O `mailbus-smtp` crate; this crate only does the I/O around it.

mod connection;
mod directory;
mod metrics;
mod ports;
mod received;
mod spool;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailbus_acceptor::{Limits, accept_loop};
use mailbus_jetstream::{Names, Queue, QueueError};
use mailbus_smtp::reply::{Enhanced, Reply};
use mailbus_smtp::session::SessionConfig;
use mailbus_telemetry::ops::{self, Readiness};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use connection::Context;
pub use ports::{ClientInfo, Directory, Spool, SpoolError};

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub hostname: String,
    pub nats_url: String,
    pub names: Names,
    pub mailbox_url: String,
    pub smtp_listen: SocketAddr,
    pub grpc_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_connections: usize,
    /// How long to wait for JetStream to acknowledge a body or envelope before answering 451.
    pub nats_timeout: Duration,
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
}

pub struct SmtpIngress {
    smtp: TcpListener,
    grpc: TcpListener,
    ops: TcpListener,
    context: Arc<Context<directory::GrpcDirectory, spool::JetStreamSpool>>,
    registry: Registry,
    max_connections: usize,
}

pub async fn bind(config: SmtpConfig) -> Result<SmtpIngress, StartError> {
    let nats = mailbus_jetstream::connect(&config.nats_url, "mailbus-smtp-ingress").await?;
    let queue = Queue::open(nats, config.names.clone(), config.nats_timeout).await?;
    let mut registry = Registry::with_prefix("mailbus_smtp");
    let context = Arc::new(Context {
        directory: directory::GrpcDirectory::new(mailbus_grpc::connect(&config.mailbox_url)?),
        spool: spool::JetStreamSpool::new(queue),
        session: SessionConfig {
            hostname: config.hostname.clone(),
            max_message_size: config.max_message_size,
            max_recipients: config.max_recipients,
        },
        metrics: metrics::Metrics::register(&mut registry),
    });
    Ok(SmtpIngress {
        smtp: mailbus_acceptor::bind(config.smtp_listen).await?,
        grpc: mailbus_acceptor::bind(config.grpc_listen).await?,
        ops: mailbus_acceptor::bind(config.metrics_listen).await?,
        context,
        registry,
        max_connections: config.max_connections,
    })
}

impl SmtpIngress {
    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp.local_addr().expect("bound listener has an address")
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().expect("bound listener has an address")
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.ops.local_addr().expect("bound listener has an address")
    }

    /// Accepts connections until `shutdown`, then tells idle sessions 421 and waits for the others to end.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let readiness = Readiness::default();
        readiness.set(true);
        let ops = tokio::spawn(ops::serve(self.ops, Arc::new(self.registry), readiness, shutdown.clone()));
        let grpc = tokio::spawn(mailbus_grpc::serve(self.grpc, Routes::default(), &["mailbus.smtp"], shutdown.clone()));
        let limits = Limits {
            max_connections: self.max_connections,
            refusal: Reply::new(421, Enhanced(4, 7, 0), "Too many connections, try again later").to_bytes(),
        };
        let context = self.context;
        let metrics = context.metrics.clone();
        let sessions = shutdown.clone();
        accept_loop(
            self.smtp,
            limits,
            shutdown,
            move || {
                metrics.refused_connections.inc();
            },
            move |stream, peer| {
                let (context, shutdown) = (context.clone(), sessions.clone());
                context.metrics.sessions.inc();
                async move {
                    context.metrics.active_sessions.inc();
                    connection::handle(stream, ClientInfo { peer }, context.clone(), shutdown).await;
                    context.metrics.active_sessions.dec();
                }
            },
        )
        .await;
        grpc.await.map_err(|e| StartError::Ops(std::io::Error::other(e)))??;
        ops.await.map_err(|e| StartError::Ops(std::io::Error::other(e)))?.map_err(StartError::Ops)?;
        Ok(())
    }
}

pub async fn serve(config: SmtpConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    bind(config).await?.serve(shutdown).await
}
