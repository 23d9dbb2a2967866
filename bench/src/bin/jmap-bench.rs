//! `jmap-bench`: the http role's JMAP against IMAP on the same data (issue 14). A benchmark, not a test:
//! it measures and prints, and asserts nothing; BENCHMARKS.md records its output with the command.
//!
//! It starts PostgreSQL and nats-server through the test harness (or uses `DATABASE_URL` / `NATS_URL`),
//! runs `mailbus mailbox`, `access` and `http` from the given binary as separate processes, and stores M
//! messages (10,000 by default) in one INBOX through `Deliver`. Then:
//! 1. Email/query (the newest 50 of the INBOX by receivedAt) and Email/get of them (the properties a
//!    message list shows) in one request over one kept-alive HTTP connection, R times: p50 and p99; and,
//!    side by side, IMAP FETCH of the newest 50 (ENVELOPE FLAGS RFC822.SIZE INTERNALDATE) R times.
//! 2. Push: one EventSource connection open while P deliveries arrive one after the other, each timed
//!    from the Deliver call to the `state` event: p50 and p99.
//! 3. Memory: N EventSource connections opened (from several loopback addresses, under the per-address
//!    cap), and the http role's resident memory before and after, per connection.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use futures::StreamExt;
use mailbus_bench::{self as bench, Stack, ms, percentile};
use mailbus_proto::v1 as pb;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

const DOMAIN: &str = "bench.test";
const USER: &str = "reader@bench.test";
const PASSWORD: &str = "bench";

#[derive(Parser, Debug)]
#[command(about = "Measures JMAP over the http role next to IMAP on the same mailbox, push latency and memory")]
struct Args {
    /// The (release-built) mailbus binary to run the roles from.
    mailbus: PathBuf,
    /// Messages in the INBOX.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Repetitions of each list request.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// Deliveries whose push is timed.
    #[arg(long, default_value_t = 100)]
    pushes: usize,
    /// EventSource connections for the memory figure.
    #[arg(long, default_value_t = 2_000)]
    connections: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    ensure!(args.messages >= 50 && args.rounds > 0 && args.pushes > 0, "at least 50 messages, 1 round, 1 push");
    bench::until_interrupted("jmap-bench", run(args)).await
}

fn message(i: usize) -> Vec<u8> {
    format!(
        "From: Sender {i} <sender{i}@example.net>\r\nTo: {USER}\r\nSubject: Message number {i}\r\n\
         Message-ID: <bench{i}@example.net>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n\r\n\
         Body of message {i}, some words to index and to show in a preview.\r\n"
    )
    .into_bytes()
}

async fn deliver(
    client: &mut pb::mailbox_client::MailboxClient<tonic::transport::Channel>,
    id: String,
    i: usize,
) -> anyhow::Result<()> {
    let body = message(i);
    let header = pb::DeliveryHeader {
        queue_id: id,
        recipient: USER.into(),
        mail_from: "bench@example.net".into(),
        size: body.len() as u64,
    };
    client.deliver(futures::stream::iter(mailbus_proto::upload::deliver(header, &body))).await.context("Deliver")?;
    Ok(())
}

fn basic() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
}

/// A kept-alive HTTP/1.1 connection that understands Content-Length and chunked bodies.
struct Http {
    stream: BufReader<TcpStream>,
    host: SocketAddr,
}

impl Http {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Http> {
        Ok(Http { stream: BufReader::new(TcpStream::connect(addr).await?), host: addr })
    }

    async fn post(&mut self, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            basic(),
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let mut status_line = String::new();
        self.stream.read_line(&mut status_line).await?;
        let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).context("status line")?;
        let (mut length, mut chunked) = (None, false);
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).await?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                self.stream.read_line(&mut size).await?;
                let size = usize::from_str_radix(size.trim(), 16).context("chunk size")?;
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).await?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            body.resize(length.context("no length")?, 0);
            self.stream.read_exact(&mut body).await?;
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Opens an EventSource stream from `source` and reads its response head.
async fn event_source(addr: SocketAddr, source: IpAddr) -> anyhow::Result<BufReader<TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = BufReader::new(socket.connect(addr).await?);
    let request = format!(
        "GET /jmap/eventsource?types=*&closeafter=no&ping=0 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {}\r\nAccept: text/event-stream\r\n\r\n",
        basic()
    );
    stream.get_mut().write_all(request.as_bytes()).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    ensure!(line.contains(" 200 "), "EventSource answered {line:?}");
    loop {
        line.clear();
        stream.read_line(&mut line).await?;
        if line.trim_end().is_empty() {
            return Ok(stream);
        }
    }
}

/// Reads the stream until a `state` event; returns when its data line arrived.
async fn next_state(stream: &mut BufReader<TcpStream>) -> anyhow::Result<Instant> {
    let mut line = String::new();
    let mut in_state = false;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            bail!("the EventSource stream closed");
        }
        if line.contains("event: state") {
            in_state = true;
        } else if in_state && line.contains("data:") {
            return Ok(Instant::now());
        }
    }
}

