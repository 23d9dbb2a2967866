//! The benchmarks of mailbus (`src/bin/*-bench.rs`, one per issue's target; `run` runs the side-by-side
//! ones in one command) and what they share: roles of a given (release-built) `mailbus` binary started as
//! separate processes on free loopback ports, over the test harness's PostgreSQL and nats-server
//! ([`mailbus_tests::Infra`]), the harness's lock-step SMTP client, a throwaway Dovecot to measure
//! against ([`dovecot`]), and the arithmetic of the reports. Benchmarks measure and print; they assert
//! nothing, and are not part of `tests/run`. BENCHMARKS.md records their output.
//!
//! Every process started here is a child that dies with the benchmark (`kill_on_drop`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use mailbus_devstack::free_port;
use mailbus_proto::v1 as pb;
use mailbus_tests::Infra;
use mailbus_tests::{infra, processes};

/// The throwaway Dovecot lives in the test harness, which the tests that import from Dovecot share.
pub use mailbus_tests::dovecot;

pub mod fsyncs;
pub mod imap_status;
pub mod postfix;
pub mod rounds;
pub mod smtp_load;

pub use mailbus_tests::smtp_client::{REPLY_TIMEOUT, Reply, SmtpClient};

/// Longest wait for a role to become ready, or for the queue to make progress.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Runs a benchmark to its end, or until Ctrl-C: dropping `run` then drops every child handle and guard,
/// and `kill_on_drop` stops what the benchmark started. Exit status 130 on an interruption, as a shell has.
pub async fn until_interrupted(
    name: &str,
    run: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<std::process::ExitCode> {
    tokio::select! {
        result = run => result.map(|()| std::process::ExitCode::SUCCESS),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("{name}: interrupted; stopping what it started");
            Ok(std::process::ExitCode::from(130))
        }
    }
}

/// Prints the command line, where PostgreSQL and NATS come from, and the machine.
pub fn print_setting(load: &str) {
    print_setting_on(load, &machine());
}

/// [`print_setting`] with the machine described by the caller.
pub fn print_setting_on(load: &str, machine: &str) {
    let command: Vec<String> = std::env::args().collect();
    println!("command: {}", command.join(" "));
    println!("load: {load}");
    for var in ["DATABASE_URL", "NATS_URL"] {
        let given = std::env::var(var).unwrap_or_default();
        println!("{var}: {}", if given.is_empty() { "(none: the harness starts its own)" } else { &given });
    }
    println!("machine: {machine}");
}

/// CPUs, model and load average, in one line.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, m)| m.trim()))
        .unwrap_or("unknown CPU");
    format!("{} CPUs ({model}), load average {}", cpus(), load_average())
}

/// The CPUs this process may use (0 when unknown).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// The 1, 5 and 15 minute load averages, separated by spaces.
pub fn load_average() -> String {
    let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load_average.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// A message of exactly `size` octets: `header` (CRLF line endings, ending with the empty line), then
/// body lines of at most 78 characters plus CRLF. No line starts with "." so no dot-stuffing is needed.
pub fn message_of_size(header: &str, size: usize) -> Vec<u8> {
    let mut message = header.as_bytes().to_vec();
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut line_number = 0;
    while message.len() < size {
        let left = size - message.len();
        // A line is at least CRLF, so never leave a single octet over.
        let line = if left <= 80 {
            left
        } else if left - 80 == 1 {
            79
        } else {
            80
        };
        message.extend((0..line - 2).map(|i| alphabet[(i + line_number) % alphabet.len()]));
        message.extend_from_slice(b"\r\n");
        line_number += 1;
    }
    message
}

/// A program on PATH, or in /usr/sbin or /usr/bin (where Debian puts Postfix's tools and strace).
pub fn installed(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    on_path.chain(["/usr/sbin", "/usr/bin"].map(|dir| Path::new(dir).join(name))).find(|p| p.is_file())
}

/// The process one of whose command-line arguments is exactly `arg` (the first found), for a server
/// started by another library that does not say its pid.
pub fn pid_with_arg(arg: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        cmdline.split(|&b| b == 0).any(|a| a == arg.as_bytes()).then_some(pid)
    })
}

pub fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(f64::EPSILON)
}

/// Nearest-rank percentile of sorted durations.
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------------
// Roles as processes

/// One role of mailbus, as a child process that dies with us.
pub struct Role {
    pub name: &'static str,
    pub child: tokio::process::Child,
    pub log: PathBuf,
}

/// The variable naming a role's `/metrics` `/healthz` `/readyz` listener.
pub fn metrics_var(role: &str) -> anyhow::Result<&'static str> {
    processes::metrics_var(role).with_context(|| format!("no such role: {role}"))
}

