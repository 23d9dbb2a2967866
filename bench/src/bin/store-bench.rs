//! `store-bench`: the mailbox role's store (issue 5). A benchmark, not a test: it measures and prints, and
//! asserts nothing; BENCHMARKS.md records its output with the command that produced it.
//!
//! It starts PostgreSQL and nats-server through the test harness (or uses `DATABASE_URL` / `NATS_URL`) and
//! runs `mailbus mailbox` from the given binary as a separate process, then drives its gRPC API as the
//! relay and an IMAP server would:
//!
//! 1. Deliver into one mailbox: N messages through `Deliver`, C at a time.
//! 2. Deliver spread over A accounts: the same, round-robin over A accounts.
//! 3. A mailbox of M messages (delivered the same way): `Select` (what IMAP SELECT needs), `Fetch` of
//!    1,000 envelopes, and a header fetch of all M (flags and BODY.PEEK[HEADER.FIELDS (From To Cc
//!    Subject Date Message-ID)], as a mail client's first sync asks).
//! 4. That mailbox grown to S messages by copying its rows in SQL (the store's own columns, parsed
//!    structure and searchable text included), then `Search` with several keys, BODY and TEXT substrings
//!    among them.
//!
//! `--only deliveries` runs steps 1 and 2; `--only search` fills the mailbox of step 3 and runs step 4.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use futures::StreamExt;
use mailbus_bench::{self as bench, Stack, ms, percentile, rate};
use mailbus_proto::v1::{self as pb, mailbox_client::MailboxClient, search_key::Key};
use tonic::transport::Channel;

const DOMAIN: &str = "bench.test";

