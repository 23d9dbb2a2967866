//! One address against everyone else, from outside, with each role a process of its own (so that its
//! memory is its own to measure):
//! - 2,000 connections from one address on IMAP, POP3 and SMTP each, held open, while a second address
//!   sends a message, then reads it over IMAP and POP3: the second address never fails;
//! - 50 clients each sending a 50 MB line (IMAP and POP3 before login, an SMTP command) or a 50 MB DATA
//!   body that never ends: the access and smtp-ingress processes stay under 200 MB of resident memory;
//! - every failed login is logged in the line `deploy/fail2ban/filter.d/mailbus.conf` matches, text and
//!   JSON, with the client's address.
//!
//! Everything stays on loopback and is bounded in count and time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use mailbus_tests::infra::Infra;
use mailbus_tests::processes::Replica;
use mailbus_tests::raw::{RawClient, connect_from};
use mailbus_tests::stack::add_account;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{PATIENCE, message, under_test};

const ATTACKER: &str = "127.0.0.1";
/// The memory phase's attacker, so that the flood's connections (closing as it starts) count for nobody.
const HEAVY: &str = "127.0.0.3";
const NEIGHBOUR: &str = "127.0.0.2";
const FLOOD: usize = 2000;
const BIG: usize = 50 << 20;
const MEMORY_BOUND_KIB: u64 = 200 * 1024;
const USER: &str = "dave@example.org";

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Opens `count` connections from `source`, at most 200 connecting at once, and returns each with the
/// first line the server said (empty if it said nothing before closing).
async fn flood(source: &str, server: SocketAddr, count: usize) -> Vec<(String, tokio::net::TcpStream)> {
    let source = source.parse().unwrap();
    futures::stream::iter(0..count)
        .map(|_| async move {
            let stream = connect_from(source, server).await.expect("connecting from the flooding address");
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            let _ = tokio::time::timeout(PATIENCE, reader.read_line(&mut line)).await.expect("a first line in time");
            (line, reader.into_inner())
        })
        .buffer_unordered(200)
        .collect()
        .await
}

/// The neighbour's whole day: with an IMAP session in IDLE, sends a message over SMTP, hears of its
/// arrival, finds it, then reads the maildrop over POP3.
async fn neighbour_reads_mail(smtp: SocketAddr, imap: SocketAddr, pop3: SocketAddr, subject: &str) {
    let mut imap_client = RawClient::connect(NEIGHBOUR, imap).await;
    assert!(imap_client.line().await.expect("a greeting").starts_with("* OK"));
    imap_client.send(format!("a LOGIN {USER} pw\r\nb SELECT INBOX\r\nc IDLE\r\n").as_bytes()).await;
    assert!(imap_client.line_starting("a ").await.expect("LOGIN answered").starts_with("a OK"));
    assert!(imap_client.line_starting("b ").await.expect("SELECT answered").starts_with("b OK"));
    assert!(imap_client.line_starting("+").await.is_some(), "IDLE accepted");

    let mut client = RawClient::connect(NEIGHBOUR, smtp).await;
    assert!(client.line().await.expect("a greeting").starts_with("220"), "SMTP greeting");
    for (line, code) in [
        ("EHLO neighbour.example.net".to_owned(), "250 "),
        ("MAIL FROM:<n@example.net>".to_owned(), "250"),
        (format!("RCPT TO:<{USER}>"), "250"),
        ("DATA".to_owned(), "354"),
    ] {
        client.send(format!("{line}\r\n").as_bytes()).await;
        let reply = client.line_starting(code).await;
        assert!(reply.is_some(), "{line} was not answered {code}");
    }
    client.send(&message(USER, subject)).await;
    client.send(b".\r\n").await;
    let queued = client.line().await.expect("a reply to the message");
    assert!(queued.starts_with("250"), "{queued}");

    // The delivery reaches the IDLE session as EXISTS (within the 30 s a line may take).
    assert!(imap_client.line_starting("* ").await.is_some_and(|l| l.ends_with("EXISTS")), "no EXISTS in IDLE");
    imap_client.send(format!("DONE\r\nd SEARCH SUBJECT {subject}\r\n").as_bytes()).await;
    let hits = imap_client.line_starting("* SEARCH").await.expect("SEARCH answered");
    assert_ne!(hits.trim(), "* SEARCH", "the neighbour's message is found over IMAP");

    let mut pop = RawClient::connect(NEIGHBOUR, pop3).await;
    assert!(pop.line().await.expect("a greeting").starts_with("+OK"));
    pop.send(format!("USER {USER}\r\nPASS pw\r\nSTAT\r\nQUIT\r\n").as_bytes()).await;
    let said = pop.rest().await;
    assert!(said.iter().filter(|l| l.starts_with("+OK")).count() >= 4, "POP3: {said:?}");
}

