//! Throwaway PostgreSQL and nats-server processes on free loopback ports, for the test harness and for
//! `mailbus dev`. Nothing here is used by a production role.
//!
//! Each server is a child process that dies with its parent (`PR_SET_PDEATHSIG`), so an aborted test run
//! leaves no servers behind; their data lives in a directory the caller owns.

mod nats;
mod postgres;
mod process;

use std::net::TcpListener;

pub use nats::{Nats, NatsCluster, find_nats_server};
pub use postgres::{Postgres, find_pg_bin};

/// A loopback port that was free a moment ago, for a server another process will bind. It is drawn from
/// below the kernel's ephemeral range (which starts at 32768 by default), so that nothing binding port 0
/// meanwhile (every in-process listener of a test) can be handed the same port before the server takes it.
/// A port is handed out once per process: a replica that is killed and started again keeps its ports, and
/// while it is down another test's servers must not be given them.
pub fn free_port() -> std::io::Result<u16> {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut candidate = seed ^ std::process::id().rotate_left(16);
    for _ in 0..64 {
        // A small xorshift: no dependency for a handful of random numbers.
        candidate ^= candidate << 13;
        candidate ^= candidate >> 17;
        candidate ^= candidate << 5;
        let port = 20_000 + (candidate % 12_000) as u16;
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return Ok(port);
        }
    }
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    handed_out.insert(port);
    Ok(port)
}
