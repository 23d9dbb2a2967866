//! `smtp-bench`: how fast smtp-ingress accepts mail durably on port 25, and what 1,000 idle sessions
//! cost it (issue 3). A benchmark, not a test: it measures and prints, and asserts nothing;
//! BENCHMARKS.md records its output with the command that produced it.
//!
//! It starts PostgreSQL and nats-server through the test harness (or uses `DATABASE_URL` / `NATS_URL`),
//! runs `mailbus mailbox`, `relay` and `smtp-ingress` from the given binary as separate processes on
//! free loopback ports, and drives them with its own SMTP load generator: C connections, each one
//! EHLO and then MAIL/RCPT/DATA transactions in lock-step (no PIPELINING), until M messages got `250`.
//! When Postfix's `smtp-source` is installed it runs that against the same smtp-ingress too, and with
//! `--postfix` it measures a throwaway Postfix on a loopback port with the same load. With Postfix's
//! `smtp-sink` installed, the same load against it gives the loopback ceiling (a server that answers
//! 250 at once and keeps nothing). The last lines are the figures as ratios to those peers.
//!
//! Unless `NATS_URL` names one, mailbus runs over a nats-server of its own that syncs each message
//! before acknowledging it (as `deploy/nats/nats.conf` does), so that its 250 is as durable as
//! Postfix's, which fsyncs its queue file first. The access role runs too: the end-to-end figure is
//! from the first 250 until the last message shows in `STATUS INBOX (MESSAGES)` over IMAP.
//!
//! Every process it starts is killed when it ends, also on error and Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use futures::StreamExt;
use mailbus_bench::{self as bench, PATIENCE, Reply, SmtpClient, Stack, ms, percentile, rate, rss_kib};
use mailbus_devstack::free_port;
use mailbus_proto::v1 as pb;
use mailbus_tests::dns::TestDns;
use tokio::net::TcpStream;

const DOMAIN: &str = "bench.test";
const SENDER: &str = "bench@bench.test";
const RECIPIENT: &str = "sink@bench.test";
/// Longest wait for the queue to drain after the main load.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);

#[derive(Parser, Debug)]
#[command(about = "Measures smtp-ingress: durable accept rate, latency of the final 250, idle-session memory")]
struct Args {
    /// The (release-built) mailbus binary to run the roles from.
    mailbus: PathBuf,
    /// Messages to get accepted (250) in each load run.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Concurrent SMTP connections of the load.
    #[arg(long, default_value_t = 20)]
    connections: usize,
    /// Size of each message in octets (headers and body, without the terminating ".").
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Idle sessions (greeting and EHLO, then nothing) to open for the memory measurement.
    #[arg(long, default_value_t = 1000)]
    idle_sessions: usize,
    /// Also measure a throwaway Postfix (needs root and /usr/sbin/postfix) on a loopback port, with
    /// local delivery to the discard transport, under the same load.
    #[arg(long)]
    postfix: bool,
    /// Port 25 verifies SPF, DKIM, ARC and DMARC (tagging) against a DNS server on loopback, where
    /// bench.test publishes SPF for 127.0.0.1, a DKIM key that signed every message, and p=reject.
    #[arg(long)]
    verify: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    ensure!(args.size >= HEADER.len() + 2, "--size must be at least {} octets", HEADER.len() + 2);
    ensure!(args.connections > 0 && args.messages > 0, "--connections and --messages must be positive");
    bench::until_interrupted("smtp-bench", run(args)).await
}

