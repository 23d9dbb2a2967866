//! The whole-stack test harness. It provides, per test binary, one throwaway PostgreSQL cluster and one
//! nats-server (or uses `DATABASE_URL` / `NATS_URL` when given), and per test its own database and NATS
//! name prefix, so tests run in parallel without seeing each other. Roles start in-process on port 0, or
//! as separate `mailbus` processes when a test needs them apart. Clients are real: Python's smtplib and
//! poplib, driven through the scripts in `tests/clients/`. The benchmarks (`bench/`, the `mailbus-bench`
//! crate) build on it too.

pub mod browser;
pub mod clients;
pub mod dns;
pub mod dovecot;
pub mod fake_smtp;
pub mod http;
pub mod infra;
pub mod processes;
pub mod raw;
pub mod smtp_client;
pub mod stack;

pub use infra::Infra;
pub use stack::{StackBuilder, TestStack};

/// Polls `ready` until it holds, and fails the test with `what` once `limit` has passed. For conditions the
/// test cannot be told about (a port opening, a remote server receiving); it returns as soon as `ready` does.
pub async fn wait_until(limit: std::time::Duration, what: &str, mut ready: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !ready().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} (waited {limit:?})");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
