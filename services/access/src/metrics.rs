//! What the access role counts per protocol: sessions open now, how long each command took, failed
//! logins and logins refused for the failures before them.

use std::time::Instant;

use mailbus_telemetry::metrics::latency_histogram;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

type Labels = Vec<(&'static str, String)>;

#[derive(Clone)]
pub struct SessionMetrics {
    active: Gauge,
    command_seconds: Family<Labels, Histogram>,
    auth_failures: Counter,
    auth_throttled: Counter,
}

impl Default for SessionMetrics {
    fn default() -> Self {
        SessionMetrics {
            active: Gauge::default(),
            command_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            auth_failures: Counter::default(),
            auth_throttled: Counter::default(),
        }
    }
}

impl SessionMetrics {
    /// Registers `<protocol>_active_sessions`, `<protocol>_command_duration_seconds`,
    /// `<protocol>_auth_failures_total` and `<protocol>_auth_throttled_total`.
    pub fn register(&self, registry: &mut Registry, protocol: &str) {
        let upper = protocol.to_ascii_uppercase();
        registry.register(
            format!("{protocol}_active_sessions"),
            format!("{upper} sessions open now"),
            self.active.clone(),
        );
        registry.register_with_unit(
            format!("{protocol}_command_duration"),
            format!("{upper} commands, from the command read to its reply ready to send, by command"),
            Unit::Seconds,
            self.command_seconds.clone(),
        );
        registry.register(
            format!("{protocol}_auth_failures"),
            format!("{upper} logins that failed (wrong user name or password)"),
            self.auth_failures.clone(),
        );
        registry.register(
            format!("{protocol}_auth_throttled"),
            format!("{upper} logins refused unchecked: too many failures from the client's address"),
            self.auth_throttled.clone(),
        );
    }

    pub fn auth_failed(&self) {
        self.auth_failures.inc();
    }

    pub fn throttled(&self) {
        self.auth_throttled.inc();
    }

    /// Counts a session as open until the guard is dropped.
    pub fn open(&self) -> ActiveSession {
        self.active.inc();
        ActiveSession(self.active.clone())
    }

    /// Records a command that started at `started` and is done now.
    pub fn observe(&self, command: &str, started: Instant) {
        self.observe_elapsed(command, started.elapsed());
    }

    /// Records a command that took `elapsed`.
    pub fn observe_elapsed(&self, command: &str, elapsed: std::time::Duration) {
        let labels = vec![("command", command.to_ascii_lowercase())];
        self.command_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }
}

/// One open session, counted in the active-sessions gauge while it lives.
pub struct ActiveSession(Gauge);

impl Drop for ActiveSession {
    fn drop(&mut self) {
        self.0.dec();
    }
}
