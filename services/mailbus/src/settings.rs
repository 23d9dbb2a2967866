//! Every setting the binary reads from its environment, in one table: each one a typed constant
//! ([`Setting`]) that the roles read with [`Settings::get`], and together [`VARS`], the source of
//! `mailbus env`, the README's table, and the check that refuses unknown `MAILBUS_*` variables (a typo
//! fails start-up instead of being silently ignored; a misspelt constant fails the build).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use mailbus_acceptor::proxy::TrustedProxies;
use mailbus_access::DeletePolicy;
use mailbus_address::RecipientDelimiter;
use mailbus_dns::DnsServers;
use mailbus_grpc::Upstream;
use mailbus_http::CorsOrigins;
use mailbus_jetstream::{MAX_ACK_WAIT, Names};
use mailbus_mailbox::QuotaFull;
use mailbus_relay::TransportMap;
use mailbus_sasl::PlaintextAuth;
use mailbus_smtp::session::{BareLf, Enforcement, LongLines};
use mailbus_telemetry::LogFormat;

/// 1 GiB: far above any real mail (and within what a u64/usize size and PostgreSQL's bytea can hold).
const MAX_MESSAGE_SIZE: u64 = 1 << 30;
/// Far above what one process can serve, and far below what a semaphore can count.
const MAX_CONNECTIONS: u64 = 1_000_000;
const DAY: u64 = 86_400;

/// Declares each setting as a constant named after its variable, `NAME: Type = constructor(args)` for
/// `pub const NAME: Setting<Type> = Setting::constructor("NAME", args)`, and [`VARS`], every one of
/// them in the order given, so that the table and the constants cannot drift apart.
macro_rules! settings {
    ($($name:ident: $type:ty = $constructor:ident($($arg:expr),* $(,)?);)*) => {
        $(pub const $name: Setting<$type> = Setting::$constructor(stringify!($name), $($arg),*);)*

        /// Every setting, in the order of `mailbus env` and the README's table.
        pub const VARS: &[Var] = &[$(Var {
            name: $name.name,
            default: $name.default,
            help: $name.help,
            read: |settings| settings.get($name).map(|_| ()),
        }),*];
    };
}

