//! The http role: JMAP (RFC 8620 core, RFC 8621 mail) over HTTP. It authenticates the caller (HTTP Basic
//! against the directory, or a bearer token it issued), parses and limits each request, checks every
//! call's `accountId`, resolves result references, and hands each method call to the mailbox role's
//! `mailbus.v1.Jmap` service, one call per RPC. Blobs stream through it both ways, push (EventSource)
//! rides on the mailbox events on NATS, and `EmailSubmission/set` puts mail on the queue exactly as
//! authenticated SMTP submission does: like smtp-ingress, this role enqueues, and only the relay delivers.
//!
//! It keeps no state beyond its connections and a short cache of verified passwords: tokens live in a
//! NATS key-value bucket, everything else in the mailbox role. It never opens PostgreSQL.

mod api;
mod auth;
mod blobs;
mod metrics;
mod problem;
mod push;
mod reference;
mod send_timeout;
mod session;
mod submission;
mod tokens;
mod webmail;

use mailbus_acceptor::local_addr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use mailbus_acceptor::proxy::TrustedProxies;
use mailbus_acceptor::{Admit, Caps, ConnectionLimits, accept_loop};
use mailbus_grpc::TracedChannel;
use mailbus_jetstream::{LoginThrottle, Names, Queue, QueueError, RatePolicy, SubmissionLimits, ThrottlePolicy};
use mailbus_proto::v1::{directory_client::DirectoryClient, jmap_client::JmapClient};
use mailbus_telemetry::ops::{self, Readiness};
use mailbus_tls::ServerTls;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::send_timeout::{SEND_TIMEOUT, SendTimeout};

/// The largest answer to one JMAP method call the http role accepts from the mailbox role.
pub const JMAP_MAX_REPLY: usize = 64 * 1024 * 1024;

/// How long open requests (an upload, an EventSource) get to finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Connections one http process holds, and from one client address. Browsers open six per origin; an
/// EventSource holds one for hours.
const CAPS: Caps = Caps { total: 10_000, per_address: 256 };
/// An HTTP/1.1 answer for a connection over the caps.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Origins allowed to call the API from a browser page (CORS), as `scheme://host[:port]`, comma-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsOrigins(pub Vec<String>);

impl std::str::FromStr for CorsOrigins {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut origins = Vec::new();
        for origin in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.trim_start_matches("https://").trim_start_matches("http://").contains(['/', ' '])
                && http::HeaderValue::from_str(origin).is_ok();
            if !valid {
                return Err(format!("{origin:?} is not an origin like https://webmail.example.org"));
            }
            origins.push(origin.to_owned());
        }
        Ok(CorsOrigins(origins))
    }
}

/// The JMAP limits this role enforces and advertises in the session object (RFC 8620 §2).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_size_upload: u64,
    pub max_size_request: usize,
    /// The largest message (RFC 8621 `maxSizeAttachmentsPerEmail` is derived from it).
    pub max_message_size: u64,
    /// Recipients of one submission, as for SMTP submission (`MAILBUS_MAX_RECIPIENTS`).
    pub max_recipients: usize,
}

/// RFC 8620 §2: `maxCallsInRequest`; Cyrus and Stalwart advertise 16 and more.
pub const MAX_CALLS_IN_REQUEST: usize = 16;
/// RFC 8620 §2: `maxObjectsInGet` and `maxObjectsInSet`.
pub const MAX_OBJECTS_IN_GET: usize = 500;
pub const MAX_OBJECTS_IN_SET: usize = 500;
/// RFC 8620 §2: `maxConcurrentUpload` and `maxConcurrentRequests`, per account and process.
pub const MAX_CONCURRENT_UPLOAD: usize = 4;
pub const MAX_CONCURRENT_REQUESTS: usize = 4;
/// Downloads being sent per account and process. A download holds its blob in the mailbox role and,
/// while its reader is slow, part of the one HTTP/2 connection's window to that replica: a browser
/// opening a message's images stays far below this, a client that opens hundreds and reads none does not.
pub const MAX_CONCURRENT_DOWNLOADS: usize = 32;

