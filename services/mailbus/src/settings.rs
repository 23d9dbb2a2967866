//! Every setting the binary reads from its environment, in one table: the source of `mailbus env`, the
//! README's table, and the check that refuses unknown `MAILBUS_*` variables (a typo fails start-up
//! instead of being silently ignored).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use mailbus_jetstream::Names;

pub struct Var {
    pub name: &'static str,
    /// `None`: no default (required where used, or optional).
    pub default: Option<&'static str>,
    pub help: &'static str,
}

const fn var(name: &'static str, default: Option<&'static str>, help: &'static str) -> Var {
    Var { name, default, help }
}

pub const VARS: &[Var] = &[
    var("DATABASE_URL", None, "PostgreSQL URL; the mailbox role's only, required there"),
    var("NATS_URL", Some("nats://127.0.0.1:4222"), "NATS server (JetStream enabled)"),
    var("MAILBUS_NATS_PREFIX", Some("mailbus"), "prefix of every stream, bucket and subject name"),
    var("MAILBUS_HOSTNAME", None, "name in the SMTP/POP3 greetings and Received: (default: the system host name)"),
    var(
        "MAILBUS_MAILBOX_URL",
        Some("http://127.0.0.1:50051"),
        "gRPC address of the mailbox role, for the other roles and admin",
    ),
    var("MAILBUS_RELAY_URL", Some("http://127.0.0.1:50052"), "gRPC address of a relay role, for `mailbus admin queue`"),
    var("MAILBUS_SMTP_LISTEN", Some("0.0.0.0:25"), "SMTP (MX) listener: mail from the world for local domains"),
    var(
        "MAILBUS_SUBMISSION_LISTEN",
        Some("0.0.0.0:587"),
        "submission listener (STARTTLS, then AUTH); `off` disables it",
    ),
    var("MAILBUS_SUBMISSIONS_LISTEN", Some("0.0.0.0:465"), "submission over implicit TLS; `off` disables it"),
    var(
        "MAILBUS_TLS_CERT",
        None,
        "PEM certificate chain; without it a self-signed certificate is generated at start-up",
    ),
    var("MAILBUS_TLS_KEY", None, "PEM private key of MAILBUS_TLS_CERT"),
    var("MAILBUS_IMAP_LISTEN", Some("0.0.0.0:143"), "IMAP listener (STARTTLS)"),
    var("MAILBUS_IMAPS_LISTEN", Some("0.0.0.0:993"), "IMAP over implicit TLS; `off` disables it"),
    var(
        "MAILBUS_IMAP_PLAINTEXT_AUTH",
        Some("loopback"),
        "IMAP logins without TLS: never, loopback (as Dovecot) or always; otherwise LOGINDISABLED",
    ),
    var("MAILBUS_IMAP_MAX_AUTH_FAILURES", Some("3"), "failed IMAP logins in one session before disconnect"),
    var("MAILBUS_IMAP_MAX_CONNECTIONS", Some("1000"), "simultaneous IMAP sessions per access process"),
    var(
        "MAILBUS_IMAP_MAX_CONNECTIONS_PER_IP",
        Some("100"),
        "simultaneous IMAP sessions from one client address, logged in or not, per access process",
    ),
    var(
        "MAILBUS_IMAP_LOGIN_TIMEOUT_SECS",
        Some("60"),
        "time from connecting to a successful IMAP login, STARTTLS included; then BYE (as Stalwart's 1 min)",
    ),
    var(
        "MAILBUS_IMAP_MAX_USER_CONNECTIONS",
        Some("10"),
        "IMAP sessions one account may have from one address, per access process (as Dovecot's default)",
    ),
    var(
        "MAILBUS_IMAP_IDLE_TIMEOUT_SECS",
        Some("1800"),
        "IMAP autologout timer, IDLE included (RFC 9051 §5.4: at least 30 minutes)",
    ),
    var("MAILBUS_POP3_LISTEN", Some("0.0.0.0:110"), "POP3 listener (STLS)"),
    var("MAILBUS_POP3S_LISTEN", Some("0.0.0.0:995"), "POP3 over implicit TLS; `off` disables it"),
    var(
        "MAILBUS_POP3_PLAINTEXT_AUTH",
        Some("loopback"),
        "POP3 logins without TLS: never, loopback (as Dovecot) or always",
    ),
    var("MAILBUS_POP3_DELETE", Some("expunge"), "what DELE does at QUIT: expunge, trash (move to Trash) or keep"),
    var("MAILBUS_POP3_LOCK_TTL_SECS", Some("60"), "POP3 maildrop lock lease: how long a crashed replica can hold it"),
    var("MAILBUS_POP3_MAX_AUTH_FAILURES", Some("3"), "failed POP3 logins in one session before disconnect"),
    var("MAILBUS_POP3_IDLE_TIMEOUT_SECS", Some("600"), "POP3 autologout timer (RFC 1939 §3: at least 10 minutes)"),
    var(
        "MAILBUS_POP3_LOGIN_TIMEOUT_SECS",
        Some("60"),
        "time from connecting to a successful POP3 login, STLS included; then -ERR and close",
    ),
    var(
        "MAILBUS_QUOTA_FULL",
        Some("bounce"),
        "a delivery to a full mailbox: bounce (5.2.2, as Dovecot) or defer (4.2.2, retried until it expires)",
    ),
    var("MAILBUS_MAILBOX_GRPC_LISTEN", Some("0.0.0.0:50051"), "mailbox role: Directory and Mailbox gRPC"),
    var("MAILBUS_RELAY_GRPC_LISTEN", Some("0.0.0.0:50052"), "relay role: QueueAdmin gRPC"),
    var("MAILBUS_SMTP_GRPC_LISTEN", Some("0.0.0.0:50053"), "smtp-ingress role: gRPC health"),
    var("MAILBUS_ACCESS_GRPC_LISTEN", Some("0.0.0.0:50054"), "access role: gRPC health"),
    var("MAILBUS_SMTP_METRICS_LISTEN", Some("0.0.0.0:9101"), "smtp-ingress /metrics, /healthz, /readyz"),
    var("MAILBUS_RELAY_METRICS_LISTEN", Some("0.0.0.0:9102"), "relay /metrics, /healthz, /readyz"),
    var("MAILBUS_MAILBOX_METRICS_LISTEN", Some("0.0.0.0:9103"), "mailbox /metrics, /healthz, /readyz"),
    var("MAILBUS_ACCESS_METRICS_LISTEN", Some("0.0.0.0:9104"), "access /metrics, /healthz, /readyz"),
    var("MAILBUS_MAX_MESSAGE_SIZE", Some("52428800"), "largest message accepted, in octets (SMTP SIZE)"),
    var("MAILBUS_MAX_RECIPIENTS", Some("100"), "recipients per SMTP transaction (RFC 5321 asks for at least 100)"),
    var("MAILBUS_SMTP_MAX_CONNECTIONS", Some("1000"), "simultaneous port-25 sessions per smtp-ingress process"),
    var(
        "MAILBUS_SMTP_MAX_CONNECTIONS_PER_IP",
        Some("50"),
        "simultaneous port-25 sessions from one client address (Postfix's smtpd_client_connection_count_limit)",
    ),
    var(
        "MAILBUS_SUBMISSION_MAX_CONNECTIONS",
        Some("1000"),
        "simultaneous submission sessions (587 and 465 together) per smtp-ingress process, apart from port 25's",
    ),
    var(
        "MAILBUS_SUBMISSION_MAX_CONNECTIONS_PER_IP",
        Some("50"),
        "simultaneous submission sessions (587 and 465 together) from one client address",
    ),
    var(
        "MAILBUS_PROXY_PROTOCOL_FROM",
        None,
        "load balancers (addresses or CIDR networks, comma-separated) whose connections to the SMTP, IMAP and POP3 ports must start with a PROXY protocol v1/v2 header naming the client",
    ),
    var("MAILBUS_SMTP_MAX_ERRORS", Some("20"), "error replies in one SMTP session before 421 and disconnect"),
    var("MAILBUS_SMTP_MAX_AUTH_FAILURES", Some("3"), "failed AUTHs in one session before 421 and disconnect"),
    var(
        "MAILBUS_AUTH_FAILURE_DELAY_MS",
        Some("1000"),
        "SMTP, IMAP and POP3: delay before answering a failed login, times the failures so far from that address or for that account (at most 15 times)",
    ),
    var(
        "MAILBUS_AUTH_MAX_FAILURES_PER_IP",
        Some("20"),
        "SMTP, IMAP and POP3: failed logins from one client address, counted across replicas, before its logins are refused until the window passes",
    ),
    var(
        "MAILBUS_AUTH_FAILURE_WINDOW_SECS",
        Some("900"),
        "how long failed logins count against an address and an account (each failure starts it again)",
    ),
    var("MAILBUS_SMTP_PLAINTEXT_AUTH", Some("false"), "development only: offer AUTH without TLS"),
    var("MAILBUS_SMTP_LONG_LINES", Some("accept"), "message lines over 1000 octets: accept or reject (500 5.5.2)"),
    var(
        "MAILBUS_SMTP_BARE_LF",
        Some("normalise"),
        "bare LF or bare CR line endings in DATA and BDAT: normalise (to CRLF) or reject (554 5.5.2)",
    ),
    var(
        "MAILBUS_SMTP_COMMAND_TIMEOUT_SECS",
        Some("300"),
        "wait for the next SMTP command, the whole line (RFC 5321 §4.5.3.2.7: at least 5 min)",
    ),
    var(
        "MAILBUS_SMTP_DATA_TIMEOUT_SECS",
        Some("180"),
        "wait for each block of message data (RFC 5321 §4.5.3.2.5: at least 3 min)",
    ),
    var(
        "MAILBUS_SMTP_MIN_DATA_RATE",
        Some("500"),
        "slowest DATA or BDAT accepted, in octets per second: a body gets the data timeout plus the time its octets earn at this rate (Postfix's smtpd_min_data_rate)",
    ),
    var(
        "MAILBUS_SMTP_SPOOL_DIR",
        None,
        "where message bodies over 256 KiB wait on disk while they arrive (default: the system's temporary directory)",
    ),
    var(
        "MAILBUS_SHUTDOWN_GRACE_SECS",
        Some("30"),
        "on shutdown, how long sessions in the middle of a message get to finish",
    ),
    var("MAILBUS_POP3_MAX_CONNECTIONS", Some("1000"), "simultaneous POP3 sessions per access process"),
    var(
        "MAILBUS_POP3_MAX_CONNECTIONS_PER_IP",
        Some("50"),
        "simultaneous POP3 sessions from one client address, logged in or not, per access process",
    ),
    var(
        "MAILBUS_RELAY_ACK_WAIT_SECS",
        Some("300"),
        "how long a relay may hold a message before another replica gets it",
    ),
    var("MAILBUS_RELAY_CONCURRENCY", Some("16"), "messages one relay process works on at once"),
    var("MAILBUS_RELAY_DESTINATION_CONCURRENCY", Some("20"), "simultaneous deliveries to one remote domain"),
    var(
        "MAILBUS_RELAY_TRANSPORTS",
        None,
        "static routes before DNS: `domain=host:port,*=smarthost:25` (Postfix's transport_maps)",
    ),
    var("MAILBUS_RELAY_RETRY_SCHEDULE", Some("1m,5m,15m,30m,1h,2h,4h"), "waits between attempts; the last one repeats"),
    var(
        "MAILBUS_RELAY_MAX_LIFETIME_SECS",
        Some("432000"),
        "queue lifetime (5 days): then a temporary failure becomes permanent",
    ),
    var(
        "MAILBUS_RELAY_DELAY_WARNING_SECS",
        Some("off"),
        "send a \"delayed\" DSN (to NOTIFY=DELAY recipients) after this long",
    ),
    var(
        "MAILBUS_RELAY_SMTP_TIMEOUT_SECS",
        Some("300"),
        "wait for each reply of a remote SMTP server (RFC 5321 §4.5.3.2)",
    ),
    var("MAILBUS_NATS_TIMEOUT_MS", Some("5000"), "JetStream request timeout; past it SMTP answers 451"),
    var("MAILBUS_DB_MAX_CONNECTIONS", Some("20"), "PostgreSQL pool size per mailbox process"),
    var("MAILBUS_LOG_FORMAT", Some("text"), "text or json"),
    var("RUST_LOG", Some("info"), "log filter (tracing-subscriber EnvFilter syntax)"),
    var("OTEL_EXPORTER_OTLP_ENDPOINT", None, "OTLP/gRPC endpoint; traces are exported when set"),
    var("OTEL_SERVICE_NAME", None, "service name on exported spans (default: mailbus-smtp-ingress, mailbus-relay, …)"),
];

