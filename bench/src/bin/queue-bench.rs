//! queue-bench: what the queue's shape costs on one nats-server that syncs every message
//! (`sync_interval: always`, as `deploy/nats/nats.conf` and the no-loss invariant require). For each
//! partition count, messages are published into that many streams (each message's stream chosen from
//! its `Nats-Msg-Id`, as `mailbus_jetstream::Queue` does), `--in-flight` at a time, each publish waiting
//! for its acknowledgement as smtp-ingress does before its 250; then they are consumed through one
//! durable pull consumer per stream and acknowledged with a confirmed ack, as the relay does. Both with
//! work-queue retention (mailbus's choice: each ack removes the message, a write the server syncs) and
//! with limits retention (an ack only moves the consumer's floor; the messages are purged below it
//! afterwards, once). Measures and prints; asserts nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use mailbus_jetstream::async_nats::{self, HeaderMap, jetstream};
use mailbus_jetstream::partition_for;

#[derive(Parser)]
#[command(about = "Publish and ack rates of the queue by partition count and retention")]
struct Args {
    /// Messages per run.
    #[arg(long, default_value_t = 4000)]
    messages: usize,
    /// Publishes (and acks) in flight at once.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Octets per message.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Partition counts to measure, comma-separated.
    #[arg(long, default_value = "1,2,4,8")]
    partitions: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    mailbus_bench::until_interrupted("queue-bench", run(Args::parse())).await
}

async fn run(args: Args) -> anyhow::Result<()> {
    let counts: Vec<u32> =
        args.partitions.split(',').map(|n| n.trim().parse()).collect::<Result<_, _>>().context("--partitions")?;
    mailbus_bench::print_setting(&format!(
        "{} messages of {} octets, {} in flight, one nats-server with sync_interval: always",
        args.messages, args.size, args.in_flight
    ));
    let dir = tempfile::tempdir()?;
    let port = mailbus_devstack::free_port()?;
    let nats = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || mailbus_devstack::Nats::start_synced(&dir, port)
    })
    .await??;
    let client = mailbus_jetstream::connect(&nats.url(), "queue-bench").await?;
    let mut context = jetstream::new(client);
    context.set_timeout(Duration::from_secs(30));
    println!("{:<12} {:>10} {:>14} {:>14}", "retention", "partitions", "publish msg/s", "ack msg/s");
    for retention in [jetstream::stream::RetentionPolicy::WorkQueue, jetstream::stream::RetentionPolicy::Limits] {
        for &partitions in &counts {
            let (published, acked) = measure(&context, &args, retention, partitions).await?;
            let name = if retention == jetstream::stream::RetentionPolicy::WorkQueue { "work-queue" } else { "limits" };
            println!("{name:<12} {partitions:>10} {published:>14.0} {acked:>14.0}");
        }
    }
    drop(nats);
    Ok(())
}

/// Publishes then consumes `args.messages` messages over `partitions` streams of `retention`; returns
/// the publish and the ack rate (messages per second).
async fn measure(
    context: &jetstream::Context,
    args: &Args,
    retention: jetstream::stream::RetentionPolicy,
    partitions: u32,
) -> anyhow::Result<(f64, f64)> {
    let prefix = format!("qb{}", uuid::Uuid::new_v4().simple());
    let subject = |p: u32| format!("{prefix}.queue.{p}");
    let mut streams = Vec::new();
    for p in 0..partitions {
        let stream = context
            .create_stream(jetstream::stream::Config {
                name: format!("{prefix}_queue_{p}"),
                subjects: vec![subject(p)],
                retention,
                storage: jetstream::stream::StorageType::File,
                duplicate_window: mailbus_jetstream::DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await?;
        streams.push(stream);
    }
    let payload = bytes::Bytes::from(vec![b'x'; args.size]);
    let started = Instant::now();
    let publishes = futures::stream::iter(0..args.messages).map(|n| {
        let (payload, id) = (payload.clone(), format!("{prefix}-{n}"));
        let subject = subject(partition_for(&id, partitions));
        async move {
            let mut headers = HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            context.publish_with_headers(subject, headers, payload).await?.await?;
            anyhow::Ok(())
        }
    });
    let results: Vec<_> = publishes.buffer_unordered(args.in_flight).collect().await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let published = args.messages as f64 / started.elapsed().as_secs_f64();

    let acked = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut consumers = Vec::new();
    for stream in &streams {
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                durable_name: Some("relay".into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await?;
        let batch = args.in_flight.div_ceil(partitions as usize).max(1);
        consumers.push(consumer.stream().max_messages_per_batch(batch).messages().await?);
    }
    // Each message comes once (well within the consumers' ack_wait), so the run ends after as many.
    let acks = futures::stream::select_all(consumers).take(args.messages);
    acks.for_each_concurrent(args.in_flight, |message| {
        let acked = acked.clone();
        async move {
            if let Ok(message) = message
                && message.double_ack().await.is_ok()
            {
                acked.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
    .await;
    if retention == jetstream::stream::RetentionPolicy::Limits {
        // The ack floor is the last message: everything below it goes at once.
        for stream in &streams {
            stream.purge().await?;
        }
    }
    let acked = args.messages as f64 / started.elapsed().as_secs_f64();
    for p in 0..partitions {
        context.delete_stream(format!("{prefix}_queue_{p}")).await?;
    }
    Ok((published, acked))
}
