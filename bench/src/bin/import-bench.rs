//! `import-bench`: how fast `mailbus admin mail import` brings mail in (issue 22), from a local Maildir
//! and from a live IMAP server, next to Dovecot's own tools on the same data. A benchmark, not a test:
//! it measures and prints, and asserts nothing; BENCHMARKS.md records its output with the command that
//! produced it.
//!
//! It writes one Maildir of N messages (Dovecot's Maildir++ layout: INBOX and three folders, flags in
//! the file names, internal dates as mtimes; sizes mostly 2–20 KiB, some 20–100 KiB and a few of
//! 100–600 KiB) straight into the home of a throwaway Dovecot's user, so Dovecot serves it as it is and
//! filling the source costs nothing. It starts PostgreSQL and nats-server through the test harness and
//! `mailbus mailbox` from the given binary, then times, each into a fresh account or user:
//! - `mailbus admin mail import --maildir` of that directory;
//! - `mailbus admin mail import --imap-host` from the Dovecot over IMAPS (Dovecot's first look at the
//!   Maildir, so its index building is in this figure);
//! - `doveadm import` of the same Maildir into a second Dovecot user;
//! - `doveadm backup` of the source user into a new Maildir (dsync, Dovecot's server-to-server copy);
//! - a second `--maildir` run into the first account, which must add nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, ensure};
use clap::Parser;
use mailbus_bench::dovecot::{Protocol, ThrowawayDovecot, Tls, dovecot_version};
use mailbus_bench::{self as bench, Stack, rate};
use mailbus_proto::v1 as pb;

const DOMAIN: &str = "bench.test";
const SOURCE_USER: &str = "src@source.test";
const DOVEADM_USER: &str = "copy@source.test";
const DOVEADM_COPYING_USER: &str = "copy2@source.test";
const SOURCE_PASSWORD: &str = "source";
/// The source's folders (Maildir++ directory, or "" for INBOX) and the share of the messages in each.
const FOLDERS: &[(&str, usize)] = &[("", 60), (".Archive", 25), (".Lists.rust", 10), (".Sent", 5)];

#[derive(Parser, Debug)]
#[command(about = "Measures mailbus admin mail import from a Maildir and from Dovecot, next to doveadm")]
struct Args {
    /// The (release-built) mailbus binary to run the mailbox role and `admin` from.
    mailbus: PathBuf,
    /// Messages in the source.
    #[arg(long, default_value_t = 5000)]
    messages: usize,
    /// Skip Dovecot (and so the IMAP import and the doveadm figures).
    #[arg(long)]
    no_dovecot: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    ensure!(args.messages > 0, "--messages must be positive");
    bench::until_interrupted("import-bench", run(args)).await
}

/// A small deterministic generator (xorshift64*), so every run writes the same mail.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Octets of one message: 85% 2–20 KiB, 12% 20–100 KiB, 3% 100–600 KiB.
fn size(dice: &mut Dice) -> usize {
    let kib = match dice.below(100) {
        0..85 => 2 + dice.below(18),
        85..97 => 20 + dice.below(80),
        _ => 100 + dice.below(500),
    };
    (kib * 1024 + dice.below(1024)) as usize
}

/// Maildir flag letters: most read, some flagged or answered, a few drafts.
fn flags(dice: &mut Dice) -> &'static str {
    match dice.below(100) {
        0..60 => "S",
        60..70 => "RS",
        70..75 => "FS",
        75..78 => "D",
        _ => "",
    }
}

