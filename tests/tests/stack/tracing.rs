//! One message, one trace: the roles run as separate processes, export over OTLP to a receiver in this
//! test, and the spans of smtp-ingress, relay and mailbox for one message share a trace id.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailbus_devstack::free_port;
use mailbus_tests::clients::{SmtpOutcome, smtp_send};
use mailbus_tests::infra::Infra;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

use crate::{PATIENCE, message};

/// (service name, span name, trace id)
type Spans = Arc<Mutex<Vec<(String, String, String)>>>;

struct Receiver(Spans);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                let trace_id: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                spans.push((service.clone(), span.name, trace_id));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

struct Role {
    child: tokio::process::Child,
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn spawn_role(role: &str, env: &HashMap<&str, String>) -> Role {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailbus-under-test"))
        .arg(role)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("OTEL_SERVICE_NAME", format!("mailbus-{role}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting a mailbus role");
    Role { child }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_message_is_one_trace_from_smtp_data_to_the_mailbox_commit() {
    let spans: Spans = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let receiver = TraceServiceServer::new(Receiver(spans.clone()));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(receiver)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let infra = tokio::task::spawn_blocking(Infra::get).await.unwrap();
    let port = || format!("127.0.0.1:{}", free_port().unwrap());
    let (mailbox_grpc, smtp) = (port(), port());
    let mut env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", infra.create_database().await),
        ("NATS_URL", infra.nats_url().to_owned()),
        ("MAILBUS_NATS_PREFIX", format!("tr{}", &uuid::Uuid::new_v4().simple().to_string()[..10])),
        ("MAILBUS_MAILBOX_URL", format!("http://{mailbox_grpc}")),
        ("MAILBUS_MAILBOX_GRPC_LISTEN", mailbox_grpc.clone()),
        ("MAILBUS_SMTP_LISTEN", smtp.clone()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("RUST_LOG", "warn".into()),
    ]);
    for var in mailbus::settings::VARS.iter().filter(|v| v.name.ends_with("_LISTEN")) {
        env.entry(var.name).or_insert_with(port);
    }
    let _mailbox = spawn_role("mailbox", &env);
    let _relay = spawn_role("relay", &env);
    let _smtp = spawn_role("smtp-ingress", &env);

    let stack_client = async {
        loop {
            match tonic::transport::Channel::from_shared(format!("http://{mailbox_grpc}")).unwrap().connect().await {
                Ok(channel) => break channel,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    };
    let channel = tokio::time::timeout(PATIENCE, stack_client).await.expect("mailbox role never came up");
    let mut directory = mailbus_proto::v1::directory_client::DirectoryClient::new(channel);
    directory.add_domain(mailbus_proto::v1::AddDomainRequest { name: "example.org".into() }).await.unwrap();
    let account = mailbus_proto::v1::AddAccountRequest { address: "judy@example.org".into(), password: "pw".into() };
    directory.add_account(account).await.unwrap();

    let smtp_addr = smtp.parse().unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let sent = loop {
        match tokio::net::TcpStream::connect(smtp_addr).await {
            Ok(_) => {
                break smtp_send(smtp_addr, "sender@example.net", &["judy@example.org"], &message("judy", "traced"))
                    .await;
            }
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("smtp-ingress never came up: {e}"),
        }
    };
    assert!(matches!(sent, SmtpOutcome::Accepted { code: 250, .. }), "{sent:?}");

    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let seen = spans.lock().unwrap().clone();
        let data_traces: HashSet<&String> = seen
            .iter()
            .filter(|(service, name, _)| service == "mailbus-smtp-ingress" && name == "smtp.data")
            .map(|(_, _, t)| t)
            .collect();
        let services_in = |trace: &String| -> HashSet<&str> {
            seen.iter().filter(|(_, _, t)| t == trace).map(|(s, _, _)| s.as_str()).collect()
        };
        let complete = data_traces.iter().find(|trace| {
            let services = services_in(trace);
            ["mailbus-smtp-ingress", "mailbus-relay", "mailbus-mailbox"].iter().all(|s| services.contains(s))
        });
        if let Some(trace) = complete {
            let names: HashSet<&str> =
                seen.iter().filter(|(_, _, t)| t == *trace).map(|(_, n, _)| n.as_str()).collect();
            for expected in ["smtp.data", "smtp.enqueue", "relay.process", "mailbox.deliver"] {
                assert!(names.contains(expected), "trace {trace} lacks {expected}: {names:?}");
            }
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no complete trace; spans seen: {seen:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
