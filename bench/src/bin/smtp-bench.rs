//! `smtp-bench`: smtp-ingress's durable accept rate and mailbus end to end, side by side with Postfix in
//! the same run (issues 3 and 18), and what 1,000 idle sessions cost smtp-ingress. A benchmark, not a
//! test: it measures and prints, and asserts nothing; BENCHMARKS.md records its output with the command
//! that produced it.
//!
//! It starts PostgreSQL and nats-server through the test harness (or uses `DATABASE_URL` / `NATS_URL`),
//! runs `mailbus mailbox`, `relay`, `smtp-ingress` and `access` from the given binary as separate
//! processes on free loopback ports, and drives them with its own SMTP load generator
//! ([`mailbus_bench::smtp_load`]): C connections, each one EHLO and then MAIL/RCPT/DATA transactions in
//! lock-step (no PIPELINING), until M messages got `250`.
//!
//! Unless `NATS_URL` names one, mailbus runs over a nats-server of its own that syncs each message
//! before acknowledging it (`sync_interval: always`, as `deploy/nats/nats.conf` does), so that its 250
//! is as durable as Postfix's, whose cleanup fsyncs the queue file first.
//!
//! 1. **Durable acceptance**, `--rounds` rounds, the sides one after the other in each round: mailbus,
//!    then (with `--postfix`) a throwaway Postfix that queues to disk and discards, then Postfix's
//!    `smtp-sink` (the loopback ceiling: it answers 250 at once and keeps nothing). Before the next side
//!    runs, the one before has drained its queue. Each round's rate is printed beside the median, and
//!    the ratios are of the medians.
//! 2. **fsyncs per accepted message**: one more mailbus run with strace attached to nats-server
//!    (slower, so not among the medians) and the relay stopped until the last 250, so that the calls of
//!    accepting and those of delivering are counted apart; and one more Postfix run with strace
//!    attached to its master and daemons.
//! 3. **End to end**, from the start of the load until the last message is readable over IMAP
//!    (`STATUS INBOX (MESSAGES)` in a logged-in session per mailbox), `--e2e-messages` into one mailbox
//!    and then spread over `--spread` mailboxes, in rounds: mailbus, then (with `--postfix`) Postfix
//!    delivering over LMTP into a throwaway Dovecot with the same users and empty INBOXes.
//! 4. **Idle sessions**, and Postfix's `smtp-source` against mailbus as a second load generator.
//!
//! Every process it starts is killed when it ends, also on error and Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use futures::StreamExt;
use mailbus_bench::dovecot::ThrowawayDovecot;
use mailbus_bench::fsyncs::{SyncTrace, count_between};
use mailbus_bench::postfix::{self, Delivery, SmtpSink, ThrowawayPostfix};
use mailbus_bench::rounds::{Series, print_ratio, print_table};
use mailbus_bench::smtp_load::{Load, Shape, open};
use mailbus_bench::{self as bench, PATIENCE, SmtpClient, Stack, imap_status, rate, rss_kib};
use mailbus_devstack::{Nats, free_port};
use mailbus_proto::v1 as pb;
use mailbus_tests::dns::TestDns;

const DOMAIN: &str = "bench.test";
const SENDER: &str = "bench@bench.test";
const RECIPIENT: &str = "sink@bench.test";
/// Every account's password, on both sides.
const PASSWORD: &str = "bench";
/// Longest wait for the queue to drain after a load.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);
/// Longest wait for an end-to-end run's last message to be readable.
const VISIBLE_LIMIT: Duration = Duration::from_secs(300);

