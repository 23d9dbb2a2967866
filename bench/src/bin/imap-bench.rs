//! `imap-bench`: IMAP commands per second of the access role for a mixed client load, next to Dovecot's
//! on the same machine and the same messages, and the access role's memory per idle IDLE connection
//! (issue 6). A benchmark, not a test: it measures and prints, and asserts nothing; BENCHMARKS.md records
//! its output with the command that produced it.
//!
//! It starts PostgreSQL and nats-server through the test harness (or uses `DATABASE_URL` / `NATS_URL`),
//! runs `mailbus mailbox` and `access` from the given binary as separate processes, creates one account
//! per client and stores M messages in each INBOX (through `Deliver`). Every client then runs sessions one
//! after the other, each: LOGIN, SELECT INBOX, FETCH 1:* (FLAGS UID RFC822.SIZE), FETCH of one message's
//! BODY.PEEK[], STORE +FLAGS (\Seen), APPEND of a 4 KiB message flagged \Deleted, EXPUNGE,
//! LOGOUT: 8 commands. It reports commands and sessions per second and session latency, for each client
//! count asked for.
//!
//! With `/usr/sbin/dovecot` and dovecot-imapd installed and run as root, the same load runs against a
//! throwaway Dovecot holding the same messages, once with the argon2id hashes mailbus stored and once
//! with SHA512-CRYPT. Then one session IDLEs while deliveries arrive, each timed from the Deliver call to
//! the EXISTS line. Last, N connections log in to mailbus and IDLE, and the access role's resident
//! memory before and after gives the figure per idle connection, in the clear and over TLS (993).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use futures::StreamExt;
use mailbus_bench::dovecot::{Protocol, ThrowawayDovecot, doveadm_pw, dovecot_version};
use mailbus_bench::{self as bench, Stack, ms, percentile, rate};
use mailbus_proto::v1 as pb;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const DOMAIN: &str = "bench.test";
const PASSWORD: &str = "bench";
const COMMANDS_PER_SESSION: usize = 8;

#[derive(Parser, Debug)]
#[command(about = "Measures IMAP commands per second of mailbus access and of a throwaway Dovecot")]
struct Args {
    /// The (release-built) mailbus binary to run the roles from.
    mailbus: PathBuf,
    /// Client counts to measure, each a run of its own.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 100])]
    clients: Vec<usize>,
    /// Sessions each client runs in each run.
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// Messages in each INBOX.
    #[arg(long, default_value_t = 20)]
    messages: usize,
    /// Size of each message, in octets.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Idle IDLE connections to open for the memory figure (in the clear).
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Idle IDLE connections over TLS (port 993).
    #[arg(long, default_value_t = 1_000)]
    idle_tls: usize,
    /// Deliveries whose notification to an IDLE session is timed.
    #[arg(long, default_value_t = 50)]
    notifications: usize,
    /// Skip the Dovecot measurement.
    #[arg(long)]
    no_dovecot: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    ensure!(!args.clients.is_empty() && args.clients.iter().all(|&c| c > 0), "client counts must be positive");
    ensure!(args.sessions > 0 && args.messages > 0 && args.size >= 200, "counts must be positive, size ≥ 200");
    bench::until_interrupted("imap-bench", run(args)).await
}

fn user(i: usize) -> String {
    format!("user{i:03}@{DOMAIN}")
}

/// What one run measured.
struct Report {
    durations: Vec<Duration>,
    errors: Vec<String>,
    elapsed: Duration,
}