settings! {
    DATABASE_URL: String = required("PostgreSQL URL; the mailbox role's only, required there");
    NATS_URL: String = new(
        "nats://127.0.0.1:4222",
        "NATS server (JetStream enabled); a cluster's servers separated by commas",
    );
    MAILBUS_NATS_PREFIX: Names = names("mailbus", "prefix of every stream, bucket and subject name");
    MAILBUS_QUEUE_PARTITIONS: u32 = bounded(
        "4",
        1..=64,
        "queue streams new mail is spread over (by message id); relays drain every one that exists",
    );
    MAILBUS_NATS_REPLICAS: usize = bounded(
        "1",
        1..=5,
        "copies of every stream and bucket (3 on a NATS cluster); applied to existing ones at start-up",
    );
    MAILBUS_HOSTNAME: String = or_else(
        system_hostname,
        "name in the SMTP/POP3 greetings and Received:, and the host an absolute IMAP URL in a CATENATE must name (default: the system host name)",
    );
    MAILBUS_MAILBOX_URL: Upstream = new(
        "http://127.0.0.1:50051",
        "gRPC address of the mailbox role, for the other roles and admin: a name that resolves to every \
         replica (a headless Service), or several URLs, comma-separated; calls are balanced over them",
    );
    MAILBUS_RELAY_URL: Upstream = new(
        "http://127.0.0.1:50052",
        "gRPC address of the relay role, for `mailbus admin queue` (as MAILBUS_MAILBOX_URL)",
    );
    MAILBUS_GRPC_RESOLVE_SECS: Duration = secs(
        "5",
        1..=3600,
        "how often gRPC clients resolve the names in MAILBUS_*_URL again, to follow replicas as they come and go",
    );
    MAILBUS_SMTP_LISTEN: SocketAddr = new("0.0.0.0:25", "SMTP (MX) listener: mail from the world for local domains");
    MAILBUS_SUBMISSION_LISTEN: Option<SocketAddr> = optional_addr(
        "0.0.0.0:587",
        "submission listener (STARTTLS, then AUTH); `off` disables it",
    );
    MAILBUS_SUBMISSIONS_LISTEN: Option<SocketAddr> = optional_addr(
        "0.0.0.0:465",
        "submission over implicit TLS; `off` disables it",
    );
    MAILBUS_TLS_CERT: Option<PathBuf> = optional(
        "PEM certificate chain; without it a self-signed certificate is generated at start-up",
    );
    MAILBUS_TLS_KEY: Option<PathBuf> = optional("PEM private key of MAILBUS_TLS_CERT");
    MAILBUS_TLS_HANDSHAKE_TIMEOUT_SECS: Duration = secs(
        "30",
        1..=300,
        "every TLS handshake (implicit on 465/993/995, or after STARTTLS/STLS) on SMTP, IMAP, POP3 and ManageSieve",
    );
    MAILBUS_IMAP_LISTEN: SocketAddr = new("0.0.0.0:143", "IMAP listener (STARTTLS)");
    MAILBUS_IMAPS_LISTEN: Option<SocketAddr> = optional_addr(
        "0.0.0.0:993",
        "IMAP over implicit TLS; `off` disables it",
    );
    MAILBUS_IMAP_PLAINTEXT_AUTH: PlaintextAuth = new(
        "loopback",
        "IMAP logins without TLS: never, loopback (as Dovecot) or always; otherwise LOGINDISABLED",
    );
    MAILBUS_IMAP_MAX_AUTH_FAILURES: usize = bounded(
        "3",
        1..=1000,
        "failed IMAP logins in one session before disconnect",
    );
    MAILBUS_IMAP_MAX_CONNECTIONS: usize = bounded(
        "1000",
        1..=MAX_CONNECTIONS,
        "simultaneous IMAP sessions per access process",
    );
    MAILBUS_IMAP_MAX_CONNECTIONS_PER_IP: usize = bounded(
        "100",
        1..=MAX_CONNECTIONS,
        "simultaneous IMAP sessions from one client address, logged in or not, per access process",
    );
    MAILBUS_IMAP_LOGIN_TIMEOUT_SECS: Duration = secs(
        "60",
        1..=3600,
        "time from connecting to a successful IMAP login, STARTTLS included; then BYE (as Stalwart's 1 min)",
    );
    MAILBUS_IMAP_MAX_USER_CONNECTIONS: usize = bounded(
        "10",
        1..=MAX_CONNECTIONS,
        "IMAP sessions one account may have from one address, per access process (as Dovecot's default)",
    );
    MAILBUS_IMAP_IDLE_TIMEOUT_SECS: Duration = secs(
        "1800",
        1800..=DAY,
        "IMAP autologout timer, IDLE included (RFC 9051 §5.4: at least 30 minutes)",
    );
    MAILBUS_POP3_LISTEN: SocketAddr = new("0.0.0.0:110", "POP3 listener (STLS)");
    MAILBUS_POP3S_LISTEN: Option<SocketAddr> = optional_addr(
        "0.0.0.0:995",
        "POP3 over implicit TLS; `off` disables it",
    );
    MAILBUS_POP3_PLAINTEXT_AUTH: PlaintextAuth = new(
        "loopback",
        "POP3 logins without TLS: never, loopback (as Dovecot) or always",
    );
    MAILBUS_POP3_DELETE: DeletePolicy = new(
        "expunge",
        "what DELE does at QUIT: expunge, trash (move to Trash) or keep",
    );
    MAILBUS_POP3_LOCK_TTL_SECS: Duration = secs(
        "60",
        1..=DAY,
        "POP3 maildrop lock lease: how long a crashed replica can hold it",
    );
    MAILBUS_POP3_MAX_AUTH_FAILURES: usize = bounded(
        "3",
        1..=1000,
        "failed POP3 logins in one session before disconnect",
    );
    MAILBUS_POP3_IDLE_TIMEOUT_SECS: Duration = secs(
        "600",
        600..=DAY,
        "POP3 autologout timer (RFC 1939 §3: at least 10 minutes)",
    );
    MAILBUS_POP3_LOGIN_TIMEOUT_SECS: Duration = secs(
        "60",
        1..=3600,
        "time from connecting to a successful POP3 login, STLS included; then -ERR and close",
    );
    MAILBUS_MANAGESIEVE_LISTEN: SocketAddr = new("0.0.0.0:4190", "ManageSieve listener (RFC 5804, STARTTLS)");
    MAILBUS_MANAGESIEVE_PLAINTEXT_AUTH: PlaintextAuth = new(
        "loopback",
        "ManageSieve logins without TLS: never, loopback (as Dovecot) or always",
    );
    MAILBUS_MANAGESIEVE_MAX_AUTH_FAILURES: usize = bounded(
        "3",
        1..=1000,
        "failed ManageSieve logins in one session before BYE",
    );
    MAILBUS_MANAGESIEVE_MAX_CONNECTIONS: usize = bounded(
        "200",
        1..=MAX_CONNECTIONS,
        "simultaneous ManageSieve sessions per access process",
    );
    MAILBUS_MANAGESIEVE_MAX_CONNECTIONS_PER_IP: usize = bounded(
        "20",
        1..=MAX_CONNECTIONS,
        "simultaneous ManageSieve sessions from one client address, logged in or not, per access process",
    );
    MAILBUS_MANAGESIEVE_LOGIN_TIMEOUT_SECS: Duration = secs(
        "60",
        1..=3600,
        "time from connecting to a successful ManageSieve login, STARTTLS included; then BYE",
    );
    MAILBUS_MANAGESIEVE_IDLE_TIMEOUT_SECS: Duration = secs(
        "600",
        60..=DAY,
        "ManageSieve autologout timer",
    );
    MAILBUS_HTTP_LISTEN: SocketAddr = new("0.0.0.0:8080", "HTTP listener of the http role (JMAP, push, blobs)");
    MAILBUS_HTTPS_LISTEN: Option<SocketAddr> = optional_addr(
        "0.0.0.0:8443",
        "HTTPS listener of the http role (the roles' certificate); `off` disables it",
    );
    MAILBUS_HTTP_CORS_ORIGINS: CorsOrigins = or_else(
        CorsOrigins::default,
        "origins (comma-separated, `https://webmail.example.org`) whose browser pages may call JMAP; empty: none",
    );
    MAILBUS_HTTP_PUBLIC_URL: Option<String> = optional(
        "base URL of the session object's URLs (`https://mail.example.org`); default: from each request's Host",
    );
    MAILBUS_HTTP_TOKEN_TTL_SECS: Duration = secs("86400", 60..=365 * DAY, "lifetime of a bearer token from POST /jmap/token");
    MAILBUS_WEBMAIL_SESSION_TTL_SECS: Duration = secs(
        "28800",
        300..=30 * DAY,
        "lifetime of a webmail login (its session cookie and the server-side session)",
    );
    MAILBUS_JMAP_MAX_UPLOAD_SIZE: Option<u64> = optional_bounded(
        1024..=MAX_MESSAGE_SIZE,
        "largest JMAP upload in octets (default: MAILBUS_MAX_MESSAGE_SIZE)",
    );
    MAILBUS_JMAP_MAX_REQUEST_SIZE: usize = bounded(
        "10000000",
        1024..=MAX_MESSAGE_SIZE,
        "largest JMAP API request in octets (maxSizeRequest)",
    );
    MAILBUS_QUOTA_FULL: QuotaFull = new(
        "bounce",
        "a delivery to a full mailbox: bounce (5.2.2, as Dovecot) or defer (4.2.2, retried until it expires)",
    );
    MAILBUS_RECIPIENT_DELIMITER: RecipientDelimiter = keeps_empty(
        "+",
        "plus-addressing: characters each of which separates a local part from its detail (alice+lists@ reaches alice@), as Postfix's recipient_delimiter; set but empty turns it off",
    );
    MAILBUS_SIEVE_MAX_SCRIPTS: usize = bounded(
        "10",
        1..=1000,
        "Sieve scripts one account may keep (ManageSieve's QUOTA/MAXSCRIPTS)",
    );
    MAILBUS_SIEVE_MAX_SCRIPT_SIZE: usize = bounded(
        "65536",
        1024..=(1 << 24),
        "largest Sieve script in octets (ManageSieve's QUOTA/MAXSIZE)",
    );
    MAILBUS_SIEVE_MAX_ACTIONS: usize = bounded(
        "32",
        1..=1000,
        "actions one Sieve run may take; past it the message is kept in INBOX",
    );
    MAILBUS_SIEVE_MAX_REDIRECTS: usize = bounded(
        "4",
        0..=100,
        "redirects one Sieve run may make (each is a message to another address); past it the message is kept in INBOX",
    );
    MAILBUS_MAILBOX_GRPC_LISTEN: SocketAddr = new("0.0.0.0:50051", "mailbox role: Directory and Mailbox gRPC");
    MAILBUS_RELAY_GRPC_LISTEN: SocketAddr = new("0.0.0.0:50052", "relay role: QueueAdmin gRPC");
    MAILBUS_SMTP_GRPC_LISTEN: SocketAddr = new("0.0.0.0:50053", "smtp-ingress role: gRPC health");
    MAILBUS_ACCESS_GRPC_LISTEN: SocketAddr = new("0.0.0.0:50054", "access role: gRPC health");
    MAILBUS_SMTP_METRICS_LISTEN: SocketAddr = new("0.0.0.0:9101", "smtp-ingress /metrics, /healthz, /readyz");
    MAILBUS_RELAY_METRICS_LISTEN: SocketAddr = new("0.0.0.0:9102", "relay /metrics, /healthz, /readyz");
    MAILBUS_MAILBOX_METRICS_LISTEN: SocketAddr = new("0.0.0.0:9103", "mailbox /metrics, /healthz, /readyz");
    MAILBUS_ACCESS_METRICS_LISTEN: SocketAddr = new("0.0.0.0:9104", "access /metrics, /healthz, /readyz");
    MAILBUS_HTTP_METRICS_LISTEN: SocketAddr = new("0.0.0.0:9105", "http /metrics, /healthz, /readyz");
    MAILBUS_MAX_MESSAGE_SIZE: u64 = bounded(
        "52428800",
        1024..=MAX_MESSAGE_SIZE,
        "largest message accepted, in octets (SMTP SIZE)",
    );
    MAILBUS_MAX_RECIPIENTS: usize = bounded(
        "100",
        1..=100_000,
        "recipients per SMTP transaction (RFC 5321 asks for at least 100)",
    );
    MAILBUS_SMTP_MAX_CONNECTIONS: usize = bounded(
        "1000",
        1..=MAX_CONNECTIONS,
        "simultaneous port-25 sessions per smtp-ingress process",
    );
    MAILBUS_SMTP_MAX_CONNECTIONS_PER_IP: usize = bounded(
        "50",
        1..=MAX_CONNECTIONS,
        "simultaneous port-25 sessions from one client address (Postfix's smtpd_client_connection_count_limit)",
    );
    MAILBUS_SUBMISSION_MAX_CONNECTIONS: usize = bounded(
        "1000",
        1..=MAX_CONNECTIONS,
        "simultaneous submission sessions (587 and 465 together) per smtp-ingress process, apart from port 25's",
    );
    MAILBUS_SUBMISSION_MAX_CONNECTIONS_PER_IP: usize = bounded(
        "50",
        1..=MAX_CONNECTIONS,
        "simultaneous submission sessions (587 and 465 together) from one client address",
    );
    MAILBUS_SUBMISSION_RATE_WINDOW_SECS: Duration = secs(
        "3600",
        1..=DAY,
        "the fixed window of the submission rate limits per account and per address (the daily one is a UTC day)",
    );
    MAILBUS_SUBMISSION_MAX_MESSAGES_PER_ACCOUNT: u32 = bounded(
        "500",
        0..=100_000_000,
        "messages one account may submit per window (SMTP and JMAP, across replicas; then 451 4.7.1 at MAIL FROM); 0: no limit",
    );
    MAILBUS_SUBMISSION_MAX_RECIPIENTS_PER_ACCOUNT: u32 = bounded(
        "2000",
        0..=100_000_000,
        "recipients one account may submit to per window (then 451 4.7.1 at RCPT TO); 0: no limit",
    );
    MAILBUS_SUBMISSION_MAX_MESSAGES_PER_IP: u32 = bounded(
        "1000",
        0..=100_000_000,
        "messages submitted from one client address per window, whatever the account (IPv6 per /64); 0: no limit",
    );
    MAILBUS_SUBMISSION_MAX_RECIPIENTS_PER_DAY: u32 = bounded(
        "5000",
        0..=100_000_000,
        "recipients one account may submit to per UTC day; 0: no limit",
    );
    MAILBUS_PROXY_PROTOCOL_FROM: TrustedProxies = or_else(
        TrustedProxies::default,
        "load balancers (addresses or CIDR networks, comma-separated) whose connections to the SMTP, IMAP and POP3 ports must start with a PROXY protocol v1/v2 header naming the client",
    );
    MAILBUS_SMTP_MAX_ERRORS: usize = bounded(
        "20",
        1..=10_000,
        "error replies in one SMTP session before 421 and disconnect",
    );
    MAILBUS_SMTP_MAX_AUTH_FAILURES: usize = bounded(
        "3",
        1..=1000,
        "failed AUTHs in one session before 421 and disconnect",
    );
    MAILBUS_AUTH_FAILURE_DELAY_MS: Duration = millis(
        "1000",
        0..=60_000,
        "SMTP, IMAP and POP3: delay before answering a failed login, times the failures so far from that address or for that account (at most 15 times)",
    );
    MAILBUS_AUTH_MAX_FAILURES_PER_IP: u32 = bounded(
        "20",
        1..=1_000_000,
        "SMTP, IMAP and POP3: failed logins from one client address, counted across replicas, before its logins are refused until the window passes",
    );
    MAILBUS_AUTH_FAILURE_WINDOW_SECS: Duration = secs(
        "900",
        1..=7 * DAY,
        "how long failed logins count against an address and an account (each failure starts it again)",
    );
    MAILBUS_SMTP_PLAINTEXT_AUTH: PlaintextAuth = new(
        "never",
        "SMTP AUTH without TLS on submission: never, loopback or always (development); true and false are read as always and never",
    );
    MAILBUS_SMTP_LONG_LINES: LongLines = new("accept", "message lines over 1000 octets: accept or reject (500 5.5.2)");
    MAILBUS_SMTP_BARE_LF: BareLf = new(
        "normalise",
        "bare LF or bare CR line endings in DATA and BDAT: normalise (to CRLF) or reject (554 5.5.2)",
    );
    MAILBUS_SMTP_COMMAND_TIMEOUT_SECS: Duration = secs(
        "300",
        1..=DAY,
        "wait for the next SMTP command, the whole line (RFC 5321 §4.5.3.2.7: at least 5 min)",
    );
    MAILBUS_SMTP_DATA_TIMEOUT_SECS: Duration = secs(
        "180",
        1..=DAY,
        "wait for each block of message data (RFC 5321 §4.5.3.2.5: at least 3 min)",
    );
    MAILBUS_SMTP_MIN_DATA_RATE: u32 = bounded(
        "500",
        1..=1_000_000_000,
        "slowest DATA or BDAT accepted, in octets per second: a body gets the data timeout plus the time its octets earn at this rate (Postfix's smtpd_min_data_rate)",
    );
    MAILBUS_SMTP_SPOOL_DIR: PathBuf = or_else(
        std::env::temp_dir,
        "where message bodies over 256 KiB wait on disk while they arrive (default: the system's temporary directory)",
    );
    MAILBUS_SHUTDOWN_GRACE_SECS: Duration = secs(
        "30",
        1..=DAY,
        "on shutdown, how long sessions in the middle of a message get to finish",
    );
    MAILBUS_POP3_MAX_CONNECTIONS: usize = bounded(
        "1000",
        1..=MAX_CONNECTIONS,
        "simultaneous POP3 sessions per access process",
    );
    MAILBUS_POP3_MAX_CONNECTIONS_PER_IP: usize = bounded(
        "50",
        1..=MAX_CONNECTIONS,
        "simultaneous POP3 sessions from one client address, logged in or not, per access process",
    );
    // At most MAX_ACK_WAIT, so that the queue's duplicate window covers a repeated attempt.
    MAILBUS_RELAY_ACK_WAIT_SECS: Duration = secs(
        "300",
        1..=MAX_ACK_WAIT.as_secs(),
        "how long a relay may hold a message before another replica gets it",
    );
    MAILBUS_RELAY_CONCURRENCY: usize = bounded("16", 1..=1024, "messages one relay process works on at once");
    MAILBUS_RELAY_DESTINATION_CONCURRENCY: usize = bounded(
        "20",
        1..=1000,
        "simultaneous deliveries to one remote domain",
    );
    MAILBUS_RECIPIENT_CACHE_SECS: Duration = secs(
        "60",
        0..=3600,
        "how long smtp-ingress and the relay keep the mailbox role's answer about a recipient address; a change to accounts, aliases or domains through the mailbox role clears them within milliseconds (0: ask every time)",
    );
    MAILBUS_DKIM_KEY_CACHE_SECS: Duration = secs(
        "60",
        0..=3600,
        "how long a relay uses a domain's DKIM keys before asking the mailbox role again (a rotation takes this long to be seen)",
    );
    MAILBUS_DNS_RESOLVER: DnsServers = new(
        "system",
        "DNS resolvers the relay's MX lookups and port 25's SPF, DKIM, DMARC and ARC checks ask: `system` (/etc/resolv.conf) or `address:port,…`",
    );
    MAILBUS_DNS_TIMEOUT_MS: Duration = millis("5000", 100..=60_000, "wait for one DNS answer (then one more try)");
    MAILBUS_SRS_SECRET: Option<String> = optional(
        "the secret of SRS (the Sender Rewriting Scheme): mail forwarded through an alias to another domain leaves with an SRS0 envelope sender of the alias's domain, and bounces to it are checked and passed back; unset, forwarded mail keeps its sender (SPF at the next hop then fails). Every relay and smtp-ingress needs the same",
    );
    MAILBUS_SRS_MAX_AGE_DAYS: u32 = bounded("21", 1..=1000, "how many days a bounce to an SRS address is accepted after the message was forwarded");
    MAILBUS_AUTHSERV_ID: Option<String> = optional(
        "our name in Authentication-Results (RFC 8601); incoming ones claiming it are removed (default: MAILBUS_HOSTNAME)",
    );
    MAILBUS_SPF_POLICY: Enforcement = new(
        "tag",
        "port 25 SPF at MAIL FROM (HELO too): off, tag (Authentication-Results only) or enforce (-all fail: 550 5.7.23; temperror: 451 4.7.24)",
    );
    MAILBUS_DKIM_POLICY: Enforcement = new(
        "tag",
        "port 25 DKIM verification: off or tag (a failed signature alone refuses nothing; DMARC decides)",
    );
    MAILBUS_ARC_POLICY: Enforcement = new("tag", "port 25 ARC chain verification (RFC 8617): off or tag");
    MAILBUS_DMARC_POLICY: Enforcement = new(
        "tag",
        "port 25 DMARC: off, tag or enforce (p=reject failure: 550 5.7.1; temperror: 451 4.7.1; p=quarantine is tagged only); needs SPF and DKIM on",
    );
    MAILBUS_AUTH_VERIFY_MAX_SIZE: u64 = bounded(
        "10485760",
        0..=MAX_MESSAGE_SIZE,
        "largest message checked for DKIM, ARC and DMARC, in octets (each is read whole into memory; larger ones get SPF only)",
    );
    MAILBUS_AUTH_VERIFY_TIMEOUT_SECS: Duration = secs(
        "20",
        1..=600,
        "how long SPF at MAIL FROM, and then DKIM, ARC and DMARC after the body, may take in all; then temperror",
    );
    MAILBUS_RELAY_TRANSPORTS: TransportMap = or_else(
        TransportMap::default,
        "static routes before DNS: `domain=host:port,*=smarthost:25` (Postfix's transport_maps)",
    );
    MAILBUS_RELAY_RETRY_SCHEDULE: Vec<Duration> = schedule(
        "1m,5m,15m,30m,1h,2h,4h",
        "waits between attempts; the last one repeats",
    );
    MAILBUS_RELAY_MAX_LIFETIME_SECS: Duration = secs(
        "432000",
        1..=365 * DAY,
        "queue lifetime (5 days): then a temporary failure becomes permanent",
    );
    MAILBUS_RELAY_DELAY_WARNING_SECS: Option<Duration> = optional_secs(
        "off",
        1..=DAY,
        "send a \"delayed\" DSN (to NOTIFY=DELAY recipients) after this long",
    );
    MAILBUS_RELAY_SMTP_TIMEOUT_SECS: Duration = secs(
        "300",
        1..=DAY,
        "wait for each reply of a remote SMTP server (RFC 5321 §4.5.3.2)",
    );
    MAILBUS_NATS_TIMEOUT_MS: Duration = millis(
        "5000",
        1..=3_600_000,
        "JetStream request timeout; past it SMTP answers 451",
    );
    MAILBUS_DB_MAX_CONNECTIONS: u32 = bounded("20", 1..=1000, "PostgreSQL pool size per mailbox process");
    MAILBUS_DELIVERY_BATCH: usize = bounded(
        "32",
        1..=256,
        "most concurrent deliveries into one account committed as one transaction (1: each alone)",
    );
    MAILBUS_DELIVERY_NICE: i32 = bounded(
        "10",
        0..=19,
        "nice value of the mailbox role's threads that store deliveries: while the CPUs are busy, SMTP acceptance and mail readers come first and the queue absorbs the burst (0: the same priority as the rest)",
    );
    MAILBUS_LOG_FORMAT: LogFormat = new("text", "text or json");
    RUST_LOG: String = new("info", "log filter (tracing-subscriber EnvFilter syntax)");
    OTEL_EXPORTER_OTLP_ENDPOINT: Option<String> = optional("OTLP/gRPC endpoint; traces are exported when set");
    OTEL_SERVICE_NAME: Option<String> = optional(
        "service name on exported spans (default: mailbus-smtp-ingress, mailbus-relay, …)",
    );
}