/// EventSource connections per account and process. Each holds a task and a receiver, and every change
/// to the account costs each of them a state lookup in the mailbox role: a person's browsers and
/// phones stay far below this, a client that opens them in a loop does not.
pub const MAX_EVENTSOURCES: usize = 64;

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub hostname: String,
    pub mailbox_url: mailbus_grpc::Upstream,
    pub nats_url: String,
    pub names: Names,
    /// Plain HTTP.
    pub listen: SocketAddr,
    /// HTTPS with the roles' certificate; `None` leaves it off.
    pub tls_listen: Option<SocketAddr>,
    pub metrics_listen: SocketAddr,
    pub tls: ServerTls,
    pub proxies: TrustedProxies,
    /// Origins allowed to call from a browser (CORS); empty: none.
    pub cors_origins: CorsOrigins,
    /// The base of the session object's URLs (`https://mail.example.org`); `None`: from the request's Host.
    pub public_url: Option<String>,
    pub limits: Limits,
    pub token_ttl: Duration,
    /// How long a webmail login lasts.
    pub webmail_session_ttl: Duration,
    pub throttle: ThrottlePolicy,
    /// Submission rate limits, counted with SMTP submission's.
    pub rates: RatePolicy,
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

/// What every handler shares.
pub(crate) struct App {
    pub hostname: String,
    pub jmap: JmapClient<TracedChannel>,
    pub auth: auth::Authenticator,
    pub push: push::Push,
    pub queue: Queue,
    pub public_url: Option<String>,
    /// Origins whose pages may call the API (CORS); a change from any other foreign page is refused.
    pub cors_origins: Vec<String>,
    pub limits: Limits,
    /// Messages and recipients per account and client address, shared with SMTP submission.
    pub submission_limits: SubmissionLimits,
    pub metrics: metrics::Metrics,
    pub concurrency: api::Concurrency,
    /// Downloads being sent, per account (`MAX_CONCURRENT_DOWNLOADS`).
    pub downloads: api::Concurrency,
    /// EventSource connections open, per account (`MAX_EVENTSOURCES`).
    pub eventsources: api::Concurrency,
    /// Emails' sanitised documents, recently opened.
    pub rendered: webmail::rendered::RenderCache,
    pub shutdown: CancellationToken,
}

pub struct Http {
    plain: TcpListener,
    tls_listener: Option<TcpListener>,
    ops: TcpListener,
    tls: ServerTls,
    proxies: TrustedProxies,
    cors_origins: Vec<String>,
    app: Arc<App>,
    mailbox: TracedChannel,
    nats: async_nats::Client,
    names: Names,
}

