//! `relay-bench`: remote deliveries per second of the relay role to a loopback SMTP sink with 20-way
//! concurrency (issue 4). A benchmark, not a test: it measures and prints, and asserts nothing;
//! BENCHMARKS.md records its output with the command that produced it.
//!
//! It starts PostgreSQL and nats-server through the test harness (or uses `DATABASE_URL` / `NATS_URL`),
//! an SMTP sink on a loopback port (Postfix's `smtp-sink` when installed, else a small one of its own),
//! and `mailbus mailbox` and `smtp-ingress` from the given binary as separate processes, with the
//! transport map sending `sink.test` to the sink (and everything else to the discard port, 9). Messages
//! go in through submission with AUTH PLAIN over plain TCP (`MAILBUS_SMTP_PLAINTEXT_AUTH=true`), from
//! C connections in lock-step, to one recipient `x@sink.test` each.
//!
//! Two runs, each of M messages:
//! 1. **drain**: everything is queued while no relay runs; then `mailbus relay` starts, and the time
//!    from its `/readyz` to an empty queue (QueueAdmin `QueueStatus`, polled every 50 ms) is the
//!    relay's alone.
//! 2. **steady**: the relay runs while the same load is submitted; the time from the first `250` to an
//!    empty queue covers acceptance and delivery together.
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
use mailbus_bench::{self as bench, PATIENCE, SmtpClient, Stack, ms, percentile, rate};
use mailbus_devstack::free_port;
use mailbus_proto::v1 as pb;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const DOMAIN: &str = "bench.test";
const SENDER: &str = "sender@bench.test";
const PASSWORD: &str = "bench";
const RECIPIENT: &str = "x@sink.test";
/// Longest wait for the queue to drain.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);

#[derive(Parser, Debug)]
#[command(about = "Measures the relay: remote deliveries per second to a loopback SMTP sink")]
struct Args {
    /// The (release-built) mailbus binary to run the roles from.
    mailbus: PathBuf,
    /// Messages in each run.
    #[arg(long, default_value_t = 5000)]
    messages: usize,
    /// Concurrent submission connections.
    #[arg(long, default_value_t = 20)]
    connections: usize,
    /// Size of each message in octets (headers and body, without the terminating ".").
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// MAILBUS_RELAY_CONCURRENCY and MAILBUS_RELAY_DESTINATION_CONCURRENCY.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Use the built-in sink even when Postfix's smtp-sink is installed.
    #[arg(long)]
    builtin_sink: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    ensure!(args.connections > 0 && args.messages > 0 && args.concurrency > 0, "counts must be positive");
    ensure!(args.size >= 200, "--size must be at least 200 octets");
    bench::until_interrupted("relay-bench", run(args)).await
}