/// [`VARS`] as a Markdown table, for the README.
pub fn markdown_table() -> String {
    let mut table = String::from("| variable | default | what it sets |\n|---|---|---|\n");
    for var in VARS {
        let default = var.default.map(|d| format!("`{d}`")).unwrap_or_default();
        table.push_str(&format!("| `{}` | {default} | {} |\n", var.name, var.help));
    }
    table
}

/// A snapshot of the environment, validated against [`VARS`].
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<String, String>,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_pairs(std::env::vars())
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let values: BTreeMap<String, String> = pairs.into_iter().collect();
        let unknown: Vec<&String> = values
            .keys()
            .filter(|k| {
                k.starts_with("MAILBUS_") && !VARS.iter().any(|v| v.name == *k) && !DEV_VARS.contains(&k.as_str())
            })
            .collect();
        if let Some(name) = unknown.first() {
            bail!("unknown setting {name} (`mailbus env` lists the settings)");
        }
        Ok(Settings { values })
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.values.insert(name.to_owned(), value.to_owned());
    }

    /// Sets `name` unless the environment already did.
    pub fn default_to(&mut self, name: &str, value: &str) {
        self.values.entry(name.to_owned()).or_insert_with(|| value.to_owned());
    }

    fn raw(&self, name: &str) -> Option<&str> {
        let known = VARS.iter().find(|v| v.name == name).map(|v| v.default);
        debug_assert!(known.is_some(), "{name} is missing from VARS");
        self.values.get(name).map(String::as_str).filter(|v| !v.is_empty()).or(known.flatten())
    }

    pub fn string(&self, name: &str) -> anyhow::Result<String> {
        self.raw(name).map(str::to_owned).with_context(|| format!("{name} must be set"))
    }

    pub fn optional(&self, name: &str) -> Option<String> {
        self.raw(name).map(str::to_owned)
    }

    pub fn parse<T: FromStr>(&self, name: &str) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let raw = self.string(name)?;
        raw.parse().map_err(|e| anyhow::anyhow!("{name}={raw:?} is not valid: {e}"))
    }

    /// Parses a number and checks it lies in `range`: a zero timeout or a cap of 0 would make a role
    /// useless (or panic), so it fails start-up instead, naming the setting.
    pub fn bounded<T>(&self, name: &str, range: std::ops::RangeInclusive<T>) -> anyhow::Result<T>
    where
        T: FromStr + PartialOrd + std::fmt::Display,
        T::Err: std::fmt::Display,
    {
        let value: T = self.parse(name)?;
        if !range.contains(&value) {
            bail!("{name}={value} is out of range: it must be from {} to {}", range.start(), range.end());
        }
        Ok(value)
    }

    pub fn addr(&self, name: &str) -> anyhow::Result<SocketAddr> {
        self.parse(name)
    }

    /// An address, or `off` for a listener that should not run.
    pub fn optional_addr(&self, name: &str) -> anyhow::Result<Option<SocketAddr>> {
        if self.string(name)? == "off" { Ok(None) } else { self.addr(name).map(Some) }
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`).
    pub fn flag(&self, name: &str) -> anyhow::Result<bool> {
        match self.string(name)?.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            other => bail!("{name}={other:?} must be true or false"),
        }
    }

    /// A duration in milliseconds, from 1 ms to one hour.
    pub fn millis(&self, name: &str) -> anyhow::Result<Duration> {
        Ok(Duration::from_millis(self.bounded(name, 1..=3_600_000)?))
    }

    /// A list of waits like `30s,5m,1h,2d`.
    pub fn schedule(&self, name: &str) -> anyhow::Result<Vec<Duration>> {
        let raw = self.string(name)?;
        let waits: Result<Vec<Duration>, _> = raw.split(',').map(|w| parse_wait(w.trim())).collect();
        match waits {
            Ok(waits) if !waits.is_empty() => Ok(waits),
            _ => bail!("{name}={raw:?} must be waits like 30s,5m,1h,2d"),
        }
    }

    /// A duration in seconds, from 1 s to one day.
    pub fn secs(&self, name: &str) -> anyhow::Result<Duration> {
        Ok(Duration::from_secs(self.bounded(name, 1..=86_400)?))
    }

    pub fn names(&self) -> anyhow::Result<Names> {
        Ok(Names::new(&self.string("MAILBUS_NATS_PREFIX")?)?)
    }

    pub fn hostname(&self) -> String {
        self.optional("MAILBUS_HOSTNAME").unwrap_or_else(system_hostname)
    }
}

fn parse_wait(wait: &str) -> Result<Duration, ()> {
    let split = wait.find(|c: char| !c.is_ascii_digit()).ok_or(())?;
    let (number, unit) = wait.split_at(split);
    let number: u64 = number.parse().map_err(|_| ())?;
    let seconds = match unit {
        "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        "d" => number * 86_400,
        _ => return Err(()),
    };
    if seconds == 0 { Err(()) } else { Ok(Duration::from_secs(seconds)) }
}

/// Read by `mailbus dev` and the test harness only: where to find PostgreSQL and nats-server binaries.
pub const DEV_VARS: &[&str] = &["MAILBUS_PG_BIN", "MAILBUS_NATS_SERVER"];

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
        Settings::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_apply_and_values_override_them() {
        let s = settings(&[("MAILBUS_SMTP_LISTEN", "127.0.0.1:2525")]).unwrap();
        assert_eq!(s.addr("MAILBUS_SMTP_LISTEN").unwrap().port(), 2525);
        assert_eq!(s.addr("MAILBUS_POP3_LISTEN").unwrap().port(), 110);
        assert!(s.optional("DATABASE_URL").is_none());
    }

    #[test]
    fn unknown_mailbus_variables_fail_and_name_themselves() {
        let error = settings(&[("MAILBUS_SMTP_LISTENER", "x")]).unwrap_err().to_string();
        assert!(error.contains("MAILBUS_SMTP_LISTENER"), "{error}");
        assert!(settings(&[("HOME", "/root"), ("MAILBUS_PG_BIN", "/usr/bin")]).is_ok());
    }

    #[test]
    fn bad_values_name_the_setting() {
        let s = settings(&[("MAILBUS_MAX_RECIPIENTS", "many")]).unwrap();
        let error = s.parse::<usize>("MAILBUS_MAX_RECIPIENTS").unwrap_err().to_string();
        assert!(error.contains("MAILBUS_MAX_RECIPIENTS"), "{error}");
        let s = settings(&[("MAILBUS_NATS_PREFIX", "a.b")]).unwrap();
        assert!(s.names().is_err());
    }

    #[test]
    fn numbers_out_of_range_fail_and_name_the_setting() {
        let s = settings(&[("MAILBUS_RELAY_ACK_WAIT_SECS", "0"), ("MAILBUS_MAX_RECIPIENTS", "5")]).unwrap();
        let error = s.secs("MAILBUS_RELAY_ACK_WAIT_SECS").unwrap_err().to_string();
        assert!(error.contains("MAILBUS_RELAY_ACK_WAIT_SECS=0 is out of range"), "{error}");
        assert_eq!(s.bounded::<usize>("MAILBUS_MAX_RECIPIENTS", 1..=10).unwrap(), 5);
        assert!(s.bounded::<usize>("MAILBUS_MAX_RECIPIENTS", 10..=20).is_err());
    }

    #[test]
    fn the_readme_table_is_the_settings_table() {
        let readme = include_str!("../../../README.md");
        assert!(readme.contains(&markdown_table()), "README.md is stale: paste `mailbus env --markdown` into it");
    }

    #[test]
    fn retry_schedules_parse() {
        let s = settings(&[("MAILBUS_RELAY_RETRY_SCHEDULE", "30s, 5m,1h,2d")]).unwrap();
        let secs: Vec<u64> = s.schedule("MAILBUS_RELAY_RETRY_SCHEDULE").unwrap().iter().map(|d| d.as_secs()).collect();
        assert_eq!(secs, [30, 300, 3600, 172_800]);
        for bad in ["", "5", "5x", "0s", "m"] {
            let s = settings(&[("MAILBUS_RELAY_RETRY_SCHEDULE", bad)]).unwrap();
            if !bad.is_empty() {
                assert!(s.schedule("MAILBUS_RELAY_RETRY_SCHEDULE").is_err(), "{bad}");
            }
        }
    }

    #[test]
    fn every_default_parses() {
        let s = settings(&[]).unwrap();
        for v in VARS.iter().filter(|v| v.name.ends_with("_LISTEN")) {
            s.addr(v.name).unwrap();
        }
    }
}