impl Report {
    fn print(&self, label: &str) {
        let sessions = self.durations.len();
        println!(
            "{label}: {sessions} sessions ({} commands) in {:.1} s = {:.0} commands/s, {:.1} sessions/s   session p50 {:.1} ms  p99 {:.1} ms   errors {}",
            sessions * COMMANDS_PER_SESSION,
            self.elapsed.as_secs_f64(),
            rate(sessions * COMMANDS_PER_SESSION, self.elapsed),
            rate(sessions, self.elapsed),
            ms(percentile(&self.durations, 50)),
            ms(percentile(&self.durations, 99)),
            self.errors.len(),
        );
        if let Some(first) = self.errors.first() {
            println!("  first error: {first}");
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    bench::print_setting(&format!(
        "{:?} clients x {} sessions (LOGIN, SELECT, FETCH 1:* FLAGS, FETCH BODY.PEEK[], STORE, APPEND, EXPUNGE, LOGOUT); {} messages of {} octets per INBOX",
        args.clients, args.sessions, args.messages, args.size
    ));
    let most = *args.clients.iter().max().expect("not empty");
    let users: Vec<String> = (0..most).map(user).collect();
    let contents: Vec<Vec<Vec<u8>>> = users
        .iter()
        .map(|u| {
            (0..args.messages)
                .map(|n| {
                    bench::message_of_size(
                        &format!("From: bench@example.net\r\nTo: {u}\r\nSubject: message {n}\r\n\r\n"),
                        args.size,
                    )
                })
                .collect()
        })
        .collect();
    let connections = (args.idle + args.idle_tls + most + 100).to_string();
    let settings =
        [("MAILBUS_IMAP_MAX_CONNECTIONS", connections.clone()), ("MAILBUS_IMAP_MAX_USER_CONNECTIONS", connections)];
    let stack = Stack::start(&args.mailbus, &["mailbox", "access"], &settings).await?;
    let mut directory = stack.directory().await?;
    directory.add_domain(pb::AddDomainRequest { name: DOMAIN.into() }).await.context("AddDomain")?;
    let mailbox_url = stack.env["MAILBUS_MAILBOX_URL"].clone();
    for (address, messages) in users.iter().zip(&contents) {
        let account = pb::AddAccountRequest { address: address.clone(), password: PASSWORD.into() };
        directory.add_account(account).await.context("AddAccount")?;
        let mut mailbox = pb::mailbox_client::MailboxClient::connect(mailbox_url.clone()).await?;
        for (n, body) in messages.iter().enumerate() {
            let header = pb::DeliveryHeader {
                queue_id: format!("{address}-{n}"),
                recipient: address.clone(),
                mail_from: "bench@example.net".into(),
                size: body.len() as u64,
            };
            let parts = mailbus_proto::upload::deliver(header, body);
            mailbox.deliver(futures::stream::iter(parts)).await.context("Deliver")?;
        }
    }
    let imap = stack.addr("MAILBUS_IMAP_LISTEN")?;
    let mut side_by_side = Vec::new();
    for &clients in &args.clients {
        let report = load(imap, &users[..clients], args.sessions, args.size).await;
        report.print(&format!("mailbus, {clients} clients"));
        side_by_side.push((format!("mailbus access (argon2id), {clients} clients"), report));
    }
    stack.print_memory();

    if args.no_dovecot {
        println!("\nDovecot: skipped (--no-dovecot)");
    } else {
        match dovecot_version(Protocol::Imap) {
            Err(error) => println!("\nDovecot: not measured: {error:#}"),
            Ok(version) => {
                let pool = sqlx::PgPool::connect(&stack.env["DATABASE_URL"]).await?;
                let mut same = Vec::new();
                for address in &users {
                    let hash: String = sqlx::query_scalar("SELECT password_hash FROM accounts WHERE address = $1")
                        .bind(address)
                        .fetch_one(&pool)
                        .await?;
                    same.push(format!("{{ARGON2ID}}{hash}"));
                }
                println!("\nargon2id parameters of the stored hashes: {}", same[0].split('$').nth(3).unwrap_or("?"));
                let sha512 = vec![doveadm_pw("SHA512-CRYPT", PASSWORD)?; users.len()];
                for (scheme, hashes) in [("the same argon2id hashes", same), ("SHA512-CRYPT", sha512)] {
                    let dovecot = ThrowawayDovecot::start(Protocol::Imap, &users, &hashes, &contents)?;
                    println!("\n== Dovecot {version} ({scheme}) on {} ==", dovecot.addr);
                    for &clients in &args.clients {
                        let report = load(dovecot.addr, &users[..clients], args.sessions, args.size).await;
                        report.print(&format!("Dovecot, {clients} clients"));
                        side_by_side.push((format!("Dovecot {version} ({scheme}), {clients} clients"), report));
                    }
                    dovecot.print_memory();
                }
            }
        }
    }

    println!("\n== side by side ==");
    println!(
        "{:<58} {:>10} {:>11} {:>9} {:>9} {:>7}",
        "server", "commands", "commands/s", "p50 ms", "p99 ms", "errors"
    );
    for (name, report) in &side_by_side {
        println!(
            "{name:<58} {:>10} {:>11.0} {:>9.1} {:>9.1} {:>7}",
            report.durations.len() * COMMANDS_PER_SESSION,
            rate(report.durations.len() * COMMANDS_PER_SESSION, report.elapsed),
            ms(percentile(&report.durations, 50)),
            ms(percentile(&report.durations, 99)),
            report.errors.len()
        );
    }

    println!("\n== from Deliver to * EXISTS in an IDLE session ==");
    let latencies = idle_notification(imap, &mailbox_url, &users[0], args.notifications, args.size).await?;
    println!(
        "{} deliveries: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms (from calling Deliver to reading the EXISTS line, one session in IDLE)",
        latencies.len(),
        ms(percentile(&latencies, 50)),
        ms(percentile(&latencies, 99)),
        ms(latencies.last().copied().unwrap_or_default()),
    );

    println!("\n== memory of idle IDLE connections (access role) ==");
    let pid = stack.pid("access").context("the access role is not running")?;
    let imaps = stack.addr("MAILBUS_IMAPS_LISTEN")?;
    let mut held = Vec::new();
    for (label, count, tls) in [("in the clear", args.idle, false), ("over TLS", args.idle_tls, true)] {
        if count == 0 {
            continue;
        }
        let before = bench::rss_kib(pid)?;
        let started = Instant::now();
        let addr = if tls { imaps } else { imap };
        let opened: Vec<anyhow::Result<Idle>> = futures::stream::iter(0..count)
            .map(|i| idle_connection(addr, users[i % users.len()].clone(), tls))
            .buffer_unordered(32)
            .collect()
            .await;
        let failed = opened.iter().filter(|c| c.is_err()).count();
        if let Some(Err(error)) = opened.iter().find(|c| c.is_err()) {
            println!("  first failure: {error:#}");
        }
        held.extend(opened.into_iter().flatten());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = bench::rss_kib(pid)?;
        let open = count - failed;
        println!(
            "{count} connections {label} (LOGIN, SELECT INBOX, IDLE) opened in {:.1} s, {failed} failed: VmRSS {before} KiB -> {after} KiB = {:.1} KiB per connection",
            started.elapsed().as_secs_f64(),
            (after.saturating_sub(before)) as f64 / open.max(1) as f64,
        );
    }
    drop(held);
    stack.print_log_summary();
    Ok(())
}

/// `clients` clients, each running `sessions` sessions one after the other.
async fn load(addr: SocketAddr, users: &[String], sessions: usize, size: usize) -> Report {
    let started = Instant::now();
    let append = Arc::new(bench::message_of_size("From: bench@example.net\r\nSubject: appended\r\n\r\n", size));
    let results: Vec<Vec<anyhow::Result<Duration>>> = futures::future::join_all(users.iter().map(|user| {
        let (user, append) = (user.clone(), append.clone());
        async move {
            let mut results = Vec::with_capacity(sessions);
            for n in 0..sessions {
                let start = Instant::now();
                results.push(session(addr, &user, n, &append).await.map(|()| start.elapsed()));
            }
            results
        }
    }))
    .await;
    let elapsed = started.elapsed();
    let mut report = Report { durations: Vec::new(), errors: Vec::new(), elapsed };
    for result in results.into_iter().flatten() {
        match result {
            Ok(duration) => report.durations.push(duration),
            Err(error) => report.errors.push(format!("{error:#}")),
        }
    }
    report.durations.sort_unstable();
    report
}

/// A minimal IMAP client: tagged commands, untagged lines read past, literals in replies consumed.
struct Client<IO> {
    io: BufReader<IO>,
    tag: usize,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Client<IO> {
    async fn greeting(io: IO) -> anyhow::Result<Self> {
        let mut client = Client { io: BufReader::new(io), tag: 0 };
        let line = client.line().await?;
        ensure!(line.starts_with("* OK"), "greeting: {line}");
        Ok(client)
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        let read =
            tokio::time::timeout(bench::REPLY_TIMEOUT, self.io.read_line(&mut line)).await.context("timed out")??;
        ensure!(read > 0, "connection closed");
        Ok(line)
    }

    /// Reads until the tagged reply; a line ending in `{n}` is followed by n octets, skipped.
    async fn until_tagged(&mut self, tag: &str, what: &str) -> anyhow::Result<()> {
        loop {
            let line = self.line().await?;
            if let Some(n) = line
                .trim_end()
                .strip_suffix('}')
                .and_then(|l| l.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok())
            {
                let mut literal = vec![0; n];
                self.io.read_exact(&mut literal).await?;
                continue;
            }
            if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                ensure!(rest.starts_with("OK"), "{what}: {}", line.trim_end());
                return Ok(());
            }
        }
    }

    async fn command(&mut self, command: &str) -> anyhow::Result<()> {
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        self.io.get_mut().write_all(format!("{tag} {command}\r\n").as_bytes()).await?;
        let what = command.split(' ').next().unwrap_or_default().to_owned();
        self.until_tagged(&tag, &what).await
    }

    /// APPEND with a synchronising literal: the command line, the server's "+", then the octets.
    async fn append(&mut self, message: &[u8]) -> anyhow::Result<()> {
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        let line = format!("{tag} APPEND INBOX (\\Seen \\Deleted) {{{}}}\r\n", message.len());
        self.io.get_mut().write_all(line.as_bytes()).await?;
        let go = self.line().await?;
        if !go.starts_with('+') {
            bail!("APPEND: {}", go.trim_end());
        }
        self.io.get_mut().write_all(message).await?;
        self.io.get_mut().write_all(b"\r\n").await?;
        self.until_tagged(&tag, "APPEND").await
    }
}

async fn session(addr: SocketAddr, user: &str, n: usize, append: &[u8]) -> anyhow::Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut client = Client::greeting(tcp).await?;
    client.command(&format!("LOGIN {user} {PASSWORD}")).await?;
    client.command("SELECT INBOX").await?;
    client.command("FETCH 1:* (FLAGS UID RFC822.SIZE)").await?;
    client.command(&format!("FETCH {} BODY.PEEK[]", n % 10 + 1)).await?;
    client
        .command(&format!("STORE {} {}FLAGS (\\Seen)", n % 10 + 1, if n.is_multiple_of(2) { '+' } else { '-' }))
        .await?;
    client.append(append).await?;
    client.command("EXPUNGE").await?;
    client.command("LOGOUT").await.or_else(|e| if format!("{e}").contains("closed") { Ok(()) } else { Err(e) })?;
    Ok(())
}

/// One session in IDLE; each delivery to its INBOX is timed from the Deliver call to the EXISTS line.
async fn idle_notification(
    imap: SocketAddr,
    mailbox_url: &str,
    user: &str,
    count: usize,
    size: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut client = match idle_connection(imap, user.to_owned(), false).await? {
        Idle::Plain(client) => client,
        Idle::Tls(_) => bail!("a plain connection was asked for"),
    };
    let mut mailbox = pb::mailbox_client::MailboxClient::connect(mailbox_url.to_owned()).await?;
    let body = bench::message_of_size("From: bench@example.net\r\nSubject: notify\r\n\r\n", size);
    let mut latencies = Vec::with_capacity(count);
    for n in 0..count {
        let header = pb::DeliveryHeader {
            queue_id: format!("notify-{}-{n}", uuid::Uuid::new_v4().simple()),
            recipient: user.to_owned(),
            mail_from: "bench@example.net".into(),
            size: body.len() as u64,
        };
        let parts = mailbus_proto::upload::deliver(header, &body);
        let delivered = Instant::now();
        mailbox.deliver(futures::stream::iter(parts)).await.context("Deliver")?;
        loop {
            let line = client.line().await?;
            if line.trim_end().ends_with("EXISTS") {
                break;
            }
        }
        latencies.push(delivered.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort_unstable();
    Ok(latencies)
}

/// An open connection in IDLE, held until dropped.
enum Idle {
    Plain(#[allow(dead_code)] Client<TcpStream>),
    Tls(#[allow(dead_code)] Box<Client<tokio_rustls::client::TlsStream<TcpStream>>>),
}

async fn idle_connection(addr: SocketAddr, user: String, tls: bool) -> anyhow::Result<Idle> {
    async fn enter<IO: AsyncRead + AsyncWrite + Unpin>(io: IO, user: &str) -> anyhow::Result<Client<IO>> {
        let mut client = Client::greeting(io).await?;
        client.command(&format!("LOGIN {user} {PASSWORD}")).await?;
        client.command("SELECT INBOX").await?;
        client.io.get_mut().write_all(b"i IDLE\r\n").await?;
        let go = client.line().await?;
        ensure!(go.starts_with('+'), "IDLE: {}", go.trim_end());
        Ok(client)
    }
    let tcp = TcpStream::connect(addr).await?;
    if tls {
        let connector = tokio_rustls::TlsConnector::from(mailbus_tls::opportunistic_client_config());
        let name = rustls_pki_types::ServerName::try_from("mx.bench.test")?;
        let stream = connector.connect(name, tcp).await?;
        Ok(Idle::Tls(Box::new(enter(stream, &user).await?)))
    } else {
        Ok(Idle::Plain(enter(tcp, &user).await?))
    }
}