async fn run(args: Args) -> anyhow::Result<()> {
    bench::print_setting(&format!(
        "{} messages of {} octets to {RECIPIENT} per run, submitted over {} connections; relay concurrency {}",
        args.messages, args.size, args.connections, args.concurrency
    ));
    let sink = Sink::start(args.builtin_sink).await?;
    println!("sink: {} on {}", sink.kind, sink.addr);
    let concurrency = args.concurrency.to_string();
    let settings = [
        ("MAILBUS_RELAY_TRANSPORTS", format!("sink.test={},*=127.0.0.1:9", sink.addr)),
        ("MAILBUS_RELAY_CONCURRENCY", concurrency.clone()),
        ("MAILBUS_RELAY_DESTINATION_CONCURRENCY", concurrency),
        ("MAILBUS_SMTP_PLAINTEXT_AUTH", "true".into()),
    ];
    let mut stack = Stack::start(&args.mailbus, &["mailbox", "smtp-ingress"], &settings).await?;
    let mut directory = stack.directory().await?;
    directory.add_domain(pb::AddDomainRequest { name: DOMAIN.into() }).await.context("adding the domain")?;
    let account = pb::AddAccountRequest { address: SENDER.into(), password: PASSWORD.into() };
    directory.add_account(account).await.context("adding the sender's account")?;
    let submission = stack.addr("MAILBUS_SUBMISSION_LISTEN")?;
    let message: Arc<[u8]> = bench::message_of_size(
        &format!("From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: relay-bench\r\n\r\n"),
        args.size,
    )
    .into();
    let mut results = Vec::new();

    println!("\n== 1. drain: {} messages queued with no relay running, then the relay starts ==", args.messages);
    let submitted = submit(submission, args.messages, args.connections, message.clone()).await;
    submitted.print();
    let spawned = Instant::now();
    let ready = stack.start_role("relay").await?;
    println!("relay ready {:.0} ms after it was started", ms(ready.duration_since(spawned)));
    println!("queue at relay start: {} messages", stack.queue_status().await?.messages);
    if let Some(empty) = wait_empty(&stack).await? {
        let relayed = relayed(&stack).await;
        let span = empty.duration_since(ready);
        println!(
            "drained {relayed} remote deliveries in {:.2} s from the relay's readiness = {:.0} deliveries/s \
             ({:.0}/s counting from its start)",
            span.as_secs_f64(),
            rate(relayed, span),
            rate(relayed, empty.duration_since(spawned))
        );
        results.push(("drain (relay alone)", relayed, span));
    }
    stack.print_memory();

    println!("\n== 2. steady: {} messages submitted while the relay runs ==", args.messages);
    let before = relayed(&stack).await;
    let submitted = submit(submission, args.messages, args.connections, message).await;
    submitted.print();
    if let (Some(first), Some(empty)) = (submitted.first_accept, wait_empty(&stack).await?) {
        let relayed = relayed(&stack).await - before;
        let span = empty.duration_since(first);
        println!(
            "{relayed} remote deliveries from the first 250 to an empty queue in {:.2} s = {:.0} deliveries/s",
            span.as_secs_f64(),
            rate(relayed, span)
        );
        results.push(("steady (submission and relay)", relayed, span));
    }

    println!();
    println!("{}", stack.metrics("relay", "mailbus_relay_recipients_total").await.join("\n"));
    println!("{}", stack.metrics("relay", "mailbus_relay_messages_total").await.join("\n"));
    if let Some(count) = sink.count() {
        println!("the sink counted {count} messages");
    }
    stack.print_memory();
    stack.print_log_summary();

    println!("\n== summary: relay concurrency {}, sink {} ==", args.concurrency, sink.kind);
    for (run, relayed, span) in results {
        println!(
            "{run:<32} {relayed:>6} deliveries in {:>7.2} s = {:>6.0} /s",
            span.as_secs_f64(),
            rate(relayed, span)
        );
    }
    Ok(())
}

/// Recipients the relay handed to a remote server, from its `/metrics`.
async fn relayed(stack: &Stack) -> usize {
    let lines = stack.metrics("relay", "mailbus_relay_recipients_total{outcome=\"relayed\"}").await;
    lines.first().and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok()).unwrap_or(0.0) as usize
}