#[derive(Parser, Debug)]
#[command(about = "Measures the mailbox role's store: deliveries, SELECT, FETCH and SEARCH")]
struct Args {
    /// The (release-built) mailbus binary to run the mailbox role from.
    mailbus: PathBuf,
    /// Deliveries in each of the two delivery runs.
    #[arg(long, default_value_t = 3000)]
    deliveries: usize,
    /// Deliveries in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Accounts the second run spreads its deliveries over.
    #[arg(long, default_value_t = 1000)]
    accounts: usize,
    /// Messages in the mailbox that SELECT and FETCH read.
    #[arg(long, default_value_t = 10_000)]
    mailbox: usize,
    /// Messages in the mailbox that SEARCH reads (a multiple of --mailbox).
    #[arg(long, default_value_t = 100_000)]
    search: usize,
    /// Size of each message, in octets.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Run only the delivery runs (steps 1 and 2), or only fill the mailbox and search it (step 3's
    /// filling, and step 4).
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// The mailbox role's MAILBUS_DELIVERY_BATCH (1: each delivery its own transaction).
    #[arg(long)]
    delivery_batch: Option<usize>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Only {
    Deliveries,
    Search,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    ensure!(args.deliveries > 0 && args.concurrency > 0 && args.accounts > 0, "counts must be positive");
    ensure!(
        args.mailbox >= 1000 && args.search.is_multiple_of(args.mailbox),
        "--search must be a multiple of --mailbox ≥ 1000"
    );
    bench::until_interrupted("store-bench", run(args)).await
}

/// A varied message: its own subject, sender and words, so that SEARCH has something to tell apart.
fn message(i: usize, size: usize) -> Vec<u8> {
    const WORDS: &[&str] = &["invoice", "meeting", "holiday", "report", "lunch", "release", "budget", "travel"];
    let header = format!(
        "From: Sender {s} <sender{s}@example.net>\r\nTo: reader@{DOMAIN}\r\nSubject: {w} number {i}\r\n\
         Date: Mon, 23 Nov 2026 08:{m:02}:00 +0000\r\nMessage-ID: <{i}@example.net>\r\n\r\n",
        s = i % 50,
        w = WORDS[i % WORDS.len()],
        m = i % 60,
    );
    // A word that only every 100th message has in its body.
    let header = if i.is_multiple_of(100) { format!("{header}needle in the body\r\n") } else { header };
    bench::message_of_size(&header, size)
}

async fn mailbox_client(stack: &Stack) -> anyhow::Result<MailboxClient<Channel>> {
    let client = MailboxClient::connect(stack.env["MAILBUS_MAILBOX_URL"].clone()).await?;
    Ok(client.max_decoding_message_size(64 * 1024 * 1024))
}

async fn deliver(
    client: &mut MailboxClient<Channel>,
    queue_id: String,
    to: String,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    let header =
        pb::DeliveryHeader { queue_id, recipient: to, mail_from: "bench@example.net".into(), size: body.len() as u64 };
    let parts = mailbus_proto::upload::deliver(header, &body);
    client.deliver(futures::stream::iter(parts)).await.context("Deliver")?;
    Ok(())
}

/// Delivers `count` messages, `concurrency` at a time, to `recipient(i)`; prints the rate and latencies.
async fn deliveries(
    stack: &Stack,
    label: &str,
    count: usize,
    concurrency: usize,
    size: usize,
    recipient: impl Fn(usize) -> String,
) -> anyhow::Result<()> {
    let client = mailbox_client(stack).await?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(0..count)
        .map(|i| {
            let (mut client, to, queue_id) = (client.clone(), recipient(i), format!("{run}{i}"));
            async move {
                let start = Instant::now();
                deliver(&mut client, queue_id, to, message(i, size)).await.map(|()| start.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    println!(
        "{label}: {count} deliveries in {:.1} s = {:.0} msgs/s   latency p50 {:.1} ms  p99 {:.1} ms",
        elapsed.as_secs_f64(),
        rate(count, elapsed),
        ms(percentile(&latencies, 50)),
        ms(percentile(&latencies, 99)),
    );
    Ok(())
}

/// Runs `f` `times` times; prints the median, fastest and slowest.
async fn timed<F, Fut>(label: &str, times: usize, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let mut durations = Vec::with_capacity(times);
    let mut what = String::new();
    for _ in 0..times {
        let start = Instant::now();
        what = f().await?;
        durations.push(start.elapsed());
    }
    durations.sort_unstable();
    println!(
        "{label}: median {:.1} ms  min {:.1} ms  max {:.1} ms  over {times} runs ({what})",
        ms(percentile(&durations, 50)),
        ms(durations[0]),
        ms(durations[times - 1]),
    );
    Ok(())
}

async fn fetch_all(client: &mut MailboxClient<Channel>, request: pb::FetchRequest) -> anyhow::Result<(usize, usize)> {
    let mut stream = client.fetch(request).await.context("Fetch")?.into_inner();
    let (mut messages, mut octets) = (0, 0);
    while let Some(item) = stream.message().await? {
        match item.item {
            Some(pb::fetch_response::Item::Message(_)) => messages += 1,
            Some(pb::fetch_response::Item::Chunk(chunk)) => octets += chunk.data.len(),
            Some(pb::fetch_response::Item::MailboxModseq(_)) | None => {}
        }
    }
    Ok((messages, octets))
}

/// Steps 1 and 2: deliveries into one mailbox, then spread over many accounts.
async fn delivery_runs(stack: &Stack, args: &Args) -> anyhow::Result<()> {
    let directory = stack.directory().await?;
    let add = |address: String| pb::AddAccountRequest { address, password: "bench".into() };
    deliveries(stack, "deliver, one mailbox", args.deliveries, args.concurrency, args.size, |_| {
        format!("one@{DOMAIN}")
    })
    .await?;

    let created = Instant::now();
    let names: Vec<String> = (0..args.accounts).map(|i| format!("user{i}@{DOMAIN}")).collect();
    futures::stream::iter(names.iter().cloned())
        .map(|address| {
            let mut directory = directory.clone();
            async move { directory.add_account(add(address)).await.map(drop) }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    println!(
        "({} accounts created in {:.1} s, argon2id hashing included)",
        args.accounts,
        created.elapsed().as_secs_f64()
    );
    let names = Arc::new(names);
    deliveries(
        stack,
        &format!("deliver, spread over {} accounts", args.accounts),
        args.deliveries,
        args.concurrency,
        args.size,
        {
            let names = names.clone();
            move |i| names[i % names.len()].clone()
        },
    )
    .await?;

    Ok(())
}

/// Step 3's reads of the filled mailbox: SELECT, FETCH of envelopes, FETCH of every header.
async fn reads(client: &MailboxClient<Channel>, big: i64, args: &Args) -> anyhow::Result<()> {
    let select = pb::SelectRequest { account_id: big, mailbox: "INBOX".into(), claim_recent: true };
    timed(&format!("SELECT of {} messages", args.mailbox), 20, || {
        let (mut client, select) = (client.clone(), select.clone());
        async move {
            let selected = client.select(select).await?.into_inner();
            Ok(format!("{} UIDs", selected.uids.len()))
        }
    })
    .await?;
    let uids: Vec<u32> = client.clone().select(select.clone()).await?.into_inner().uids;
    let envelopes = pb::FetchRequest {
        account_id: big,
        mailbox: "INBOX".into(),
        uids: uids[..1000].to_vec(),
        envelope: true,
        ..Default::default()
    };
    timed("FETCH 1,000 ENVELOPE", 10, || {
        let (mut client, request) = (client.clone(), envelopes.clone());
        async move {
            let (messages, _) = fetch_all(&mut client, request).await?;
            Ok(format!("{messages} messages"))
        }
    })
    .await?;
    let headers = pb::FetchRequest {
        account_id: big,
        mailbox: "INBOX".into(),
        uids: uids.clone(),
        sections: vec![pb::Section {
            text: pb::SectionText::HeaderFields.into(),
            fields: ["From", "To", "Cc", "Subject", "Date", "Message-ID"].map(String::from).to_vec(),
            ..Default::default()
        }],
        ..Default::default()
    };
    timed(&format!("FETCH 1:{} (FLAGS BODY.PEEK[HEADER.FIELDS (...)])", args.mailbox), 5, || {
        let (mut client, request) = (client.clone(), headers.clone());
        async move {
            let (messages, octets) = fetch_all(&mut client, request).await?;
            Ok(format!("{messages} messages, {octets} octets"))
        }
    })
    .await?;

    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    bench::print_setting(&format!(
        "mailbox role as a process; {} deliveries of {} octets, {} at a time; {} accounts; SELECT/FETCH over {}, SEARCH over {} messages",
        args.deliveries, args.size, args.concurrency, args.accounts, args.mailbox, args.search
    ));
    let settings: Vec<(&'static str, String)> =
        args.delivery_batch.iter().map(|n| ("MAILBUS_DELIVERY_BATCH", n.to_string())).collect();
    let stack = Stack::start(&args.mailbus, &["mailbox"], &settings).await?;
    let mut directory = stack.directory().await?;
    directory.add_domain(pb::AddDomainRequest { name: DOMAIN.into() }).await.context("AddDomain")?;
    let add = |address: String| pb::AddAccountRequest { address, password: "bench".into() };
    let one = directory.add_account(add(format!("one@{DOMAIN}"))).await?.into_inner().id;
    let big = directory.add_account(add(format!("big@{DOMAIN}"))).await?.into_inner().id;

    if args.only != Some(Only::Search) {
        delivery_runs(&stack, &args).await?;
    }
    if args.only == Some(Only::Deliveries) {
        return Ok(());
    }
    deliveries(
        &stack,
        &format!("(filling a mailbox of {})", args.mailbox),
        args.mailbox,
        args.concurrency,
        args.size,
        |_| format!("big@{DOMAIN}"),
    )
    .await?;
    let mut client = mailbox_client(&stack).await?;
    if args.only.is_none() {
        reads(&client, big, &args).await?;
    }

    // Grow the mailbox to --search messages by copying its rows in SQL: what the store keeps per message
    // (octets, structure, header arrays, searchable text) is copied along, so SEARCH reads what it
    // would after as many deliveries.
    let grown = Instant::now();
    let pool = sqlx::PgPool::connect(&stack.env["DATABASE_URL"]).await?;
    sqlx::query(
        "WITH b AS (SELECT id, uidnext, highestmodseq FROM mailboxes WHERE account_id = $1 AND name = 'INBOX'),
         copies AS (
            INSERT INTO messages (account_id, content, size, internal_date, structure, sent_at, header_names,
                                  header_values, search_header, search_body, header_size)
            SELECT account_id, content, size, internal_date - make_interval(days => g), structure, sent_at,
                   header_names, header_values, search_header, search_body, header_size
              FROM messages m, generate_series(1, $2) g
             WHERE m.account_id = $1
            RETURNING id),
         entries AS (
            INSERT INTO mailbox_entries (mailbox_id, uid, message_id, modseq)
            SELECT b.id, b.uidnext + row_number() OVER (ORDER BY copies.id) - 1, copies.id, b.highestmodseq + 1
              FROM copies, b
            RETURNING uid)
         UPDATE mailboxes SET uidnext = uidnext + (SELECT count(*) FROM entries), highestmodseq = highestmodseq + 1
          WHERE id = (SELECT id FROM b)",
    )
    .bind(big)
    .bind((args.search / args.mailbox - 1) as i32)
    .execute(&pool)
    .await
    .context("growing the mailbox")?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    println!(
        "(mailbox grown to {} messages in SQL in {:.1} s, then ANALYZE)",
        args.search,
        grown.elapsed().as_secs_f64()
    );

    let header = |field: &str, value: &str| Key::Header(pb::HeaderMatch { field: field.into(), value: value.into() });
    let searches: Vec<(&str, Key)> = vec![
        ("SEARCH UNSEEN", Key::Not(Box::new(pb::SearchKey { key: Some(Key::Flag("\\Seen".into())) }))),
        ("SEARCH SUBJECT \"number 4242\"", header("subject", "number 4242")),
        ("SEARCH FROM sender7@", header("from", "sender7@")),
        ("SEARCH BODY needle", Key::Body("needle".into())),
        ("SEARCH TEXT budget", Key::Text("budget".into())),
        // Substrings: inside a word, of the header through TEXT, absent, too short for the trigram
        // index, and in every message's filler lines.
        ("SEARCH BODY eedl", Key::Body("eedl".into())),
        ("SEARCH BODY \"NEEDLE IN THE\"", Key::Body("NEEDLE IN THE".into())),
        ("SEARCH TEXT \"umber 4242\"", Key::Text("umber 4242".into())),
        ("SEARCH BODY zqxj", Key::Body("zqxj".into())),
        ("SEARCH BODY nd", Key::Body("nd".into())),
        ("SEARCH BODY klmnop", Key::Body("klmnop".into())),
        ("SEARCH LARGER 4000", Key::Larger(4000)),
    ];
    for (label, key) in searches {
        let request = pb::SearchRequest {
            account_id: big,
            mailbox: "INBOX".into(),
            key: Some(pb::SearchKey { key: Some(key) }),
            threading: false,
            sorting: false,
        };
        timed(&format!("{label} over {}", args.search), 5, || {
            let (mut client, request) = (client.clone(), request.clone());
            async move {
                let found = client.search(request).await?.into_inner();
                Ok(format!("{} matches", found.uids.len()))
            }
        })
        .await?;
    }
    let status = client.status(pb::StatusRequest { account_id: one, mailbox: "INBOX".into() }).await?.into_inner();
    println!("(one@{DOMAIN} holds {} messages)", status.messages);
    stack.print_memory();
    stack.print_log_summary();
    Ok(())
}
