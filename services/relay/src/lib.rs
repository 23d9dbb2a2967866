//! The relay role: the mail queue's consumer. Relay replicas share one durable pull consumer on the queue
//! stream; each message is delivered recipient by recipient and acknowledged only once every recipient
//! is final, so a relay killed at any instant loses nothing (the message is redelivered) and duplicates
//! nothing (`Mailbox.Deliver` is idempotent per queue id and recipient).
//!
//! Local recipients go to the mailbox role; remote ones, grouped by domain, to the domain's servers over
//! SMTP (a transport map, else MX). A recipient that fails temporarily is retried on a schedule, with the
//! envelope's new state requeued; past the queue lifetime it fails for good. Permanent failures produce one
//! DSN to the sender, itself queued like any message. What it sends to other domains from our users,
//! and the DSNs it writes, it signs with the sending domain's DKIM keys (`signing`, `keys`).
//!
//! It also serves the operator's `QueueAdmin` gRPC service. It must not open a database connection:
//! local delivery goes through the mailbox role.

mod admin;
mod delivery;
mod downgrade;
mod dsn;
mod forwarding;
mod keys;
mod remote;
mod routing;
mod signing;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailbus_grpc::recipients::RecipientCache;
use mailbus_jetstream::{Names, Queue, QueueError};
use mailbus_proto::v1::queue_admin_server::QueueAdminServer;
use mailbus_telemetry::ops::{self, Readiness};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use delivery::{Attempt, Deliverer, Destination, Outcome};
pub use keys::KeyCache;
pub use remote::Remote;
pub use routing::{BadTransport, Router, TransportMap};
pub use signing::Sealer;
pub use worker::{RetryPolicy, Worker};

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Our name in EHLO and in DSNs.
    pub hostname: String,
    pub nats_url: String,
    pub names: Names,
    pub mailbox_url: mailbus_grpc::Upstream,
    pub grpc_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    /// How long a relay may hold a message unacknowledged before another replica gets it. Long
    /// deliveries extend it with progress acks.
    pub ack_wait: Duration,
    /// How many messages one relay works on at once.
    pub concurrency: usize,
    /// Request timeout for JetStream operations.
    pub nats_timeout: Duration,
    /// How long a recipient's answer from the mailbox role is kept (a directory change clears them all).
    pub recipient_cache_ttl: Duration,
    /// Static routes for remote domains, before DNS.
    pub transports: TransportMap,
    /// The resolvers MX lookups ask.
    pub dns: mailbus_dns::DnsConfig,
    pub retry: RetryPolicy,
    /// Wait for each SMTP reply from a remote server.
    pub smtp_timeout: Duration,
    /// Simultaneous deliveries to one remote domain.
    pub destination_concurrency: usize,
    /// How long the DKIM keys of a domain, once asked of the mailbox role, are used before asking again:
    /// the longest a key rotation takes to reach this relay.
    pub dkim_key_ttl: Duration,
    /// Our name in `Authentication-Results`, whose field port 25 added the ARC seal of a forwarded copy
    /// repeats.
    pub authserv_id: String,
    /// The Sender Rewriting Scheme for forwarded mail and the bounces to it; `None`: off.
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
}

pub struct Relay {
    grpc: TcpListener,
    ops: TcpListener,
    worker: Worker,
    queue: Queue,
    registry: Registry,
    gauges: QueueGauges,
}

/// Queue depth and age for dashboards, read from the stream every few seconds.
#[derive(Clone, Default)]
struct QueueGauges {
    messages: Gauge<i64>,
    oldest_age_seconds: Gauge<i64>,
}

async fn watch_queue(queue: Queue, gauges: QueueGauges, shutdown: CancellationToken) {
    loop {
        if let Ok(status) = queue.status().await {
            gauges.messages.set(status.messages as i64);
            let age = if status.oldest_unix == 0 { 0 } else { chrono::Utc::now().timestamp() - status.oldest_unix };
            gauges.oldest_age_seconds.set(age.max(0));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

pub async fn bind(config: RelayConfig) -> Result<Relay, StartError> {
    let nats = mailbus_jetstream::connect(&config.nats_url, "mailbus-relay").await?;
    let recipients = Arc::new(RecipientCache::new(config.recipient_cache_ttl));
    let forget = recipients.clone();
    mailbus_jetstream::follow_directory_changes(nats.clone(), &config.names, move || forget.clear());
    let queue = Queue::open(nats, config.names.clone(), config.nats_timeout).await?;
    let mut registry = Registry::with_prefix("mailbus_relay");
    let remote = Remote::new(
        Router::with_dns(config.transports, &config.dns),
        config.hostname.clone(),
        config.smtp_timeout,
        config.destination_concurrency,
    );
    let channel = mailbus_grpc::connect_upstream(&config.mailbox_url);
    let keys = keys::KeyCache::new(channel.clone(), config.dkim_key_ttl);
    let deliverer = Deliverer::new(
        queue.clone(),
        channel,
        (remote, recipients),
        keys,
        (config.srs.clone(), signing::Sealer::new(config.authserv_id.clone(), &config.dns)),
        &mut registry,
    );
    let worker = Worker::new(
        queue.clone(),
        deliverer,
        config.retry,
        config.hostname,
        (config.ack_wait, config.concurrency),
        &mut registry,
    );
    let gauges = QueueGauges::default();
    registry.register("queue_messages", "Messages in the queue stream", gauges.messages.clone());
    registry.register(
        "queue_oldest_age_seconds",
        "Age of the oldest queued message",
        gauges.oldest_age_seconds.clone(),
    );
    Ok(Relay {
        gauges,
        grpc: mailbus_acceptor::bind(config.grpc_listen).await?,
        ops: mailbus_acceptor::bind(config.metrics_listen).await?,
        worker,
        queue,
        registry,
    })
}

impl Relay {
    pub fn grpc_addr(&self) -> SocketAddr {
        mailbus_acceptor::local_addr(&self.grpc)
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        mailbus_acceptor::local_addr(&self.ops)
    }

    /// Consumes the queue until `shutdown` is cancelled, then finishes the messages in hand.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let readiness = Readiness::default();
        let ops = tokio::spawn(ops::serve(self.ops, Arc::new(self.registry), readiness.clone(), shutdown.clone()));
        let routes = Routes::new(QueueAdminServer::new(admin::QueueAdminService { queue: self.queue.clone() }));
        let grpc = tokio::spawn(mailbus_grpc::serve(self.grpc, routes, &["mailbus.v1.QueueAdmin"], shutdown.clone()));
        tokio::spawn(watch_queue(self.queue.clone(), self.gauges, shutdown.clone()));
        let worked = self.worker.run(readiness, shutdown.clone()).await;
        shutdown.cancel();
        let served = grpc.await.map_err(|e| StartError::Ops(std::io::Error::other(e)))?;
        ops.await.map_err(|e| StartError::Ops(std::io::Error::other(e)))?.map_err(StartError::Ops)?;
        worked?;
        served?;
        Ok(())
    }
}

pub async fn serve(config: RelayConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    bind(config).await?.serve(shutdown).await
}
