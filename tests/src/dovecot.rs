//! A throwaway Dovecot (POP3 or IMAP on loopback), for the benchmarks, which measure mailbus side by
//! side with it on the same machine and the same messages, and for the tests that import from a real
//! Dovecot (over IMAPS and STARTTLS, with the harness's certificate). Needs root and the Debian packages
//! dovecot-core with dovecot-pop3d or dovecot-imapd (`deploy/prerequisites` installs dovecot-imapd), and
//! for an instance that also takes mail over LMTP (the benchmarks' Postfix → LMTP → Dovecot path)
//! dovecot-lmtpd.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use mailbus_devstack::free_port;

/// How long Dovecot may take to listen.
const PATIENCE: Duration = Duration::from_secs(120);

/// The owner of Dovecot's maildirs (`nobody`): Dovecot refuses to access mail as root.
const MAIL_UID: u32 = 65534;

/// The protocol the instance serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Pop3,
    Imap,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Pop3 => "pop3",
            Protocol::Imap => "imap",
        }
    }
}

pub fn dovecot_version(protocol: Protocol) -> anyhow::Result<String> {
    #[allow(unsafe_code)]
    // SAFETY: geteuid has no preconditions and touches no memory.
    let euid = unsafe { libc::geteuid() };
    ensure!(euid == 0, "running Dovecot needs root");
    ensure!(Path::new("/usr/sbin/dovecot").is_file(), "/usr/sbin/dovecot not found (Debian package dovecot-core)");
    let daemon = format!("/usr/lib/dovecot/{}", protocol.name());
    ensure!(Path::new(&daemon).is_file(), "{daemon} not found (Debian package dovecot-{}d)", protocol.name());
    let output = std::process::Command::new("/usr/sbin/dovecot").arg("--version").output()?;
    ensure!(output.status.success(), "dovecot --version: {}", output.status);
    Ok(String::from_utf8_lossy(&output.stdout).split_whitespace().next().unwrap_or("?").to_owned())
}