/// An IMAP command's reply: reads until the tagged line.
async fn imap_command(stream: &mut BufReader<TcpStream>, tag: &str, command: &str) -> anyhow::Result<usize> {
    stream.get_mut().write_all(format!("{tag} {command}\r\n").as_bytes()).await?;
    let mut line = String::new();
    let mut untagged = 0;
    loop {
        line.clear();
        ensure!(stream.read_line(&mut line).await? > 0, "IMAP connection closed");
        if line.starts_with(&format!("{tag} ")) {
            ensure!(line.starts_with(&format!("{tag} OK")), "{command}: {line}");
            return Ok(untagged);
        }
        if line.starts_with("* ") {
            untagged += 1;
        }
        // Literals inside the reply ({n}\r\n) are read whole so that their lines are not taken for tags.
        if let Some(n) = line
            .trim_end()
            .strip_suffix('}')
            .and_then(|l| l.rsplit_once('{'))
            .and_then(|(_, n)| n.parse::<usize>().ok())
        {
            let mut literal = vec![0; n];
            stream.read_exact(&mut literal).await?;
        }
    }
}

fn report(label: &str, mut durations: Vec<Duration>) {
    durations.sort_unstable();
    println!(
        "{label}: p50 {:.2} ms  p99 {:.2} ms  min {:.2} ms  max {:.2} ms  over {} runs",
        ms(percentile(&durations, 50)),
        ms(percentile(&durations, 99)),
        ms(durations[0]),
        ms(durations[durations.len() - 1]),
        durations.len()
    );
}

