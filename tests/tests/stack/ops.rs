//! What operators and orchestrators see: /metrics, /healthz, /readyz, gRPC health and reflection.

use std::net::SocketAddr;

use mailbus::roles::Role;
use mailbus_tests::{TestStack, wait_until};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

/// A GET of `path`: (status line, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    mailbus_tests::processes::http_get(addr, path).await.expect("an answer over HTTP")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_role_serves_health_readiness_metrics_and_grpc_health() {
    let mut stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let bound = mailbus::roles::bind(&[Role::Relay, Role::SmtpIngress, Role::Access], &stack.settings).await.unwrap();
    let relay = bound.relay.as_ref().unwrap();
    let smtp = bound.smtp.as_ref().unwrap();
    let access = bound.access.as_ref().unwrap();
    let endpoints = [
        ("mailbox", stack.mailbox_metrics.unwrap(), stack.mailbox_url(), "mailbus.v1.Mailbox"),
        ("relay", relay.metrics_addr(), format!("http://{}", relay.grpc_addr()), "mailbus.v1.QueueAdmin"),
        ("smtp-ingress", smtp.metrics_addr(), format!("http://{}", smtp.grpc_addr()), ""),
        ("access", access.metrics_addr(), format!("http://{}", access.grpc_addr()), ""),
    ];
    let shutdown = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(bound.serve(shutdown.clone()));
    for (role, metrics, grpc, service) in endpoints {
        assert_eq!(http_get(metrics, "/healthz").await.0, "HTTP/1.0 200 OK", "{role} /healthz");
        let never_ready = format!("{role} never became ready");
        wait_until(crate::PATIENCE, &never_ready, async || http_get(metrics, "/readyz").await.0 == "HTTP/1.0 200 OK")
            .await;
        let (status, body) = http_get(metrics, "/metrics").await;
        assert_eq!(status, "HTTP/1.0 200 OK", "{role} /metrics");
        assert!(body.contains("# TYPE mailbus_"), "{role} exposes its metrics: {body}");
        let channel = tonic::transport::Channel::from_shared(grpc).unwrap().connect().await.unwrap();
        let mut health = HealthClient::new(channel);
        let reply = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(reply.status(), ServingStatus::Serving, "{role} gRPC health");
    }
    shutdown.cancel();
    serving.await.unwrap().unwrap();
    stack.start_roles(&[]).await;
    stack.stop().await;
}
