//! The whole-stack test harness. It provides, per test binary, one throwaway PostgreSQL cluster and one
//! nats-server (or uses `DATABASE_URL` / `NATS_URL` when given), and per test its own database and NATS
//! name prefix, so tests run in parallel without seeing each other. Roles start in-process on port 0, or
//! as separate `mailbus` processes when a test needs them apart. Clients are real: Python's smtplib and
//! poplib, driven through the scripts in `tests/clients/`.

pub mod bench;
pub mod clients;
pub mod fake_smtp;
pub mod infra;
pub mod stack;

pub use infra::Infra;
pub use stack::{StackBuilder, TestStack};
