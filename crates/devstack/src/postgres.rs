//! A PostgreSQL cluster made with initdb, run by `postgres` directly (not pg_ctl, which would detach it
//! from us). As root, the server runs as the `postgres` user, since PostgreSQL refuses to run as root.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::process::{spawn_tied, wait_for_port};

const INSTALL_HINT: &str = "install the PostgreSQL server (`apt-get install postgresql`), point MAILBUS_PG_BIN at its bin directory, or set DATABASE_URL";

/// The directory with initdb and postgres: `MAILBUS_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`.
pub fn find_pg_bin() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MAILBUS_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .with_context(|| format!("no /usr/lib/postgresql: {INSTALL_HINT}"))?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin)| bin).with_context(|| format!("no initdb under /usr/lib/postgresql: {INSTALL_HINT}"))
}

/// The uid and gid to run PostgreSQL as: ourselves, or `postgres` when we are root.
fn server_user() -> anyhow::Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let line = passwd
        .lines()
        .find(|line| line.starts_with("postgres:"))
        .context("running as root, and there is no postgres user to run PostgreSQL as")?;
    let fields: Vec<&str> = line.split(':').collect();
    Ok(Some((fields[2].parse()?, fields[3].parse()?)))
}

pub struct Postgres {
    port: u16,
    data: PathBuf,
    /// Commits wait for their WAL to reach the kernel (`synchronous_commit = on`).
    crash_safe: bool,
    child: Option<Child>,
}

impl Postgres {
    /// Creates a cluster under `dir` and starts it on `port`, trusting local connections as `postgres`.
    /// Tuned for tests: a crash of the server may lose the last commits.
    pub fn start(dir: &Path, port: u16) -> anyhow::Result<Postgres> {
        Self::create(dir, port, false)
    }

    /// Like [`Postgres::start`], for a server that is killed on purpose: a commit returns only once its
    /// WAL is written, so a `kill -9` loses nothing that was committed (a machine crash still could,
    /// since nothing is synced to disk).
    pub fn start_crash_safe(dir: &Path, port: u16) -> anyhow::Result<Postgres> {
        Self::create(dir, port, true)
    }

    fn create(dir: &Path, port: u16, crash_safe: bool) -> anyhow::Result<Postgres> {
        let bin = find_pg_bin()?;
        let user = server_user()?;
        let data = dir.join("data");
        std::fs::create_dir_all(dir)?;
        // The server user must reach its directory through ours.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        std::fs::create_dir_all(&data)?;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&data, Some(uid), Some(gid))?;
        }
        let as_user = |command: &mut Command| {
            if let Some((uid, gid)) = user {
                command.uid(uid).gid(gid);
            }
        };
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"]);
        as_user(&mut initdb);
        let output = initdb.output().context("running initdb")?;
        if !output.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let mut server = Postgres { port, data, crash_safe, child: None };
        server.restart()?;
        Ok(server)
    }

    /// Starts the server (again, after [`Postgres::kill`]) on its port and data directory, and waits
    /// until it accepts sessions.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let bin = find_pg_bin()?;
        let port = self.port;
        let mut postgres = Command::new(bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(&self.data)
            // A throwaway cluster: durability against power loss buys nothing and costs test time.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", if self.crash_safe { "synchronous_commit=on" } else { "synchronous_commit=off" }])
            .args(["-c", "max_connections=400"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = server_user()? {
            postgres.uid(uid).gid(gid);
        }
        let mut child = spawn_tied(postgres)?;
        wait_for_port(&mut child, SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(30), "postgres")?;
        self.child = Some(child);
        // Accepting TCP is not yet accepting sessions; pg_isready knows the difference.
        for _ in 0..300 {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .status()?;
            if ready.success() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("postgres on port {port} never became ready")
    }

    /// A URL for database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server abruptly, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
    }
}