/// A row of `mailbus env`: one variable, whatever its type.
pub struct Var {
    pub name: &'static str,
    /// `None`: no default (required where used, or optional).
    pub default: Option<&'static str>,
    pub help: &'static str,
    read: fn(&Settings) -> anyhow::Result<()>,
}

impl Var {
    /// Reads this variable from `settings` as the role using it would: an error names it.
    pub fn check(&self, settings: &Settings) -> anyhow::Result<()> {
        (self.read)(settings)
    }
}

/// [`VARS`] as a Markdown table, for the README.
pub fn markdown_table() -> String {
    let mut table = String::from("| variable | default | what it sets |\n|---|---|---|\n");
    for var in VARS {
        let default = var.default.map(|d| format!("`{d}`")).unwrap_or_default();
        table.push_str(&format!("| `{}` | {default} | {} |\n", var.name, var.help));
    }
    table
}

/// One environment variable and how its text becomes a `T`. Declared only in the table above, and
/// read with [`Settings::get`]; an error says which variable was wrong.
pub struct Setting<T> {
    pub name: &'static str,
    /// The text used when the variable is unset or empty.
    pub default: Option<&'static str>,
    pub help: &'static str,
    /// The bounds of a number; other settings leave them wide open.
    min: u64,
    max: u64,
    parse: fn(&Setting<T>, &str) -> anyhow::Result<T>,
    /// The value when the variable is unset and has no default; `None`: it must be set.
    absent: Option<fn() -> T>,
    /// An empty value is a value, not a request for the default.
    empty_is_value: bool,
}