pub async fn bind(config: HttpConfig) -> Result<Http, StartError> {
    let mailbox = mailbus_grpc::connect_upstream(&config.mailbox_url);
    let nats = mailbus_jetstream::connect(&config.nats_url, "mailbus-http").await?;
    let mut jetstream = async_nats::jetstream::new(nats.clone());
    jetstream.set_timeout(config.nats_timeout);
    let throttle = LoginThrottle::open(
        &jetstream,
        (config.names.auth_failures_bucket(), config.names.replicas()),
        config.throttle,
    )
    .await?;
    let tokens = tokens::Tokens::open(
        &jetstream,
        (config.names.http_tokens_bucket(), config.names.replicas()),
        config.token_ttl,
    )
    .await?;
    let sessions = webmail::sessions::Sessions::open(
        &jetstream,
        (config.names.webmail_sessions_bucket(), config.names.replicas()),
        config.webmail_session_ttl,
    )
    .await?;
    let queue = Queue::open(nats.clone(), config.names.clone(), config.nats_timeout).await?;
    let submission_limits = SubmissionLimits::open(
        &jetstream,
        (config.names.submission_rates_bucket(), config.names.replicas()),
        config.rates,
    )
    .await?;
    let directory = DirectoryClient::new(mailbox.clone());
    // A call carries up to maxSizeRequest of arguments, and its answer (Email/get with body values, up
    // to 500 emails) may be larger than tonic's default 4 MiB.
    let jmap = JmapClient::new(mailbox.clone())
        .max_encoding_message_size(config.limits.max_size_request + 64 * 1024)
        .max_decoding_message_size(JMAP_MAX_REPLY);
    let auth = auth::Authenticator::new(directory.clone(), jmap.clone(), throttle, tokens, sessions);
    mailbus_jetstream::follow_directory_changes(nats.clone(), &config.names, auth.forgetter());
    let app = Arc::new(App {
        hostname: config.hostname,
        auth,
        jmap,
        push: push::Push::default(),
        queue,
        public_url: config.public_url.map(|u| u.trim_end_matches('/').to_owned()),
        cors_origins: config.cors_origins.0.clone(),
        limits: config.limits,
        submission_limits,
        metrics: metrics::Metrics::default(),
        concurrency: api::Concurrency::default(),
        downloads: api::Concurrency::default(),
        eventsources: api::Concurrency::default(),
        rendered: webmail::rendered::RenderCache::default(),
        shutdown: CancellationToken::new(),
    });
    Ok(Http {
        plain: mailbus_acceptor::bind(config.listen).await?,
        tls_listener: match config.tls_listen {
            Some(addr) => Some(mailbus_acceptor::bind(addr).await?),
            None => None,
        },
        ops: mailbus_acceptor::bind(config.metrics_listen).await?,
        tls: config.tls,
        proxies: config.proxies,
        cors_origins: config.cors_origins.0,
        app,
        mailbox,
        nats,
        names: config.names,
    })
}

impl Http {
    pub fn http_addr(&self) -> SocketAddr {
        local_addr(&self.plain)
    }

    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.tls_listener.as_ref().map(local_addr)
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        local_addr(&self.ops)
    }

    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let mut registry = Registry::with_prefix("mailbus_http");
        self.app.metrics.register(&mut registry);
        let readiness = Readiness::default();
        tokio::spawn(watch_mailbox(self.mailbox.clone(), readiness.clone(), shutdown.clone()));
        let ops = tokio::spawn(ops::serve(self.ops, Arc::new(registry), readiness, shutdown.clone()));
        // Requests that never end by themselves (EventSource) end when the role stops.
        let app_shutdown = self.app.shutdown.clone();
        let stop_app = shutdown.clone();
        tokio::spawn(async move {
            stop_app.cancelled().await;
            app_shutdown.cancel();
        });
        tokio::spawn(push::listen(self.nats.clone(), self.names.all_mailbox_events(), self.app.clone()));
        let router = router(self.app.clone(), &self.cors_origins);
        let limits = ConnectionLimits::with(CAPS);
        let loops = [Some((self.plain, None)), self.tls_listener.map(|l| (l, Some(self.tls.clone())))]
            .into_iter()
            .flatten()
            .map(|(listener, tls)| {
                let admit = Admit {
                    limits: limits.clone(),
                    refusal: REFUSAL.to_vec(),
                    implicit_tls: tls.clone(),
                    grace: SHUTDOWN_GRACE,
                    proxies: self.proxies.clone(),
                };
                let (router, connection_shutdown) = (router.clone(), shutdown.clone());
                accept_loop(
                    listener,
                    admit,
                    shutdown.clone(),
                    |_| {},
                    move |stream, peer| {
                        serve_connection(stream, peer, tls.clone(), router.clone(), connection_shutdown.clone())
                    },
                )
            })
            .collect::<Vec<_>>();
        futures::future::join_all(loops).await;
        ops.await.map_err(|e| StartError::Ops(std::io::Error::other(e)))?.map_err(StartError::Ops)?;
        Ok(())
    }
}