#[derive(Parser, Debug)]
#[command(about = "Measures smtp-ingress's durable accept rate and mailbus end to end, side by side with Postfix")]
struct Args {
    /// The (release-built) mailbus binary to run the roles from.
    mailbus: PathBuf,
    /// Messages per acceptance run, connections and message size of every load.
    #[command(flatten)]
    load: Shape,
    /// Rounds of each side-by-side measurement; the sides take turns within a round.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Messages of each end-to-end run.
    #[arg(long, default_value_t = 2000)]
    e2e_messages: usize,
    /// Mailboxes the second end-to-end measurement spreads its messages over.
    #[arg(long, default_value_t = 100)]
    spread: usize,
    /// Idle sessions (greeting and EHLO, then nothing) to open for the memory measurement.
    #[arg(long, default_value_t = 1000)]
    idle_sessions: usize,
    /// Also measure the peers (needs root and Debian's postfix, and dovecot-imapd with dovecot-lmtpd
    /// for end to end): a throwaway Postfix on a loopback port that discards what it queued, and one
    /// that delivers over LMTP into a throwaway Dovecot.
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
    ensure!(args.load.size >= HEADER.len() + 2, "--size must be at least {} octets", HEADER.len() + 2);
    ensure!(
        args.load.connections > 0
            && args.load.messages > 0
            && args.e2e_messages > 0
            && args.rounds > 0
            && args.spread > 0,
        "--connections, --messages, --e2e-messages, --rounds and --spread must be positive"
    );
    bench::until_interrupted("smtp-bench", run(args)).await
}