/// The roles of one mailbus over the shared PostgreSQL and nats-server, with their own database and NATS
/// prefix, every listener on a free loopback port.
pub struct Stack {
    pub roles: Vec<Role>,
    pub env: HashMap<&'static str, String>,
    mailbus: PathBuf,
    logs: PathBuf,
}

impl Stack {
    /// Starts `roles` in this order, each once the one before is ready. `settings` are added to (or
    /// override) the defaults: loopback listeners, the harness's certificate, `RUST_LOG=warn`, and the
    /// per-address connection caps lifted to the total caps (every benchmark client comes from
    /// 127.0.0.1, where production clients come from many addresses).
    pub async fn start(
        mailbus: &Path,
        roles: &[&'static str],
        settings: &[(&'static str, String)],
    ) -> anyhow::Result<Stack> {
        let infra = tokio::task::spawn_blocking(Infra::get).await.context("starting PostgreSQL and nats-server")?;
        let prefix = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let mut env: HashMap<&'static str, String> = HashMap::from([
            ("DATABASE_URL", infra.create_database().await),
            ("NATS_URL", infra.nats_url().to_owned()),
            ("MAILBUS_NATS_PREFIX", prefix),
            ("MAILBUS_HOSTNAME", "mx.bench.test".into()),
            ("MAILBUS_TLS_CERT", infra.tls_cert.display().to_string()),
            ("MAILBUS_TLS_KEY", infra.tls_key.display().to_string()),
            ("RUST_LOG", "warn".into()),
        ]);
        for (per_address, total) in [
            ("MAILBUS_SMTP_MAX_CONNECTIONS_PER_IP", "MAILBUS_SMTP_MAX_CONNECTIONS"),
            ("MAILBUS_SUBMISSION_MAX_CONNECTIONS_PER_IP", "MAILBUS_SUBMISSION_MAX_CONNECTIONS"),
            ("MAILBUS_IMAP_MAX_CONNECTIONS_PER_IP", "MAILBUS_IMAP_MAX_CONNECTIONS"),
            ("MAILBUS_POP3_MAX_CONNECTIONS_PER_IP", "MAILBUS_POP3_MAX_CONNECTIONS"),
        ] {
            let total = settings.iter().find(|(name, _)| *name == total).map_or("1000", |(_, v)| v.as_str());
            env.insert(per_address, total.to_owned());
        }
        for var in mailbus::settings::VARS.iter().filter(|v| v.name.ends_with("_LISTEN")) {
            env.insert(var.name, format!("127.0.0.1:{}", free_port()?));
        }
        // No benchmark asks the real DNS; one that measures sender authentication sets its own resolver.
        for (name, value) in mailbus_tests::stack::NO_SENDER_AUTH {
            env.insert(name, value.to_string());
        }
        env.insert("MAILBUS_MAILBOX_URL", format!("http://{}", env["MAILBUS_MAILBOX_GRPC_LISTEN"]));
        env.insert("MAILBUS_RELAY_URL", format!("http://{}", env["MAILBUS_RELAY_GRPC_LISTEN"]));
        // A setting in the benchmark's own environment reaches the roles (`MAILBUS_DELIVERY_NICE=0
        // smtp-bench ...` measures without it), except the listeners and URLs, which are the bench's.
        for var in mailbus::settings::VARS.iter().filter(|v| !v.name.ends_with("_LISTEN") && !v.name.ends_with("_URL"))
        {
            if let Ok(value) = std::env::var(var.name) {
                env.insert(var.name, value);
            }
        }
        env.extend(settings.iter().cloned());
        let logs = infra::scratch_dir().join("bench-logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        println!("role logs (RUST_LOG={}): {}", env["RUST_LOG"], logs.display());
        let mut stack = Stack { roles: Vec::new(), env, mailbus: mailbus.to_owned(), logs };
        for role in roles {
            stack.start_role(role).await?;
        }
        Ok(stack)
    }

    /// Starts one more role and waits until its `/readyz` answers 200; returns when that was seen.
    pub async fn start_role(&mut self, name: &'static str) -> anyhow::Result<Instant> {
        let log = self.logs.join(format!("{name}.log"));
        // The roles log to stdout; both streams go to the file.
        let stdout = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let stderr = stdout.try_clone()?;
        let child = tokio::process::Command::new(&self.mailbus)
            .arg(name)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {name}", self.mailbus.display()))?;
        let mut role = Role { name, child, log };
        let ready = wait_ready(&mut role, self.addr(metrics_var(name)?)?).await?;
        self.roles.push(role);
        Ok(ready)
    }

    /// The address a `*_LISTEN` variable was given.
    pub fn addr(&self, var: &str) -> anyhow::Result<SocketAddr> {
        let value = self.env.get(var).with_context(|| format!("{var} is not set"))?;
        value.parse().with_context(|| format!("{var}={value}"))
    }

    pub fn pid(&self, name: &str) -> Option<u32> {
        self.roles.iter().find(|r| r.name == name)?.child.id()
    }

    pub async fn directory(&self) -> anyhow::Result<pb::directory_client::DirectoryClient<tonic::transport::Channel>> {
        Ok(pb::directory_client::DirectoryClient::connect(self.env["MAILBUS_MAILBOX_URL"].clone()).await?)
    }

    pub async fn queue_status(&self) -> anyhow::Result<pb::QueueStatusResponse> {
        let url = self.env["MAILBUS_RELAY_URL"].clone();
        let mut admin = pb::queue_admin_client::QueueAdminClient::connect(url).await?;
        Ok(admin.queue_status(pb::QueueStatusRequest {}).await.context("QueueStatus")?.into_inner())
    }

    pub async fn mailbox_count(&self, account_id: i64) -> anyhow::Result<usize> {
        let url = self.env["MAILBUS_MAILBOX_URL"].clone();
        let mut mailbox = pb::mailbox_client::MailboxClient::connect(url).await?;
        let request = pb::ListMessagesRequest { account_id, mailbox: "INBOX".into() };
        Ok(mailbox.list_messages(request).await.context("ListMessages")?.into_inner().messages.len())
    }

    /// The lines of a role's `/metrics` that start with `prefix`.
    pub async fn metrics(&self, role: &str, prefix: &str) -> Vec<String> {
        let Ok(addr) = metrics_var(role).and_then(|var| self.addr(var)) else { return Vec::new() };
        let metrics = http_get(addr, "/metrics").await.unwrap_or_default();
        metrics.lines().filter(|l| l.starts_with(prefix)).map(str::to_owned).collect()
    }

    /// Resident memory of every role, now and at its peak.
    pub fn print_memory(&self) {
        for role in &self.roles {
            let Some(pid) = role.child.id() else { continue };
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let field = |name: &str| status_field(&status, name).map_or("?".into(), |kib| format!("{kib} KiB"));
            println!("{:<13} VmRSS {:>10}   VmHWM (peak) {:>10}", role.name, field("VmRSS"), field("VmHWM"));
        }
    }

    /// What the roles logged at warn and above: the number of lines, and the most frequent kinds.
    pub fn print_log_summary(&self) {
        for role in &self.roles {
            let log = std::fs::read_to_string(&role.log).unwrap_or_default();
            let mut kinds: HashMap<String, usize> = HashMap::new();
            for line in log.lines().filter(|l| !l.trim().is_empty()) {
                *kinds.entry(log_kind(line)).or_default() += 1;
            }
            let total: usize = kinds.values().sum();
            println!("{} log: {total} lines at warn or above", role.name);
            let mut kinds: Vec<(String, usize)> = kinds.into_iter().collect();
            kinds.sort_by_key(|kind| std::cmp::Reverse(kind.1));
            for (kind, count) in kinds.iter().take(5) {
                println!("  {count} x {kind}");
            }
        }
    }
}

/// A log line without its colours, time stamp and hexadecimal ids, so that lines of one kind compare equal.
pub fn log_kind(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An ANSI colour sequence: ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let without_time = plain.split_once(' ').map_or(plain.as_str(), |(_, rest)| rest).trim();
    without_time
        .split(' ')
        .map(|word| {
            let hex = word.chars().filter(char::is_ascii_hexdigit).count();
            if hex >= 16 { "<id>" } else { word }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Polls the role's `/readyz` every 20 ms until it answers 200 and returns when it did; fails if the
/// role exits first.
pub async fn wait_ready(role: &mut Role, metrics: SocketAddr) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = role.child.try_wait()? {
            bail!("{} exited with {status} during start-up; see {}", role.name, role.log.display());
        }
        if http_get(metrics, "/readyz").await.is_some() {
            return Ok(Instant::now());
        }
        ensure!(Instant::now() < deadline, "{} not ready after {PATIENCE:?}; see {}", role.name, role.log.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The body of a `200 OK` answer to a plain HTTP/1.1 GET, or `None`.
/// The body of a 200 answer to a GET of `path`.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let (status, body) = processes::http_get(addr, path).await?;
    (status == processes::OK).then_some(body)
}

pub fn status_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(':'))?;
    line[name.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status_field(&status, "VmRSS").with_context(|| format!("no VmRSS in {path}"))
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((status_field(&status, "VmRSS")?, status_field(&status, "VmHWM")?))
}