async fn run(args: Args) -> anyhow::Result<()> {
    print_setting(&args);
    raise_open_files_limit(args.idle_sessions + args.connections + 512)?;
    let mut message = bench::message_of_size(HEADER, args.size);
    let mut verification = None;
    if args.verify {
        let (dns, signed) = sender_auth_dns(&message).await;
        message = signed;
        verification = Some(dns);
    }
    let load = Load { messages: args.messages, connections: args.connections, message: message.into() };

    let mailbus = measure_mailbus(&args, &load, verification.as_ref()).await?;
    let postfix = if args.postfix { measure_postfix(&args, &load).await? } else { None };
    let sink = measure_smtp_sink(&load).await?;
    println!("\n== ratios (same load, same machine, this run) ==");
    let ratio = |name: &str, peer: Option<f64>| match peer {
        Some(peer) if peer > 0.0 => {
            println!("mailbus durable accept rate / {name}: {:.0} / {peer:.0} = {:.2}", mailbus, mailbus / peer)
        }
        _ => println!("mailbus durable accept rate / {name}: {name} not measured"),
    };
    ratio("Postfix", postfix);
    ratio("smtp-sink (loopback ceiling)", sink);
    if let (Some(postfix), Some(sink)) = (postfix, sink) {
        println!("Postfix / smtp-sink: {postfix:.0} / {sink:.0} = {:.2}", postfix / sink);
    }
    Ok(())
}

/// Postfix's `smtp-sink` on a loopback port, under the same load: the ceiling of this generator and
/// loopback TCP, since it answers 250 at once and keeps nothing. `None` when it is not installed.
async fn measure_smtp_sink(load: &Load) -> anyhow::Result<Option<f64>> {
    let Some(tool) = postfix_tool("smtp-sink") else {
        println!("\nsmtp-sink: not found (Debian package postfix); skipped");
        return Ok(None);
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut command = tokio::process::Command::new(&tool);
    // As root it must be told whose privileges to drop to.
    if is_root() {
        command.args(["-u", "postfix"]);
    }
    let _sink = command
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
    println!("\n== smtp-sink (answers 250 at once, keeps nothing), this load generator ({addr}) ==");
    let report = load.run(addr).await;
    report.print();
    Ok(Some(rate(report.accepted, report.elapsed())))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    euid == 0
}

/// `--verify`: a DNS server on loopback where bench.test publishes SPF for 127.0.0.1, an ed25519 DKIM key
/// and `p=reject`, and `message` signed with that key (so every message costs a signature check).
async fn sender_auth_dns(message: &[u8]) -> (TestDns, Vec<u8>) {
    use base64::Engine;
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;

    let pkcs8 = Ed25519Key::generate_pkcs8().expect("an ed25519 key");
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).expect("the key just made");
    let public = base64::engine::general_purpose::STANDARD.encode(key.public_key());
    let signature = mail_auth::dkim::DkimSigner::from_key(key)
        .domain(DOMAIN)
        .selector("bench")
        .headers(["From", "To", "Subject"])
        .sign(message)
        .expect("signing the bench message");
    let dns = TestDns::start().await;
    dns.txt(DOMAIN, "v=spf1 ip4:127.0.0.1 -all")
        .txt(&format!("bench._domainkey.{DOMAIN}"), &format!("v=DKIM1; k=ed25519; p={public}"))
        .txt(&format!("_dmarc.{DOMAIN}"), "v=DMARC1; p=reject");
    let signed = [signature.to_header().into_bytes(), message.to_vec()].concat();
    (dns, signed)
}

