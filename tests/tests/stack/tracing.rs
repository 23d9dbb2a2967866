//! What an operator's dashboards see, proved from the outside. Two replicas of each role run as separate
//! processes against the harness's PostgreSQL and nats-server, export their spans over OTLP to a receiver
//! in this test, and log JSON to files. Mail goes in through both SMTP replicas, out through both relays
//! and into both mailbox replicas; IMAP and POP3 read it through both access replicas. Then:
//! - each accepted message is one trace from SMTP DATA to the mailbox commit, whichever replicas it
//!   crossed, and a remote delivery's retry is in the trace of the message it retries;
//! - spans carry the OpenTelemetry semantic-convention attributes and the mail attributes;
//! - log lines carry the trace id of the message they are about;
//! - `/metrics`, summed over the replicas of each role, counts exactly what the test did, and every
//!   metric the Grafana dashboard uses is exposed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use mailbus_tests::clients::{Pop3End, SmtpOutcome, SubmitMode, imap_session, pop3_session, smtp_send, smtp_submit};
use mailbus_tests::fake_smtp::{FakeSmtp, Script};
use mailbus_tests::infra::Infra;
use mailbus_tests::processes::Replica;
use mailbus_tests::wait_until;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use serde_json::json;

use crate::{PATIENCE, message, under_test};

/// One exported span, flattened: who sent it and what it says.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    instance: String,
    name: String,
    trace_id: String,
    attributes: HashMap<String, String>,
    events: Vec<String>,
}

impl Span {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

type Spans = Arc<Mutex<Vec<Span>>>;

struct Receiver(Spans);

fn text(value: &KeyValue) -> String {
    match value.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let resource: HashMap<String, String> = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .map(|kv| (kv.key.clone(), text(kv)))
                .collect();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(Span {
                    service: resource.get("service.name").cloned().unwrap_or_default(),
                    instance: resource.get("service.instance.id").cloned().unwrap_or_default(),
                    name: span.name,
                    trace_id: span.trace_id.iter().map(|b| format!("{b:02x}")).collect(),
                    attributes: span.attributes.iter().map(|kv| (kv.key.clone(), text(kv))).collect(),
                    // Log events inside the span (message and fields), for the check that no password
                    // or content leaks into a trace.
                    events: span
                        .events
                        .iter()
                        .map(|event| {
                            let fields: Vec<String> = event.attributes.iter().map(text).collect();
                            format!("{} {}", event.name, fields.join(" "))
                        })
                        .collect(),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

async fn scraped(replica: &Replica) -> Metrics {
    Metrics::parse(&replica.metrics().await)
}

/// A scrape, as (name, labels, value) samples.
struct Metrics {
    samples: Vec<(String, HashMap<String, String>, f64)>,
    families: HashSet<String>,
}

impl Metrics {
    fn parse(body: &str) -> Metrics {
        let mut samples = Vec::new();
        let mut families = HashSet::new();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split(' ');
                let (name, kind) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
                // How the samples of each type are named in PromQL.
                let suffixes: &[&str] = match kind {
                    "counter" => &["_total"],
                    "histogram" => &["_bucket", "_sum", "_count"],
                    _ => &[""],
                };
                families.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                .collect();
            samples.push((name.to_owned(), labels, value.parse().unwrap()));
        }
        Metrics { samples, families }
    }

    /// The sum of `name` over the samples whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, value)| value)
            .sum()
    }
}

/// `name{labels}` summed over every replica's scrape.
fn total(scrapes: &[Metrics], name: &str, labels: &[(&str, &str)]) -> f64 {
    scrapes.iter().map(|m| m.sum(name, labels)).sum()
}

async fn scrape(replicas: &[&Replica]) -> Vec<Metrics> {
    let mut scrapes = Vec::new();
    for replica in replicas {
        scrapes.push(scraped(replica).await);
    }
    scrapes
}

async fn wait_ready(replicas: &[Replica]) {
    for replica in replicas {
        replica.wait_ready(PATIENCE).await;
    }
}

/// Judy's password, which must appear in no span.
const PASSWORD: &str = "s3cret-judy-pw";

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_of_each_role_give_one_trace_per_message_and_metrics_that_match() {
    let spans: Spans = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Receiver(spans.clone())))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    // The other domain's server refuses each recipient once (451), then takes it.
    let remote = FakeSmtp::start(Script {
        rcpt: Box::new(
            |_, attempt| if attempt == 1 { "451 4.3.0 try again later".into() } else { "250 2.1.5 Ok".into() },
        ),
        ..Script::default()
    })
    .await;

