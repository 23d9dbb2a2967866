//! Metric pieces every role shares: the latency buckets, and the process-wide counts of calls served
//! (gRPC) and of failed or repeated calls to the other services (gRPC) and to NATS, which the transports
//! record wherever a role uses them.
//!
//! The process-wide counts live in one registry per process, without a role prefix
//! (`mailbus_grpc_client_errors_total`, `mailbus_grpc_client_retries_total`,
//! `mailbus_grpc_server_calls_total`, `mailbus_nats_client_errors_total`). When several roles share a
//! process (`mailbus dev`, or several roles named on one command line) only the first role's `/metrics`
//! shows them, so a scrape of every endpoint counts each failure once; when that endpoint stops, the
//! next one to start takes them over.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Buckets for call and command latencies, in seconds: 0.5 ms to about 16 s, doubling.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

struct ProcessMetrics {
    registry: Registry,
    grpc_client_errors: Family<Labels, Counter>,
    grpc_client_retries: Family<Labels, Counter>,
    grpc_server_calls: Family<Labels, Counter>,
    nats_client_errors: Family<Labels, Counter>,
    claimed: AtomicBool,
}

static PROCESS: LazyLock<ProcessMetrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("mailbus");
    let grpc_client_errors = Family::<Labels, Counter>::default();
    registry.register(
        "grpc_client_errors",
        "gRPC calls this process made that failed, by service, method and status code",
        grpc_client_errors.clone(),
    );
    let grpc_client_retries = Family::<Labels, Counter>::default();
    registry.register(
        "grpc_client_retries",
        "gRPC calls this process sent again to another replica after the first failed, by service and method",
        grpc_client_retries.clone(),
    );
    let grpc_server_calls = Family::<Labels, Counter>::default();
    registry.register(
        "grpc_server_calls",
        "gRPC calls this process received, by service and method",
        grpc_server_calls.clone(),
    );
    let nats_client_errors = Family::<Labels, Counter>::default();
    registry.register(
        "nats_client_errors",
        "NATS and JetStream operations this process made that failed, by operation",
        nats_client_errors.clone(),
    );
    // Every operation from the start, so dashboards see zeros rather than nothing.
    for operation in NatsOperation::ALL {
        drop(nats_client_errors.get_or_create(&vec![("operation", operation.label().to_owned())]));
    }
    ProcessMetrics {
        registry,
        grpc_client_errors,
        grpc_client_retries,
        grpc_server_calls,
        nats_client_errors,
        claimed: AtomicBool::new(false),
    }
});

/// Counts a failed gRPC call: `code` is the status code's name (`Unavailable`, …).
pub fn grpc_client_error(service: &str, method: &str, code: &str) {
    let labels =
        vec![("rpc_service", service.to_owned()), ("rpc_method", method.to_owned()), ("code", code.to_owned())];
    PROCESS.grpc_client_errors.get_or_create(&labels).inc();
}

/// Counts a gRPC call sent again to another replica after its first attempt failed.
pub fn grpc_client_retry(service: &str, method: &str) {
    let labels = vec![("rpc_service", service.to_owned()), ("rpc_method", method.to_owned())];
    PROCESS.grpc_client_retries.get_or_create(&labels).inc();
}

/// Shows the retry counter at zero for `service`/`method` before any retry, so that a process with
/// gRPC clients exposes the family and a dashboard draws zero rather than no data.
pub fn grpc_client_retries_start_at_zero(service: &str, method: &str) {
    let labels = vec![("rpc_service", service.to_owned()), ("rpc_method", method.to_owned())];
    drop(PROCESS.grpc_client_retries.get_or_create(&labels));
}

/// Counts a gRPC call this process received.
pub fn grpc_server_call(service: &str, method: &str) {
    let labels = vec![("rpc_service", service.to_owned()), ("rpc_method", method.to_owned())];
    PROCESS.grpc_server_calls.get_or_create(&labels).inc();
}

/// What a role asked of NATS, as the client-error count labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsOperation {
    /// Publishing to a stream (envelopes, dead letters) or a subject (mailbox events), and its ack.
    Publish,
    /// Acknowledging a queue message: ack, nak or progress.
    Ack,
    /// Pulling messages from the relay's consumer.
    Consume,
    ConsumerCreate,
    /// Stream lookups and changes for the operator's queue commands.
    StreamAdmin,
    BodyPut,
    BodyGet,
    BodyDelete,
    /// Taking a lease (the POP3 maildrop lock).
    KvCreate,
    /// Renewing a lease.
    KvUpdate,
}

impl NatsOperation {
    const ALL: [NatsOperation; 10] = [
        NatsOperation::Publish,
        NatsOperation::Ack,
        NatsOperation::Consume,
        NatsOperation::ConsumerCreate,
        NatsOperation::StreamAdmin,
        NatsOperation::BodyPut,
        NatsOperation::BodyGet,
        NatsOperation::BodyDelete,
        NatsOperation::KvCreate,
        NatsOperation::KvUpdate,
    ];

    fn label(self) -> &'static str {
        match self {
            NatsOperation::Publish => "publish",
            NatsOperation::Ack => "ack",
            NatsOperation::Consume => "consume",
            NatsOperation::ConsumerCreate => "consumer_create",
            NatsOperation::StreamAdmin => "stream_admin",
            NatsOperation::BodyPut => "body_put",
            NatsOperation::BodyGet => "body_get",
            NatsOperation::BodyDelete => "body_delete",
            NatsOperation::KvCreate => "kv_create",
            NatsOperation::KvUpdate => "kv_update",
        }
    }
}

/// Counts a failed NATS operation.
pub fn nats_client_error(operation: NatsOperation) {
    PROCESS.nats_client_errors.get_or_create(&vec![("operation", operation.label().to_owned())]).inc();
}

/// The process-wide registry, for the first endpoint that asks while no other holds it; `None` for
/// the others. Dropping the claim (the endpoint stopped) lets the next endpoint take it.
pub(crate) fn claim_process_registry() -> Option<ProcessClaim> {
    let process = &*PROCESS;
    (!process.claimed.swap(true, Ordering::SeqCst)).then_some(ProcessClaim(&process.registry))
}

/// An endpoint's hold on the process-wide registry.
pub(crate) struct ProcessClaim(pub(crate) &'static Registry);

impl Drop for ProcessClaim {
    fn drop(&mut self) {
        PROCESS.claimed.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_endpoint_at_a_time_holds_the_process_metrics_and_the_next_takes_them_over() {
        let first = claim_process_registry().expect("nobody holds them yet");
        assert!(claim_process_registry().is_none(), "a second endpoint of the process does not show them");
        nats_client_error(NatsOperation::Ack);
        let mut text = String::new();
        prometheus_client::encoding::text::encode_registry(&mut text, first.0).unwrap();
        assert!(text.contains("mailbus_nats_client_errors_total{operation=\"ack\"} 1"), "{text}");
        assert!(text.contains("mailbus_nats_client_errors_total{operation=\"publish\"} 0"), "zeros from the start");
        drop(first);
        assert!(claim_process_registry().is_some(), "the next endpoint takes them over");
    }
}