impl<T> Clone for Setting<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Setting<T> {}

impl<T> Setting<T> {
    const fn with(
        name: &'static str,
        default: Option<&'static str>,
        help: &'static str,
        parse: fn(&Setting<T>, &str) -> anyhow::Result<T>,
    ) -> Self {
        Setting { name, default, help, min: 0, max: u64::MAX, parse, absent: None, empty_is_value: false }
    }

    /// A number in `range`, made a `T` by `parse`.
    const fn ranged(
        name: &'static str,
        default: &'static str,
        range: RangeInclusive<u64>,
        help: &'static str,
        parse: fn(&Setting<T>, &str) -> anyhow::Result<T>,
    ) -> Self {
        Setting { min: *range.start(), max: *range.end(), ..Self::with(name, Some(default), help, parse) }
    }
}

/// Settings whose type parses them (`FromStr`), enums included.
impl<T: FromStr<Err: Display>> Setting<T> {
    const fn new(name: &'static str, default: &'static str, help: &'static str) -> Self {
        Self::with(name, Some(default), help, parse_text)
    }

    /// No default: reading it unset fails, naming it.
    const fn required(name: &'static str, help: &'static str) -> Self {
        Self::with(name, None, help, parse_text)
    }

    /// Like [`Setting::new`], but set to the empty string it is parsed from "" rather than defaulted, as
    /// Postfix's empty `recipient_delimiter` turns the feature off.
    const fn keeps_empty(name: &'static str, default: &'static str, help: &'static str) -> Self {
        Setting { empty_is_value: true, ..Self::with(name, Some(default), help, parse_text) }
    }