/// Measures mailbus; returns its durable accept rate under this generator.
async fn measure_mailbus(args: &Args, load: &Load, verification: Option<&TestDns>) -> anyhow::Result<f64> {
    let mut settings = vec![
        // The idle-session measurement opens 1,000 sessions from one address.
        ("MAILBUS_SMTP_MAX_CONNECTIONS", "5000".to_owned()),
        ("MAILBUS_SMTP_MAX_CONNECTIONS_PER_IP", "5000".to_owned()),
    ];
    if let Some(dns) = verification {
        println!("sender authentication: SPF, DKIM, ARC and DMARC tagged, DNS on {}", dns.addr());
        settings.extend([
            ("MAILBUS_DNS_RESOLVER", dns.addr().to_string()),
            ("MAILBUS_SPF_POLICY", "tag".to_owned()),
            ("MAILBUS_DKIM_POLICY", "tag".to_owned()),
            ("MAILBUS_ARC_POLICY", "tag".to_owned()),
            ("MAILBUS_DMARC_POLICY", "tag".to_owned()),
        ]);
    } else {
        println!("sender authentication: off");
    }
    let _synced_nats = match std::env::var("NATS_URL") {
        Ok(url) => {
            println!("nats-server: {url} (NATS_URL), as it is configured");
            None
        }
        Err(_) => {
            let store = mailbus_tests::infra::scratch_dir().join("bench-nats-synced");
            let nats = tokio::task::spawn_blocking(move || mailbus_devstack::Nats::start_synced(&store, free_port()?))
                .await??;
            println!("nats-server: {} of its own, syncing each message before acknowledging it", nats.url());
            settings.push(("NATS_URL", nats.url()));
            Some(nats)
        }
    };
    let stack = Stack::start(&args.mailbus, &["mailbox", "relay", "smtp-ingress", "access"], &settings).await?;
    println!("\n== each role at rest, before any mail ==");
    stack.print_memory();
    let smtp = stack.addr("MAILBUS_SMTP_LISTEN")?;
    let smtp_pid = stack.pid("smtp-ingress").context("smtp-ingress has no pid")?;
    let account_id = create_sink(&stack).await?;
    let rss_fresh = rss_kib(smtp_pid)?;

    println!("\n== mailbus smtp-ingress, this load generator ({smtp}) ==");
    let report = load.run(smtp).await;
    report.print();
    println!("queue backlog at the last 250: {} messages", stack.queue_status().await?.messages);
    let visible = visible_over_imap(stack.addr("MAILBUS_IMAP_LISTEN")?, report.accepted, DRAIN_LIMIT).await?;
    if let (Some(first), Some(visible)) = (report.first_accept, visible) {
        let span = visible.duration_since(first);
        println!(
            "end to end: {} messages from the first 250 until the last shows over IMAP in {:.2} s = {:.0} msgs/s",
            report.accepted,
            span.as_secs_f64(),
            rate(report.accepted, span)
        );
    }
    wait_drained(&stack, account_id, report.accepted, PATIENCE).await?;
    print_relay_outcomes(&stack).await;
    if verification.is_some() {
        // What the checks concluded, so that a run in which they failed or never ran is seen as such.
        let results = stack.metrics("smtp-ingress", "mailbus_smtp_sender_auth_total").await;
        println!("sender authentication results: {}", results.join(", "));
    }

    idle_sessions(smtp, smtp_pid, args.idle_sessions, rss_fresh).await?;
    let accept_rate = rate(report.accepted, report.elapsed());

    let Some(tool) = postfix_tool("smtp-source") else {
        println!("\nsmtp-source: not found (Debian package postfix); skipped");
        finish(&stack);
        return Ok(accept_rate);
    };
    for persistent in [false, true] {
        println!("\n== mailbus smtp-ingress, smtp-source ==");
        let before = stack.mailbox_count(account_id).await?;
        run_smtp_source(&tool, args, smtp, persistent).await?;
        // Only so that the next run starts on a quiet machine; the time is not reported.
        wait_drained(&stack, account_id, before + args.messages, PATIENCE).await?;
        println!("delivered to the mailbox: {}", stack.mailbox_count(account_id).await? - before);
    }
    print_relay_outcomes(&stack).await;
    finish(&stack);
    Ok(accept_rate)
}

