//! No loss under failure. A steady SMTP load flows into one mailbox while every part of the system is
//! killed and started again in turn: each role (`kill -9`), nats-server and PostgreSQL. Clients do what
//! real ones do: a message without a `250` (refused with 4xx, or cut off) is sent again. Afterwards
//! every message is in the mailbox exactly once.
//!
//! The system runs as separate processes (two replicas of smtp-ingress and relay, the queue in four
//! partitions) over a PostgreSQL and NATS of this test's own, since they are killed too. It runs twice:
//! on one nats-server (one replica of everything), which is killed and restarted; and on a three-node
//! cluster with every stream and bucket in three replicas, where one node is killed while mail flows
//! (the other two keep the quorum) and then started again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mailbus_devstack::{Nats, NatsCluster, Postgres, free_port};
use mailbus_tests::infra::{dedicated_nats, dedicated_nats_cluster, scratch_dir};
use mailbus_tests::processes::Replica;
use mailbus_tests::smtp_client::SmtpClient;

use crate::under_test;

/// At least this many messages, and as many more as flow while the failures are still being caused.
const MESSAGES: usize = 2000;
const CLIENTS: usize = 8;
/// Each client's pause between messages, so that the load spans every failure.
const PACE: Duration = Duration::from_millis(60);
const RECIPIENT: &str = "sink@example.org";
/// How long one message may take to get its 250, retries included, before the test gives up.
const MESSAGE_PATIENCE: Duration = Duration::from_secs(120);
/// The queue's partitions: the default, spread over by message id.
const PARTITIONS: u32 = 4;

/// The NATS the system runs on, and how it fails.
enum NatsUnderTest {
    /// One nats-server: killed and started again.
    Single(Nats),
    /// Three nodes, every stream and bucket in three replicas: one node killed while mail flows on the
    /// other two, then started again.
    Cluster(NatsCluster),
}

impl NatsUnderTest {
    fn url(&self) -> String {
        match self {
            NatsUnderTest::Single(nats) => nats.url(),
            NatsUnderTest::Cluster(cluster) => cluster.url(),
        }
    }

    fn replicas(&self) -> usize {
        match self {
            NatsUnderTest::Single(_) => 1,
            NatsUnderTest::Cluster(cluster) => cluster.nodes.len(),
        }
    }

    /// How long a JetStream request may take. One server answers at once, or is down and a quick 451
    /// sends the client back sooner. A cluster takes longer to make a stream in three replicas (each
    /// role makes them at start-up, all at once), and a publish to a partition whose leader was on the
    /// killed node waits for the others to elect a new one, which takes a few seconds.
    fn timeout_ms(&self) -> &'static str {
        match self {
            NatsUnderTest::Single(_) => "2000",
            NatsUnderTest::Cluster(_) => "10000",
        }
    }

    /// What the report line calls this run.
    fn label(&self) -> String {
        match self {
            NatsUnderTest::Single(_) => format!("R1, {PARTITIONS} partitions, nats-server killed"),
            NatsUnderTest::Cluster(_) => format!("R3 cluster, {PARTITIONS} partitions, a NATS node killed"),
        }
    }
}

#[derive(Debug)]
enum Attempt {
    Accepted,
    /// A 4xx, or the connection failed: the client tries again.
    Again(String),
    /// A 5xx: a bug here, since every message is valid and its recipient exists.
    Refused(String),
}

/// One SMTP transaction, as a plain client does it.
async fn send_once(server: SocketAddr, body: &[u8]) -> Attempt {
    let transaction = async {
        let mut client = SmtpClient::open_as(server, "load.test").await?;
        let reply = client.send("load@example.net", RECIPIENT, body).await?;
        client.quit().await;
        anyhow::Ok(reply)
    };
    match tokio::time::timeout(Duration::from_secs(30), transaction).await {
        Ok(Ok(reply)) if reply.code == 250 => Attempt::Accepted,
        Ok(Ok(reply)) if reply.code / 100 == 4 => Attempt::Again(reply.text),
        Ok(Ok(reply)) => Attempt::Refused(reply.text),
        // No connection, a greeting other than 220, or the connection lost on the way.
        Ok(Err(error)) => Attempt::Again(format!("{error:#}")),
        Err(_) => Attempt::Again("timed out".into()),
    }
}

