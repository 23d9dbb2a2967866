//! `pop3-bench`: POP3 sessions per second of the access role, next to Dovecot's on the same machine
//! (issue 7). A benchmark, not a test: it measures and prints, and asserts nothing; BENCHMARKS.md
//! records its output with the command that produced it.
//!
//! It starts PostgreSQL and nats-server through the test harness (or uses `DATABASE_URL` / `NATS_URL`),
//! runs `mailbus mailbox`, `relay`, `smtp-ingress` and `access` from the given binary as separate
//! processes on free loopback ports, creates one account per client (a maildrop is locked per session)
//! and delivers M messages to each through SMTP on port 25, waiting until they are in the mailboxes.
//! Then C clients each run S sessions one after the other, every session: connect, USER/PASS (plaintext
//! logins from loopback are allowed by default), STAT, UIDL, RETR 1..M, QUIT (no DELE). One untimed
//! session per account first fetches the messages, as a warm-up and to copy them for Dovecot.
//!
//! With `/usr/sbin/dovecot` installed and run as root, it then starts a throwaway Dovecot (its own
//! configuration, maildirs and runtime directories in a temporary directory, POP3 on one loopback port)
//! with the same accounts and the same messages, and runs the same load against it: once with the very
//! password hashes mailbus stored (argon2id, read from its database), once with Dovecot's usual
//! SHA512-CRYPT.
//!
//! Every process it starts is stopped when it ends, also on error and Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use mailbus_bench::dovecot::{Protocol, ThrowawayDovecot, doveadm_pw, dovecot_version};
use mailbus_bench::{self as bench, REPLY_TIMEOUT, SmtpClient, Stack, ms, percentile, rate};
use mailbus_proto::v1 as pb;
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const DOMAIN: &str = "bench.test";
const PASSWORD: &str = "bench";

#[derive(Parser, Debug)]
#[command(about = "Measures POP3 sessions per second of mailbus access, and of a throwaway Dovecot")]
struct Args {
    /// The (release-built) mailbus binary to run the roles from.
    mailbus: PathBuf,
    /// Concurrent POP3 clients, each with its own account.
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// Sessions each client runs, one after the other.
    #[arg(long, default_value_t = 50)]
    sessions: usize,
    /// Messages in each maildrop; every session retrieves all of them.
    #[arg(long, default_value_t = 10)]
    messages: usize,
    /// Size of each message as sent over SMTP, in octets (mailbus adds a Received: header).
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Skip the Dovecot measurement.
    #[arg(long)]
    no_dovecot: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    ensure!(args.clients > 0 && args.sessions > 0 && args.messages > 0, "counts must be positive");
    ensure!(args.size >= 200, "--size must be at least 200 octets");
    bench::until_interrupted("pop3-bench", run(args)).await
}

fn user(i: usize) -> String {
    format!("user{i:02}@{DOMAIN}")
}

async fn run(args: Args) -> anyhow::Result<()> {
    bench::print_setting(&format!(
        "{} clients x {} sessions (login, STAT, UIDL, RETR of {} messages of {} octets, QUIT), one account per client",
        args.clients, args.sessions, args.messages, args.size
    ));
    let users: Vec<String> = (0..args.clients).map(user).collect();
    let mut results = Vec::new();

    let (mailbus, contents, hashes) = measure_mailbus(&args, &users).await?;
    results.push(("mailbus access (argon2id)".to_owned(), mailbus));

    if args.no_dovecot {
        println!("\nDovecot: skipped (--no-dovecot)");
    } else {
        match dovecot_version(Protocol::Pop3) {
            Err(error) => println!("\nDovecot: not measured: {error:#}"),
            Ok(version) => {
                let sha512 = doveadm_pw("SHA512-CRYPT", PASSWORD)?;
                let same: Vec<String> = hashes.iter().map(|h| format!("{{ARGON2ID}}{h}")).collect();
                let generated = vec![sha512; users.len()];
                for (scheme, hashes) in [("the same argon2id hashes", same), ("SHA512-CRYPT", generated)] {
                    let name = format!("Dovecot {version} ({scheme})");
                    println!("\n== {name} ==");
                    match measure_dovecot(&users, &hashes, &contents, &args).await {
                        Ok(report) => results.push((name, report)),
                        Err(error) => println!("not measured: {error:#}"),
                    }
                }
            }
        }
    }

    println!("\n== side by side: {} clients, {} sessions each ==", args.clients, args.sessions);
    println!("{:<48} {:>9} {:>11} {:>9} {:>9} {:>7}", "server", "sessions", "sessions/s", "p50 ms", "p99 ms", "errors");
    for (name, report) in &results {
        println!(
            "{name:<48} {:>9} {:>11.1} {:>9.1} {:>9.1} {:>7}",
            report.durations.len(),
            report.rate(),
            ms(percentile(&report.durations, 50)),
            ms(percentile(&report.durations, 99)),
            report.errors.len()
        );
    }
    Ok(())
}

