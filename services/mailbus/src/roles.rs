//! Turning settings into role configurations, and binding and serving any set of roles in one process.

use mailbus_acceptor::Caps;
use mailbus_acceptor::proxy::TrustedProxies;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use mailbus_access::{Access, AccessConfig, DeletePolicy};
use mailbus_jetstream::ThrottlePolicy;
use mailbus_mailbox::{Mailbox, MailboxConfig, QuotaFull};
use mailbus_pop3::session::PlaintextAuth;
use mailbus_relay::{Relay, RelayConfig, RetryPolicy};
use mailbus_smtp::session::{BareLf, LongLines};
use mailbus_smtp_ingress::{Listeners, Policy, SmtpConfig, SmtpIngress, Timeouts};
use mailbus_tls::ServerTls;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// 1 GiB: far above any real mail (and within what a u64/usize size and PostgreSQL's bytea can hold).
const MAX_MESSAGE_SIZE: u64 = 1 << 30;
/// Far above what one process can serve, and far below what a semaphore can count.
const MAX_CONNECTIONS: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    SmtpIngress,
    Relay,
    Mailbox,
    Access,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Mailbox, Role::Relay, Role::SmtpIngress, Role::Access];

    pub fn name(self) -> &'static str {
        match self {
            Role::SmtpIngress => "smtp-ingress",
            Role::Relay => "relay",
            Role::Mailbox => "mailbox",
            Role::Access => "access",
        }
    }

    /// The setting that holds this role's `/metrics`, `/healthz` and `/readyz` address.
    pub fn metrics_setting(self) -> &'static str {
        match self {
            Role::SmtpIngress => "MAILBUS_SMTP_METRICS_LISTEN",
            Role::Relay => "MAILBUS_RELAY_METRICS_LISTEN",
            Role::Mailbox => "MAILBUS_MAILBOX_METRICS_LISTEN",
            Role::Access => "MAILBUS_ACCESS_METRICS_LISTEN",
        }
    }
}

pub fn mailbox_config(s: &Settings) -> anyhow::Result<MailboxConfig> {
    Ok(MailboxConfig {
        database_url: s.string("DATABASE_URL").context("the mailbox role needs a database")?,
        nats_url: s.string("NATS_URL")?,
        names: s.names()?,
        grpc_listen: s.addr("MAILBUS_MAILBOX_GRPC_LISTEN")?,
        metrics_listen: s.addr("MAILBUS_MAILBOX_METRICS_LISTEN")?,
        max_message_size: s.bounded("MAILBUS_MAX_MESSAGE_SIZE", 1024..=MAX_MESSAGE_SIZE)?,
        max_db_connections: s.bounded("MAILBUS_DB_MAX_CONNECTIONS", 1..=1000)?,
        quota_full: match s.string("MAILBUS_QUOTA_FULL")?.as_str() {
            "bounce" => QuotaFull::Bounce,
            "defer" => QuotaFull::Defer,
            other => anyhow::bail!("MAILBUS_QUOTA_FULL={other:?} must be bounce or defer"),
        },
    })
}

pub fn relay_config(s: &Settings) -> anyhow::Result<RelayConfig> {
    let delay_warning = match s.string("MAILBUS_RELAY_DELAY_WARNING_SECS")?.as_str() {
        "off" => None,
        _ => Some(s.secs("MAILBUS_RELAY_DELAY_WARNING_SECS")?),
    };
    Ok(RelayConfig {
        hostname: s.hostname(),
        transports: s.optional("MAILBUS_RELAY_TRANSPORTS").unwrap_or_default().parse()?,
        retry: RetryPolicy {
            schedule: s.schedule("MAILBUS_RELAY_RETRY_SCHEDULE")?,
            max_lifetime: Duration::from_secs(s.bounded("MAILBUS_RELAY_MAX_LIFETIME_SECS", 1..=365 * 86_400)?),
            delay_warning,
        },
        smtp_timeout: s.secs("MAILBUS_RELAY_SMTP_TIMEOUT_SECS")?,
        destination_concurrency: s.bounded("MAILBUS_RELAY_DESTINATION_CONCURRENCY", 1..=1000)?,
        nats_url: s.string("NATS_URL")?,
        names: s.names()?,
        mailbox_url: s.string("MAILBUS_MAILBOX_URL")?,
        grpc_listen: s.addr("MAILBUS_RELAY_GRPC_LISTEN")?,
        metrics_listen: s.addr("MAILBUS_RELAY_METRICS_LISTEN")?,
        // At most MAX_ACK_WAIT, so that the queue's duplicate window covers a repeated attempt.
        ack_wait: Duration::from_secs(
            s.bounded("MAILBUS_RELAY_ACK_WAIT_SECS", 1..=mailbus_jetstream::MAX_ACK_WAIT.as_secs())?,
        ),
        concurrency: s.bounded("MAILBUS_RELAY_CONCURRENCY", 1..=1024)?,
        nats_timeout: s.millis("MAILBUS_NATS_TIMEOUT_MS")?,
    })
}