/// All the role's routes, with CORS, compression and a span per request.
fn router(app: Arc<App>, cors_origins: &[String]) -> Router {
    Router::new()
        .route("/", get(webmail::pages::home))
        .route("/webmail/assets/{name}", get(webmail::pages::asset))
        .route("/webmail/login", post(webmail::login::login).layer(DefaultBodyLimit::max(webmail::FORM_LIMIT)))
        .route("/webmail/logout", post(webmail::login::logout).layer(DefaultBodyLimit::max(webmail::FORM_LIMIT)))
        .route("/webmail/session", get(webmail::login::session))
        .route("/webmail/html/{email}", get(webmail::html::html))
        .route("/.well-known/jmap", get(session::well_known))
        .route("/jmap/session", get(session::session))
        // The API reads its body itself, after login, up to maxSizeRequest (`api::api`).
        .route("/jmap/api", post(api::api))
        .route("/jmap/api/", post(api::api))
        .route("/jmap/upload/{account}", post(blobs::upload).layer(DefaultBodyLimit::disable()))
        .route("/jmap/upload/{account}/", post(blobs::upload).layer(DefaultBodyLimit::disable()))
        .route("/jmap/download/{account}/{blob}/{name}", get(blobs::download))
        .route("/jmap/eventsource", get(push::eventsource))
        .route("/jmap/eventsource/", get(push::eventsource))
        .route("/jmap/token", post(tokens::issue).delete(tokens::revoke))
        .fallback(problem::not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), metrics::observe))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(cors(cors_origins))
        .with_state(app)
}

/// CORS for the configured origins only (RFC 8620 §1.8 expects browsers to call the API). A preflight is
/// answered without credentials; the real request then carries `Authorization`.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allowed: Vec<http::HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([http::Method::GET, http::Method::POST, http::Method::DELETE, http::Method::OPTIONS])
        .allow_headers([http::header::AUTHORIZATION, http::header::CONTENT_TYPE, http::header::ACCEPT])
        .expose_headers([http::header::CONTENT_DISPOSITION, http::header::WWW_AUTHENTICATE])
        .max_age(Duration::from_secs(3600))
}

/// Whether the request came over TLS, for URLs derived from the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Secure(pub bool);

/// One connection: TLS first on the HTTPS listener, then HTTP/1.1 until the client or the role is done.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<ServerTls>,
    router: Router,
    shutdown: CancellationToken,
) {
    let secure = Secure(tls.is_some());
    let service = hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(secure);
        let mut router = router.clone();
        async move {
            let mut response = tower::Service::call(&mut router, request).await?;
            if secure.0 {
                // RFC 6797: a browser that once reached us over TLS never tries plain HTTP again.
                let hsts = http::HeaderValue::from_static("max-age=31536000");
                response.headers_mut().insert(http::header::STRICT_TRANSPORT_SECURITY, hsts);
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    // A client that stops reading a response is let go after SEND_TIMEOUT without progress.
    match tls {
        None => drive(SendTimeout::new(TokioIo::new(stream), SEND_TIMEOUT), service, shutdown).await,
        Some(tls) => match tokio::time::timeout(Duration::from_secs(10), tls.accept(stream)).await {
            Ok(Ok(stream)) => drive(SendTimeout::new(TokioIo::new(stream), SEND_TIMEOUT), service, shutdown).await,
            Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        },
    }
}

async fn drive<IO, S>(io: IO, service: S, shutdown: CancellationToken)
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = axum::response::Response>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(Duration::from_secs(30))
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
        }
    }
}

/// `/readyz` follows the mailbox role: without it no request can be answered.
async fn watch_mailbox(mailbox: TracedChannel, readiness: Readiness, shutdown: CancellationToken) {
    loop {
        readiness.set(mailbus_grpc::is_serving(mailbox.clone(), "mailbus.v1.Jmap").await);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

pub async fn serve(config: HttpConfig, shutdown: CancellationToken) -> Result<(), StartError> {
    bind(config).await?.serve(shutdown).await
}