/// The source: `messages` files under `maildir`, owned by Dovecot's mail user. Returns the octets.
fn write_maildir(maildir: &Path, messages: usize) -> anyhow::Result<u64> {
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    let total_share: usize = FOLDERS.iter().map(|(_, share)| share).sum();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs();
    let mut bytes = 0;
    let mut n = 0;
    for (i, (folder, share)) in FOLDERS.iter().enumerate() {
        let dir = maildir.join(folder);
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let count = if i + 1 == FOLDERS.len() { messages - n } else { messages * share / total_share };
        for _ in 0..count {
            // Spread over the last three years, one message about every five hours.
            let date = now - 3 * 365 * 86400 + (n as u64 * 17_911) % (3 * 365 * 86400);
            let header = format!(
                "Date: {}\r\nFrom: Sender {n} <sender{}@example.net>\r\nTo: src@source.test\r\nSubject: message {n} of the import benchmark\r\nMessage-ID: <{n}.import-bench@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
                chrono_like(date),
                n % 97
            );
            let message = bench::message_of_size(&header, size(&mut dice));
            let len = message.len();
            let name = format!("{date}.M{n}P1.bench,S={len},W={len}:2,{}", flags(&mut dice));
            let path = dir.join("cur").join(name);
            std::fs::write(&path, &message)?;
            let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(date);
            std::fs::File::options().write(true).open(&path)?.set_modified(mtime)?;
            bytes += len as u64;
            n += 1;
        }
    }
    let status = std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(maildir).status()?;
    ensure!(status.success(), "chown of {}: {status}", maildir.display());
    Ok(bytes)
}

/// An RFC 5322 date for seconds since the epoch, in UTC, without a date library.
fn chrono_like(seconds: u64) -> String {
    let days = seconds / 86400;
    let (hh, mm, ss) = ((seconds % 86400) / 3600, (seconds % 3600) / 60, seconds % 60);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    format!("{weekday}, {day} {} {year} {hh:02}:{mm:02}:{ss:02} +0000", names[(month - 1) as usize])
}

/// One timed run of a command: its time, the CPU time it used, and its output.
struct Timed {
    elapsed: Duration,
    cpu: Duration,
    stdout: String,
}

/// User and system CPU time of the children this process has waited for.
fn children_cpu() -> Duration {
    #[allow(unsafe_code)]
    // SAFETY: getrusage writes only into the struct it is given, which is zeroed and ours.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// User and system CPU time of a running process, from `/proc/PID/stat` (in clock ticks of 10 ms).
fn process_cpu(pid: Option<u32>) -> Duration {
    let Some(pid) = pid else { return Duration::ZERO };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the name (field 2, in parentheses) come field 3 (the state), 4, …: utime is 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis(10 * (field(14) + field(15)))
}

async fn timed(command: &mut tokio::process::Command, what: &str) -> anyhow::Result<Timed> {
    let started = Instant::now();
    let cpu_before = children_cpu();
    let output = command.kill_on_drop(true).output().await.with_context(|| format!("running {what}"))?;
    let elapsed = started.elapsed();
    let cpu = children_cpu().saturating_sub(cpu_before);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(output.status.success(), "{what}: {}\n{stdout}{}", output.status, String::from_utf8_lossy(&output.stderr));
    Ok(Timed { elapsed, cpu, stdout })
}

/// The messages of every mailbox of a Dovecot user, summed (`doveadm mailbox status`).
async fn doveadm_count(conf: &str, user: &[&str]) -> anyhow::Result<usize> {
    let mut status = tokio::process::Command::new("doveadm");
    status.args(["-c", conf, "-f", "flow", "mailbox", "status"]).args(user).args(["messages", "*"]);
    let output = timed(&mut status, "doveadm mailbox status").await?.stdout;
    Ok(output.split_whitespace().filter_map(|w| w.strip_prefix("messages=")?.parse::<usize>().ok()).sum())
}

/// Files in the `cur/` and `new/` directories under a Maildir.
fn count_files(maildir: &Path) -> anyhow::Result<usize> {
    let mut count = 0;
    for entry in std::fs::read_dir(maildir)? {
        let path = entry?.path();
        if path.is_dir() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name == "cur" || name == "new" {
                count += std::fs::read_dir(&path)?.count();
            } else if name.starts_with('.') {
                count += count_files(&path)?;
            }
        }
    }
    Ok(count)
}