    /// No default text: unset, it is `absent()`.
    const fn or_else(name: &'static str, absent: fn() -> T, help: &'static str) -> Self {
        Setting { absent: Some(absent), ..Self::with(name, None, help, parse_text) }
    }
}

impl<T: FromStr<Err: Display>> Setting<Option<T>> {
    /// No default: unset, it is `None`.
    const fn optional(name: &'static str, help: &'static str) -> Self {
        Setting { absent: Some(|| None), ..Self::with(name, None, help, parse_some) }
    }
}

/// Numbers within bounds: a zero timeout or a cap of 0 would make a role useless (or panic), so it fails
/// start-up instead, naming the setting.
impl<T: TryFrom<u64>> Setting<T> {
    const fn bounded(
        name: &'static str,
        default: &'static str,
        range: RangeInclusive<u64>,
        help: &'static str,
    ) -> Self {
        Self::ranged(name, default, range, help, parse_bounded)
    }
}

impl Setting<Option<u64>> {
    /// A number in `range`, or unset for `None` (the role then derives it from another setting).
    const fn optional_bounded(name: &'static str, range: RangeInclusive<u64>, help: &'static str) -> Self {
        Setting {
            min: *range.start(),
            max: *range.end(),
            absent: Some(|| None),
            ..Self::with(name, None, help, parse_optional_bounded)
        }
    }
}

impl Setting<Duration> {
    /// A number of seconds in `range`.
    const fn secs(name: &'static str, default: &'static str, range: RangeInclusive<u64>, help: &'static str) -> Self {
        Self::ranged(name, default, range, help, parse_secs)
    }

    /// A number of milliseconds in `range`.
    const fn millis(name: &'static str, default: &'static str, range: RangeInclusive<u64>, help: &'static str) -> Self {
        Self::ranged(name, default, range, help, parse_millis)
    }
}

