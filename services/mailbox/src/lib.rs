//! The mailbox role: the only owner of PostgreSQL. It serves the `Directory` (domains, accounts, aliases,
//! quotas, credentials), `Mailbox` (mailboxes; deliver, append, fetch, store, copy, move, expunge,
//! search), `Jmap` (RFC 8620/8621 method calls, blobs, state), `DkimKeys` and `Sieve` (scripts) gRPC
//! services, runs each account's Sieve script at delivery (`filter`), runs the schema
//! migrations at start-up, and publishes a change event on NATS after each commit.
//!
//! It must not talk SMTP, POP3 or IMAP, and no other role may open a database connection.
//!
//! Where things are: `rpc` is the gRPC edge (proto types in and out, no SQL); `store` is the store layer,
//! where the SQL is (`jmap` keeps the queries of JMAP's own tables beside its methods). Beside them:
//! `mime` parses a message once, `search_text` makes the decoded, case-folded text SEARCH matches substrings
//! in, `sections` cuts FETCH body sections from the stored octets, `flags` and
//! `list_pattern` are the rules for flags and LIST patterns, `password` hashes credentials, `events`
//! publishes changes on NATS, `group_commit` batches deliveries into one account into one transaction, and
//! `error` maps every error to a gRPC status. Identifiers are
//! `mailbus_address`'s validated types: `AccountId`, `MailboxName`, `Uid`, and inside the store
//! `MailboxId`.

mod delivery_threads;
mod dkim;
mod error;
mod events;
mod filter;
mod flags;
mod group_commit;
mod jmap;
mod list_pattern;
mod mime;
mod password;
mod rpc;
mod search_text;
mod sections;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailbus_address::RecipientDelimiter;
use mailbus_jetstream::Names;
use mailbus_proto::v1::{
    directory_server::DirectoryServer, dkim_keys_server::DkimKeysServer, jmap_server::JmapServer,
    mailbox_server::MailboxServer, sieve_server::SieveServer,
};
use mailbus_telemetry::ops::{self, Readiness};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use error::{MailboxError, QuotaFull};

#[derive(Debug, Clone)]
pub struct MailboxConfig {
    pub database_url: String,
    pub nats_url: String,
    pub names: Names,
    pub grpc_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub max_message_size: u64,
    pub max_db_connections: u32,
    /// The most concurrent deliveries into one account committed as one transaction; 1 commits each alone.
    pub delivery_batch: usize,
    pub quota_full: QuotaFull,
    /// Plus-addressing (`MAILBUS_RECIPIENT_DELIMITER`); applied wherever a recipient is resolved.
    pub recipient_delimiter: RecipientDelimiter,
    /// The nice value of the threads that store deliveries (`MAILBUS_DELIVERY_NICE`; 0: the server's).
    pub delivery_nice: i32,
    pub sieve: SieveConfig,
}

/// Sieve's limits (`MAILBUS_SIEVE_*`): the script quota per account, and what one run may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SieveConfig {
    pub max_scripts: usize,
    pub max_script_size: usize,
    pub max_actions: usize,
    pub max_redirects: usize,
}

