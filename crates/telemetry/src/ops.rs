//! The operations endpoint every role serves over HTTP: `/metrics` (Prometheus text format), `/healthz`
//! (the process is alive) and `/readyz` (the role can do its work: its dependencies answer).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Whether a role is ready to take work. Starts not ready; the role flips it once its dependencies answer.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct Ops {
    registry: Arc<Registry>,
    /// The process-wide metrics, on one endpoint of a process at a time.
    process: Option<Arc<crate::metrics::ProcessClaim>>,
    readiness: Readiness,
}

/// Serves the endpoint on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Ops { registry, process: crate::metrics::claim_process_registry().map(Arc::new), readiness });
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    match encode(&ops) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The role's metrics, then the process-wide ones, under one `# EOF`.
fn encode(ops: &Ops) -> Result<String, std::fmt::Error> {
    let mut body = String::new();
    prometheus_client::encoding::text::encode_registry(&mut body, &ops.registry)?;
    if let Some(process) = &ops.process {
        prometheus_client::encoding::text::encode_registry(&mut body, process.0)?;
    }
    prometheus_client::encoding::text::encode_eof(&mut body)?;
    Ok(body)
}

async fn ready(State(ops): State<Ops>) -> impl IntoResponse {
    if ops.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