impl Setting<Option<Duration>> {
    /// A number of seconds in `range`, or `off`.
    const fn optional_secs(
        name: &'static str,
        default: &'static str,
        range: RangeInclusive<u64>,
        help: &'static str,
    ) -> Self {
        Self::ranged(name, default, range, help, parse_optional_secs)
    }
}

impl Setting<Option<SocketAddr>> {
    /// An address, or `off` for a listener that should not run.
    const fn optional_addr(name: &'static str, default: &'static str, help: &'static str) -> Self {
        Self::with(name, Some(default), help, parse_optional_addr)
    }
}

impl Setting<Vec<Duration>> {
    /// A list of waits like `30s,5m,1h,2d`.
    const fn schedule(name: &'static str, default: &'static str, help: &'static str) -> Self {
        Self::with(name, Some(default), help, parse_schedule)
    }
}

impl Setting<Names> {
    /// The prefix of the NATS names.
    const fn names(name: &'static str, default: &'static str, help: &'static str) -> Self {
        Self::with(name, Some(default), help, parse_names)
    }
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

    /// The value of `setting`: its variable's text (or its default) parsed, or an error naming it.
    pub fn get<T>(&self, setting: Setting<T>) -> anyhow::Result<T> {
        let given = match setting.empty_is_value {
            true => self.values.get(setting.name).map(String::as_str),
            false => self.value(setting.name),
        };
        match given.or(setting.default) {
            Some(text) => (setting.parse)(&setting, text),
            None => setting.absent.map(|absent| absent()).with_context(|| format!("{} must be set", setting.name)),
        }
    }

    /// The gRPC upstream `setting` names, its names resolved again every MAILBUS_GRPC_RESOLVE_SECS.
    pub fn upstream(&self, setting: Setting<Upstream>) -> anyhow::Result<Upstream> {
        Ok(self.get(setting)?.resolving_every(self.get(MAILBUS_GRPC_RESOLVE_SECS)?))
    }

    /// Whether the environment gave `setting` a value (defaults aside).
    pub fn is_set<T>(&self, setting: Setting<T>) -> bool {
        self.value(setting.name).is_some()
    }