impl Default for SieveConfig {
    fn default() -> Self {
        SieveConfig { max_scripts: 10, max_script_size: 64 * 1024, max_actions: 32, max_redirects: 4 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("connecting to PostgreSQL: {0}")]
    Database(#[source] sqlx::Error),
    #[error("running migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("connecting to NATS: {0}")]
    Nats(#[from] async_nats::ConnectError),
    #[error(transparent)]
    Bind(#[from] mailbus_acceptor::BindError),
    #[error(transparent)]
    Grpc(#[from] mailbus_grpc::GrpcError),
    #[error("metrics endpoint: {0}")]
    Ops(std::io::Error),
}

/// A mailbox role with its listeners bound and its dependencies connected, ready to serve.
pub struct Mailbox {
    grpc: TcpListener,
    ops: TcpListener,
    service: rpc::MailboxService,
    registry: Registry,
    database_up: Gauge<i64>,
}

/// Connects to PostgreSQL (running migrations; several replicas starting at once take turns on the
/// migrator's advisory lock) and NATS, and binds the listeners.
pub async fn bind(config: MailboxConfig) -> Result<Mailbox, StartError> {
    let pool = store::open(&config.database_url, config.max_db_connections).await?;
    let nats = mailbus_jetstream::connect(&config.nats_url, "mailbus-mailbox").await?;
    let mut registry = Registry::with_prefix("mailbus_mailbox");
    let deliveries = Family::<Vec<(String, String)>, Counter>::default();
    registry.register("deliveries", "Deliver calls by outcome", deliveries.clone());
    let deliver_seconds = mailbus_telemetry::metrics::latency_histogram();
    registry.register_with_unit(
        "deliver_duration",
        "Deliver calls, from arrival to reply",
        Unit::Seconds,
        deliver_seconds.clone(),
    );
    let database_up = Gauge::<i64>::default();
    registry.register("database_up", "1 when the last PostgreSQL probe succeeded", database_up.clone());
    let sieve_errors = Family::<Vec<(String, String)>, Counter>::default();
    registry.register(
        "sieve_errors",
        "Sieve failures at delivery (the message was kept in INBOX), by kind: parse, runtime, fileinto, loop",
        sieve_errors.clone(),
    );
    let limits = mailbus_sieve::Limits {
        max_script_size: config.sieve.max_script_size,
        max_actions: config.sieve.max_actions,
        max_redirects: config.sieve.max_redirects,
        ..mailbus_sieve::Limits::default()
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let service = rpc::MailboxService {
        pool,
        hasher: password::Hasher::new(threads),
        events: events::Events::new(nats, config.names.clone()),
        max_message_size: config.max_message_size,
        quota_full: config.quota_full,
        recipient_delimiter: config.recipient_delimiter,
        deliveries,
        deliver_seconds,
        filter: filter::Filter::new(limits, sieve_errors),
        sieve_quota: rpc::SieveQuota { max_scripts: config.sieve.max_scripts, max_size: config.sieve.max_script_size },
        delivery_batches: group_commit::GroupCommit::new(config.delivery_batch),
        delivery_threads: delivery_threads::DeliveryThreads::new(config.delivery_nice).map_err(StartError::Ops)?,
    };
    // What smtp-ingress and the relay kept from before this start may be out of date.
    let events = service.events.clone();
    tokio::spawn(async move { events.directory_changed().await });
    Ok(Mailbox {
        grpc: mailbus_acceptor::bind(config.grpc_listen).await?,
        ops: mailbus_acceptor::bind(config.metrics_listen).await?,
        service,
        registry,
        database_up,
    })
}

impl Mailbox {
    pub fn grpc_addr(&self) -> SocketAddr {
        mailbus_acceptor::local_addr(&self.grpc)
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        mailbus_acceptor::local_addr(&self.ops)
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight calls finish.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let readiness = Readiness::default();
        readiness.set(true);
        let pool = self.service.pool.clone();
        let max_message = self.service.max_message_size;
        let ops = tokio::spawn(ops::serve(self.ops, Arc::new(self.registry), readiness.clone(), shutdown.clone()));
        let watch = tokio::spawn(watch_database(pool.clone(), readiness, self.database_up, shutdown.clone()));
        let prune = tokio::spawn(prune_changes(pool.clone(), shutdown.clone()));
        // Messages stored before MIME parsing existed; several replicas may run this at once harmlessly.
        let backfill = tokio::spawn(async move {
            match store::parsed::backfill(&pool).await {
                Ok(0) => {}
                Ok(parsed) => tracing::info!(parsed, "parsed messages stored before MIME parsing existed"),
                Err(error) => tracing::warn!(%error, "MIME backfill stopped; it resumes at the next start"),
            }
            match store::parsed::backfill_has_attachment(&pool).await {
                Ok(0) => {}
                Ok(filled) => tracing::info!(filled, "hasAttachment filled for messages parsed before it existed"),
                Err(error) => tracing::warn!(%error, "hasAttachment backfill stopped; it resumes at the next start"),
            }
            match store::parsed::backfill_search_text(&pool).await {
                Ok(0) => {}
                Ok(filled) => tracing::info!(filled, "searchable text made for messages stored before it existed"),
                Err(error) => tracing::warn!(%error, "search text backfill stopped; it resumes at the next start"),
            }
        });
        let routes = Routes::new(DirectoryServer::new(self.service.clone()))
            .add_service(MailboxServer::new(self.service.clone()))
            .add_service(DkimKeysServer::new(self.service.clone()))
            .add_service(SieveServer::new(self.service.clone()))
            // JMAP calls carry up to the http role's maxSizeRequest (MAILBUS_JMAP_MAX_REQUEST_SIZE, at most
            // the message size limit) and may answer more than tonic's default 4 MiB.
            .add_service(
                JmapServer::new(self.service)
                    .max_decoding_message_size(
                        usize::try_from(max_message).unwrap_or(usize::MAX).saturating_add(1 << 20),
                    )
                    .max_encoding_message_size(64 * 1024 * 1024),
            );
        let served = mailbus_grpc::serve(
            self.grpc,
            routes,
            &[
                "mailbus.v1.Directory",
                "mailbus.v1.Mailbox",
                "mailbus.v1.Jmap",
                "mailbus.v1.DkimKeys",
                "mailbus.v1.Sieve",
            ],
            shutdown,
        )
        .await;
        watch.abort();
        prune.abort();
        backfill.abort();
        ops.await.map_err(|e| StartError::Ops(std::io::Error::other(e)))?.map_err(StartError::Ops)?;
        served?;
        Ok(())
    }
}

/// Keeps the JMAP change log to its retention, and drops vacation's memories whose period is over (and
/// follow-ups and delivery records no relay will ask for again), at start-up and then every hour.
async fn prune_changes(pool: sqlx::PgPool, shutdown: CancellationToken) {
    loop {
        match jmap::changes::prune(&pool).await {
            Ok(0) => {}
            Ok(batches) => tracing::info!(batches, "pruned the JMAP change log"),
            Err(error) => tracing::warn!(%error, "pruning the JMAP change log failed; it is tried again in an hour"),
        }
        match store::sieve::prune(&pool).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "pruned vacation's memory and stale Sieve follow-ups"),
            Err(error) => tracing::warn!(%error, "pruning vacation's memory failed; it is tried again in an hour"),
        }
        match store::delivery::prune_records(&pool).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "pruned delivery records past any queue lifetime"),
            Err(error) => tracing::warn!(%error, "pruning delivery records failed; it is tried again in an hour"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// `/readyz` follows the database: a mailbox role that cannot reach PostgreSQL should get no traffic.
async fn watch_database(pool: sqlx::PgPool, readiness: Readiness, up: Gauge<i64>, shutdown: CancellationToken) {
    loop {
        let ok = store::reachable(&pool).await;
        readiness.set(ok);
        up.set(i64::from(ok));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

pub async fn serve(config: MailboxConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    bind(config).await?.serve(shutdown).await
}