/// Polls QueueStatus every 50 ms until the queue is empty; returns when that was seen, or `None` (after
/// saying so) when it did not move for [`PATIENCE`] or did not drain within [`DRAIN_LIMIT`].
async fn wait_empty(stack: &Stack) -> anyhow::Result<Option<Instant>> {
    let start = Instant::now();
    let mut last_change = (start, u64::MAX);
    loop {
        let queued = stack.queue_status().await?.messages;
        if queued == 0 {
            return Ok(Some(Instant::now()));
        }
        if queued != last_change.1 {
            last_change = (Instant::now(), queued);
        }
        if last_change.0.elapsed() > PATIENCE || start.elapsed() > DRAIN_LIMIT {
            println!("NOT DRAINED: {queued} messages still queued after {} s", start.elapsed().as_secs());
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------------
// Submission

#[derive(Default)]
struct Submitted {
    accepted: usize,
    errors: Vec<String>,
    latencies: Vec<Duration>,
    first_accept: Option<Instant>,
    last_accept: Option<Instant>,
}

impl Submitted {
    fn print(&self) {
        let span = match (self.first_accept, self.last_accept) {
            (Some(first), Some(last)) => last.duration_since(first),
            _ => Duration::ZERO,
        };
        println!(
            "submitted: {} accepted in {:.2} s from the first 250 to the last = {:.0} msgs/s; \
             final 250 p50 {:.2} ms, p99 {:.2} ms; errors {}",
            self.accepted,
            span.as_secs_f64(),
            rate(self.accepted, span),
            ms(percentile(&self.latencies, 50)),
            ms(percentile(&self.latencies, 99)),
            self.errors.len()
        );
        let mut distinct: Vec<&String> = self.errors.iter().collect();
        distinct.sort();
        distinct.dedup();
        for error in distinct.iter().take(5) {
            println!("  {error}");
        }
    }
}

/// `messages` messages over `connections` authenticated submission sessions. A refused message is
/// counted and not retried.
async fn submit(server: SocketAddr, messages: usize, connections: usize, message: Arc<[u8]>) -> Submitted {
    let unclaimed = Arc::new(AtomicUsize::new(messages));
    let senders = (0..connections).map(|_| {
        let (unclaimed, message) = (unclaimed.clone(), message.clone());
        tokio::spawn(async move {
            let mut tally = Submitted::default();
            let mut client = match SmtpClient::open(server).await {
                Ok(client) => client,
                Err(error) => {
                    tally.errors.push(format!("{error:#}"));
                    return tally;
                }
            };
            if let Err(error) = client.auth_plain(SENDER, PASSWORD).await {
                tally.errors.push(format!("{error:#}"));
                return tally;
            }
            while unclaimed.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
                let start = Instant::now();
                match client.send(SENDER, RECIPIENT, &message).await {
                    Ok(reply) if reply.code == 250 => {
                        let now = Instant::now();
                        tally.accepted += 1;
                        tally.latencies.push(now.duration_since(start));
                        tally.first_accept.get_or_insert(now);
                        tally.last_accept = Some(now);
                    }
                    Ok(reply) => tally.errors.push(reply.text),
                    Err(error) => {
                        tally.errors.push(format!("{error:#}"));
                        return tally;
                    }
                }
            }
            client.quit().await;
            tally
        })
    });
    let mut all = Submitted::default();
    for finished in futures::future::join_all(senders).await {
        let tally = finished.unwrap_or_else(|e| Submitted { errors: vec![e.to_string()], ..Default::default() });
        all.accepted += tally.accepted;
        all.errors.extend(tally.errors);
        all.latencies.extend(tally.latencies);
        all.first_accept = match (all.first_accept, tally.first_accept) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        all.last_accept = all.last_accept.max(tally.last_accept);
    }
    all.latencies.sort_unstable();
    all
}

// ---------------------------------------------------------------------------------------------------
// The sink

/// A loopback SMTP server that accepts every message and discards it.
struct Sink {
    kind: &'static str,
    addr: SocketAddr,
    /// Postfix's smtp-sink, killed on drop.
    _process: Option<tokio::process::Child>,
    /// Messages the built-in sink accepted.
    counter: Option<Arc<AtomicUsize>>,
}

impl Sink {
    async fn start(builtin: bool) -> anyhow::Result<Sink> {
        let tool = Path::new("/usr/sbin/smtp-sink");
        if !builtin && tool.is_file() {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
            // `smtp-sink host:port backlog`: accepts and discards every message. As root it insists on
            // a user to switch to.
            #[allow(unsafe_code)]
            // SAFETY: geteuid has no preconditions and touches no memory.
            let root = unsafe { libc::geteuid() } == 0;
            let user: &[&str] = if root { &["-u", "postfix"] } else { &[] };
            let mut process = tokio::process::Command::new(tool)
                .args(user)
                .args([addr.to_string(), "1000".into()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("starting smtp-sink")?;
            let deadline = Instant::now() + PATIENCE;
            while TcpStream::connect(addr).await.is_err() {
                if let Some(status) = process.try_wait()? {
                    anyhow::bail!("smtp-sink exited with {status}");
                }
                ensure!(Instant::now() < deadline, "smtp-sink never listened on {addr}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            return Ok(Sink { kind: "Postfix smtp-sink", addr, _process: Some(process), counter: None });
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counter = Arc::new(AtomicUsize::new(0));
        let accepted = counter.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(sink_session(stream, accepted.clone()));
            }
        });
        Ok(Sink { kind: "built-in sink", addr, _process: None, counter: Some(counter) })
    }

    fn count(&self) -> Option<usize> {
        self.counter.as_ref().map(|c| c.load(Ordering::Relaxed))
    }
}

/// One session of the built-in sink: every command gets its positive reply, in order (so pipelined
/// commands work), and DATA is read up to the lone "." and dropped.
async fn sink_session(stream: TcpStream, accepted: Arc<AtomicUsize>) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut stream = BufReader::new(stream);
    stream.get_mut().write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if stream.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).map(|v| v.to_ascii_uppercase()).unwrap_or_default();
        let reply: &[u8] = match &verb[..] {
            b"EHLO" => b"250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            b"DATA" => {
                stream.get_mut().write_all(b"354 go on\r\n").await?;
                loop {
                    line.clear();
                    if stream.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                }
                accepted.fetch_add(1, Ordering::Relaxed);
                b"250 2.0.0 discarded\r\n"
            }
            b"QUIT" => {
                stream.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => b"250 2.0.0 ok\r\n",
        };
        stream.get_mut().write_all(reply).await?;
    }
}
