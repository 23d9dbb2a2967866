//! Postfix for the side-by-side runs: a throwaway instance of Debian's Postfix (root needed), and its test
//! tools `smtp-sink` and `smtp-source`. An instance has its configuration, queue and log in a temporary
//! directory and smtpd on one loopback port; every recipient in bench.test is accepted and handed to the
//! discard transport (to measure acceptance alone) or over LMTP to a Dovecot (the peer path end to end).
//! Postfix's own durability is left at its default: cleanup fsyncs each queue file before smtpd answers
//! 250, and no setting turns that off.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use mailbus_devstack::free_port;
use tokio::net::TcpStream;

use crate::PATIENCE;

/// Where a throwaway Postfix hands its mail.
#[derive(Debug, Clone, Copy)]
pub enum Delivery {
    /// The discard transport: the message is dropped once queued.
    Discard,
    /// LMTP to this address (Dovecot's `lmtp` service), Postfix's `lmtp:inet:` transport with its
    /// default concurrency.
    Lmtp(SocketAddr),
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and touches no memory.
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    euid == 0
}

/// `postconf -d mail_version`, or "?".
pub fn version() -> String {
    std::process::Command::new("/usr/sbin/postconf")
        .args(["-d", "-h", "mail_version"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map_or("?".into(), |output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A Postfix instance of our own, stopped on drop.
pub struct ThrowawayPostfix {
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl ThrowawayPostfix {
    /// Starts the instance for `domain` and waits until its smtpd listens.
    pub async fn start(domain: &str, delivery: Delivery) -> anyhow::Result<ThrowawayPostfix> {
        ensure!(is_root(), "starting Postfix needs root");
        ensure!(Path::new("/usr/sbin/postfix").is_file(), "/usr/sbin/postfix not found (Debian package postfix)");
        let dir = tempfile::Builder::new().prefix("bench-postfix-").tempdir()?;
        let root = dir.path();
        for sub in ["etc", "queue", "data"] {
            std::fs::create_dir(root.join(sub))?;
        }
        // Postfix's daemons run as the postfix user and must reach the queue and data directories.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))?;
        run_checked("chown", &["postfix", &root.join("data").display().to_string()])?;
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        std::fs::write(root.join("etc/main.cf"), main_cf(root, domain, delivery))?;
        std::fs::write(root.join("etc/master.cf"), master_cf(addr))?;
        let postfix = ThrowawayPostfix { dir, addr };
        run_checked("/usr/sbin/postfix", &["-c", &postfix.config_dir(), "start"])
            .with_context(|| format!("starting Postfix; see {}", postfix.log().display()))?;
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(addr).await.is_err() {
            ensure!(Instant::now() < deadline, "Postfix smtpd never listened on {addr}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(postfix)
    }

    fn config_dir(&self) -> String {
        self.dir.path().join("etc").display().to_string()
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("maillog")
    }

    /// The master's pid and those of the daemons it runs now (smtpd, cleanup, qmgr, ...); empty when
    /// the master's pid file cannot be read.
    pub fn pids(&self) -> Vec<u32> {
        let pid_file = self.dir.path().join("queue/pid/master.pid");
        let Some(master) = std::fs::read_to_string(pid_file).ok().and_then(|pid| pid.trim().parse::<u32>().ok()) else {
            return Vec::new();
        };
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children")).unwrap_or_default();
        std::iter::once(master).chain(children.split_whitespace().filter_map(|pid| pid.parse().ok())).collect()
    }

    /// Messages in the queue: files under maildrop, incoming, active and deferred.
    pub fn queued(&self) -> usize {
        let queue = self.dir.path().join("queue");
        ["maildrop", "incoming", "active", "deferred"].iter().map(|sub| files_under(&queue.join(sub))).sum()
    }

    /// Waits (polling every 100 ms, at most `limit`) until the queue is empty; false if it never was.
    pub async fn wait_empty(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.queued() > 0 {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    }
}

fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => files_under(&entry.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

impl Drop for ThrowawayPostfix {
    /// Stops the instance and waits (up to ten seconds) for its master to exit before the directory goes.
    fn drop(&mut self) {
        let pid_file = self.dir.path().join("queue/pid/master.pid");
        let master = std::fs::read_to_string(pid_file).ok().and_then(|pid| pid.trim().parse::<u32>().ok());
        if let Err(error) = run_checked("/usr/sbin/postfix", &["-c", &self.config_dir(), "stop"]) {
            eprintln!("stopping the throwaway Postfix: {error:#}");
        }
        let Some(master) = master else { return };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{master}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn run_checked(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = std::process::Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {program}"))?;
    ensure!(status.success(), "{program} {} exited with {status}", args.join(" "));
    Ok(())
}

/// Every recipient in `domain` is local and accepted (empty `local_recipient_maps`), and the local
/// transport is the chosen delivery; nothing is relayed elsewhere.
fn main_cf(root: &Path, domain: &str, delivery: Delivery) -> String {
    let root = root.display();
    let local_transport = match delivery {
        Delivery::Discard => "discard".to_owned(),
        Delivery::Lmtp(addr) => format!("lmtp:inet:{}:{}", addr.ip(), addr.port()),
    };
    format!(
        "compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = postfix.{domain}
mydomain = {domain}
mydestination = {domain}
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
local_transport = {local_transport}
default_transport = discard
relay_transport = discard
biff = no
"
    )
}

/// Only the services a queueing Postfix needs; none chrooted, smtpd on `addr` only.
fn master_cf(addr: SocketAddr) -> String {
    format!(
        "{addr} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"
    )
}

/// Postfix's `smtp-sink` on a loopback port: answers 250 at once and keeps nothing, the ceiling of a
/// load generator and loopback TCP. Killed on drop.
pub struct SmtpSink {
    _child: tokio::process::Child,
    pub addr: SocketAddr,
}

impl SmtpSink {
    /// `None` when smtp-sink is not installed.
    pub async fn start() -> anyhow::Result<Option<SmtpSink>> {
        let Some(tool) = crate::installed("smtp-sink") else { return Ok(None) };
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut command = tokio::process::Command::new(&tool);
        // As root it must be told whose privileges to drop to.
        if is_root() {
            command.args(["-u", "postfix"]);
        }
        let child = command
            .arg(format!("{addr}"))
            .arg("1024")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", tool.display()))?;
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(addr).await.is_err() {
            ensure!(Instant::now() < deadline, "smtp-sink never listened on {addr}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Some(SmtpSink { _child: child, addr }))
    }
}
