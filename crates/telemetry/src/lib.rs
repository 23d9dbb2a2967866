//! Observability for every role: logs and traces through `tracing` (exported over OTLP when an endpoint
//! is configured), W3C trace-context propagation, and the HTTP endpoint with `/metrics`, `/healthz` and
//! `/readyz`.
//!
//! [`init`] is called once, by the binary, before any role starts. Libraries only create spans and
//! metrics; they never install subscribers. Transport-specific carriers (gRPC metadata, NATS headers)
//! live next to their transports and use [`propagation`].

pub mod metrics;
pub mod ops;
pub mod propagation;
mod subscriber;

pub use subscriber::{LogFormat, Telemetry, init};