    let infra = tokio::task::spawn_blocking(Infra::get).await.unwrap();
    let logs = tempfile::tempdir().unwrap();
    let shared: HashMap<&'static str, String> = HashMap::from([
        ("DATABASE_URL", infra.create_database().await),
        ("NATS_URL", infra.nats_url().to_owned()),
        ("MAILBUS_NATS_PREFIX", format!("tr{}", &uuid::Uuid::new_v4().simple().to_string()[..10])),
        ("MAILBUS_RELAY_TRANSPORTS", format!("remote.example={}", remote.addr())),
        ("MAILBUS_RELAY_RETRY_SCHEDULE", "1s".into()),
        ("MAILBUS_LOG_FORMAT", "json".into()),
        ("MAILBUS_TLS_CERT", infra.tls_cert.display().to_string()),
        ("MAILBUS_TLS_KEY", infra.tls_key.display().to_string()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("RUST_LOG", "info".into()),
    ]);
    // The mailbox replicas first, so that no other role's first call fails (which the client-error
    // counts below would show).
    let mut mailboxes = [
        Replica::spawn(under_test(), "mailbox", "mailbox-1", &shared, logs.path()),
        Replica::spawn(under_test(), "mailbox", "mailbox-2", &shared, logs.path()),
    ];
    wait_ready(&mailboxes).await;
    // Each replica of the other roles calls its own mailbox replica, so both serve.
    let with_mailbox = |mailbox: &Replica| {
        let mut env = shared.clone();
        env.insert("MAILBUS_MAILBOX_URL", format!("http://{}", mailbox.env["MAILBUS_MAILBOX_GRPC_LISTEN"]));
        env
    };
    let (a, b) = (with_mailbox(&mailboxes[0]), with_mailbox(&mailboxes[1]));
    let relays = [
        Replica::spawn(under_test(), "relay", "relay-1", &a, logs.path()),
        Replica::spawn(under_test(), "relay", "relay-2", &b, logs.path()),
    ];
    let smtps = [
        Replica::spawn(under_test(), "smtp-ingress", "smtp-1", &a, logs.path()),
        Replica::spawn(under_test(), "smtp-ingress", "smtp-2", &b, logs.path()),
    ];
    let accesses = [
        Replica::spawn(under_test(), "access", "access-1", &a, logs.path()),
        Replica::spawn(under_test(), "access", "access-2", &b, logs.path()),
    ];
    wait_ready(&relays).await;
    let https = [
        Replica::spawn(under_test(), "http", "http-1", &a, logs.path()),
        Replica::spawn(under_test(), "http", "http-2", &b, logs.path()),
    ];
    wait_ready(&smtps).await;
    wait_ready(&accesses).await;
    wait_ready(&https).await;

    let channel =
        tonic::transport::Channel::from_shared(a["MAILBUS_MAILBOX_URL"].clone()).unwrap().connect().await.unwrap();
    let mut directory = mailbus_proto::v1::directory_client::DirectoryClient::new(channel);
    directory.add_domain(mailbus_proto::v1::AddDomainRequest { name: "example.org".into() }).await.unwrap();
    let account =
        mailbus_proto::v1::AddAccountRequest { address: "judy@example.org".into(), password: PASSWORD.into() };
    directory.add_account(account).await.unwrap();

    // Six local messages, three through each SMTP replica; the first also names an unknown user (550 at
    // RCPT). A seventh goes to the other domain, refused once there.
    const LOCAL: usize = 6;
    for n in 0..LOCAL {
        let smtp = smtps[n % 2].addr("MAILBUS_SMTP_LISTEN");
        let to: &[&str] = if n == 0 { &["judy@example.org", "nobody@example.org"] } else { &["judy@example.org"] };
        let sent = smtp_send(smtp, "sender@example.net", to, &message("judy", &format!("traced-{n}"))).await;
        assert!(matches!(sent, SmtpOutcome::Accepted { code: 250, .. }), "message {n}: {sent:?}");
    }
    let sent = smtp_submit(
        smtps[1].addr("MAILBUS_SUBMISSION_LISTEN"),
        SubmitMode::StartTls,
        &infra.tls_cert,
        ("judy@example.org", PASSWORD),
        "judy@example.org",
        &["bob@remote.example"],
        &message("bob", "traced-remote"),
    )
    .await;
    assert_eq!(sent.outcome, "ok", "{sent:?}");

    let mailbox_replicas: Vec<&Replica> = mailboxes.iter().collect();
    wait_until(PATIENCE, "the local messages were not all delivered", async || {
        let scrapes = scrape(&mailbox_replicas).await;
        total(&scrapes, "mailbus_mailbox_deliveries_total", &[("outcome", "delivered")]) == LOCAL as f64
    })
    .await;
    wait_until(PATIENCE, "the remote message was not relayed on its retry", async || remote.received().len() == 1)
        .await;

    // Read it through both access replicas: IMAP on each, then POP3 on the second.
    for access in &accesses {
        let steps = json!([["login", "judy@example.org", PASSWORD], ["select", "INBOX"], ["logout"]]);
        let results = imap_session(access.addr("MAILBUS_IMAP_LISTEN"), None, steps).await;
        let selected = results[2].to_string();
        assert!(selected.contains("OK"), "{} SELECT: {selected}", access.name);
    }
    let pop3 = pop3_session(accesses[1].addr("MAILBUS_POP3_LISTEN"), "judy@example.org", PASSWORD, Pop3End::Quit).await;
    assert_eq!(pop3.stat.0, LOCAL as u64);
    // And over JMAP, through each http replica: the inbox's emails, listed and read in one request.
    for http in &https {
        let addr = http.addr("MAILBUS_HTTP_LISTEN");
        let auth = mailbus_tests::http::basic("judy@example.org", PASSWORD);
        let session = mailbus_tests::http::curl(addr, "/jmap/session", &["-H", &auth]).await.json();
        let account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"].clone();
        let request = json!({"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"], "methodCalls": [
            ["Email/query", {"accountId": account}, "q"],
            ["Email/get", {"accountId": account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                           "properties": ["subject"]}, "g"]]});
        let reply = mailbus_tests::http::api(addr, &auth, &request).await;
        assert_eq!(reply.status, 200, "{}: {}", http.name, reply.body);
        let got = &reply.json()["methodResponses"][1][1]["list"];
        assert_eq!(got.as_array().map(Vec::len), Some(LOCAL), "{}: {got}", http.name);
    }

    // The traces. Spans are exported in batches every 100 ms, so wait for the last of them.
    let accepted_traces = |spans: &[Span]| -> Vec<Span> {
        spans.iter().filter(|s| s.name == "smtp.data" && s.attr("smtp.reply_code") == Some("250")).cloned().collect()
    };
    let complete = |seen: &[Span]| -> Result<(), String> {
        let data = accepted_traces(seen);
        if data.len() != LOCAL + 1 {
            return Err(format!("{} accepted smtp.data spans", data.len()));
        }
        for d in &data {
            let names: Vec<&str> = seen.iter().filter(|s| s.trace_id == d.trace_id).map(|s| s.name.as_str()).collect();
            let count = |name: &str| names.iter().filter(|n| **n == name).count();
            // Every span the checks below look at, from every process the message crossed.
            let complete = if d.attr("mail.message_id") == Some("<traced-remote@example.net>") {
                count("relay.process") == 2 && count("relay.deliver_remote") == 2
            } else {
                [
                    "relay.process",
                    "relay.deliver_local",
                    "mailbus.v1.Mailbox/Deliver",
                    "mailbox.deliver",
                    "smtp.enqueue",
                ]
                .iter()
                .all(|name| count(name) >= 1)
            };
            if !complete {
                return Err(format!("trace of {:?} has only {names:?}", d.attr("mail.message_id")));
            }
        }
        let selects = seen.iter().filter(|s| s.name == "IMAP SELECT").count();
        let quits = seen.iter().filter(|s| s.name == "POP3 QUIT").count();
        if selects != 2 || quits != 1 {
            let access: HashSet<(&str, Option<&str>)> = seen
                .iter()
                .filter(|s| s.service == "mailbus-access")
                .map(|s| (s.name.as_str(), s.attr("command")))
                .collect();
            return Err(format!("{selects} IMAP SELECT spans, {quits} POP3 QUIT spans; access spans: {access:?}"));
        }
        Ok(())
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let seen = spans.lock().unwrap().clone();
        let Err(missing) = complete(&seen) else { break };
        assert!(tokio::time::Instant::now() < deadline, "not every span arrived: {missing}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen = spans.lock().unwrap().clone();
    let data = accepted_traces(&seen);
    let in_trace = |trace: &str| -> Vec<&Span> { seen.iter().filter(|s| s.trace_id == trace).collect() };
    let distinct: HashSet<&str> = data.iter().map(|d| d.trace_id.as_str()).collect();
    assert_eq!(distinct.len(), LOCAL + 1, "one trace per message");
    let instances = |role: &str| -> HashSet<&str> {
        seen.iter().filter(|s| s.service == format!("mailbus-{role}")).map(|s| s.instance.as_str()).collect()
    };
    for (role, expected) in [
        ("smtp-ingress", ["smtp-1", "smtp-2"]),
        ("relay", ["relay-1", "relay-2"]),
        ("mailbox", ["mailbox-1", "mailbox-2"]),
        ("access", ["access-1", "access-2"]),
    ] {
        assert_eq!(instances(role), HashSet::from(expected), "spans from both {role} replicas");
    }
    for d in &data {
        assert_eq!(d.service, "mailbus-smtp-ingress");
        assert_eq!(d.attr("network.peer.address"), Some("127.0.0.1"));
        assert_eq!(d.attr("mail.recipients"), Some("1"), "{d:?}");
        let queue_id = d.attr("queue_id").expect("smtp.data names the queue id");
        let subject = d.attr("mail.message_id").expect("smtp.data names the Message-ID");
        assert!(subject.starts_with("<traced-") && subject.ends_with("@example.net>"), "{subject}");
        let trace = in_trace(&d.trace_id);
        let named = |name: &str| -> Vec<&&Span> { trace.iter().filter(|s| s.name == name).collect() };
        let enqueue = named("smtp.enqueue");
        assert_eq!(enqueue.len(), 1, "{trace:#?}");
        assert_eq!(enqueue[0].attr("messaging.system"), Some("nats"));
        assert!(
            enqueue[0].attr("messaging.destination.name").is_some_and(|d| d.contains(".queue.envelopes")),
            "{enqueue:?}"
        );
        let processes = named("relay.process");
        assert!(
            processes
                .iter()
                .all(|p| p.attr("queue_id") == Some(queue_id) && p.attr("messaging.system") == Some("nats"))
        );
        if subject == "<traced-remote@example.net>" {
            // The retry is in the original message's trace: attempt 1 (451), then attempt 2 (relayed).
            let attempts: HashSet<&str> = processes.iter().filter_map(|p| p.attr("attempt")).collect();
            assert_eq!(attempts, HashSet::from(["1", "2"]), "{processes:#?}");
            let remotes = named("relay.deliver_remote");
            assert_eq!(remotes.len(), 2, "{trace:#?}");
            assert!(remotes.iter().all(|r| r.attr("server.address") == Some("remote.example")));
            continue;
        }
        assert_eq!(processes.len(), 1, "{trace:#?}");
        assert_eq!(processes[0].attr("outcome"), Some("done"));
        let local = named("relay.deliver_local");
        assert!(local.len() == 1 && local[0].attr("rpc.system") == Some("grpc"), "{trace:#?}");
        let server = trace
            .iter()
            .find(|s| s.name == "mailbus.v1.Mailbox/Deliver")
            .unwrap_or_else(|| panic!("no Deliver server span in {trace:#?}"));
        assert_eq!(server.attr("rpc.system"), Some("grpc"));
        assert_eq!(server.attr("rpc.method"), Some("Deliver"));
        let deliver = named("mailbox.deliver");
        assert_eq!(deliver.len(), 1, "{trace:#?}");
        assert_eq!(deliver[0].attr("queue_id"), Some(queue_id));
        assert_eq!(deliver[0].attr("outcome"), Some("delivered"));
    }
    let selects: Vec<&Span> = seen.iter().filter(|s| s.name == "IMAP SELECT").collect();
    assert!(
        selects.iter().all(|s| s.attr("account") == Some("judy@example.org") && s.attr("mailbox") == Some("INBOX")),
        "{selects:#?}"
    );
    let logins: Vec<&Span> = seen.iter().filter(|s| s.name == "IMAP LOGIN").collect();
    assert!(logins.len() == 2 && logins.iter().all(|s| s.attr("account") == Some("judy@example.org")), "{logins:#?}");
    let retr: Vec<&Span> = seen.iter().filter(|s| s.name == "POP3 RETR").collect();
    assert!(
        retr.len() == LOCAL
            && retr.iter().all(|s| s.attr("account") == Some("judy@example.org") && s.attr("mailbox") == Some("INBOX")),
        "{retr:#?}"
    );
    assert!(seen.iter().any(|s| !s.events.is_empty()), "log events are exported with their spans");
    for span in &seen {
        for value in span.attributes.values().chain(&span.events) {
            assert!(!value.contains(PASSWORD), "a password in {span:?}");
            assert!(!value.contains("Hello."), "message content in {span:?}");
        }
    }

    // Log lines: each "message accepted" line carries the trace id of its message's smtp.data span.
    let mut logged = 0;
    for smtp in &smtps {
        for line in std::fs::read_to_string(&smtp.log).unwrap().lines() {
            let Ok(line) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if line["fields"]["message"] != "message accepted" {
                continue;
            }
            let queue_id = line["fields"]["queue_id"].as_str().unwrap();
            let span = data.iter().find(|d| d.attr("queue_id") == Some(queue_id)).unwrap();
            assert_eq!(line["trace_id"].as_str(), Some(span.trace_id.as_str()), "{line}");
            assert_eq!(line["span_id"].as_str().map(str::len), Some(16), "{line}");
            logged += 1;
        }
    }
    assert_eq!(logged, LOCAL + 1, "one 'message accepted' log line per message");
    for replica in mailboxes.iter().chain(&relays).chain(&smtps).chain(&accesses) {
        let log = std::fs::read_to_string(&replica.log).unwrap();
        assert!(!log.contains(PASSWORD) && !log.contains("Hello."), "{} logs a password or content", replica.name);
    }

    // The counts, summed over the replicas of each role.
    let (smtp_replicas, relay_replicas, access_replicas): (Vec<&Replica>, Vec<&Replica>, Vec<&Replica>) =
        (smtps.iter().collect(), relays.iter().collect(), accesses.iter().collect());
    let smtp = scrape(&smtp_replicas).await;
    let relay = scrape(&relay_replicas).await;
    let mailbox = scrape(&mailbox_replicas).await;
    let access = scrape(&access_replicas).await;
    let http_replicas: Vec<&Replica> = https.iter().collect();
    let http = scrape(&http_replicas).await;
    let messages = (LOCAL + 1) as f64;
    for (scrapes, name, labels, expected) in [
        (&smtp, "mailbus_smtp_sessions_total", &[][..], messages),
        (&smtp, "mailbus_smtp_messages_total", &[("code", "250")][..], messages),
        (&smtp, "mailbus_smtp_rejections_total", &[("command", "RCPT"), ("code", "550")][..], 1.0),
        (&smtp, "mailbus_smtp_rejections_total", &[][..], 1.0),
        (&smtp, "mailbus_smtp_message_size_bytes_count", &[][..], messages),
        (&relay, "mailbus_relay_recipients_total", &[("destination", "local"), ("outcome", "delivered")][..], 6.0),
        (
            &relay,
            "mailbus_relay_recipients_total",
            &[("destination", "remote"), ("outcome", "temporary_failure")][..],
            1.0,
        ),
        (&relay, "mailbus_relay_recipients_total", &[("destination", "remote"), ("outcome", "relayed")][..], 1.0),
        (&relay, "mailbus_relay_messages_total", &[("disposition", "done")][..], messages),
        (&relay, "mailbus_relay_messages_total", &[("disposition", "retry")][..], 1.0),
        (&relay, "mailbus_relay_delivery_duration_seconds_count", &[("destination", "local")][..], 6.0),
        (&relay, "mailbus_relay_delivery_duration_seconds_count", &[("destination", "remote")][..], 2.0),
        (&mailbox, "mailbus_mailbox_deliveries_total", &[("outcome", "delivered")][..], 6.0),
        (&mailbox, "mailbus_mailbox_deliver_duration_seconds_count", &[][..], 6.0),
        (&access, "mailbus_access_imap_sessions_total", &[][..], 2.0),
        (&access, "mailbus_access_imap_command_duration_seconds_count", &[("command", "select")][..], 2.0),
        (&access, "mailbus_access_imap_active_sessions", &[][..], 0.0),
        (&access, "mailbus_access_pop3_sessions_total", &[][..], 1.0),
        (&access, "mailbus_access_pop3_command_duration_seconds_count", &[("command", "retr")][..], 6.0),
        (&access, "mailbus_access_pop3_active_sessions", &[][..], 0.0),
        (&http, "mailbus_http_requests_total", &[("endpoint", "/jmap/api"), ("status", "200")][..], 2.0),
        (&http, "mailbus_http_request_duration_seconds_count", &[("endpoint", "/jmap/session")][..], 2.0),
        (&http, "mailbus_http_jmap_calls_total", &[("method", "Email/query"), ("outcome", "ok")][..], 2.0),
        (&http, "mailbus_http_jmap_calls_total", &[("method", "Email/get"), ("outcome", "ok")][..], 2.0),
        (&http, "mailbus_http_eventsource_open", &[][..], 0.0),
    ] {
        assert_eq!(total(scrapes, name, labels), expected, "{name}{labels:?}");
    }
    // Each replica did its share: both SMTP replicas accepted mail, both mailbox replicas stored some.
    for (scrapes, name) in
        [(&smtp, "mailbus_smtp_message_size_bytes_count"), (&mailbox, "mailbus_mailbox_deliveries_total")]
    {
        assert!(scrapes.iter().all(|m| m.sum(name, &[]) > 0.0), "{name} on every replica");
    }
    // Nothing failed on the way: no gRPC or NATS client errors in any process.
    for scrapes in [&smtp, &relay, &mailbox, &access, &http] {
        assert_eq!(total(scrapes, "mailbus_grpc_client_errors_total", &[]), 0.0);
        assert_eq!(total(scrapes, "mailbus_nats_client_errors_total", &[]), 0.0);
    }

    // A call that fails is counted where it was made: with its mailbox replica gone, access-2 cannot
    // check a password.
    mailboxes[1].kill().await;
    let steps = json!([["login", "judy@example.org", PASSWORD]]);
    let refused = imap_session(accesses[1].addr("MAILBUS_IMAP_LISTEN"), None, steps).await;
    assert!(refused[1].to_string().contains("UNAVAILABLE"), "{refused:?}");
    let after = scraped(&accesses[1]).await;
    let failed = after.sum("mailbus_grpc_client_errors_total", &[("rpc_service", "mailbus.v1.Directory")]);
    assert!(failed >= 1.0, "the failed Directory call is counted");
    let access = vec![after, scraped(&accesses[0]).await];

    // The dashboard's contract: every metric it queries is one some role exposes.
    let contract =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/metrics.txt")).unwrap();
    let exposed: HashSet<&String> =
        [&smtp, &relay, &mailbox, &access, &http].iter().flat_map(|s| s.iter()).flat_map(|m| &m.families).collect();
    let missing: Vec<&str> = contract
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|name| !exposed.contains(&name.to_string()))
        .collect();
    assert!(missing.is_empty(), "the dashboard reads metrics no role exposes: {missing:?}; exposed: {exposed:?}");
}
