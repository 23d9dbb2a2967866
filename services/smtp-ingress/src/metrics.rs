//! Prometheus metrics of the SMTP role.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

#[derive(Clone)]
pub struct Metrics {
    pub sessions: Counter,
    pub active_sessions: Gauge,
    pub refused_connections: Counter,
    pub auth_failures: Counter,
    pub auth_throttled: Counter,
    messages: Family<Labels, Counter>,
    rejections: Family<Labels, Counter>,
    /// MAIL and RCPT refused by a submission rate limit, by limit.
    rate_limited: Family<Labels, Counter>,
    /// Port 25's sender authentication results, by check (`spf`, `dmarc`) and result.
    sender_auth: Family<Labels, Counter>,
    /// Sizes of the messages accepted (250 after DATA or the last BDAT), in octets.
    pub message_size: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            sessions: Counter::default(),
            active_sessions: Gauge::default(),
            refused_connections: Counter::default(),
            auth_failures: Counter::default(),
            auth_throttled: Counter::default(),
            messages: Family::default(),
            rejections: Family::default(),
            rate_limited: Family::default(),
            sender_auth: Family::default(),
            // 1 KiB to 64 MiB, by fours.
            message_size: Histogram::new(exponential_buckets(1024.0, 4.0, 9)),
        }
    }
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
        registry.register(
            "auth_throttled",
            "AUTH refused unchecked: too many failures from the client's address",
            metrics.auth_throttled.clone(),
        );
        registry.register(
            "rejections",
            "Replies of 400 and above, by the command they answer and reply code",
            metrics.rejections.clone(),
        );
        // Every limit starts at 0, so its series exists (and rate() works) before the first refusal.
        for limit in mailbus_jetstream::Limit::ALL {
            drop(metrics.rate_limited.get_or_create(&vec![("limit".into(), limit.label().to_owned())]));
        }
        registry.register(
            "rate_limited",
            "MAIL and RCPT refused with 451 4.7.1 by a submission rate limit, by limit",
            metrics.rate_limited.clone(),
        );
        registry.register(
            "sender_auth",
            "Port 25 sender authentication results (SPF at MAIL FROM, DMARC after the body), by check and result",
            metrics.sender_auth.clone(),
        );
        registry.register_with_unit(
            "message_size",
            "Sizes of accepted messages",
            prometheus_client::registry::Unit::Bytes,
            metrics.message_size.clone(),
        );
        metrics
    }

    /// Counts a reply to `verb` when it refuses (4xx or 5xx).
    pub fn replied(&self, verb: &str, code: u16) {
        if code >= 400 {
            let labels = vec![("command".into(), verb.to_owned()), ("code".into(), code.to_string())];
            self.rejections.get_or_create(&labels).inc();
        }
    }

    pub fn rate_limited(&self, limit: mailbus_jetstream::Limit) {
        self.rate_limited.get_or_create(&vec![("limit".into(), limit.label().to_owned())]).inc();
    }

    pub fn verified(&self, check: &str, result: &str) {
        let labels = vec![("check".into(), check.to_owned()), ("result".into(), result.to_owned())];
        self.sender_auth.get_or_create(&labels).inc();
    }

    pub fn message(&self, code: u16) {
        self.messages.get_or_create(&vec![("code".into(), code.to_string())]).inc();
    }
}