/// Samples the resident memory of `pids` every 50 ms until `stop`, and returns each one's peak.
fn sample_peaks(pids: Vec<u32>, stop: tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<Vec<u64>> {
    tokio::spawn(async move {
        let peaks: Vec<Arc<AtomicU64>> = pids.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
        while !stop.is_cancelled() {
            for (pid, peak) in pids.iter().zip(&peaks) {
                peak.fetch_max(rss_kib(*pid), Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peaks.iter().map(|p| p.load(Ordering::SeqCst)).collect()
    })
}

/// One client of the memory phase: a 50 MB line, or a 50 MB body that never ends; it stops at the first
/// write the server refuses, and says how far it got.
async fn heavy_client(server: SocketAddr, preamble: Vec<u8>) -> usize {
    let mut client = RawClient::connect(HEAVY, server).await;
    client.line().await;
    client.send(&preamble).await;
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0;
    while sent < BIG {
        let n = client.send_until_closed(&chunk).await;
        sent += n;
        if n < chunk.len() {
            break;
        }
    }
    sent
}

#[tokio::test]
async fn a_flood_from_one_address_fails_nobody_else_and_memory_stays_bounded() {
    let infra = tokio::task::spawn_blocking(Infra::get).await.unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut shared: HashMap<&'static str, String> = HashMap::from([
        ("DATABASE_URL", infra.create_database().await),
        ("NATS_URL", infra.nats_url().to_owned()),
        ("MAILBUS_NATS_PREFIX", format!("fl{}", &uuid::Uuid::new_v4().simple().to_string()[..10])),
        ("MAILBUS_HOSTNAME", "mx.flood.test".into()),
        ("MAILBUS_TLS_CERT", infra.tls_cert.display().to_string()),
        ("MAILBUS_TLS_KEY", infra.tls_key.display().to_string()),
        ("MAILBUS_AUTH_FAILURE_DELAY_MS", "0".into()),
        ("MAILBUS_RELAY_TRANSPORTS", "*=127.0.0.1:9".into()),
        ("RUST_LOG", "info".into()),
    ]);
    let mailbox = Replica::spawn(under_test(), "mailbox", "mailbox", &shared, logs.path());
    mailbox.wait_ready(Duration::from_secs(60)).await;
    shared.insert("MAILBUS_MAILBOX_URL", format!("http://{}", mailbox.addr("MAILBUS_MAILBOX_GRPC_LISTEN")));
    let relay = Replica::spawn(under_test(), "relay", "relay", &shared, logs.path());
    let access = Replica::spawn(under_test(), "access", "access", &shared, logs.path());
    let mut smtp_env = shared.clone();
    smtp_env.insert("MAILBUS_LOG_FORMAT", "json".into());
    // AUTH on 587 without TLS, so that this test can fail a login there with plain bytes.
    smtp_env.insert("MAILBUS_SMTP_PLAINTEXT_AUTH", "true".into());
    let smtp = Replica::spawn(under_test(), "smtp-ingress", "smtp", &smtp_env, logs.path());
    for replica in [&relay, &access, &smtp] {
        replica.wait_ready(Duration::from_secs(60)).await;
    }
    add_account(&shared["MAILBUS_MAILBOX_URL"], USER, "pw").await;
    let (imap, pop3) = (access.addr("MAILBUS_IMAP_LISTEN"), access.addr("MAILBUS_POP3_LISTEN"));
    let (mx, submission) = (smtp.addr("MAILBUS_SMTP_LISTEN"), smtp.addr("MAILBUS_SUBMISSION_LISTEN"));

    // A failed login on each protocol, for the log check at the end.
    let mut client = RawClient::connect(ATTACKER, imap).await;
    client.send(format!("a LOGIN {USER} wrong\r\n").as_bytes()).await;
    assert!(client.line_starting("a ").await.expect("LOGIN answered").starts_with("a NO"));
    let mut client = RawClient::connect(ATTACKER, pop3).await;
    client.send(format!("USER {USER}\r\nPASS wrong\r\n").as_bytes()).await;
    assert!(client.line_starting("-ERR").await.is_some());
    let mut client = RawClient::connect(ATTACKER, submission).await;
    let plain = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("\0{USER}\0wrong"));
    client.send(format!("EHLO attacker.example\r\nAUTH PLAIN {plain}\r\n").as_bytes()).await;
    let failed = client.line_starting("535").await;
    assert!(failed.is_some(), "the wrong password on submission gets 535");

    // The flood: FLOOD connections on each protocol from one address, all held while the neighbour works.
    let mut held = Vec::new();
    for (server, greeting, refusal) in
        [(imap, "* OK", "* BYE [UNAVAILABLE]"), (pop3, "+OK", "-ERR [SYS/TEMP]"), (mx, "220", "421 4.7.0")]
    {
        let connections = flood(ATTACKER, server, FLOOD).await;
        let greeted = connections.iter().filter(|(line, _)| line.starts_with(greeting)).count();
        let refused = connections.iter().filter(|(line, _)| line.starts_with(refusal)).count();
        println!("flood of {FLOOD} on {server}: {greeted} sessions, {refused} refused");
        assert_eq!(greeted + refused, FLOOD, "every connection is either served or told why not");
        assert!(refused > 0 && greeted > 0, "the address's cap applies ({greeted} served)");
        held.extend(connections.into_iter().map(|(_, stream)| stream));
    }
    neighbour_reads_mail(mx, imap, pop3, "during-the-flood").await;
    drop(held);

    // The memory phase: 50 clients with 50 MB each, while the two processes' memory is sampled.
    let stop = tokio_util::sync::CancellationToken::new();
    let peaks = sample_peaks(vec![access.pid().unwrap(), smtp.pid().unwrap()], stop.clone());
    let data = format!("EHLO heavy.example\r\nMAIL FROM:<h@example.net>\r\nRCPT TO:<{USER}>\r\nDATA\r\n");
    let mut clients = Vec::new();
    for i in 0..50 {
        let (server, preamble) = match i % 5 {
            0 => (imap, b"a LOGIN ".to_vec()),
            1 => (pop3, b"USER ".to_vec()),
            2 => (mx, b"EHLO ".to_vec()),
            _ => (mx, format!("{data}Subject: never ends\r\n\r\n").into_bytes()),
        };
        clients.push(tokio::spawn(heavy_client(server, preamble)));
    }
    let mut sent = 0;
    for client in clients {
        sent += tokio::time::timeout(Duration::from_secs(600), client).await.expect("bounded in time").unwrap();
    }
    stop.cancel();
    let peaks = peaks.await.unwrap();
    println!(
        "memory: 50 clients sent {} MB; peak RSS access {} MB, smtp-ingress {} MB (bound {} MB)",
        sent >> 20,
        peaks[0] / 1024,
        peaks[1] / 1024,
        MEMORY_BOUND_KIB / 1024
    );
    assert!(peaks.iter().all(|&p| p > 0), "memory was sampled");
    assert!(peaks[0] < MEMORY_BOUND_KIB, "access peaked at {} KiB", peaks[0]);
    assert!(peaks[1] < MEMORY_BOUND_KIB, "smtp-ingress peaked at {} KiB", peaks[1]);
    neighbour_reads_mail(mx, imap, pop3, "after-the-flood").await;

    // The failed logins, as fail2ban's filter sees them: text from access, JSON from smtp-ingress.
    let filter = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/fail2ban/filter.d/mailbus.conf");
    let mut matched = Vec::new();
    for log in [&access.log, &smtp.log] {
        let (ok, out) = mailbus_tests::clients::run_program(
            "python3",
            &["-c".into(), FAIL2BAN_MATCH.into(), filter.display().to_string(), log.display().to_string()],
            b"",
        )
        .await;
        assert!(ok, "{out}");
        matched.extend(out.lines().map(str::to_owned));
    }
    for protocol in ["imap", "pop3", "smtp"] {
        assert!(matched.contains(&format!("{protocol} {ATTACKER}")), "no fail2ban match for {protocol}: {matched:?}");
    }
}

/// Applies the filter's failregex lines the way fail2ban does (`<HOST>` is the client's address) to each
/// log line, and prints `protocol host` per match.
const FAIL2BAN_MATCH: &str = r#"
import re, sys
conf = open(sys.argv[1]).read()
block = conf.split("failregex =", 1)[1].split("ignoreregex", 1)[0]
regexes = [re.compile(l.strip().replace("<HOST>", r"(?P<host>[0-9A-Fa-f.:]+)")) for l in block.splitlines() if l.strip()]
for line in open(sys.argv[2], errors="replace"):
    for rx in regexes:
        m = rx.search(line)
        if m:
            proto = re.search(r'protocol[=":]+(\w+)', line)
            print(proto.group(1) if proto else "?", m.group("host"))
            break
"#;