async fn run(args: Args) -> anyhow::Result<()> {
    bench::print_setting(&format!(
        "mailbox, access and http as processes; {} messages in one INBOX; {} rounds; {} pushes; {} EventSource connections",
        args.messages, args.rounds, args.pushes, args.connections
    ));
    let stack = Stack::start(&args.mailbus, &["mailbox", "access", "http"], &[]).await?;
    let mut directory = stack.directory().await?;
    directory.add_domain(pb::AddDomainRequest { name: DOMAIN.into() }).await.context("AddDomain")?;
    let account = directory
        .add_account(pb::AddAccountRequest { address: USER.into(), password: PASSWORD.into() })
        .await?
        .into_inner()
        .id;
    let mailbox = pb::mailbox_client::MailboxClient::connect(stack.env["MAILBUS_MAILBOX_URL"].clone()).await?;
    let started = Instant::now();
    let run = uuid::Uuid::new_v4().simple().to_string();
    futures::stream::iter(0..args.messages)
        .map(|i| {
            let (mut client, id) = (mailbox.clone(), format!("{run}{i}"));
            async move { deliver(&mut client, id, i).await }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    println!("stored {} messages in {:.1} s", args.messages, started.elapsed().as_secs_f64());
    // Autovacuum analyses a table within a minute of such a bulk load; the measurement should not depend
    // on whether it has come round yet.
    let database = sqlx::PgPool::connect(&stack.env["DATABASE_URL"]).await.context("connecting to the database")?;
    sqlx::query("ANALYZE").execute(&database).await.context("ANALYZE")?;
    database.close().await;

    // 1. The newest 50, over JMAP and over IMAP.
    let http = stack.addr("MAILBUS_HTTP_LISTEN")?;
    let mut client = Http::connect(http).await?;
    let jmap_account = format!("a{account}");
    let (status, mailboxes) = client
        .post(
            "/jmap/api",
            &serde_json::json!({"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                "methodCalls": [["Mailbox/query", {"accountId": jmap_account, "filter": {"role": "inbox"}}, "0"]]})
            .to_string(),
        )
        .await?;
    ensure!(status == 200, "Mailbox/query: {status} {mailboxes}");
    let reply: serde_json::Value = serde_json::from_str(&mailboxes)?;
    let inbox = reply["methodResponses"][0][1]["ids"][0].as_str().context("no inbox")?.to_owned();
    let list = serde_json::json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": [
            ["Email/query", {"accountId": jmap_account, "filter": {"inMailbox": inbox},
                             "sort": [{"property": "receivedAt", "isAscending": false}], "limit": 50}, "q"],
            ["Email/get", {"accountId": jmap_account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                           "properties": ["id", "threadId", "mailboxIds", "keywords", "size", "receivedAt",
                                          "from", "to", "subject", "messageId", "sentAt", "preview"]}, "g"]]
    })
    .to_string();
    let mut jmap_times = Vec::with_capacity(args.rounds);
    for round in 0..=args.rounds {
        let start = Instant::now();
        let (status, body) = client.post("/jmap/api", &list).await?;
        let elapsed = start.elapsed();
        ensure!(status == 200, "Email/query+get: {status} {body}");
        if round == 0 {
            let reply: serde_json::Value = serde_json::from_str(&body)?;
            let got = reply["methodResponses"][1][1]["list"].as_array().map_or(0, Vec::len);
            ensure!(got == 50, "Email/get returned {got} emails: {body:.400}");
            continue; // the first round warms the caches, as IMAP's SELECT does below
        }
        jmap_times.push(elapsed);
    }
    report("JMAP Email/query + Email/get, newest 50 (one HTTP request)", jmap_times);

    // Where the time goes: the HTTP round trip alone, the query alone, the get alone.
    let (_, body) = client.post("/jmap/api", &list).await?;
    let reply: serde_json::Value = serde_json::from_str(&body)?;
    let newest = reply["methodResponses"][0][1]["ids"].clone();
    let parts = [
        (
            "  of which: Core/echo (HTTP, authentication, envelope)",
            serde_json::json!([["Core/echo", {"hello": true}, "e"]]),
        ),
        (
            "  of which: Email/query alone",
            serde_json::json!([["Email/query", {"accountId": jmap_account, "filter": {"inMailbox": inbox},
                "sort": [{"property": "receivedAt", "isAscending": false}], "limit": 50}, "q"]]),
        ),
        (
            "  beside: Email/query with collapseThreads",
            serde_json::json!([["Email/query", {"accountId": jmap_account, "filter": {"inMailbox": inbox},
                "sort": [{"property": "receivedAt", "isAscending": false}], "collapseThreads": true, "limit": 50}, "q"]]),
        ),
        (
            "  beside: Mailbox/get of every mailbox, with counts",
            serde_json::json!([["Mailbox/get", {"accountId": jmap_account, "ids": null}, "m"]]),
        ),
        (
            "  of which: Email/get alone, 50 ids",
            serde_json::json!([["Email/get", {"accountId": jmap_account, "ids": newest,
                "properties": ["id", "threadId", "mailboxIds", "keywords", "size", "receivedAt",
                               "from", "to", "subject", "messageId", "sentAt", "preview"]}, "g"]]),
        ),
    ];
    for (label, calls) in parts {
        let request = serde_json::json!({"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
            "methodCalls": calls})
        .to_string();
        let mut times = Vec::with_capacity(args.rounds);
        for _ in 0..args.rounds {
            let start = Instant::now();
            let (status, body) = client.post("/jmap/api", &request).await?;
            times.push(start.elapsed());
            ensure!(status == 200 && !body.contains("\"error\""), "{label}: {status} {body:.300}");
        }
        report(label, times);
    }

    let imap = stack.addr("MAILBUS_IMAP_LISTEN")?;
    let mut session = BufReader::new(TcpStream::connect(imap).await?);
    let mut greeting = String::new();
    session.read_line(&mut greeting).await?;
    imap_command(&mut session, "l", &format!("LOGIN {USER} {PASSWORD}")).await?;
    imap_command(&mut session, "s", "SELECT INBOX").await?;
    let range = format!("{}:{}", args.messages - 49, args.messages);
    let mut imap_times = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        let start = Instant::now();
        let fetched = imap_command(
            &mut session,
            &format!("f{round}"),
            &format!("FETCH {range} (UID ENVELOPE FLAGS RFC822.SIZE INTERNALDATE)"),
        )
        .await?;
        imap_times.push(start.elapsed());
        ensure!(fetched == 50, "FETCH returned {fetched} messages");
    }
    report("IMAP FETCH of the newest 50 (ENVELOPE FLAGS RFC822.SIZE INTERNALDATE)", imap_times);

    // 2. Push latency.
    let mut events = event_source(http, IpAddr::V4(Ipv4Addr::LOCALHOST)).await?;
    let mut client = mailbox.clone();
    let mut push_times = Vec::with_capacity(args.pushes);
    for i in 0..args.pushes {
        // Apart by more than the role's coalescing window, so each delivery is its own event.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let start = Instant::now();
        deliver(&mut client, format!("{run}push{i}"), args.messages + i).await?;
        let seen = tokio::time::timeout(Duration::from_secs(10), next_state(&mut events))
            .await
            .context("no state event")??;
        push_times.push(seen - start);
    }
    report("push: Deliver call to EventSource state event", push_times);
    drop(events);

    // 3. Memory per EventSource connection.
    let pid = stack.pid("http").context("http role's pid")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = bench::rss_kib(pid)?;
    let started = Instant::now();
    let mut open = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        // The http role takes at most 256 connections per address; spread over 127.0.0.2 and up.
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 1 + (i / 200) as u8, 2));
        open.push(event_source(http, source).await?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = bench::rss_kib(pid)?;
    println!(
        "{} EventSource connections opened in {:.1} s: http VmRSS {before} KiB -> {after} KiB = {:.1} KiB per connection",
        args.connections,
        started.elapsed().as_secs_f64(),
        (after.saturating_sub(before)) as f64 / args.connections as f64
    );
    stack.print_memory();
    drop(open);
    Ok(())
}