/// The smtp-ingress role's configuration, presenting `tls`.
pub fn smtp_config(s: &Settings, tls: ServerTls) -> anyhow::Result<SmtpConfig> {
    Ok(SmtpConfig {
        tls,
        hostname: s.hostname(),
        nats_url: s.string("NATS_URL")?,
        names: s.names()?,
        mailbox_url: s.string("MAILBUS_MAILBOX_URL")?,
        listeners: Listeners {
            mx: s.addr("MAILBUS_SMTP_LISTEN")?,
            submission: s.optional_addr("MAILBUS_SUBMISSION_LISTEN")?,
            submissions: s.optional_addr("MAILBUS_SUBMISSIONS_LISTEN")?,
        },
        grpc_listen: s.addr("MAILBUS_SMTP_GRPC_LISTEN")?,
        metrics_listen: s.addr("MAILBUS_SMTP_METRICS_LISTEN")?,
        policy: Policy {
            max_message_size: s.bounded("MAILBUS_MAX_MESSAGE_SIZE", 1024..=MAX_MESSAGE_SIZE as usize)?,
            max_recipients: s.bounded("MAILBUS_MAX_RECIPIENTS", 1..=100_000)?,
            max_errors: s.bounded("MAILBUS_SMTP_MAX_ERRORS", 1..=10_000)?,
            max_auth_failures: s.bounded("MAILBUS_SMTP_MAX_AUTH_FAILURES", 1..=1000)?,
            plaintext_auth: s.flag("MAILBUS_SMTP_PLAINTEXT_AUTH")?,
            long_lines: match s.string("MAILBUS_SMTP_LONG_LINES")?.as_str() {
                "accept" => LongLines::Accept,
                "reject" => LongLines::Reject,
                other => anyhow::bail!("MAILBUS_SMTP_LONG_LINES={other:?} must be accept or reject"),
            },
            bare_lf: match s.string("MAILBUS_SMTP_BARE_LF")?.as_str() {
                "normalise" | "normalize" => BareLf::Normalise,
                "reject" => BareLf::Reject,
                other => anyhow::bail!("MAILBUS_SMTP_BARE_LF={other:?} must be normalise or reject"),
            },
        },
        timeouts: Timeouts {
            command: s.secs("MAILBUS_SMTP_COMMAND_TIMEOUT_SECS")?,
            data: s.secs("MAILBUS_SMTP_DATA_TIMEOUT_SECS")?,
            min_data_rate: s.bounded("MAILBUS_SMTP_MIN_DATA_RATE", 1..=1_000_000_000)?,
        },
        spool_dir: s.optional("MAILBUS_SMTP_SPOOL_DIR").map_or_else(std::env::temp_dir, std::path::PathBuf::from),
        throttle: throttle_policy(s)?,
        mx_caps: caps(s, "MAILBUS_SMTP_MAX_CONNECTIONS", "MAILBUS_SMTP_MAX_CONNECTIONS_PER_IP")?,
        submission_caps: caps(s, "MAILBUS_SUBMISSION_MAX_CONNECTIONS", "MAILBUS_SUBMISSION_MAX_CONNECTIONS_PER_IP")?,
        proxies: proxies(s)?,
        shutdown_grace: s.secs("MAILBUS_SHUTDOWN_GRACE_SECS")?,
        nats_timeout: s.millis("MAILBUS_NATS_TIMEOUT_MS")?,
    })
}