fn body(n: usize) -> Vec<u8> {
    format!(
        "From: load@example.net\r\nTo: {RECIPIENT}\r\nSubject: load {n}\r\nMessage-ID: <load-{n}@noloss.test>\r\n\r\nMessage {n}.\r\n"
    )
    .into_bytes()
}

#[derive(Default)]
struct Ledger {
    /// The numbers of the messages that got their 250.
    accepted: std::sync::Mutex<Vec<usize>>,
    attempts: AtomicUsize,
    /// Messages that needed more than one attempt.
    retried: AtomicUsize,
}

/// Sends message `n` until it is accepted, through whichever ingress answers.
async fn deliver_until_accepted(n: usize, ingress: &[SocketAddr], ledger: &Ledger) {
    let started = Instant::now();
    let body = body(n);
    for attempt in 0.. {
        ledger.attempts.fetch_add(1, Ordering::Relaxed);
        match send_once(ingress[(n + attempt) % ingress.len()], &body).await {
            Attempt::Accepted => {
                ledger.accepted.lock().unwrap().push(n);
                if attempt > 0 {
                    ledger.retried.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Attempt::Refused(reply) => panic!("message {n} refused for good: {reply}"),
            Attempt::Again(why) => {
                assert!(started.elapsed() < MESSAGE_PATIENCE, "message {n} never accepted; last: {why}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// `kill -9` (waiting until the process is gone), started again, and ready.
async fn crash_and_restart(replica: &mut Replica) {
    replica.kill().await;
    replica.start();
    replica.wait_ready(Duration::from_secs(60)).await;
}

/// The Message-IDs in the account's mailboxes, each as often as it is stored.
async fn stored(database_url: &str) -> Result<HashMap<String, usize>, sqlx::Error> {
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(database_url).await?;
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT h.value FROM messages m JOIN mailbox_entries e ON e.message_id = m.id, \
         unnest(m.header_names, m.header_values) AS h(name, value) WHERE h.name = 'message-id'",
    )
    .fetch_all(&mut connection)
    .await?;
    let mut counts = HashMap::new();
    for (id,) in rows {
        // The stored header value may or may not keep the angle brackets.
        *counts.entry(id.trim_matches(['<', '>', ' ']).to_owned()).or_insert(0) += 1;
    }
    Ok(counts)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_accepted_message_arrives_once_while_each_role_nats_and_postgres_crash_in_turn() {
    let nats = tokio::task::spawn_blocking(|| dedicated_nats("noloss")).await.unwrap();
    no_loss_while_everything_crashes(NatsUnderTest::Single(nats)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_accepted_message_arrives_once_on_a_nats_cluster_that_loses_a_node() {
    let cluster = tokio::task::spawn_blocking(|| dedicated_nats_cluster("noloss")).await.unwrap();
    no_loss_while_everything_crashes(NatsUnderTest::Cluster(cluster)).await;
}

async fn no_loss_while_everything_crashes(mut nats: NatsUnderTest) {
    let scratch = scratch_dir().join(format!("noloss-{}", uuid::Uuid::new_v4().simple()));
    let pg_dir = scratch.join("postgres");
    let mut postgres = tokio::task::spawn_blocking(move || Postgres::start_crash_safe(&pg_dir, free_port().unwrap()))
        .await
        .unwrap()
        .expect("starting this test's PostgreSQL");
    let logs = scratch.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let database_url = postgres.url("postgres");
    let mut shared: HashMap<&'static str, String> = HashMap::from([
        ("DATABASE_URL", database_url.clone()),
        ("NATS_URL", nats.url()),
        ("MAILBUS_NATS_PREFIX", "noloss".into()),
        ("MAILBUS_QUEUE_PARTITIONS", PARTITIONS.to_string()),
        ("MAILBUS_NATS_REPLICAS", nats.replicas().to_string()),
        ("MAILBUS_HOSTNAME", "mx.noloss.test".into()),
        // A killed relay's messages go to the other one after this long, and retries come quickly.
        ("MAILBUS_RELAY_ACK_WAIT_SECS", "5".into()),
        ("MAILBUS_RELAY_RETRY_SCHEDULE", "1s".into()),
        ("MAILBUS_NATS_TIMEOUT_MS", nats.timeout_ms().into()),
        ("RUST_LOG", "warn".into()),
    ]);
    let mut mailbox = Replica::spawn(under_test(), "mailbox", "mailbox", &shared, &logs);
    mailbox.wait_ready(Duration::from_secs(60)).await;
    shared.insert("MAILBUS_MAILBOX_URL", format!("http://{}", mailbox.addr("MAILBUS_MAILBOX_GRPC_LISTEN")));
    let mut smtp = [
        Replica::spawn(under_test(), "smtp-ingress", "smtp-1", &shared, &logs),
        Replica::spawn(under_test(), "smtp-ingress", "smtp-2", &shared, &logs),
    ];
    let mut relays = [
        Replica::spawn(under_test(), "relay", "relay-1", &shared, &logs),
        Replica::spawn(under_test(), "relay", "relay-2", &shared, &logs),
    ];
    let mut access = Replica::spawn(under_test(), "access", "access", &shared, &logs);
    for replica in smtp.iter().chain(&relays).chain([&access]) {
        replica.wait_ready(Duration::from_secs(60)).await;
    }
    mailbus_tests::stack::add_account(&shared["MAILBUS_MAILBOX_URL"], RECIPIENT, "pw").await;

    // The load: CLIENTS clients, each sending the next message until it has its 250, until there have
    // been MESSAGES and the failures are over.
    let ingress: Arc<[SocketAddr]> = smtp.iter().map(|r| r.addr("MAILBUS_SMTP_LISTEN")).collect();
    let (next, ledger, failures_over) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(Ledger::default()), Arc::new(AtomicBool::new(false)));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (ingress, next, ledger, failures_over) =
                (ingress.clone(), next.clone(), ledger.clone(), failures_over.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= MESSAGES && failures_over.load(Ordering::SeqCst) {
                        return;
                    }
                    deliver_until_accepted(n, &ingress, &ledger).await;
                    tokio::time::sleep(PACE).await;
                }
            })
        })
        .collect();

    // The failures, one after another while the load flows.
    // Between failures, mail flows again: the next failure waits for 100 more 250s.
    let pause = async || {
        let target = ledger.accepted.lock().unwrap().len() + 100;
        let flowing = format!("fewer than {target} messages accepted: mail does not flow again");
        mailbus_tests::wait_until(MESSAGE_PATIENCE, &flowing, async || ledger.accepted.lock().unwrap().len() >= target)
            .await;
    };
    pause().await;
    let ([smtp_1, smtp_2], [relay_1, relay_2]) = (&mut smtp, &mut relays);
    for replica in [smtp_1, relay_1, &mut mailbox, &mut access, smtp_2, relay_2] {
        println!("crashing {}", replica.name);
        crash_and_restart(replica).await;
        pause().await;
    }
    nats = match nats {
        NatsUnderTest::Single(mut server) => {
            println!("crashing nats-server");
            tokio::task::spawn_blocking(move || {
                server.restart().expect("restarting nats-server");
                NatsUnderTest::Single(server)
            })
            .await
            .unwrap()
        }
        NatsUnderTest::Cluster(mut cluster) => {
            // The first node is the one every role was given first, so most connections are on it.
            println!("crashing NATS node 1 of {}", cluster.nodes.len());
            cluster.nodes[0].kill();
            // Mail flows on the other two.
            pause().await;
            println!("starting NATS node 1 again");
            tokio::task::spawn_blocking(move || {
                cluster.nodes[0].restart().expect("restarting the NATS node");
                cluster.wait_healthy(Duration::from_secs(60)).expect("the cluster heals");
                NatsUnderTest::Cluster(cluster)
            })
            .await
            .unwrap()
        }
    };
    for replica in smtp.iter().chain(&relays) {
        replica.wait_ready(Duration::from_secs(60)).await;
    }
    pause().await;
    println!("crashing PostgreSQL");
    let postgres = tokio::task::spawn_blocking(move || {
        postgres.kill();
        // Its backends notice the postmaster is gone and leave; until they have, a new one cannot start.
        let mut tries = 0;
        while let Err(error) = postgres.restart() {
            tries += 1;
            assert!(tries < 50, "PostgreSQL does not start again: {error}");
            std::thread::sleep(Duration::from_millis(200));
        }
        postgres
    })
    .await
    .unwrap();
    mailbox.wait_ready(Duration::from_secs(60)).await;
    failures_over.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let accepted = ledger.accepted.lock().unwrap().clone();
    let sent = accepted.len();
    assert!(sent >= MESSAGES, "{sent} messages");

    // Everything accepted reaches the mailbox; then nothing more arrives (no late duplicate).
    // Until every accepted message is stored (or two minutes pass: then the counts below say what is
    // missing).
    let deadline = Instant::now() + Duration::from_secs(120);
    while stored(&database_url).await.map_or(0, |counts| counts.len()) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let client = mailbus_jetstream::connect(&nats.url(), "noloss").await.unwrap();
    let names =
        mailbus_jetstream::Names::new("noloss").unwrap().with_partitions(PARTITIONS).with_replicas(nats.replicas());
    // Mail went through every partition, each kept as the roles were told to (looked at before this test
    // opens the queue itself, which would bring them to its own count).
    let jetstream = mailbus_jetstream::async_nats::jetstream::new(client.clone());
    for partition in 0..PARTITIONS {
        let stream = names.queue_partition_stream(partition);
        let info = jetstream.get_stream(&stream).await.unwrap().info().await.unwrap().clone();
        assert!(info.state.last_sequence > 0, "{stream} carried no mail");
        assert_eq!(info.config.num_replicas, nats.replicas(), "{stream}'s replicas");
    }
    for partition in 0..PARTITIONS {
        let claims = format!("KV_{}", names.queue_partition_claims_bucket(partition));
        let info = jetstream.get_stream(&claims).await.unwrap().info().await.unwrap().clone();
        assert!(info.state.last_sequence > 0, "{claims} carried no claim");
        assert_eq!(info.config.num_replicas, nats.replicas(), "{claims}'s replicas");
    }
    let queue = mailbus_jetstream::Queue::open(client, names, Duration::from_secs(5)).await.unwrap();
    mailbus_tests::wait_until(Duration::from_secs(60), "the queue never emptied", async || {
        queue.status().await.is_ok_and(|status| status.messages == 0)
    })
    .await;
    let counts = stored(&database_url).await.unwrap();
    let delivered = counts.len();
    let duplicates: usize = counts.values().map(|&c| c - 1).sum();
    let lost: Vec<usize> =
        accepted.iter().copied().filter(|n| !counts.contains_key(&format!("load-{n}@noloss.test"))).collect();
    let result = format!(
        "no loss ({}): accepted {sent} / delivered {delivered} / duplicates {duplicates} / lost {} \
         ({} messages needed more than one attempt, {} attempts in all)",
        nats.label(),
        lost.len(),
        ledger.retried.load(Ordering::SeqCst),
        ledger.attempts.load(Ordering::SeqCst),
    );
    println!("{result}");
    // tests/run shows this line after the tests, whose own output it does not show.
    if let Ok(report) = std::env::var("MAILBUS_TEST_REPORT") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(report).unwrap();
        writeln!(file, "{result}").unwrap();
    }
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert_eq!(duplicates, 0, "duplicates: {:?}", counts.iter().filter(|(_, c)| **c > 1).collect::<Vec<_>>());
    assert_eq!(delivered, sent, "nothing that was not sent");
    assert!(ledger.retried.load(Ordering::SeqCst) > 0, "the failures cost some attempts, or they missed the load");
    drop((smtp, relays, access, mailbox, postgres, nats));
    let _ = std::fs::remove_dir_all(&scratch);
}