/// A password hash from `doveadm pw`, with its `{SCHEME}` prefix.
pub fn doveadm_pw(scheme: &str, password: &str) -> anyhow::Result<String> {
    let output = std::process::Command::new("doveadm").args(["pw", "-s", scheme, "-p", password]).output()?;
    ensure!(output.status.success(), "doveadm pw: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn run_checked(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status =
        std::process::Command::new(program).args(args).status().with_context(|| format!("running {program}"))?;
    ensure!(status.success(), "{program} {} exited with {status}", args.join(" "));
    Ok(())
}

/// A Dovecot of our own: configuration, passwd-file, maildirs, runtime and state directories and log
/// in a temporary directory, one protocol on one loopback port and nothing else. Stopped on drop.
pub struct ThrowawayDovecot {
    pub dir: tempfile::TempDir,
    conf: PathBuf,
    /// The protocol's port: plain text, or (with TLS) STARTTLS required before a login.
    pub addr: SocketAddr,
    /// With TLS: the implicit-TLS port (IMAPS or POP3S).
    pub tls_addr: Option<SocketAddr>,
    /// With LMTP: the port its `lmtp` service listens on.
    pub lmtp_addr: Option<SocketAddr>,
}

/// A certificate and key (PEM files) for Dovecot to serve.
pub struct Tls<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

impl ThrowawayDovecot {
    /// Users with their `{SCHEME}` password hashes, and each one's messages (already seen).
    pub fn start(
        protocol: Protocol,
        users: &[String],
        hashes: &[String],
        contents: &[Vec<Vec<u8>>],
    ) -> anyhow::Result<ThrowawayDovecot> {
        Self::start_with(protocol, users, hashes, contents, None)
    }

    /// As `start`, and with `tls`: STARTTLS on the protocol's port (required before a login) and
    /// implicit TLS on a second port.
    pub fn start_with(
        protocol: Protocol,
        users: &[String],
        hashes: &[String],
        contents: &[Vec<Vec<u8>>],
        tls: Option<Tls<'_>>,
    ) -> anyhow::Result<ThrowawayDovecot> {
        Self::launch(protocol, users, hashes, contents, tls, None)
    }

    /// IMAP, and LMTP on a second loopback port (`lmtp_addr`) for a mail server to deliver into the
    /// users' empty INBOXes; `settings` are appended to the configuration (`mail_fsync = never`, say).
    pub fn start_imap_lmtp(users: &[String], hashes: &[String], settings: &str) -> anyhow::Result<ThrowawayDovecot> {
        let daemon = "/usr/lib/dovecot/lmtp";
        ensure!(Path::new(daemon).is_file(), "{daemon} not found (Debian package dovecot-lmtpd)");
        let empty = vec![Vec::new(); users.len()];
        Self::launch(Protocol::Imap, users, hashes, &empty, None, Some(settings))
    }

    fn launch(
        protocol: Protocol,
        users: &[String],
        hashes: &[String],
        contents: &[Vec<Vec<u8>>],
        tls: Option<Tls<'_>>,
        lmtp_settings: Option<&str>,
    ) -> anyhow::Result<ThrowawayDovecot> {
        let dir = tempfile::Builder::new().prefix("bench-dovecot-").tempdir()?;
        let root = &dir.path().to_owned();
        // The mail processes run as MAIL_UID and must reach the maildirs.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))?;
        for sub in ["base", "state", "mail"] {
            std::fs::create_dir(root.join(sub))?;
        }
        let mut passwd = String::new();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        for ((user, hash), messages) in users.iter().zip(hashes).zip(contents) {
            let home = root.join("mail").join(user);
            passwd.push_str(&format!("{user}:{hash}:{MAIL_UID}:{MAIL_UID}::{}::\n", home.display()));
            for sub in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(home.join("Maildir").join(sub))?;
            }
            // Already seen, in cur/, with the sizes in the name so Dovecot need not compute them.
            for (n, message) in messages.iter().enumerate() {
                let len = message.len();
                let name = format!("{}.M{n}P{}.bench,S={len},W={len}:2,S", now + n as u64, std::process::id());
                std::fs::write(home.join("Maildir/cur").join(name), message)?;
            }
        }
        std::fs::write(root.join("users"), passwd)?;
        let owner = format!("{MAIL_UID}:{MAIL_UID}");
        run_checked("chown", &["-R", &owner, &root.join("mail").display().to_string()])?;
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let tls_addr: Option<SocketAddr> = match tls {
            Some(_) => Some(format!("127.0.0.1:{}", free_port()?).parse()?),
            None => None,
        };
        let lmtp = match lmtp_settings {
            Some(settings) => Some((format!("127.0.0.1:{}", free_port()?).parse::<SocketAddr>()?, settings)),
            None => None,
        };
        let conf = root.join("dovecot.conf");
        let mut text = dovecot_conf(protocol, lmtp.is_some(), root, addr, tls.as_ref().zip(tls_addr));
        if let Some((lmtp_addr, settings)) = lmtp {
            text.push_str(&lmtp_conf(lmtp_addr, settings));
        }
        std::fs::write(&conf, text)?;
        let dovecot = ThrowawayDovecot { dir, conf, addr, tls_addr, lmtp_addr: lmtp.map(|(addr, _)| addr) };
        run_checked("/usr/sbin/dovecot", &["-c", &dovecot.conf.display().to_string()])
            .with_context(|| format!("starting Dovecot; see {}", root.join("dovecot.log").display()))?;
        let deadline = Instant::now() + PATIENCE;
        for addr in std::iter::once(addr).chain(dovecot.lmtp_addr) {
            while std::net::TcpStream::connect(addr).is_err() {
                ensure!(Instant::now() < deadline, "Dovecot never listened on {addr}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(dovecot)
    }

    fn master_pid(&self) -> Option<u32> {
        let pid = std::fs::read_to_string(self.dir.path().join("base/master.pid")).ok()?;
        pid.trim().parse().ok()
    }

    /// Resident memory of the master and every process it forked (login, auth, pop3, …), summed.
    pub fn print_memory(&self) {
        let Some(master) = self.master_pid() else { return };
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children")).unwrap_or_default();
        let pids = std::iter::once(master).chain(children.split_whitespace().filter_map(|p| p.parse().ok()));
        let rss: Vec<u64> = pids.filter_map(vm_rss_kib).collect();
        let total = (rss.len(), rss.iter().sum::<u64>());
        println!("Dovecot after the load: {} processes, VmRSS {} KiB together", total.0, total.1);
    }
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Drop for ThrowawayDovecot {
    /// Stops the instance and waits (up to ten seconds, then kills it) for its master to exit.
    fn drop(&mut self) {
        let master = self.master_pid();
        if let Err(error) = run_checked("doveadm", &["-c", &self.conf.display().to_string(), "stop"]) {
            eprintln!("stopping the throwaway Dovecot: {error:#}");
        }
        let Some(master) = master else { return };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{master}")).exists() {
            if Instant::now() > deadline {
                let _ = run_checked("kill", &["-9", &master.to_string()]);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One protocol, on `addr` only; without TLS, plaintext logins allowed; with it, STARTTLS required
/// there and implicit TLS on its address; passwd-file users, maildirs, no auth cache (the default), and
/// (for POP3) an exclusive maildrop lock per session like mailbus's.
fn dovecot_conf(
    protocol: Protocol,
    lmtp: bool,
    root: &Path,
    addr: SocketAddr,
    tls: Option<(&Tls<'_>, SocketAddr)>,
) -> String {
    let root = root.display();
    let (ip, port) = (addr.ip(), addr.port());
    let tls_port = tls.map_or(0, |(_, a)| a.port());
    let (pop3_port, imap_port, pop3s_port, imaps_port) = match protocol {
        Protocol::Pop3 => (port, 0, tls_port, 0),
        Protocol::Imap => (0, port, 0, tls_port),
    };
    let ssl = match tls {
        None => "ssl = no\ndisable_plaintext_auth = no".to_owned(),
        Some((tls, _)) => format!(
            "ssl = required\nssl_cert = <{}\nssl_key = <{}\ndisable_plaintext_auth = yes",
            tls.cert.display(),
            tls.key.display()
        ),
    };
    let name = protocol.name();
    let protocols = if lmtp { format!("{name} lmtp") } else { name.to_owned() };
    format!(
        "protocols = {protocols}
listen = {ip}
base_dir = {root}/base
state_dir = {root}/state
instance_name = {name}-bench-{port}
log_path = {root}/dovecot.log
{ssl}
auth_mechanisms = plain
mail_location = maildir:~/Maildir
pop3_lock_session = yes
default_login_user = dovenull
default_internal_user = dovecot
# Folders that exist get these RFC 6154 roles, under names that do not say them in English.
namespace inbox {{
  inbox = yes
  separator = .
  mailbox Gesendet {{
    special_use = \\Sent
  }}
  mailbox Papierkorb {{
    special_use = \\Trash
  }}
}}
passdb {{
  driver = passwd-file
  args = {root}/users
}}
userdb {{
  driver = passwd-file
  args = {root}/users
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {ip}
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    address = {ip}
    port = {pop3s_port}
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {ip}
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = {ip}
    port = {imaps_port}
  }}
}}
"
    )
}

/// Appended to an instance's configuration that has `lmtp` among its protocols: its service listening on `addr` only, delivering as the passwd-file user (RFC 2033 `RCPT TO` is the full address,
/// as the passwd-file names users), then `settings`.
fn lmtp_conf(addr: SocketAddr, settings: &str) -> String {
    let (ip, port) = (addr.ip(), addr.port());
    format!(
        "postmaster_address = postmaster@localhost
service lmtp {{
  inet_listener lmtp {{
    address = {ip}
    port = {port}
  }}
}}
{settings}
"
    )
}