/// The summary line `mailbus admin mail import` ends with.
fn summary(stdout: &str) -> &str {
    stdout.lines().rev().find(|l| l.contains("messages ")).unwrap_or("(no summary)")
}

/// One line of the table: time, rates, the command's CPU time and (for ours) the mailbox role's.
fn print_rate(table: &mut Vec<String>, label: &str, messages: usize, bytes: u64, run: &Timed, role: Option<Duration>) {
    let elapsed = run.elapsed;
    let role = role.map_or("-".to_owned(), |cpu| format!("{:.1} s", cpu.as_secs_f64()));
    let line = format!(
        "{label:<56} {:>6.1} s {:>7.0} msg/s {:>6.1} MB/s   CPU: command {:>5.1} s, mailbox role {role:>7}",
        elapsed.as_secs_f64(),
        rate(messages, elapsed),
        bytes as f64 / 1e6 / elapsed.as_secs_f64().max(f64::EPSILON),
        run.cpu.as_secs_f64(),
    );
    println!("{line}");
    table.push(line);
}

async fn run(args: Args) -> anyhow::Result<()> {
    bench::print_setting(&format!(
        "{} messages in INBOX and three folders, mostly 2–20 KiB, some to 600 KiB",
        args.messages
    ));
    let infra = tokio::task::spawn_blocking(mailbus_tests::Infra::get).await?;
    let dovecot_version =
        if args.no_dovecot { Err(anyhow::anyhow!("--no-dovecot")) } else { dovecot_version(Protocol::Imap) };
    // The source: the Dovecot user's own Maildir, or a directory of ours without Dovecot.
    let (dovecot, scratch, maildir) = match &dovecot_version {
        Ok(version) => {
            let tls = Tls { cert: &infra.tls_cert, key: &infra.tls_key };
            let users = [SOURCE_USER, DOVEADM_USER, DOVEADM_COPYING_USER].map(str::to_owned);
            let hashes = vec![format!("{{PLAIN}}{SOURCE_PASSWORD}"); users.len()];
            let empty = vec![Vec::new(); users.len()];
            let dovecot = ThrowawayDovecot::start_with(Protocol::Imap, &users, &hashes, &empty, Some(tls))?;
            println!("Dovecot {version} in {}", dovecot.dir.path().display());
            let maildir = dovecot.dir.path().join("mail").join(SOURCE_USER).join("Maildir");
            (Some(dovecot), None, maildir)
        }
        Err(error) => {
            println!("Dovecot: not measured: {error:#}");
            let scratch = tempfile::Builder::new().prefix("import-bench-").tempdir()?;
            let maildir = scratch.path().join("Maildir");
            (None, Some(scratch), maildir)
        }
    };
    let started = Instant::now();
    let bytes = write_maildir(&maildir, args.messages)?;
    println!(
        "source: {} messages, {:.1} MB in {} (written in {:.1} s)",
        args.messages,
        bytes as f64 / 1e6,
        maildir.display(),
        started.elapsed().as_secs_f64()
    );

    let stack = Stack::start(&args.mailbus, &["mailbox"], &[]).await?;
    let mut directory = stack.directory().await?;
    directory.add_domain(pb::AddDomainRequest { name: DOMAIN.into() }).await.context("AddDomain")?;
    for user in ["maildir", "imap"] {
        let account = pb::AddAccountRequest { address: format!("{user}@{DOMAIN}"), password: "bench".into() };
        directory.add_account(account).await.context("AddAccount")?;
    }
    let mailbus = args.mailbus.clone();
    let admin = |words: &[&str]| {
        let mut command = tokio::process::Command::new(&mailbus);
        command
            .arg("admin")
            .args(words)
            .env_clear()
            .env("MAILBUS_MAILBOX_URL", &stack.env["MAILBUS_MAILBOX_URL"])
            .env("SOURCE_IMAP_PASSWORD", SOURCE_PASSWORD);
        command
    };
    let mut table = Vec::new();
    let path = maildir.display().to_string();
    let address = format!("maildir@{DOMAIN}");
    println!();
    let role_cpu = || process_cpu(stack.pid("mailbox"));
    let before = role_cpu();
    let first = timed(&mut admin(&["mail", "import", &address, "--maildir", &path]), "import --maildir").await?;
    println!("{}", summary(&first.stdout));
    let role = Some(role_cpu() - before);
    print_rate(&mut table, "mailbus admin mail import --maildir", args.messages, bytes, &first, role);

    if let Some(dovecot) = &dovecot {
        let host = dovecot.tls_addr.context("Dovecot's IMAPS port")?.to_string();
        let ca = infra.tls_cert.display().to_string();
        let address = format!("imap@{DOMAIN}");
        let imap = [
            "mail",
            "import",
            &address,
            "--imap-host",
            &host,
            "--imap-user",
            SOURCE_USER,
            "--imap-password-env",
            "SOURCE_IMAP_PASSWORD",
            "--imap-ca",
            &ca,
        ];
        let before = role_cpu();
        let run = timed(&mut admin(&imap), "import --imap-host").await?;
        println!("{}", summary(&run.stdout));
        let role = Some(role_cpu() - before);
        print_rate(&mut table, "mailbus admin mail import --imap-host (IMAPS)", args.messages, bytes, &run, role);

        let conf = dovecot.dir.path().join("dovecot.conf").display().to_string();
        let source = format!("maildir:{path}");
        // Dovecot copies a Maildir file by a hard link where it can (maildir_copy_with_hardlinks, on by
        // default), which writes no message; the second run makes it write every one, as we do.
        for (user, links, label) in [
            (DOVEADM_USER, "yes", "doveadm import (Maildir into a second user, hard links)"),
            (DOVEADM_COPYING_USER, "no", "doveadm import (the same, copying the files)"),
        ] {
            let mut import = tokio::process::Command::new("doveadm");
            let option = format!("maildir_copy_with_hardlinks={links}");
            import.args(["-c", &conf, "-o", &option, "import", "-u", user, &source, "", "all"]);
            let run = timed(&mut import, "doveadm import").await?;
            print_rate(&mut table, label, args.messages, bytes, &run, None);
            println!("  {user} now holds {} messages", doveadm_count(&conf, &["-u", user]).await?);
        }

        let copy = dovecot.dir.path().join("mail").join("backup");
        std::fs::create_dir_all(&copy)?;
        let status = std::process::Command::new("chown").args(["65534:65534"]).arg(&copy).status()?;
        ensure!(status.success(), "chown of {}: {status}", copy.display());
        let target = format!("maildir:{}", copy.join("Maildir").display());
        let mut backup = tokio::process::Command::new("doveadm");
        backup.args(["-c", &conf, "backup", "-u", SOURCE_USER, &target]);
        let run = timed(&mut backup, "doveadm backup").await?;
        let label = "doveadm backup (dsync, the user into a new Maildir)";
        print_rate(&mut table, label, args.messages, bytes, &run, None);
        let files = count_files(&copy.join("Maildir"))?;
        println!("  the new Maildir holds {files} message files");
    }

    let before = role_cpu();
    let again = timed(&mut admin(&["mail", "import", &address, "--maildir", &path]), "second import").await?;
    println!("{}", summary(&again.stdout));
    let role = Some(role_cpu() - before);
    print_rate(
        &mut table,
        "mailbus admin mail import --maildir again (adds nothing)",
        args.messages,
        bytes,
        &again,
        role,
    );

    println!("\n== side by side: {} messages, {:.1} MB ==", args.messages, bytes as f64 / 1e6);
    for line in &table {
        println!("{line}");
    }
    stack.print_memory();
    stack.print_log_summary();
    drop(scratch);
    drop(dovecot);
    Ok(())
}