    /// The text of the variable `name`, or its default, for code that passes variables on by name (the
    /// test harness, to the processes it starts). The roles read typed values with [`Settings::get`].
    pub fn string(&self, name: &str) -> anyhow::Result<String> {
        let var = VARS.iter().find(|v| v.name == name).with_context(|| format!("unknown setting {name}"))?;
        self.value(name).or(var.default).map(str::to_owned).with_context(|| format!("{name} must be set"))
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

fn parsed<T: FromStr<Err: Display>>(name: &str, text: &str) -> anyhow::Result<T> {
    text.parse().map_err(|e| anyhow!("{name}={text:?} is not valid: {e}"))
}

fn parse_text<T: FromStr<Err: Display>>(setting: &Setting<T>, text: &str) -> anyhow::Result<T> {
    parsed(setting.name, text)
}

fn parse_some<T: FromStr<Err: Display>>(setting: &Setting<Option<T>>, text: &str) -> anyhow::Result<Option<T>> {
    parsed(setting.name, text).map(Some)
}

/// A whole number within the setting's bounds.
fn number<T>(setting: &Setting<T>, text: &str) -> anyhow::Result<u64> {
    let value: u64 = parsed(setting.name, text)?;
    if !(setting.min..=setting.max).contains(&value) {
        bail!("{}={value} is out of range: it must be from {} to {}", setting.name, setting.min, setting.max);
    }
    Ok(value)
}

fn parse_bounded<T: TryFrom<u64>>(setting: &Setting<T>, text: &str) -> anyhow::Result<T> {
    let value = number(setting, text)?;
    T::try_from(value).map_err(|_| anyhow!("{}={value} is out of range", setting.name))
}

fn parse_optional_bounded(setting: &Setting<Option<u64>>, text: &str) -> anyhow::Result<Option<u64>> {
    number(setting, text).map(Some)
}

fn parse_secs(setting: &Setting<Duration>, text: &str) -> anyhow::Result<Duration> {
    number(setting, text).map(Duration::from_secs)
}

fn parse_millis(setting: &Setting<Duration>, text: &str) -> anyhow::Result<Duration> {
    number(setting, text).map(Duration::from_millis)
}

fn parse_optional_secs(setting: &Setting<Option<Duration>>, text: &str) -> anyhow::Result<Option<Duration>> {
    if text == "off" { Ok(None) } else { number(setting, text).map(|secs| Some(Duration::from_secs(secs))) }
}

fn parse_optional_addr(setting: &Setting<Option<SocketAddr>>, text: &str) -> anyhow::Result<Option<SocketAddr>> {
    if text == "off" { Ok(None) } else { parsed(setting.name, text).map(Some) }
}

fn parse_schedule(setting: &Setting<Vec<Duration>>, text: &str) -> anyhow::Result<Vec<Duration>> {
    let waits: Result<Vec<Duration>, _> = text.split(',').map(|w| parse_wait(w.trim())).collect();
    match waits {
        Ok(waits) if !waits.is_empty() => Ok(waits),
        _ => bail!("{}={text:?} must be waits like 30s,5m,1h,2d", setting.name),
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

/// The NATS names of `MAILBUS_NATS_PREFIX`, with the queue's partitions and the replica count.
pub fn nats_names(s: &Settings) -> anyhow::Result<Names> {
    Ok(s.get(MAILBUS_NATS_PREFIX)?
        .with_partitions(s.get(MAILBUS_QUEUE_PARTITIONS)?)
        .with_replicas(s.get(MAILBUS_NATS_REPLICAS)?))
}

fn parse_names(setting: &Setting<Names>, text: &str) -> anyhow::Result<Names> {
    Names::new(text).map_err(|e| anyhow!("{}={text:?} is not valid: {e}", setting.name))
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
        assert_eq!(s.get(MAILBUS_SMTP_LISTEN).unwrap().port(), 2525);
        assert_eq!(s.get(MAILBUS_POP3_LISTEN).unwrap().port(), 110);
        assert!(s.get(OTEL_SERVICE_NAME).unwrap().is_none());
        assert!(!s.is_set(DATABASE_URL));
        let error = s.get(DATABASE_URL).unwrap_err().to_string();
        assert_eq!(error, "DATABASE_URL must be set");
    }

    #[test]
    fn unknown_mailbus_variables_fail_and_name_themselves() {
        let error = settings(&[("MAILBUS_SMTP_LISTENER", "x")]).unwrap_err().to_string();
        assert!(error.contains("MAILBUS_SMTP_LISTENER"), "{error}");
        assert!(settings(&[("HOME", "/root"), ("MAILBUS_PG_BIN", "/usr/bin")]).is_ok());
        let error = settings(&[]).unwrap().string("MAILBUS_SMTP_LISTENER").unwrap_err().to_string();
        assert!(error.contains("unknown setting MAILBUS_SMTP_LISTENER"), "{error}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let s = settings(&[("MAILBUS_MAX_RECIPIENTS", "many")]).unwrap();
        let error = s.get(MAILBUS_MAX_RECIPIENTS).unwrap_err().to_string();
        assert!(error.contains("MAILBUS_MAX_RECIPIENTS"), "{error}");
        let s = settings(&[("MAILBUS_NATS_PREFIX", "a.b")]).unwrap();
        let error = s.get(MAILBUS_NATS_PREFIX).unwrap_err().to_string();
        assert!(error.contains("MAILBUS_NATS_PREFIX"), "{error}");
        let s = settings(&[("MAILBUS_MAILBOX_URL", "mailbox:50051")]).unwrap();
        let error = s.get(MAILBUS_MAILBOX_URL).unwrap_err().to_string();
        assert!(error.contains("MAILBUS_MAILBOX_URL") && error.contains("http://host:port"), "{error}");
    }

    #[test]
    fn a_grpc_upstream_is_a_list_resolved_again_at_the_set_interval() {
        let s = settings(&[
            ("MAILBUS_MAILBOX_URL", "http://127.0.0.1:1,http://mailbox:2"),
            ("MAILBUS_GRPC_RESOLVE_SECS", "7"),
        ])
        .unwrap();
        let upstream = s.upstream(MAILBUS_MAILBOX_URL).unwrap();
        assert_eq!(upstream.to_string(), "http://127.0.0.1:1,http://mailbox:2");
        assert_eq!(upstream.resolve_every(), Duration::from_secs(7));
        assert_eq!(settings(&[]).unwrap().upstream(MAILBUS_RELAY_URL).unwrap().resolve_every(), Duration::from_secs(5));
    }

    #[test]
    fn numbers_out_of_range_fail_and_name_the_setting() {
        let s = settings(&[("MAILBUS_RELAY_ACK_WAIT_SECS", "0"), ("MAILBUS_MAX_RECIPIENTS", "5")]).unwrap();
        let error = s.get(MAILBUS_RELAY_ACK_WAIT_SECS).unwrap_err().to_string();
        assert!(error.contains("MAILBUS_RELAY_ACK_WAIT_SECS=0 is out of range"), "{error}");
        assert_eq!(s.get(MAILBUS_MAX_RECIPIENTS).unwrap(), 5);
        for (value, ok) in [("0", false), ("1", true), ("100000", true), ("100001", false)] {
            let s = settings(&[("MAILBUS_MAX_RECIPIENTS", value)]).unwrap();
            assert_eq!(s.get(MAILBUS_MAX_RECIPIENTS).is_ok(), ok, "{value}");
        }
        let s = settings(&[("MAILBUS_POP3_IDLE_TIMEOUT_SECS", "599"), ("MAILBUS_AUTH_FAILURE_DELAY_MS", "0")]).unwrap();
        let error = s.get(MAILBUS_POP3_IDLE_TIMEOUT_SECS).unwrap_err().to_string();
        assert!(error.contains("it must be from 600 to 86400"), "{error}");
        assert_eq!(s.get(MAILBUS_AUTH_FAILURE_DELAY_MS).unwrap(), Duration::ZERO);
    }

    #[test]
    fn the_readme_table_is_the_settings_table() {
        let readme = include_str!("../../../README.md");
        assert!(readme.contains(&markdown_table()), "README.md is stale: paste `mailbus env --markdown` into it");
    }

    #[test]
    fn retry_schedules_parse() {
        let s = settings(&[("MAILBUS_RELAY_RETRY_SCHEDULE", "30s, 5m,1h,2d")]).unwrap();
        let secs: Vec<u64> = s.get(MAILBUS_RELAY_RETRY_SCHEDULE).unwrap().iter().map(|d| d.as_secs()).collect();
        assert_eq!(secs, [30, 300, 3600, 172_800]);
        for bad in ["", "5", "5x", "0s", "m"] {
            let s = settings(&[("MAILBUS_RELAY_RETRY_SCHEDULE", bad)]).unwrap();
            if !bad.is_empty() {
                assert!(s.get(MAILBUS_RELAY_RETRY_SCHEDULE).is_err(), "{bad}");
            }
        }
    }

    #[test]
    fn every_default_parses() {
        let s = settings(&[]).unwrap();
        for v in VARS.iter().filter(|v| v.name.ends_with("_LISTEN")) {
            assert!(s.string(v.name).unwrap().parse::<SocketAddr>().is_ok(), "{}", v.name);
        }
        for v in VARS.iter().filter(|v| v.name != "DATABASE_URL") {
            v.check(&s).unwrap();
        }
    }

    #[test]
    fn off_turns_off_what_may_be_off() {
        let s = settings(&[("MAILBUS_SUBMISSION_LISTEN", "off"), ("MAILBUS_RELAY_DELAY_WARNING_SECS", "60")]).unwrap();
        assert_eq!(s.get(MAILBUS_SUBMISSION_LISTEN).unwrap(), None);
        assert!(s.get(MAILBUS_SUBMISSIONS_LISTEN).unwrap().is_some());
        assert_eq!(s.get(MAILBUS_RELAY_DELAY_WARNING_SECS).unwrap(), Some(Duration::from_secs(60)));
        assert_eq!(settings(&[]).unwrap().get(MAILBUS_RELAY_DELAY_WARNING_SECS).unwrap(), None);
        assert!(settings(&[("MAILBUS_SMTP_LISTEN", "off")]).unwrap().get(MAILBUS_SMTP_LISTEN).is_err());
    }

    #[test]
    fn an_empty_recipient_delimiter_turns_plus_addressing_off_where_unset_keeps_the_default() {
        let default = settings(&[]).unwrap().get(MAILBUS_RECIPIENT_DELIMITER).unwrap();
        assert_eq!(default.to_string(), "+");
        let off = settings(&[("MAILBUS_RECIPIENT_DELIMITER", "")]).unwrap().get(MAILBUS_RECIPIENT_DELIMITER).unwrap();
        assert!(!off.is_enabled());
        let two = settings(&[("MAILBUS_RECIPIENT_DELIMITER", "+-")]).unwrap().get(MAILBUS_RECIPIENT_DELIMITER).unwrap();
        assert_eq!(two.to_string(), "+-");
        let error = settings(&[("MAILBUS_RECIPIENT_DELIMITER", "+@")]).unwrap().get(MAILBUS_RECIPIENT_DELIMITER);
        assert!(error.unwrap_err().to_string().starts_with("MAILBUS_RECIPIENT_DELIMITER=\"+@\" is not valid"));
    }

    #[test]
    fn smtp_plaintext_auth_still_reads_its_old_yes_or_no_spellings() {
        for (value, expected) in [
            ("true", PlaintextAuth::Always),
            ("YES", PlaintextAuth::Always),
            ("1", PlaintextAuth::Always),
            ("false", PlaintextAuth::Never),
            ("No", PlaintextAuth::Never),
            ("loopback", PlaintextAuth::Loopback),
        ] {
            let s = settings(&[("MAILBUS_SMTP_PLAINTEXT_AUTH", value)]).unwrap();
            assert_eq!(s.get(MAILBUS_SMTP_PLAINTEXT_AUTH).unwrap(), expected, "{value}");
        }
        let s = settings(&[("MAILBUS_SMTP_PLAINTEXT_AUTH", "maybe")]).unwrap();
        let error = s.get(MAILBUS_SMTP_PLAINTEXT_AUTH).unwrap_err().to_string();
        assert_eq!(error, r#"MAILBUS_SMTP_PLAINTEXT_AUTH="maybe" is not valid: must be never, loopback or always"#);
        assert_eq!(settings(&[]).unwrap().get(MAILBUS_SMTP_PLAINTEXT_AUTH).unwrap(), PlaintextAuth::Never);
    }

    #[test]
    fn enum_settings_parse_and_name_the_valid_values() {
        let s = settings(&[
            ("MAILBUS_QUOTA_FULL", "defer"),
            ("MAILBUS_SMTP_LONG_LINES", "reject"),
            ("MAILBUS_SMTP_BARE_LF", "normalize"),
            ("MAILBUS_POP3_DELETE", "trash"),
            ("MAILBUS_IMAP_PLAINTEXT_AUTH", "never"),
            ("MAILBUS_LOG_FORMAT", "json"),
        ])
        .unwrap();
        assert_eq!(s.get(MAILBUS_QUOTA_FULL).unwrap(), QuotaFull::Defer);
        assert_eq!(s.get(MAILBUS_SMTP_LONG_LINES).unwrap(), LongLines::Reject);
        assert_eq!(s.get(MAILBUS_SMTP_BARE_LF).unwrap(), BareLf::Normalise);
        assert_eq!(s.get(MAILBUS_POP3_DELETE).unwrap(), DeletePolicy::MoveToTrash);
        assert_eq!(s.get(MAILBUS_IMAP_PLAINTEXT_AUTH).unwrap(), PlaintextAuth::Never);
        assert_eq!(s.get(MAILBUS_POP3_PLAINTEXT_AUTH).unwrap(), PlaintextAuth::Loopback);
        assert!(matches!(s.get(MAILBUS_LOG_FORMAT).unwrap(), LogFormat::Json));
        let bad = |name: &str| settings(&[(name, "sometimes")]).unwrap();
        let errors = [
            bad("MAILBUS_QUOTA_FULL").get(MAILBUS_QUOTA_FULL).unwrap_err(),
            bad("MAILBUS_SMTP_LONG_LINES").get(MAILBUS_SMTP_LONG_LINES).unwrap_err(),
            bad("MAILBUS_SMTP_BARE_LF").get(MAILBUS_SMTP_BARE_LF).unwrap_err(),
            bad("MAILBUS_POP3_DELETE").get(MAILBUS_POP3_DELETE).unwrap_err(),
            bad("MAILBUS_POP3_PLAINTEXT_AUTH").get(MAILBUS_POP3_PLAINTEXT_AUTH).unwrap_err(),
            bad("MAILBUS_LOG_FORMAT").get(MAILBUS_LOG_FORMAT).unwrap_err(),
        ];
        let expected = [
            "MAILBUS_QUOTA_FULL=\"sometimes\" is not valid: must be bounce or defer",
            "MAILBUS_SMTP_LONG_LINES=\"sometimes\" is not valid: must be accept or reject",
            "MAILBUS_SMTP_BARE_LF=\"sometimes\" is not valid: must be normalise or reject",
            "MAILBUS_POP3_DELETE=\"sometimes\" is not valid: must be expunge, trash or keep",
            "MAILBUS_POP3_PLAINTEXT_AUTH=\"sometimes\" is not valid: must be never, loopback or always",
            "MAILBUS_LOG_FORMAT=\"sometimes\" is not valid: log format must be text or json, not \"sometimes\"",
        ];
        for (error, expected) in errors.iter().zip(expected) {
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn settings_without_a_default_fall_back() {
        let s = settings(&[]).unwrap();
        assert!(!s.get(MAILBUS_HOSTNAME).unwrap().is_empty());
        assert_eq!(s.get(MAILBUS_SMTP_SPOOL_DIR).unwrap(), std::env::temp_dir());
        assert!(s.get(MAILBUS_PROXY_PROTOCOL_FROM).unwrap().is_empty());
        assert_eq!(s.get(MAILBUS_RELAY_TRANSPORTS).unwrap(), TransportMap::default());
        assert_eq!(s.get(MAILBUS_TLS_CERT).unwrap(), None);
        let s =
            settings(&[("MAILBUS_HOSTNAME", "mx.example.test"), ("MAILBUS_PROXY_PROTOCOL_FROM", "nonsense")]).unwrap();
        assert_eq!(s.get(MAILBUS_HOSTNAME).unwrap(), "mx.example.test");
        let error = s.get(MAILBUS_PROXY_PROTOCOL_FROM).unwrap_err().to_string();
        assert!(error.starts_with("MAILBUS_PROXY_PROTOCOL_FROM="), "{error}");
    }
}
