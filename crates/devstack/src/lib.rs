//! Throwaway PostgreSQL and nats-server processes on free loopback ports, for the test harness and for
//! `mailbus dev`. Nothing here is used by a production role.
//!
//! Each server is a child process that dies with its parent (`PR_SET_PDEATHSIG`), so an aborted test run
//! leaves no servers behind; their data lives in a directory the caller owns.

mod nats;
mod postgres;
mod process;

use std::net::TcpListener;

pub use nats::{Nats, find_nats_server};
pub use postgres::{Postgres, find_pg_bin};

/// A loopback port that was free a moment ago. The servers we start bind it right away; a clash is
/// possible in principle and shows as a start-up failure, not as wrong results.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