async fn measure_dovecot(
    users: &[String],
    hashes: &[String],
    contents: &[Vec<Vec<u8>>],
    args: &Args,
) -> anyhow::Result<Report> {
    let dovecot = ThrowawayDovecot::start(Protocol::Pop3, users, hashes, contents)?;
    println!("listening on {}, files in {}", dovecot.addr, dovecot.dir.path().display());
    warm_up(dovecot.addr, users, args.messages).await?;
    let report = load(dovecot.addr, users, args.sessions, args.messages).await;
    report.print();
    dovecot.print_memory();
    Ok(report)
}

/// Measures mailbus and returns its report, the messages of each maildrop as POP3 retrieved them, and
/// the password hashes mailbus stored.
async fn measure_mailbus(args: &Args, users: &[String]) -> anyhow::Result<(Report, Vec<Vec<Vec<u8>>>, Vec<String>)> {
    let roles = ["mailbox", "relay", "smtp-ingress", "access"];
    let stack = Stack::start(&args.mailbus, &roles, &[]).await?;
    let mut directory = stack.directory().await?;
    directory.add_domain(pb::AddDomainRequest { name: DOMAIN.into() }).await.context("adding the domain")?;
    let mut account_ids = Vec::new();
    for address in users {
        let account = pb::AddAccountRequest { address: address.clone(), password: PASSWORD.into() };
        account_ids.push(directory.add_account(account).await.context("adding an account")?.into_inner().id);
    }

    let smtp = stack.addr("MAILBUS_SMTP_LISTEN")?;
    let start = Instant::now();
    let deliveries = users.iter().map(|to| deliver(smtp, to, args.messages, args.size));
    for delivered in futures::future::join_all(deliveries).await {
        delivered?;
    }
    for &id in &account_ids {
        while stack.mailbox_count(id).await? < args.messages {
            ensure!(start.elapsed() < bench::PATIENCE, "the messages did not reach the mailboxes in time");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!(
        "delivered {} messages ({} per account) through SMTP in {:.2} s",
        users.len() * args.messages,
        args.messages,
        start.elapsed().as_secs_f64()
    );

    let pop3 = stack.addr("MAILBUS_POP3_LISTEN")?;
    println!("\n== mailbus access ({pop3}) ==");
    let contents = warm_up(pop3, users, args.messages).await?;
    let report = load(pop3, users, args.sessions, args.messages).await;
    report.print();
    println!("{}", stack.metrics("access", "mailbus_access").await.join("\n"));
    stack.print_memory();
    stack.print_log_summary();

    let mut db = sqlx::PgConnection::connect(&stack.env["DATABASE_URL"]).await.context("connecting to PostgreSQL")?;
    let mut hashes = Vec::new();
    for address in users {
        let hash: String = sqlx::query_scalar("SELECT password_hash FROM accounts WHERE address = $1")
            .bind(address)
            .fetch_one(&mut db)
            .await
            .context("reading a password hash")?;
        hashes.push(hash);
    }
    // The roles stop here, before Dovecot is measured.
    drop(stack);
    Ok((report, contents, hashes))
}

/// Sends `count` messages of `size` octets to `to` over one SMTP connection to port 25.
async fn deliver(smtp: SocketAddr, to: &str, count: usize, size: usize) -> anyhow::Result<()> {
    let mut client = SmtpClient::open(smtp).await?;
    for n in 1..=count {
        let header = format!("From: <bench@{DOMAIN}>\r\nTo: <{to}>\r\nSubject: pop3-bench {n}\r\n\r\n");
        let message = bench::message_of_size(&header, size);
        let reply = client.send(&format!("bench@{DOMAIN}"), to, &message).await?;
        ensure!(reply.code == 250, "SMTP refused a message to {to}: {}", reply.text);
    }
    client.quit().await;
    Ok(())
}

/// One untimed session per account, which also creates whatever indexes a server builds on first
/// access; returns the messages of each maildrop as retrieved.
async fn warm_up(addr: SocketAddr, users: &[String], messages: usize) -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
    let mut contents = Vec::new();
    for user in users {
        let mut retrieved = Vec::new();
        session(addr, user, messages, Some(&mut retrieved)).await.with_context(|| format!("warm-up of {user}"))?;
        contents.push(retrieved);
    }
    Ok(contents)
}

// ---------------------------------------------------------------------------------------------------
// The POP3 client and the load

struct Pop3 {
    stream: BufReader<TcpStream>,
    line: Vec<u8>,
}

impl Pop3 {
    /// Reads one line (with its CRLF) into `self.line`.
    async fn read_line(&mut self) -> anyhow::Result<()> {
        self.line.clear();
        let read = tokio::time::timeout(REPLY_TIMEOUT, self.stream.read_until(b'\n', &mut self.line))
            .await
            .context("no reply within a minute")?
            .context("reading from the server")?;
        ensure!(read > 0, "the server closed the connection");
        Ok(())
    }

    /// Reads a status line and fails unless it is `+OK`; returns the line without CRLF.
    async fn ok(&mut self, what: &str) -> anyhow::Result<String> {
        self.read_line().await?;
        let line = String::from_utf8_lossy(&self.line).trim_end().to_owned();
        ensure!(line.starts_with("+OK"), "{what}: {line}");
        Ok(line)
    }

    async fn command(&mut self, command: &str, what: &str) -> anyhow::Result<String> {
        self.stream.get_mut().write_all(command.as_bytes()).await.context("writing to the server")?;
        self.ok(what).await
    }

    /// Reads a multi-line response body up to the "." line; returns its lines, dot-unstuffed, with CRLF.
    async fn multi_line(&mut self, mut into: Option<&mut Vec<u8>>) -> anyhow::Result<usize> {
        let mut lines = 0;
        loop {
            self.read_line().await?;
            if self.line == b".\r\n" {
                return Ok(lines);
            }
            lines += 1;
            if let Some(into) = into.as_deref_mut() {
                let unstuffed = if self.line.starts_with(b".") { &self.line[1..] } else { &self.line[..] };
                into.extend_from_slice(unstuffed);
            }
        }
    }
}

/// One session: connect, USER, PASS, STAT, UIDL, RETR 1..n, QUIT. Fails unless the maildrop holds
/// `messages` messages. With `retrieved`, the messages are kept there.
async fn session(
    addr: SocketAddr,
    user: &str,
    messages: usize,
    mut retrieved: Option<&mut Vec<Vec<u8>>>,
) -> anyhow::Result<()> {
    let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let mut pop3 = Pop3 { stream: BufReader::with_capacity(64 * 1024, stream), line: Vec::new() };
    pop3.ok("greeting").await?;
    pop3.command(&format!("USER {user}\r\n"), "USER").await?;
    pop3.command(&format!("PASS {PASSWORD}\r\n"), "PASS").await?;
    let stat = pop3.command("STAT\r\n", "STAT").await?;
    let count: usize = stat.split_whitespace().nth(1).and_then(|n| n.parse().ok()).context("bad STAT reply")?;
    ensure!(count == messages, "STAT: {count} messages, expected {messages}");
    pop3.command("UIDL\r\n", "UIDL").await?;
    ensure!(pop3.multi_line(None).await? == count, "UIDL: not one line per message");
    for n in 1..=count {
        pop3.command(&format!("RETR {n}\r\n"), "RETR").await?;
        let mut content = Vec::new();
        pop3.multi_line(Some(&mut content)).await?;
        if let Some(retrieved) = retrieved.as_deref_mut() {
            retrieved.push(content);
        }
    }
    pop3.command("QUIT\r\n", "QUIT").await?;
    Ok(())
}

struct Report {
    /// Of the sessions that succeeded, sorted.
    durations: Vec<Duration>,
    errors: Vec<String>,
    /// From the start of the load to the end of the last session.
    elapsed: Duration,
}

impl Report {
    fn rate(&self) -> f64 {
        rate(self.durations.len(), self.elapsed)
    }

    fn print(&self) {
        println!(
            "{} sessions in {:.2} s = {:.1} sessions/s",
            self.durations.len(),
            self.elapsed.as_secs_f64(),
            self.rate()
        );
        println!(
            "session time: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(percentile(&self.durations, 50)),
            ms(percentile(&self.durations, 99)),
            ms(self.durations.last().copied().unwrap_or_default())
        );
        println!("failed sessions: {}", self.errors.len());
        let mut distinct: Vec<&String> = self.errors.iter().collect();
        distinct.sort();
        distinct.dedup();
        for error in distinct.iter().take(5) {
            println!("  {error}");
        }
    }
}

/// Client `i` runs `sessions` sessions as `users[i]`, all clients at once.
async fn load(addr: SocketAddr, users: &[String], sessions: usize, messages: usize) -> Report {
    let start = Instant::now();
    let clients = users.iter().map(|user| {
        let user: Arc<str> = user.as_str().into();
        tokio::spawn(async move {
            let mut durations = Vec::with_capacity(sessions);
            let mut errors = Vec::new();
            for _ in 0..sessions {
                let begun = Instant::now();
                match session(addr, &user, messages, None).await {
                    Ok(()) => durations.push(begun.elapsed()),
                    Err(error) => errors.push(format!("{error:#}")),
                }
            }
            (durations, errors)
        })
    });
    let mut report = Report { durations: Vec::new(), errors: Vec::new(), elapsed: Duration::ZERO };
    for finished in futures::future::join_all(clients).await {
        match finished {
            Ok((durations, errors)) => {
                report.durations.extend(durations);
                report.errors.extend(errors);
            }
            Err(error) => report.errors.push(error.to_string()),
        }
    }
    report.elapsed = start.elapsed();
    report.durations.sort_unstable();
    report
}

// ---------------------------------------------------------------------------------------------------
// Dovecot