/// The TLS certificate from `MAILBUS_TLS_CERT` and `MAILBUS_TLS_KEY`, or, with neither set, a self-signed
/// one for the host name (as Postfix's "snakeoil" default): STARTTLS is always offered, and a warning says
/// that clients will not be able to verify it.
pub fn server_tls(s: &Settings, hostname: &str) -> anyhow::Result<ServerTls> {
    match (s.optional("MAILBUS_TLS_CERT"), s.optional("MAILBUS_TLS_KEY")) {
        (Some(cert), Some(key)) => Ok(ServerTls::from_pem_files(Path::new(&cert), Path::new(&key))?),
        (None, None) => {
            tracing::warn!(%hostname, "no MAILBUS_TLS_CERT: using a self-signed certificate clients cannot verify");
            let generated = mailbus_tls::self_signed(&[hostname.to_owned()])?;
            Ok(ServerTls::from_pem(&generated.cert_pem, &generated.key_pem)?)
        }
        _ => anyhow::bail!("MAILBUS_TLS_CERT and MAILBUS_TLS_KEY must be set together"),
    }
}

/// The access role's configuration, presenting `tls`.
pub fn access_config(s: &Settings, tls: ServerTls) -> anyhow::Result<AccessConfig> {
    Ok(AccessConfig {
        tls,
        hostname: s.hostname(),
        mailbox_url: s.string("MAILBUS_MAILBOX_URL")?,
        nats_url: s.string("NATS_URL")?,
        names: s.names()?,
        pop3_listen: s.addr("MAILBUS_POP3_LISTEN")?,
        pop3s_listen: s.optional_addr("MAILBUS_POP3S_LISTEN")?,
        grpc_listen: s.addr("MAILBUS_ACCESS_GRPC_LISTEN")?,
        metrics_listen: s.addr("MAILBUS_ACCESS_METRICS_LISTEN")?,
        plaintext_auth: plaintext_auth(s, "MAILBUS_POP3_PLAINTEXT_AUTH")?,
        delete_policy: match s.string("MAILBUS_POP3_DELETE")?.as_str() {
            "expunge" => DeletePolicy::Expunge,
            "trash" => DeletePolicy::MoveToTrash,
            "keep" => DeletePolicy::Keep,
            other => anyhow::bail!("MAILBUS_POP3_DELETE={other:?} must be expunge, trash or keep"),
        },
        lock_ttl: s.secs("MAILBUS_POP3_LOCK_TTL_SECS")?,
        max_auth_failures: s.bounded("MAILBUS_POP3_MAX_AUTH_FAILURES", 1..=1000)?,
        // RFC 1939 §3: the autologout timer must be at least 10 minutes.
        idle_timeout: Duration::from_secs(s.bounded("MAILBUS_POP3_IDLE_TIMEOUT_SECS", 600..=86_400)?),
        pop3_caps: caps(s, "MAILBUS_POP3_MAX_CONNECTIONS", "MAILBUS_POP3_MAX_CONNECTIONS_PER_IP")?,
        pop3_login_timeout: Duration::from_secs(s.bounded("MAILBUS_POP3_LOGIN_TIMEOUT_SECS", 1..=3600)?),
        proxies: proxies(s)?,
        throttle: throttle_policy(s)?,
        imap_listen: s.addr("MAILBUS_IMAP_LISTEN")?,
        imaps_listen: s.optional_addr("MAILBUS_IMAPS_LISTEN")?,
        imap_plaintext_auth: plaintext_auth(s, "MAILBUS_IMAP_PLAINTEXT_AUTH")?,
        // RFC 9051 §5.4 and RFC 2177: the autologout timer must be at least 30 minutes.
        imap_idle_timeout: Duration::from_secs(s.bounded("MAILBUS_IMAP_IDLE_TIMEOUT_SECS", 1800..=86_400)?),
        imap_max_auth_failures: s.bounded("MAILBUS_IMAP_MAX_AUTH_FAILURES", 1..=1000)?,
        imap_max_user_connections: s.bounded("MAILBUS_IMAP_MAX_USER_CONNECTIONS", 1..=MAX_CONNECTIONS)?,
        imap_caps: caps(s, "MAILBUS_IMAP_MAX_CONNECTIONS", "MAILBUS_IMAP_MAX_CONNECTIONS_PER_IP")?,
        imap_login_timeout: Duration::from_secs(s.bounded("MAILBUS_IMAP_LOGIN_TIMEOUT_SECS", 1..=3600)?),
        max_message_size: s.bounded("MAILBUS_MAX_MESSAGE_SIZE", 1024..=MAX_MESSAGE_SIZE)?,
    })
}

fn caps(s: &Settings, total: &str, per_address: &str) -> anyhow::Result<Caps> {
    Ok(Caps {
        total: s.bounded(total, 1..=MAX_CONNECTIONS)?,
        per_address: s.bounded(per_address, 1..=MAX_CONNECTIONS)?,
    })
}