async fn run(args: Args) -> anyhow::Result<()> {
    print_setting(&args);
    raise_open_files_limit(args.idle_sessions + args.load.connections + 2 * args.spread + 512)?;
    let mut message = bench::message_of_size(HEADER, args.load.size);
    let mut verification = None;
    if args.verify {
        let (dns, signed) = sender_auth_dns(&message).await;
        message = signed;
        verification = Some(dns);
    }
    let message: Arc<[u8]> = message.into();
    let ours = Mailbus::start(&args, verification.as_ref()).await?;
    acceptance(&args, &ours, &message).await?;
    end_to_end(&args, &ours, &message).await?;
    if verification.is_some() {
        // What the checks concluded, so that a run in which they failed or never ran is seen as such.
        let results = ours.stack.metrics("smtp-ingress", "mailbus_smtp_sender_auth_total").await;
        println!("\nsender authentication results: {}", results.join(", "));
    }
    idle_sessions(ours.smtp, ours.smtp_pid, args.idle_sessions, ours.rss_fresh).await?;
    smtp_source_runs(&args, &ours).await?;
    print_relay_outcomes(&ours.stack).await;
    finish(&ours.stack);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// The stack under test

/// mailbus's roles, the nats-server they use, and the account the acceptance runs deliver to.
struct Mailbus {
    stack: Stack,
    smtp: SocketAddr,
    imap: SocketAddr,
    smtp_pid: u32,
    /// VmRSS of smtp-ingress right after start-up, in KiB.
    rss_fresh: u64,
    sink_account: i64,
    /// The pid of nats-server when it is this benchmark's own.
    nats_pid: Option<u32>,
    _nats: Option<Nats>,
}

impl Mailbus {
    async fn start(args: &Args, verification: Option<&TestDns>) -> anyhow::Result<Mailbus> {
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
        let (nats, nats_pid) = match std::env::var("NATS_URL") {
            Ok(url) => {
                println!("nats-server: {url} (NATS_URL), as it is configured");
                (None, None)
            }
            Err(_) => {
                let store = mailbus_tests::infra::scratch_dir().join("bench-nats-synced");
                let config = store.join("nats-server.conf").display().to_string();
                let nats = tokio::task::spawn_blocking(move || Nats::start_synced(&store, free_port()?)).await??;
                println!("nats-server: {} of its own, syncing each message before acknowledging it", nats.url());
                settings.push(("NATS_URL", nats.url()));
                (Some(nats), bench::pid_with_arg(&config))
            }
        };
        let stack = Stack::start(&args.mailbus, &["mailbox", "relay", "smtp-ingress", "access"], &settings).await?;
        println!("\n== each role at rest, before any mail ==");
        stack.print_memory();
        let smtp_pid = stack.pid("smtp-ingress").context("smtp-ingress has no pid")?;
        let mut directory = stack.directory().await?;
        directory.add_domain(pb::AddDomainRequest { name: DOMAIN.into() }).await.context("adding the domain")?;
        let sink_account = add_account(&stack, RECIPIENT).await?;
        Ok(Mailbus {
            smtp: stack.addr("MAILBUS_SMTP_LISTEN")?,
            imap: stack.addr("MAILBUS_IMAP_LISTEN")?,
            rss_fresh: rss_kib(smtp_pid)?,
            smtp_pid,
            sink_account,
            nats_pid,
            _nats: nats,
            stack,
        })
    }

    /// Waits until the queue is empty and the sink holds `expected` messages (untimed: only so that
    /// the next side starts on a quiet machine).
    async fn drain(&self, expected: usize) -> anyhow::Result<Option<Instant>> {
        wait_drained(&self.stack, self.sink_account, expected, DRAIN_LIMIT).await
    }
}

async fn add_account(stack: &Stack, address: &str) -> anyhow::Result<i64> {
    let mut directory = stack.directory().await?;
    let account = pb::AddAccountRequest { address: address.into(), password: PASSWORD.into() };
    let added = directory.add_account(account).await.with_context(|| format!("adding {address}"))?;
    Ok(added.into_inner().id)
}

// ---------------------------------------------------------------------------------------------------
// Durable acceptance

/// `--rounds` rounds of mailbus, Postfix and smtp-sink under the same load, then the fsync count.
async fn acceptance(args: &Args, ours: &Mailbus, message: &Arc<[u8]>) -> anyhow::Result<()> {
    let load = Load {
        messages: args.load.messages,
        connections: args.load.connections,
        message: message.clone(),
        sender: SENDER.into(),
        recipients: Arc::from([RECIPIENT.to_owned()]),
    };
    let peer = if args.postfix {
        match ThrowawayPostfix::start(DOMAIN, Delivery::Discard).await {
            Ok(postfix) => Some(postfix),
            Err(error) => {
                println!("\nPostfix: not measured: {error:#}");
                None
            }
        }
    } else {
        None
    };
    let sink = SmtpSink::start().await?;
    if sink.is_none() {
        println!("\nsmtp-sink: not found (Debian package postfix); the ceiling is not measured");
    }
    let mut mailbus = Series::new("mailbus (nats-server syncs before each ack)");
    let mut theirs = Series::new(format!("Postfix {} (queue file fsynced, discard)", postfix::version()));
    let mut ceiling = Series::new("smtp-sink (answers 250 at once, keeps nothing)");
    let mut delivered = ours.stack.mailbox_count(ours.sink_account).await?;
    for round in 1..=args.rounds {
        println!("\n== durable acceptance, round {round} of {} ==", args.rounds);
        let report = load.run(ours.smtp).await;
        report.print_line("mailbus");
        println!("mailbus queue backlog at the last 250: {} messages", ours.stack.queue_status().await?.messages);
        mailbus.figures.push(report.rate());
        delivered += report.accepted;
        ours.drain(delivered).await?;
        if let Some(peer) = &peer {
            let report = load.run(peer.addr).await;
            report.print_line("Postfix");
            theirs.figures.push(report.rate());
            if !peer.wait_empty(DRAIN_LIMIT).await {
                println!("NOT DRAINED: Postfix still holds {} queue files", peer.queued());
            }
        }
        if let Some(sink) = &sink {
            let report = load.run(sink.addr).await;
            report.print_line("smtp-sink");
            ceiling.figures.push(report.rate());
        }
    }
    let title = format!(
        "durable acceptance: {} connections, {} octets, {} messages a run, {} rounds taken in turn",
        args.load.connections, args.load.size, args.load.messages, args.rounds
    );
    print_table(&title, "msgs/s", &[&mailbus, &theirs, &ceiling]);
    print_ratio("durable acceptance, mailbus / Postfix", &mailbus, &theirs, "issue 18: at least 1.5, aiming at 2");
    print_ratio("durable acceptance, mailbus / smtp-sink", &mailbus, &ceiling, "issue 18: at least 0.15");
    print_ratio("durable acceptance, Postfix / smtp-sink", &theirs, &ceiling, "for reference");
    if let (Some(peer), Some(tool)) = (&peer, bench::installed("smtp-source")) {
        for persistent in [false, true] {
            println!("\n== Postfix, smtp-source ==");
            run_smtp_source(&tool, args, peer.addr, persistent).await?;
        }
    }
    if let Some(peer) = &peer {
        postfix_fsyncs_per_message(peer, &load).await?;
    }
    drop(peer);
    drop(sink);
    fsyncs_per_message(ours, &load, delivered).await
}

/// One more mailbus acceptance run with strace attached to nats-server and the relay stopped (SIGSTOP)
/// until the last 250: the fsync and fdatasync calls up to then are those of accepting alone (the
/// publishes), and those after, the relay going on until the queue is empty, those of delivering (its
/// acknowledgements remove the messages from the work queue).
async fn fsyncs_per_message(ours: &Mailbus, load: &Load, delivered: usize) -> anyhow::Result<()> {
    println!("\n== nats-server's fsyncs per accepted message: one more mailbus run, strace attached ==");
    let Some(pid) = ours.nats_pid else {
        println!("nats-server fsyncs per accepted message: not counted (not this benchmark's nats-server)");
        return Ok(());
    };
    let trace = match SyncTrace::attach(&[pid]).await {
        Ok(Some(trace)) => trace,
        Ok(None) => {
            println!("nats-server fsyncs per accepted message: not counted (strace not found: Debian package strace)");
            return Ok(());
        }
        Err(error) => {
            println!("nats-server fsyncs per accepted message: not counted ({error:#})");
            return Ok(());
        }
    };
    let relay = ours.stack.pid("relay").context("the relay has no pid")?;
    signal(relay, "-STOP")?;
    let report = load.run(ours.smtp).await;
    signal(relay, "-CONT")?;
    report.print_line("mailbus, nats-server traced, relay stopped (slower: not among the medians)");
    let drained = ours.drain(delivered + report.accepted).await?;
    let calls = trace.stop().await?;
    let (Some(last), true) = (report.last_accept, report.accepted > 0) else {
        println!("nats-server fsyncs per accepted message: not counted (nothing was accepted)");
        return Ok(());
    };
    let last = report.wall_clock(last);
    let accepting = count_between(&calls, report.start_wall, last);
    let per = |calls: usize| calls as f64 / report.accepted as f64;
    let delivering = match drained {
        Some(drained) => {
            let calls = count_between(&calls, last + Duration::from_nanos(1), report.wall_clock(drained));
            format!(
                "; {:.2} delivering ({calls} calls from then until the queue was empty); {:.2} in all",
                per(calls),
                per(accepting + calls)
            )
        }
        None => String::new(),
    };
    println!(
        "nats-server fsyncs per accepted message: {:.2} accepting ({accepting} fsync and fdatasync calls from \
         the start of the load to the last 250, the relay stopped, {} messages){delivering}",
        per(accepting),
        report.accepted
    );
    Ok(())
}

/// One more Postfix run of the same load with strace attached to its master and every daemon it runs
/// (and those it forks from then on): their fsync and fdatasync calls from the start of the load to the
/// last 250, and on until the queue is empty, per accepted message.
async fn postfix_fsyncs_per_message(peer: &ThrowawayPostfix, load: &Load) -> anyhow::Result<()> {
    println!("\n== Postfix's fsyncs per accepted message: one more Postfix run, strace attached ==");
    let pids = peer.pids();
    if pids.is_empty() {
        println!("Postfix fsyncs per accepted message: not counted (no master pid)");
        return Ok(());
    }
    let trace = match SyncTrace::attach(&pids).await {
        Ok(Some(trace)) => trace,
        Ok(None) => {
            println!("Postfix fsyncs per accepted message: not counted (strace not found: Debian package strace)");
            return Ok(());
        }
        Err(error) => {
            println!("Postfix fsyncs per accepted message: not counted ({error:#})");
            return Ok(());
        }
    };
    let report = load.run(peer.addr).await;
    report.print_line("Postfix, traced (slower: not among the medians)");
    let emptied = peer.wait_empty(DRAIN_LIMIT).await.then(Instant::now);
    let calls = trace.stop().await?;
    let (Some(last), true) = (report.last_accept, report.accepted > 0) else {
        println!("Postfix fsyncs per accepted message: not counted (nothing was accepted)");
        return Ok(());
    };
    let accepting = count_between(&calls, report.start_wall, report.wall_clock(last));
    let per = |calls: usize| calls as f64 / report.accepted as f64;
    let in_all = match emptied {
        Some(emptied) => {
            let calls = count_between(&calls, report.start_wall, report.wall_clock(emptied));
            format!("; {:.2} until the queue was empty ({calls} calls)", per(calls))
        }
        None => String::new(),
    };
    println!(
        "Postfix fsyncs per accepted message: {:.2} accepting ({accepting} fsync and fdatasync calls of its \
         {} processes and their children from the start of the load to the last 250, {} messages){in_all}",
        per(accepting),
        pids.len(),
        report.accepted
    );
    Ok(())
}

/// Sends a signal with kill(1): `-STOP` or `-CONT`.
fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill").args([signal, &pid.to_string()]).status()?;
    ensure!(status.success(), "kill {signal} {pid}: {status}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// End to end

/// Postfix delivering over LMTP into a throwaway Dovecot, the peer path end to end.
struct PeerPath {
    dovecot: ThrowawayDovecot,
    postfix: ThrowawayPostfix,
}

impl PeerPath {
    /// Every user has the password [`PASSWORD`] (Dovecot's `{PLAIN}` scheme: logins are not timed) and an
    /// empty INBOX. Dovecot does not fsync (`mail_fsync = never`), as the harness's PostgreSQL runs with
    /// `fsync=off`: both mailbox stores are alike, and the durable step of both paths is the queue's.
    async fn start(users: &[String]) -> anyhow::Result<PeerPath> {
        let hashes = vec![format!("{{PLAIN}}{PASSWORD}"); users.len()];
        let users = users.to_vec();
        let dovecot = tokio::task::spawn_blocking(move || {
            ThrowawayDovecot::start_imap_lmtp(&users, &hashes, "mail_fsync = never")
        })
        .await??;
        let lmtp = dovecot.lmtp_addr.context("Dovecot without LMTP")?;
        let postfix = ThrowawayPostfix::start(DOMAIN, Delivery::Lmtp(lmtp)).await?;
        Ok(PeerPath { dovecot, postfix })
    }
}

/// The users of one end-to-end run: `mailboxes` fresh ones per round, so every run starts on empty
/// INBOXes.
fn e2e_users(mailboxes: usize, round: usize) -> Vec<String> {
    (0..mailboxes).map(|i| format!("e2e-{mailboxes}-{round}-{i}@{DOMAIN}")).collect()
}

/// `--rounds` rounds into one mailbox, then as many spread over `--spread` mailboxes; mailbus and the
/// peer path take turns.
async fn end_to_end(args: &Args, ours: &Mailbus, message: &Arc<[u8]>) -> anyhow::Result<()> {
    let layouts = [(1, "issue 18: at least 1.0"), (args.spread, "issue 18: at least 1.5")];
    let peer = if args.postfix {
        let users: Vec<String> = layouts
            .iter()
            .flat_map(|&(mailboxes, _)| (1..=args.rounds).flat_map(move |round| e2e_users(mailboxes, round)))
            .collect();
        match PeerPath::start(&users).await {
            Ok(peer) => Some(peer),
            Err(error) => {
                println!("\nPostfix -> LMTP -> Dovecot: not measured: {error:#}");
                None
            }
        }
    } else {
        None
    };
    let dovecot_version = bench::dovecot::dovecot_version(bench::dovecot::Protocol::Imap).unwrap_or("?".into());
    for (mailboxes, target) in layouts {
        let mut mailbus = Series::new("mailbus (nats-server syncs before each ack)");
        let mut theirs = Series::new(format!("Postfix {} -> LMTP -> Dovecot {dovecot_version}", postfix::version()));
        for round in 1..=args.rounds {
            println!(
                "\n== end to end, {} messages over {mailboxes} mailbox(es), round {round} of {} ==",
                args.e2e_messages, args.rounds
            );
            let users = e2e_users(mailboxes, round);
            let load = Load {
                messages: args.e2e_messages,
                connections: args.load.connections,
                message: message.clone(),
                sender: SENDER.into(),
                recipients: users.clone().into(),
            };
            futures::stream::iter(&users)
                .map(|user| add_account(&ours.stack, user))
                .buffer_unordered(2)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<anyhow::Result<Vec<_>>>()?;
            if let Some(rate) = e2e_run("mailbus", &load, ours.smtp, ours.imap, &users).await? {
                mailbus.figures.push(rate);
            }
            wait_queue_empty(&ours.stack).await?;
            if let Some(peer) = &peer {
                let side = "Postfix -> LMTP -> Dovecot";
                if let Some(rate) = e2e_run(side, &load, peer.postfix.addr, peer.dovecot.addr, &users).await? {
                    theirs.figures.push(rate);
                }
                if !peer.postfix.wait_empty(DRAIN_LIMIT).await {
                    println!("NOT DRAINED: Postfix still holds {} queue files", peer.postfix.queued());
                }
            }
        }
        let title = format!(
            "end to end: {} messages of {} octets over {mailboxes} mailbox(es), {} connections, from the \
             start of the load until the last is readable over IMAP, {} rounds taken in turn",
            args.e2e_messages, args.load.size, args.load.connections, args.rounds
        );
        print_table(&title, "msgs/s", &[&mailbus, &theirs]);
        let what = format!("end to end, {mailboxes} mailbox(es), mailbus / Postfix -> LMTP -> Dovecot");
        print_ratio(&what, &mailbus, &theirs, target);
    }
    Ok(())
}

/// One end-to-end run: logs in to each mailbox (untimed), runs the load, and waits until every
/// mailbox shows what was accepted for it. The rate is messages ÷ (start of the load → last visible).
async fn e2e_run(
    side: &str,
    load: &Load,
    smtp: SocketAddr,
    imap: SocketAddr,
    users: &[String],
) -> anyhow::Result<Option<f64>> {
    let mut sessions = imap_status::login_all(imap, users, PASSWORD).await?;
    let report = load.run(smtp).await;
    let visible = imap_status::wait_until_full(&mut sessions, &report.accepted_by_recipient, VISIBLE_LIMIT).await?;
    for session in sessions {
        session.logout().await;
    }
    let errors = if report.errors.is_empty() { String::new() } else { format!(" ({} errors)", report.errors.len()) };
    let Some(visible) = visible else {
        println!(
            "{side}: {} accepted in {:.2} s{errors}; not all readable",
            report.accepted,
            report.elapsed().as_secs_f64()
        );
        return Ok(None);
    };
    let span = visible.duration_since(report.start);
    let figure = rate(report.accepted, span);
    println!(
        "{side}: {} accepted in {:.2} s{errors}, the last readable over IMAP after {:.2} s = {figure:.0} msgs/s",
        report.accepted,
        report.elapsed().as_secs_f64(),
        span.as_secs_f64()
    );
    Ok(Some(figure))
}

/// Waits until mailbus's queue is empty (the relay acknowledges after delivering), so that the next
/// side starts on a quiet machine.
async fn wait_queue_empty(stack: &Stack) -> anyhow::Result<()> {
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        let queued = stack.queue_status().await?.messages;
        if queued == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            println!("NOT DRAINED: {queued} messages still queued");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------------
// The setting

fn print_setting(args: &Args) {
    bench::print_setting_on(
        &format!(
            "acceptance: {} messages of {} octets over {} connections, {} rounds; end to end: {} messages \
             into 1 and {} mailboxes; {} idle sessions; sender authentication {}",
            args.load.messages,
            args.load.size,
            args.load.connections,
            args.rounds,
            args.e2e_messages,
            args.spread,
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
// Postfix's smtp-source

/// smtp-source against mailbus, as a second load generator: a connection per message, then `-d`.
async fn smtp_source_runs(args: &Args, ours: &Mailbus) -> anyhow::Result<()> {
    let Some(tool) = bench::installed("smtp-source") else {
        println!("\nsmtp-source: not found (Debian package postfix); skipped");
        return Ok(());
    };
    for persistent in [false, true] {
        println!("\n== mailbus smtp-ingress, smtp-source ==");
        let before = ours.stack.mailbox_count(ours.sink_account).await?;
        run_smtp_source(&tool, args, ours.smtp, persistent).await?;
        // Only so that the next run starts on a quiet machine; the time is not reported.
        ours.drain(before + args.load.messages).await?;
        println!("delivered to the mailbox: {}", ours.stack.mailbox_count(ours.sink_account).await? - before);
    }
    Ok(())
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
            &args.load.size.to_string(),
            "-m",
            &args.load.messages.to_string(),
            "-s",
            &args.load.connections.to_string(),
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
        args.load.messages,
        elapsed.as_secs_f64(),
        rate(args.load.messages, elapsed)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Sender authentication

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
