//! gRPC plumbing shared by every role, so each service only says which services it serves or calls.
//!
//! - [`serve`] runs a tonic server with `grpc.health.v1`, reflection, and a span per request whose
//!   parent is the caller's trace (W3C `traceparent` in the request metadata).
//! - [`connect`] builds a client channel that balances over every replica of the role it calls
//!   ([`balance`]), resolving its names again as replicas come and go, sends a failed call again where
//!   that is safe ([`retry`]), and injects the current trace into every request.
//! - Served and failed calls are counted per method (`mailbus_grpc_server_calls_total`,
//!   `mailbus_grpc_client_errors_total`, `mailbus_grpc_client_retries_total`).
//! - [`recipients`] keeps the mailbox role's answers to `ResolveRecipient` for the roles that ask per
//!   message.

pub mod balance;
pub mod recipients;
pub mod retry;
mod tape;
pub mod upstream;

use std::time::Duration;

use http::HeaderMap;
use mailbus_telemetry::propagation::{self, Extractor, Injector};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic_health::ServingStatus;

pub use balance::Balanced;
pub use upstream::Upstream;

#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("invalid gRPC upstream {text:?}: {reason} (expected http://host:port, comma-separated)")]
    Upstream { text: String, reason: &'static str },
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Serves `routes` on `listener`, with health reporting `SERVING` for each of `service_names` (and for
/// the whole server, the empty name), until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    service_names: &[&str],
    shutdown: CancellationToken,
) -> Result<(), GrpcError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in service_names.iter().chain(&[""]) {
        reporter.set_service_status(*name, ServingStatus::Serving).await;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(mailbus_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    Server::builder()
        .trace_fn(request_span)
        .layer(tower::layer::layer_fn(CountServed))
        .add_routes(routes)
        .add_service(health)
        .add_service(reflection)
        // Without TCP_NODELAY a reply that ends in a small segment waits for the peer's delayed ACK: tens of
        // milliseconds on every call whose response spans more than one segment.
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// One span per incoming call, named `package.Service/Method` as OpenTelemetry's RPC conventions ask.
fn request_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path().trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
    );
    propagation::adopt(&span, &HeaderCarrier(request.headers()));
    span
}

struct HeaderCarrier<'a>(&'a HeaderMap);

impl Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// A client channel balancing over a role's replicas, whose requests carry the caller's trace, and whose
/// failed calls are counted.
pub type TracedChannel = CountErrors<InterceptedService<Balanced, InjectTrace>>;

/// Builds a channel to the replicas at `url` (`http://host:port`, or several comma-separated), names
/// resolved again every [`upstream::DEFAULT_RESOLVE_EVERY`]. It connects on first use and reconnects
/// by itself, so a role can start before the service it calls.
pub fn connect(url: &str) -> Result<TracedChannel, GrpcError> {
    Ok(connect_upstream(&url.parse()?))
}

/// Builds a channel to `upstream`'s replicas. Needs a tokio runtime: it spawns the task that resolves
/// and probes them.
pub fn connect_upstream(upstream: &Upstream) -> TracedChannel {
    CountErrors(InterceptedService::new(Balanced::new(upstream, replica_endpoint), InjectTrace))
}

/// How every replica is reached.
pub(crate) fn replica_endpoint(addr: std::net::SocketAddr) -> Endpoint {
    Endpoint::from(http::Uri::try_from(format!("http://{addr}")).expect("a socket address makes a valid URI"))
        .connect_timeout(Duration::from_secs(5))
        // No call may hang a session or hold a queue message forever; a 50 MB body streams well within it.
        .timeout(Duration::from_secs(60))
        // Half-open connections (a peer that vanished without a FIN) are found and replaced.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
        // All calls to one replica share one HTTP/2 connection, whose window is given back only as the
        // caller reads. A reply the caller stops reading (its own client reads a 20 MB FETCH or download
        // slowly) holds at most its stream's window; the connection's is large enough that a few hundred
        // such replies, not three, would hold up every other call to that replica.
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .tcp_nodelay(true)
}

/// Each call's HTTP/2 flow-control window (as hyper's default): what a stalled reply may hold buffered.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// The connection's window: 512 stalled replies' worth.
const CONNECTION_WINDOW: u32 = 512 * STREAM_WINDOW;

/// Whether the server behind `channel` reports `SERVING` for `service` (the empty name asks about the
/// server as a whole), within five seconds. Roles use it for their own readiness.
pub async fn is_serving(channel: TracedChannel, service: &str) -> bool {
    health_check(channel, service, Duration::from_secs(5)).await
}

/// Whether the server behind `channel` answers `SERVING` for `service` within `limit`.
pub(crate) async fn health_check<S>(channel: S, service: &str, limit: Duration) -> bool
where
    S: tonic::client::GrpcService<tonic::body::Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let request = tonic_health::pb::HealthCheckRequest { service: service.to_owned() };
    let reply = tokio::time::timeout(limit, health.check(request)).await;
    matches!(reply, Ok(Ok(reply)) if reply.get_ref().status() == tonic_health::pb::health_check_response::ServingStatus::Serving)
}

/// Counts each call a server receives (`mailbus_grpc_server_calls_total`, by service and method), so
/// each replica's own `/metrics` shows the share of the load it served.
#[derive(Debug, Clone)]
pub struct CountServed<S>(S);

impl<S, B> tower::Service<http::Request<B>> for CountServed<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().trim_start_matches('/');
        let (service, method) = path.split_once('/').unwrap_or((path, ""));
        mailbus_telemetry::metrics::grpc_server_call(service, method);
        self.0.call(request)
    }
}

/// Counts each call that fails (`mailbus_grpc_client_errors_total`): one whose response carries a
/// non-OK `grpc-status` in its headers (how a server answers a call it refuses before any reply
/// message), or that never got a response (`code="transport"`: connection refused, timeout). A status
/// that arrives only in the trailers of a streamed reply is not seen here.
#[derive(Debug, Clone)]
pub struct CountErrors<S>(S);

impl<S, B, R> tower::Service<http::Request<B>> for CountErrors<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let response = self.0.call(request);
        Box::pin(async move {
            let response = response.await;
            let failed = match &response {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .map(|status| tonic::Code::from_bytes(status.as_bytes()))
                    .filter(|code| *code != tonic::Code::Ok)
                    .map(|code| format!("{code:?}")),
                Err(_) => Some("transport".to_owned()),
            };
            if let Some(code) = failed {
                let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((&path, ""));
                mailbus_telemetry::metrics::grpc_client_error(service, method, &code);
            }
            response
        })
    }
}

/// Puts the current span's trace context into each outgoing request's metadata.
#[derive(Debug, Clone, Copy)]
pub struct InjectTrace;

impl tonic::service::Interceptor for InjectTrace {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        propagation::inject(&tracing::Span::current(), &mut MetadataCarrier(request.metadata_mut()));
        Ok(request)
    }
}

struct MetadataCarrier<'a>(&'a mut MetadataMap);

impl Injector for MetadataCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (MetadataKey::from_bytes(key.as_bytes()), MetadataValue::try_from(value)) {
            self.0.insert(key, value);
        }
    }
}
