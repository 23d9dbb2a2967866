//! The role's metrics (`mailbus_http_*`) and the span every request runs in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use mailbus_telemetry::metrics::latency_histogram;
use mailbus_telemetry::propagation::{self, Extractor};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing::Instrument;

use crate::App;

type Labels = Vec<(&'static str, String)>;

#[derive(Clone)]
pub struct Metrics {
    requests: Family<Labels, Counter>,
    request_seconds: Family<Labels, Histogram>,
    jmap_calls: Family<Labels, Counter>,
    jmap_call_seconds: Family<Labels, Histogram>,
    eventsource_open: Gauge,
    /// EmailSubmission creations refused by a submission rate limit, by limit.
    rate_limited: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            jmap_calls: Family::default(),
            jmap_call_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            eventsource_open: Gauge::default(),
            rate_limited: Family::default(),
        }
    }
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register("requests", "HTTP requests by endpoint and status", self.requests.clone());
        registry.register(
            "request_duration_seconds",
            "Time to answer an HTTP request (to the response head), by endpoint",
            self.request_seconds.clone(),
        );
        registry.register("jmap_calls", "JMAP method calls by method and outcome", self.jmap_calls.clone());
        registry.register(
            "jmap_call_duration_seconds",
            "Time to answer one JMAP method call, by method",
            self.jmap_call_seconds.clone(),
        );
        registry.register("eventsource_open", "Open EventSource (push) connections", self.eventsource_open.clone());
        // Every limit starts at 0, so its series exists (and rate() works) before the first refusal.
        for limit in mailbus_jetstream::Limit::ALL {
            drop(self.rate_limited.get_or_create(&vec![("limit", limit.label().to_owned())]));
        }
        registry.register(
            "rate_limited",
            "EmailSubmission creations refused (forbiddenToSend) by a submission rate limit, by limit",
            self.rate_limited.clone(),
        );
    }

    pub fn rate_limited(&self, limit: mailbus_jetstream::Limit) {
        self.rate_limited.get_or_create(&vec![("limit", limit.label().to_owned())]).inc();
    }

    pub fn jmap_call(&self, method: &str, outcome: &str, elapsed: Duration) {
        // Method names come from clients: only known ones become labels, so a client cannot grow the set.
        let method = if crate::api::capability(method).is_some() { method } else { "other" };
        self.jmap_calls.get_or_create(&vec![("method", method.to_owned()), ("outcome", outcome.to_owned())]).inc();
        self.jmap_call_seconds.get_or_create(&vec![("method", method.to_owned())]).observe(elapsed.as_secs_f64());
    }

    pub fn eventsource_opened(&self) -> OpenGuard {
        self.eventsource_open.inc();
        OpenGuard(self.eventsource_open.clone())
    }
}

/// An open EventSource; dropping it counts it closed.
pub struct OpenGuard(Gauge);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A span per request (a child of the caller's trace, if it sent one) and the request metrics.
pub async fn observe(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let endpoint = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let endpoint = endpoint.unwrap_or_else(|| "other".to_owned());
    let method = request.method().clone();
    let span = tracing::info_span!(
        "http.server",
        otel.name = %format!("{method} {endpoint}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %endpoint,
        http.response.status_code = tracing::field::Empty,
    );
    propagation::adopt(&span, &HeaderCarrier(request.headers()));
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    app.metrics.requests.get_or_create(&vec![("endpoint", endpoint.clone()), ("status", status.to_string())]).inc();
    app.metrics.request_seconds.get_or_create(&vec![("endpoint", endpoint)]).observe(started.elapsed().as_secs_f64());
    response
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
