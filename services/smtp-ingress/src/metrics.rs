//! Prometheus metrics of the SMTP role.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

#[derive(Clone, Default)]
pub struct Metrics {
    pub sessions: Counter,
    pub active_sessions: Gauge,
    pub refused_connections: Counter,
    pub auth_failures: Counter,
    messages: Family<Labels, Counter>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Metrics::default();
        registry.register("sessions", "SMTP sessions accepted", metrics.sessions.clone());
        registry.register("active_sessions", "SMTP sessions open now", metrics.active_sessions.clone());
        registry.register(
            "refused_connections",
            "Connections refused at the connection cap",
            metrics.refused_connections.clone(),
        );
        registry.register("messages", "End-of-data outcomes, by reply code", metrics.messages.clone());
        registry.register("auth_failures", "Failed AUTH attempts", metrics.auth_failures.clone());
        metrics
    }

    pub fn message(&self, code: u16) {
        self.messages.get_or_create(&vec![("code".into(), code.to_string())]).inc();
    }
}