/// Logs in over IMAP as the sink and asks `STATUS INBOX (MESSAGES)` every 100 ms until it reports
/// `expected`; returns when that was seen, or `None` (after saying so) at `limit`.
async fn visible_over_imap(server: SocketAddr, expected: usize, limit: Duration) -> anyhow::Result<Option<Instant>> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut imap = BufReader::new(TcpStream::connect(server).await.context("connecting to IMAP")?);
    let mut tag = 0;
    let mut command = async |imap: &mut BufReader<TcpStream>, line: &str| -> anyhow::Result<String> {
        tag += 1;
        let tag = format!("b{tag}");
        imap.get_mut().write_all(format!("{tag} {line}\r\n").as_bytes()).await?;
        let mut said = String::new();
        loop {
            let mut reply = String::new();
            ensure!(imap.read_line(&mut reply).await? > 0, "IMAP connection closed");
            said.push_str(&reply);
            if let Some(status) = reply.strip_prefix(&format!("{tag} ")) {
                ensure!(status.starts_with("OK"), "IMAP {line:?}: {reply}");
                return Ok(said);
            }
        }
    };
    let mut greeting = String::new();
    imap.read_line(&mut greeting).await?;
    command(&mut imap, &format!("LOGIN {RECIPIENT} bench")).await?;
    let start = Instant::now();
    loop {
        let status = command(&mut imap, "STATUS INBOX (MESSAGES)").await?;
        let messages = status
            .split("MESSAGES ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        if messages >= expected {
            return Ok(Some(Instant::now()));
        }
        if start.elapsed() > limit {
            println!("NOT VISIBLE: {messages} of {expected} messages over IMAP after {} s", limit.as_secs());
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_setting(args: &Args) {
    bench::print_setting_on(
        &format!(
            "{} messages of {} octets over {} connections; {} idle sessions; sender authentication {}",
            args.messages,
            args.size,
            args.connections,
            args.idle_sessions,
            if args.verify { "on (--verify)" } else { "off" }
        ),
        &format!("{} CPUs, load average {}", bench::cpus(), bench::load_average()),
    );
}

/// 1,000 idle sessions need as many descriptors in this process and in smtp-ingress (which inherits
/// the limit from us).
fn raise_open_files_limit(needed: usize) -> anyhow::Result<()> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    #[allow(unsafe_code)]
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    ensure!(got == 0, "getrlimit: {}", std::io::Error::last_os_error());
    let needed = needed as libc::rlim_t;
    if limit.rlim_cur >= needed {
        return Ok(());
    }
    ensure!(limit.rlim_max >= needed, "open-files hard limit {} is below the {needed} needed", limit.rlim_max);
    limit.rlim_cur = needed;
    #[allow(unsafe_code)]
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    ensure!(set == 0, "setrlimit: {}", std::io::Error::last_os_error());
    Ok(())
}

const HEADER: &str = "From: <bench@bench.test>\r\nTo: <sink@bench.test>\r\nSubject: smtp-bench\r\n\r\n";

// ---------------------------------------------------------------------------------------------------
// The stack under test

/// Creates the domain and the account every message goes to; returns the account id.
async fn create_sink(stack: &Stack) -> anyhow::Result<i64> {
    let mut directory = stack.directory().await?;
    directory.add_domain(pb::AddDomainRequest { name: DOMAIN.into() }).await.context("adding the domain")?;
    let account = pb::AddAccountRequest { address: RECIPIENT.into(), password: "bench".into() };
    Ok(directory.add_account(account).await.context("adding the account")?.into_inner().id)
}

/// Waits until the queue stream is empty and the mailbox holds `expected` messages, and returns when
/// that was seen (polling every 100 ms). `None`, after saying so, when the queue did not move for
/// [`PATIENCE`] or did not drain within `limit`.
async fn wait_drained(
    stack: &Stack,
    account_id: i64,
    expected: usize,
    limit: Duration,
) -> anyhow::Result<Option<Instant>> {
    let start = Instant::now();
    let mut last_change = (start, u64::MAX);
    loop {
        let queued = stack.queue_status().await?.messages;
        if queued == 0 {
            let seen = Instant::now();
            if stack.mailbox_count(account_id).await? >= expected {
                return Ok(Some(seen));
            }
        }
        if queued != last_change.1 {
            last_change = (Instant::now(), queued);
        }
        if last_change.0.elapsed() > PATIENCE || start.elapsed() > limit {
            let waited = start.elapsed().as_secs();
            println!("NOT DRAINED: {queued} messages still queued after {waited} s of waiting");
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The relay's count of messages by disposition: retries mean deliveries that failed for a while.
async fn print_relay_outcomes(stack: &Stack) {
    let counts = stack.metrics("relay", "mailbus_relay_messages_total").await;
    println!("relay: {}", counts.join(", "));
}

/// Prints what the roles used and logged; dropping the stack then stops them.
fn finish(stack: &Stack) {
    println!();
    stack.print_memory();
    stack.print_log_summary();
}

/// How one transaction ended.
enum Sent {
    /// `250` after the final ".": how long it took from writing the "." line.
    Accepted(Duration),
    /// Any other reply; the connection goes on unless it was 421.
    Refused(Reply),
}

/// MAIL, RCPT, DATA, the message, "." on `client`. A refused MAIL, RCPT or DATA is followed by RSET.
async fn send(client: &mut SmtpClient, message: &[u8]) -> anyhow::Result<Sent> {
    Ok(match client.send_timed(SENDER, RECIPIENT, message).await? {
        (reply, Some(latency)) if reply.code == 250 => Sent::Accepted(latency),
        (reply, _) => Sent::Refused(reply),
    })
}

/// Connects, reads the greeting and says EHLO.
async fn open(server: SocketAddr) -> anyhow::Result<SmtpClient> {
    SmtpClient::open_as(server, "smtp-bench.localhost").await
}

// ---------------------------------------------------------------------------------------------------
// The load

struct Load {
    messages: usize,
    connections: usize,
    message: Arc<[u8]>,
}

/// The messages still to be sent, shared by the connections. A refused message is not retried, but a
/// new one takes its place until `messages` were accepted; the load stops early after as many errors.
struct Budget {
    unclaimed: AtomicUsize,
    errors: AtomicUsize,
    error_limit: usize,
}

impl Budget {
    fn claim(&self) -> bool {
        if self.errors.load(Ordering::Relaxed) >= self.error_limit {
            return false;
        }
        self.unclaimed.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }

    fn failed(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.unclaimed.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    accepted: usize,
    /// Every non-250 end of a transaction, and every I/O failure.
    errors: Vec<String>,
    /// From writing the final "." to reading the 250, per accepted message.
    latencies: Vec<Duration>,
    first_accept: Option<Instant>,
    last_accept: Option<Instant>,
}

/// What all connections saw together, from the start of the load.
struct LoadReport {
    start: Instant,
    accepted: usize,
    errors: Vec<String>,
    /// Sorted.
    latencies: Vec<Duration>,
    first_accept: Option<Instant>,
    last_accept: Option<Instant>,
}

impl Load {
    async fn run(&self, server: SocketAddr) -> LoadReport {
        let budget = Arc::new(Budget {
            unclaimed: AtomicUsize::new(self.messages),
            errors: AtomicUsize::new(0),
            error_limit: self.messages,
        });
        let start = Instant::now();
        let senders = (0..self.connections).map(|_| tokio::spawn(sender(server, self.message.clone(), budget.clone())));
        let mut report = LoadReport {
            start,
            accepted: 0,
            errors: Vec::new(),
            latencies: Vec::with_capacity(self.messages),
            first_accept: None,
            last_accept: None,
        };
        for finished in futures::future::join_all(senders).await {
            let tally = finished.unwrap_or_else(|e| Tally { errors: vec![e.to_string()], ..Default::default() });
            report.accepted += tally.accepted;
            report.errors.extend(tally.errors);
            report.latencies.extend(tally.latencies);
            report.first_accept = earliest(report.first_accept, tally.first_accept);
            report.last_accept = report.last_accept.max(tally.last_accept);
        }
        report.latencies.sort_unstable();
        report
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One connection's share of the load: it claims messages until none are left.
async fn sender(server: SocketAddr, message: Arc<[u8]>, budget: Arc<Budget>) -> Tally {
    let mut tally = Tally::default();
    let mut client: Option<SmtpClient> = None;
    while budget.claim() {
        let connection = match client.as_mut() {
            Some(connection) => connection,
            None => match open(server).await {
                Ok(connection) => client.insert(connection),
                Err(error) => {
                    tally.errors.push(format!("{error:#}"));
                    budget.failed();
                    continue;
                }
            },
        };
        match send(connection, &message).await {
            Ok(Sent::Accepted(latency)) => {
                let now = Instant::now();
                tally.accepted += 1;
                tally.latencies.push(latency);
                tally.first_accept.get_or_insert(now);
                tally.last_accept = Some(now);
            }
            Ok(Sent::Refused(reply)) => {
                if reply.code == 421 {
                    client = None;
                }
                tally.errors.push(reply.text);
                budget.failed();
            }
            Err(error) => {
                tally.errors.push(format!("{error:#}"));
                budget.failed();
                client = None;
            }
        }
    }
    if let Some(connection) = client {
        connection.quit().await;
    }
    tally
}

impl LoadReport {
    /// Nearest-rank percentile of the sorted latencies.
    fn percentile(&self, p: usize) -> Duration {
        percentile(&self.latencies, p)
    }

    /// From the start of the load to the last 250.
    fn elapsed(&self) -> Duration {
        self.last_accept.map_or(Duration::ZERO, |last| last.duration_since(self.start))
    }

    fn print(&self) {
        println!(
            "accepted {} messages in {:.2} s = {:.0} msgs/s",
            self.accepted,
            self.elapsed().as_secs_f64(),
            rate(self.accepted, self.elapsed())
        );
        println!(
            "latency of the final 250: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(self.percentile(50)),
            ms(self.percentile(99)),
            ms(self.latencies.last().copied().unwrap_or_default())
        );
        println!("errors: {}", self.errors.len());
        let mut distinct: Vec<&String> = self.errors.iter().collect();
        distinct.sort();
        distinct.dedup();
        for error in distinct.iter().take(5) {
            println!("  {error}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Idle sessions

/// Opens `count` sessions that greet and say EHLO, then stay idle, and prints what they cost
/// smtp-ingress in resident memory.
async fn idle_sessions(server: SocketAddr, pid: u32, count: usize, rss_fresh: u64) -> anyhow::Result<()> {
    println!("\n== mailbus smtp-ingress, {count} idle sessions ==");
    let before = rss_kib(pid)?;
    let opened: Vec<anyhow::Result<SmtpClient>> =
        futures::stream::iter(0..count).map(|_| open(server)).buffer_unordered(64).collect().await;
    let (sessions, failures): (Vec<_>, Vec<_>) = opened.into_iter().partition(Result::is_ok);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with = rss_kib(pid)?;
    println!("VmRSS of smtp-ingress: {rss_fresh} KiB after start-up, {before} KiB after the load");
    println!(
        "VmRSS with {} idle sessions open: {with} KiB = {:.1} MiB; {:+} KiB over before them = {:.1} KiB per session",
        sessions.len(),
        with as f64 / 1024.0,
        with as i64 - before as i64,
        (with as f64 - before as f64) / sessions.len().max(1) as f64
    );
    if let Some(Err(error)) = failures.first() {
        println!("sessions that failed to open: {} (first: {error:#})", failures.len());
    }
    drop(sessions);
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("VmRSS a second after closing them: {} KiB", rss_kib(pid)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Postfix's smtp-source, and Postfix itself

/// One of Postfix's test tools (`smtp-source`, `smtp-sink`), on PATH or in /usr/sbin.
fn postfix_tool(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    on_path.chain([PathBuf::from("/usr/sbin").join(name)]).find(|p| p.is_file())
}

/// Runs smtp-source with the load's numbers and prints its rate. By default smtp-source opens a new
/// connection per message; `persistent` (-d) keeps each session for many messages, like our generator.
async fn run_smtp_source(tool: &Path, args: &Args, server: SocketAddr, persistent: bool) -> anyhow::Result<()> {
    let mut command_line: Vec<String> = vec!["-c".into()];
    if persistent {
        command_line.push("-d".into());
    }
    command_line.extend(
        [
            "-l",
            &args.size.to_string(),
            "-m",
            &args.messages.to_string(),
            "-s",
            &args.connections.to_string(),
            "-f",
            SENDER,
            "-t",
            RECIPIENT,
            &server.to_string(),
        ]
        .map(String::from),
    );
    println!("command: {} {}", tool.display(), command_line.join(" "));
    let start = Instant::now();
    let output = tokio::process::Command::new(tool)
        .args(&command_line)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", tool.display()))?;
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        println!("smtp-source failed ({}): {}", output.status, stderr.trim());
        return Ok(());
    }
    println!(
        "smtp-source: {} messages in {:.2} s = {:.0} msgs/s",
        args.messages,
        elapsed.as_secs_f64(),
        rate(args.messages, elapsed)
    );
    Ok(())
}

/// A Postfix instance of our own: its configuration, queue and log in a temporary directory, smtpd on
/// one loopback port, every local recipient accepted and delivered to the discard transport. Stopped
/// on drop.
struct ThrowawayPostfix {
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl ThrowawayPostfix {
    fn start() -> anyhow::Result<ThrowawayPostfix> {
        #[allow(unsafe_code)]
        // SAFETY: geteuid has no preconditions and touches no memory.
        let euid = unsafe { libc::geteuid() };
        ensure!(euid == 0, "starting Postfix needs root");
        ensure!(Path::new("/usr/sbin/postfix").is_file(), "/usr/sbin/postfix not found (Debian package postfix)");
        let dir = tempfile::Builder::new().prefix("smtp-bench-postfix-").tempdir()?;
        let root = dir.path();
        for sub in ["etc", "queue", "data"] {
            std::fs::create_dir(root.join(sub))?;
        }
        // Postfix's daemons run as the postfix user and must reach the queue and data directories.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))?;
        run_checked("chown", &["postfix", &root.join("data").display().to_string()])?;
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        std::fs::write(root.join("etc/main.cf"), postfix_main_cf(root))?;
        std::fs::write(root.join("etc/master.cf"), postfix_master_cf(addr))?;
        let postfix = ThrowawayPostfix { dir, addr };
        run_checked("/usr/sbin/postfix", &["-c", &postfix.config_dir(), "start"])
            .with_context(|| format!("starting Postfix; see {}", postfix.dir.path().join("maillog").display()))?;
        Ok(postfix)
    }

    fn config_dir(&self) -> String {
        self.dir.path().join("etc").display().to_string()
    }
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
    let status =
        std::process::Command::new(program).args(args).status().with_context(|| format!("running {program}"))?;
    ensure!(status.success(), "{program} {} exited with {status}", args.join(" "));
    Ok(())
}

fn postfix_main_cf(root: &Path) -> String {
    let root = root.display();
    format!(
        "compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = postfix.bench.test
mydomain = {DOMAIN}
mydestination = {DOMAIN}
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
default_transport = discard
local_transport = discard
relay_transport = discard
biff = no
"
    )
}

/// Only the services a queue-and-discard Postfix needs; none chrooted, smtpd on `addr` only.
fn postfix_master_cf(addr: SocketAddr) -> String {
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
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"
    )
}

/// Measures a throwaway Postfix; returns its accept rate under this generator.
async fn measure_postfix(args: &Args, load: &Load) -> anyhow::Result<Option<f64>> {
    let postfix = match ThrowawayPostfix::start() {
        Ok(postfix) => postfix,
        Err(error) => {
            println!("\nPostfix: not measured: {error:#}");
            return Ok(None);
        }
    };
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(postfix.addr).await.is_err() {
        ensure!(Instant::now() < deadline, "Postfix smtpd never listened on {}", postfix.addr);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("\n== Postfix (queue to disk, discard delivery), this load generator ({}) ==", postfix.addr);
    let report = load.run(postfix.addr).await;
    report.print();
    if let Some(tool) = postfix_tool("smtp-source") {
        for persistent in [false, true] {
            println!("\n== Postfix, smtp-source ==");
            run_smtp_source(&tool, args, postfix.addr, persistent).await?;
        }
    }
    Ok(Some(rate(report.accepted, report.elapsed())))
}