/// The failed-login rules every protocol shares.
fn throttle_policy(s: &Settings) -> anyhow::Result<ThrottlePolicy> {
    Ok(ThrottlePolicy {
        delay: Duration::from_millis(s.bounded("MAILBUS_AUTH_FAILURE_DELAY_MS", 0..=60_000)?),
        max_failures_per_address: s.bounded("MAILBUS_AUTH_MAX_FAILURES_PER_IP", 1..=1_000_000)?,
        window: Duration::from_secs(s.bounded("MAILBUS_AUTH_FAILURE_WINDOW_SECS", 1..=86_400 * 7)?),
    })
}

fn proxies(s: &Settings) -> anyhow::Result<TrustedProxies> {
    let text = s.optional("MAILBUS_PROXY_PROTOCOL_FROM").unwrap_or_default();
    text.parse().map_err(|e| anyhow::anyhow!("MAILBUS_PROXY_PROTOCOL_FROM: {e}"))
}

fn plaintext_auth(s: &Settings, name: &str) -> anyhow::Result<PlaintextAuth> {
    Ok(match s.string(name)?.as_str() {
        "never" => PlaintextAuth::Never,
        "loopback" => PlaintextAuth::Loopback,
        "always" => PlaintextAuth::Always,
        other => anyhow::bail!("{name}={other:?} must be never, loopback or always"),
    })
}

/// Roles with their listeners bound, not yet serving.
#[derive(Default)]
pub struct Bound {
    pub mailbox: Option<Mailbox>,
    pub relay: Option<Relay>,
    pub smtp: Option<SmtpIngress>,
    pub access: Option<Access>,
}

/// Binds `roles`. The mailbox role goes first (it runs the migrations), and when it is among them the
/// others call it at the address it actually bound, so port 0 works.
pub async fn bind(roles: &[Role], settings: &Settings) -> anyhow::Result<Bound> {
    let mut settings = settings.clone();
    let mut bound = Bound::default();
    if roles.contains(&Role::Mailbox) {
        let mailbox = mailbus_mailbox::bind(mailbox_config(&settings)?).await.context("starting the mailbox role")?;
        settings.set("MAILBUS_MAILBOX_URL", &format!("http://{}", loopback(mailbox.grpc_addr())));
        bound.mailbox = Some(mailbox);
    }
    if roles.contains(&Role::Relay) {
        bound.relay = Some(mailbus_relay::bind(relay_config(&settings)?).await.context("starting the relay role")?);
    }
    // One certificate for the process: a generated one is made once, so SMTP, IMAP and POP3 present the
    // same one (a client that pinned it on one port finds it on the others).
    let tls = match roles.iter().any(|r| matches!(r, Role::SmtpIngress | Role::Access)) {
        true => Some(server_tls(&settings, &settings.hostname())?),
        false => None,
    };
    if let (true, Some(tls)) = (roles.contains(&Role::SmtpIngress), &tls) {
        let config = smtp_config(&settings, tls.clone())?;
        bound.smtp = Some(mailbus_smtp_ingress::bind(config).await.context("starting the smtp-ingress role")?);
    }
    if let (true, Some(tls)) = (roles.contains(&Role::Access), tls) {
        let config = access_config(&settings, tls)?;
        bound.access = Some(mailbus_access::bind(config).await.context("starting the access role")?);
    }
    Ok(bound)
}

/// A wildcard listen address is reached through loopback from inside the process.
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], v4.port())),
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, v6.port())),
        other => other,
    }
}

impl Bound {
    /// Serves every bound role until `shutdown`. If one role fails, the others are shut down too.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(role) = self.mailbox {
            let s = shutdown.clone();
            tasks.spawn(async move { role.serve(s).await.context("mailbox role") });
        }
        if let Some(role) = self.relay {
            let s = shutdown.clone();
            tasks.spawn(async move { role.serve(s).await.context("relay role") });
        }
        if let Some(role) = self.smtp {
            let s = shutdown.clone();
            tasks.spawn(async move { role.serve(s).await.context("smtp-ingress role") });
        }
        if let Some(role) = self.access {
            let s = shutdown.clone();
            tasks.spawn(async move { role.serve(s).await.context("access role") });
        }
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            let outcome = joined.context("role task panicked").and_then(|r| r);
            if let Err(error) = outcome {
                shutdown.cancel();
                if result.is_ok() {
                    result = Err(error);
                }
            }
        }
        result
    }
}
