//! Turning settings into role configurations, and binding and serving any set of roles in one process.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use mailbus_acceptor::Caps;
use mailbus_access::{Access, AccessConfig, ImapConfig, ManageSieveConfig, Pop3Config, SessionPolicy};
use mailbus_dns::DnsConfig;
use mailbus_http::{Http, HttpConfig, Limits};
use mailbus_jetstream::{RatePolicy, ThrottlePolicy};
use mailbus_mailbox::{Mailbox, MailboxConfig, SieveConfig};
use mailbus_relay::{Relay, RelayConfig, RetryPolicy};
use mailbus_smtp::session::Enforcement;
use mailbus_smtp_ingress::{AuthPolicy, Listeners, Policy, SmtpConfig, SmtpIngress, Timeouts};
use mailbus_tls::ServerTls;
use tokio_util::sync::CancellationToken;

use crate::settings::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    SmtpIngress,
    Relay,
    Mailbox,
    Access,
    Http,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Mailbox, Role::Relay, Role::SmtpIngress, Role::Access, Role::Http];

    pub fn name(self) -> &'static str {
        match self {
            Role::SmtpIngress => "smtp-ingress",
            Role::Relay => "relay",
            Role::Mailbox => "mailbox",
            Role::Access => "access",
            Role::Http => "http",
        }
    }

    /// The setting that holds this role's `/metrics`, `/healthz` and `/readyz` address.
    pub fn metrics_setting(self) -> Setting<SocketAddr> {
        match self {
            Role::SmtpIngress => MAILBUS_SMTP_METRICS_LISTEN,
            Role::Relay => MAILBUS_RELAY_METRICS_LISTEN,
            Role::Mailbox => MAILBUS_MAILBOX_METRICS_LISTEN,
            Role::Access => MAILBUS_ACCESS_METRICS_LISTEN,
            Role::Http => MAILBUS_HTTP_METRICS_LISTEN,
        }
    }
}

pub fn mailbox_config(s: &Settings) -> anyhow::Result<MailboxConfig> {
    Ok(MailboxConfig {
        database_url: s.get(DATABASE_URL).context("the mailbox role needs a database")?,
        nats_url: s.get(NATS_URL)?,
        names: nats_names(s)?,
        grpc_listen: s.get(MAILBUS_MAILBOX_GRPC_LISTEN)?,
        metrics_listen: s.get(MAILBUS_MAILBOX_METRICS_LISTEN)?,
        max_message_size: s.get(MAILBUS_MAX_MESSAGE_SIZE)?,
        max_db_connections: s.get(MAILBUS_DB_MAX_CONNECTIONS)?,
        delivery_batch: s.get(MAILBUS_DELIVERY_BATCH)?,
        quota_full: s.get(MAILBUS_QUOTA_FULL)?,
        recipient_delimiter: s.get(MAILBUS_RECIPIENT_DELIMITER)?,
        delivery_nice: s.get(MAILBUS_DELIVERY_NICE)?,
        sieve: SieveConfig {
            max_scripts: s.get(MAILBUS_SIEVE_MAX_SCRIPTS)?,
            max_script_size: s.get(MAILBUS_SIEVE_MAX_SCRIPT_SIZE)?,
            max_actions: s.get(MAILBUS_SIEVE_MAX_ACTIONS)?,
            max_redirects: s.get(MAILBUS_SIEVE_MAX_REDIRECTS)?,
        },
    })
}

pub fn relay_config(s: &Settings) -> anyhow::Result<RelayConfig> {
    Ok(RelayConfig {
        hostname: s.get(MAILBUS_HOSTNAME)?,
        transports: s.get(MAILBUS_RELAY_TRANSPORTS)?,
        dns: dns_config(s)?,
        retry: RetryPolicy {
            schedule: s.get(MAILBUS_RELAY_RETRY_SCHEDULE)?,
            max_lifetime: s.get(MAILBUS_RELAY_MAX_LIFETIME_SECS)?,
            delay_warning: s.get(MAILBUS_RELAY_DELAY_WARNING_SECS)?,
        },
        smtp_timeout: s.get(MAILBUS_RELAY_SMTP_TIMEOUT_SECS)?,
        destination_concurrency: s.get(MAILBUS_RELAY_DESTINATION_CONCURRENCY)?,
        dkim_key_ttl: s.get(MAILBUS_DKIM_KEY_CACHE_SECS)?,
        srs: srs(s)?,
        authserv_id: authserv_id(s)?,
        nats_url: s.get(NATS_URL)?,
        names: nats_names(s)?,
        mailbox_url: s.upstream(MAILBUS_MAILBOX_URL)?,
        grpc_listen: s.get(MAILBUS_RELAY_GRPC_LISTEN)?,
        metrics_listen: s.get(MAILBUS_RELAY_METRICS_LISTEN)?,
        ack_wait: s.get(MAILBUS_RELAY_ACK_WAIT_SECS)?,
        concurrency: s.get(MAILBUS_RELAY_CONCURRENCY)?,
        nats_timeout: s.get(MAILBUS_NATS_TIMEOUT_MS)?,
        recipient_cache_ttl: s.get(MAILBUS_RECIPIENT_CACHE_SECS)?,
    })
}

/// The smtp-ingress role's configuration, presenting `tls`.
pub fn smtp_config(s: &Settings, tls: ServerTls) -> anyhow::Result<SmtpConfig> {
    Ok(SmtpConfig {
        srs: srs(s)?,
        tls,
        hostname: s.get(MAILBUS_HOSTNAME)?,
        nats_url: s.get(NATS_URL)?,
        names: nats_names(s)?,
        mailbox_url: s.upstream(MAILBUS_MAILBOX_URL)?,
        listeners: Listeners {
            mx: s.get(MAILBUS_SMTP_LISTEN)?,
            submission: s.get(MAILBUS_SUBMISSION_LISTEN)?,
            submissions: s.get(MAILBUS_SUBMISSIONS_LISTEN)?,
        },
        grpc_listen: s.get(MAILBUS_SMTP_GRPC_LISTEN)?,
        metrics_listen: s.get(MAILBUS_SMTP_METRICS_LISTEN)?,
        policy: Policy {
            max_message_size: usize::try_from(s.get(MAILBUS_MAX_MESSAGE_SIZE)?)?,
            max_recipients: s.get(MAILBUS_MAX_RECIPIENTS)?,
            max_errors: s.get(MAILBUS_SMTP_MAX_ERRORS)?,
            max_auth_failures: s.get(MAILBUS_SMTP_MAX_AUTH_FAILURES)?,
            plaintext_auth: s.get(MAILBUS_SMTP_PLAINTEXT_AUTH)?,
            long_lines: s.get(MAILBUS_SMTP_LONG_LINES)?,
            bare_lf: s.get(MAILBUS_SMTP_BARE_LF)?,
        },
        timeouts: Timeouts {
            command: s.get(MAILBUS_SMTP_COMMAND_TIMEOUT_SECS)?,
            data: s.get(MAILBUS_SMTP_DATA_TIMEOUT_SECS)?,
            min_data_rate: s.get(MAILBUS_SMTP_MIN_DATA_RATE)?,
            tls_handshake: s.get(MAILBUS_TLS_HANDSHAKE_TIMEOUT_SECS)?,
        },
        spool_dir: s.get(MAILBUS_SMTP_SPOOL_DIR)?,
        throttle: throttle_policy(s)?,
        rates: rate_policy(s)?,
        mx_caps: caps(s, MAILBUS_SMTP_MAX_CONNECTIONS, MAILBUS_SMTP_MAX_CONNECTIONS_PER_IP)?,
        submission_caps: caps(s, MAILBUS_SUBMISSION_MAX_CONNECTIONS, MAILBUS_SUBMISSION_MAX_CONNECTIONS_PER_IP)?,
        proxies: s.get(MAILBUS_PROXY_PROTOCOL_FROM)?,
        shutdown_grace: s.get(MAILBUS_SHUTDOWN_GRACE_SECS)?,
        nats_timeout: s.get(MAILBUS_NATS_TIMEOUT_MS)?,
        recipient_cache_ttl: s.get(MAILBUS_RECIPIENT_CACHE_SECS)?,
        auth: auth_policy(s)?,
        dns: dns_config(s)?,
    })
}

/// Our name in Authentication-Results: port 25 writes it, the relay's ARC seal repeats it.
fn authserv_id(s: &Settings) -> anyhow::Result<String> {
    Ok(match s.get(MAILBUS_AUTHSERV_ID)? {
        Some(id) => id,
        None => s.get(MAILBUS_HOSTNAME)?,
    })
}

/// SRS when its secret is set. An empty secret would sign every address with a key anyone knows, so it
/// fails start-up (its value is never printed).
fn srs(s: &Settings) -> anyhow::Result<Option<mailbus_srs::Srs>> {
    let max_age = s.get(MAILBUS_SRS_MAX_AGE_DAYS)?;
    match s.get(MAILBUS_SRS_SECRET)? {
        Some(secret) if secret.trim().is_empty() => bail!("MAILBUS_SRS_SECRET is empty: unset it to turn SRS off"),
        secret => Ok(secret.map(|secret| mailbus_srs::Srs::new(secret.as_bytes(), max_age))),
    }
}

pub fn dns_config(s: &Settings) -> anyhow::Result<DnsConfig> {
    Ok(DnsConfig { servers: s.get(MAILBUS_DNS_RESOLVER)?, timeout: s.get(MAILBUS_DNS_TIMEOUT_MS)? })
}

/// Port 25's sender authentication. DKIM and ARC have nothing to enforce, and DMARC is decided on SPF's
/// and DKIM's results, so it cannot run without them.
fn auth_policy(s: &Settings) -> anyhow::Result<AuthPolicy> {
    let (spf, dkim, arc, dmarc) = (
        s.get(MAILBUS_SPF_POLICY)?,
        s.get(MAILBUS_DKIM_POLICY)?,
        s.get(MAILBUS_ARC_POLICY)?,
        s.get(MAILBUS_DMARC_POLICY)?,
    );
    for (name, policy) in [(MAILBUS_DKIM_POLICY.name, dkim), (MAILBUS_ARC_POLICY.name, arc)] {
        if policy == Enforcement::Enforce {
            bail!(
                "{name}=enforce: a failed signature alone refuses nothing (RFC 6376 §6.3); set MAILBUS_DMARC_POLICY=enforce"
            );
        }
    }
    if dmarc.is_on() && !(spf.is_on() && dkim.is_on()) {
        bail!("MAILBUS_DMARC_POLICY={dmarc:?} needs MAILBUS_SPF_POLICY and MAILBUS_DKIM_POLICY on");
    }
    Ok(AuthPolicy {
        authserv_id: authserv_id(s)?,
        spf,
        dkim: dkim.is_on(),
        arc: arc.is_on(),
        dmarc,
        max_size: usize::try_from(s.get(MAILBUS_AUTH_VERIFY_MAX_SIZE)?)?,
        deadline: s.get(MAILBUS_AUTH_VERIFY_TIMEOUT_SECS)?,
    })
}

/// The TLS certificate from `MAILBUS_TLS_CERT` and `MAILBUS_TLS_KEY`, or, with neither set, a self-signed
/// one for the host name (as Postfix's "snakeoil" default): STARTTLS is always offered, and a warning says
/// that clients will not be able to verify it.
pub fn server_tls(s: &Settings, hostname: &str) -> anyhow::Result<ServerTls> {
    match (s.get(MAILBUS_TLS_CERT)?, s.get(MAILBUS_TLS_KEY)?) {
        (Some(cert), Some(key)) => Ok(ServerTls::from_pem_files(&cert, &key)?),
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
        tls_handshake_timeout: s.get(MAILBUS_TLS_HANDSHAKE_TIMEOUT_SECS)?,
        hostname: s.get(MAILBUS_HOSTNAME)?,
        mailbox_url: s.upstream(MAILBUS_MAILBOX_URL)?,
        nats_url: s.get(NATS_URL)?,
        names: nats_names(s)?,
        grpc_listen: s.get(MAILBUS_ACCESS_GRPC_LISTEN)?,
        metrics_listen: s.get(MAILBUS_ACCESS_METRICS_LISTEN)?,
        proxies: s.get(MAILBUS_PROXY_PROTOCOL_FROM)?,
        throttle: throttle_policy(s)?,
        imap: ImapConfig {
            session: SessionPolicy {
                listen: s.get(MAILBUS_IMAP_LISTEN)?,
                tls_listen: s.get(MAILBUS_IMAPS_LISTEN)?,
                caps: caps(s, MAILBUS_IMAP_MAX_CONNECTIONS, MAILBUS_IMAP_MAX_CONNECTIONS_PER_IP)?,
                plaintext_auth: s.get(MAILBUS_IMAP_PLAINTEXT_AUTH)?,
                login_timeout: s.get(MAILBUS_IMAP_LOGIN_TIMEOUT_SECS)?,
                idle_timeout: s.get(MAILBUS_IMAP_IDLE_TIMEOUT_SECS)?,
                max_auth_failures: s.get(MAILBUS_IMAP_MAX_AUTH_FAILURES)?,
            },
            max_user_connections: s.get(MAILBUS_IMAP_MAX_USER_CONNECTIONS)?,
            max_message_size: s.get(MAILBUS_MAX_MESSAGE_SIZE)?,
        },
        pop3: Pop3Config {
            session: SessionPolicy {
                listen: s.get(MAILBUS_POP3_LISTEN)?,
                tls_listen: s.get(MAILBUS_POP3S_LISTEN)?,
                caps: caps(s, MAILBUS_POP3_MAX_CONNECTIONS, MAILBUS_POP3_MAX_CONNECTIONS_PER_IP)?,
                plaintext_auth: s.get(MAILBUS_POP3_PLAINTEXT_AUTH)?,
                login_timeout: s.get(MAILBUS_POP3_LOGIN_TIMEOUT_SECS)?,
                idle_timeout: s.get(MAILBUS_POP3_IDLE_TIMEOUT_SECS)?,
                max_auth_failures: s.get(MAILBUS_POP3_MAX_AUTH_FAILURES)?,
            },
            delete_policy: s.get(MAILBUS_POP3_DELETE)?,
            lock_ttl: s.get(MAILBUS_POP3_LOCK_TTL_SECS)?,
        },
        managesieve: ManageSieveConfig {
            session: SessionPolicy {
                listen: s.get(MAILBUS_MANAGESIEVE_LISTEN)?,
                tls_listen: None,
                caps: caps(s, MAILBUS_MANAGESIEVE_MAX_CONNECTIONS, MAILBUS_MANAGESIEVE_MAX_CONNECTIONS_PER_IP)?,
                plaintext_auth: s.get(MAILBUS_MANAGESIEVE_PLAINTEXT_AUTH)?,
                login_timeout: s.get(MAILBUS_MANAGESIEVE_LOGIN_TIMEOUT_SECS)?,
                idle_timeout: s.get(MAILBUS_MANAGESIEVE_IDLE_TIMEOUT_SECS)?,
                max_auth_failures: s.get(MAILBUS_MANAGESIEVE_MAX_AUTH_FAILURES)?,
            },
            max_redirects: s.get(MAILBUS_SIEVE_MAX_REDIRECTS)?,
        },
    })
}

/// The http role's configuration, presenting `tls` on its HTTPS listener.
pub fn http_config(s: &Settings, tls: ServerTls) -> anyhow::Result<HttpConfig> {
    let max_message_size = s.get(MAILBUS_MAX_MESSAGE_SIZE)?;
    Ok(HttpConfig {
        tls,
        hostname: s.get(MAILBUS_HOSTNAME)?,
        mailbox_url: s.upstream(MAILBUS_MAILBOX_URL)?,
        nats_url: s.get(NATS_URL)?,
        names: nats_names(s)?,
        listen: s.get(MAILBUS_HTTP_LISTEN)?,
        tls_listen: s.get(MAILBUS_HTTPS_LISTEN)?,
        metrics_listen: s.get(MAILBUS_HTTP_METRICS_LISTEN)?,
        proxies: s.get(MAILBUS_PROXY_PROTOCOL_FROM)?,
        cors_origins: s.get(MAILBUS_HTTP_CORS_ORIGINS)?,
        public_url: s.get(MAILBUS_HTTP_PUBLIC_URL)?,
        limits: Limits {
            max_size_upload: s.get(MAILBUS_JMAP_MAX_UPLOAD_SIZE)?.unwrap_or(max_message_size),
            max_size_request: s.get(MAILBUS_JMAP_MAX_REQUEST_SIZE)?,
            max_message_size,
            max_recipients: s.get(MAILBUS_MAX_RECIPIENTS)?,
        },
        token_ttl: s.get(MAILBUS_HTTP_TOKEN_TTL_SECS)?,
        webmail_session_ttl: s.get(MAILBUS_WEBMAIL_SESSION_TTL_SECS)?,
        throttle: throttle_policy(s)?,
        rates: rate_policy(s)?,
        nats_timeout: s.get(MAILBUS_NATS_TIMEOUT_MS)?,
    })
}

fn caps(s: &Settings, total: Setting<usize>, per_address: Setting<usize>) -> anyhow::Result<Caps> {
    Ok(Caps { total: s.get(total)?, per_address: s.get(per_address)? })
}

/// The failed-login rules every protocol shares.
fn throttle_policy(s: &Settings) -> anyhow::Result<ThrottlePolicy> {
    Ok(ThrottlePolicy {
        delay: s.get(MAILBUS_AUTH_FAILURE_DELAY_MS)?,
        max_failures_per_address: s.get(MAILBUS_AUTH_MAX_FAILURES_PER_IP)?,
        window: s.get(MAILBUS_AUTH_FAILURE_WINDOW_SECS)?,
    })
}

/// The submission rate limits SMTP submission and JMAP share.
fn rate_policy(s: &Settings) -> anyhow::Result<RatePolicy> {
    Ok(RatePolicy {
        window: s.get(MAILBUS_SUBMISSION_RATE_WINDOW_SECS)?,
        messages_per_account: s.get(MAILBUS_SUBMISSION_MAX_MESSAGES_PER_ACCOUNT)?,
        recipients_per_account: s.get(MAILBUS_SUBMISSION_MAX_RECIPIENTS_PER_ACCOUNT)?,
        messages_per_address: s.get(MAILBUS_SUBMISSION_MAX_MESSAGES_PER_IP)?,
        recipients_per_account_per_day: s.get(MAILBUS_SUBMISSION_MAX_RECIPIENTS_PER_DAY)?,
    })
}

/// Roles with their listeners bound, not yet serving.
#[derive(Default)]
pub struct Bound {
    pub mailbox: Option<Mailbox>,
    pub relay: Option<Relay>,
    pub smtp: Option<SmtpIngress>,
    pub access: Option<Access>,
    pub http: Option<Http>,
}

/// Binds `roles`. The mailbox role goes first (it runs the migrations), and when it is among them the
/// others call it at the address it actually bound, so port 0 works.
pub async fn bind(roles: &[Role], settings: &Settings) -> anyhow::Result<Bound> {
    let mut settings = settings.clone();
    let mut bound = Bound::default();
    if roles.contains(&Role::Mailbox) {
        let mailbox = mailbus_mailbox::bind(mailbox_config(&settings)?).await.context("starting the mailbox role")?;
        settings.set(MAILBUS_MAILBOX_URL.name, &format!("http://{}", loopback(mailbox.grpc_addr())));
        bound.mailbox = Some(mailbox);
    }
    if roles.contains(&Role::Relay) {
        bound.relay = Some(mailbus_relay::bind(relay_config(&settings)?).await.context("starting the relay role")?);
    }
    // One certificate for the process: a generated one is made once, so SMTP, IMAP and POP3 present the
    // same one (a client that pinned it on one port finds it on the others).
    let tls = match roles.iter().any(|r| matches!(r, Role::SmtpIngress | Role::Access | Role::Http)) {
        true => Some(server_tls(&settings, &settings.get(MAILBUS_HOSTNAME)?)?),
        false => None,
    };
    if let (true, Some(tls)) = (roles.contains(&Role::SmtpIngress), &tls) {
        let config = smtp_config(&settings, tls.clone())?;
        bound.smtp = Some(mailbus_smtp_ingress::bind(config).await.context("starting the smtp-ingress role")?);
    }
    if let (true, Some(tls)) = (roles.contains(&Role::Access), &tls) {
        let config = access_config(&settings, tls.clone())?;
        bound.access = Some(mailbus_access::bind(config).await.context("starting the access role")?);
    }
    if let (true, Some(tls)) = (roles.contains(&Role::Http), tls) {
        let config = http_config(&settings, tls)?;
        bound.http = Some(mailbus_http::bind(config).await.context("starting the http role")?);
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
        if let Some(role) = self.http {
            let s = shutdown.clone();
            tasks.spawn(async move { role.serve(s).await.context("http role") });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    #[test]
    fn srs_is_off_unset_on_with_a_secret_and_an_empty_secret_fails_without_showing_it() {
        assert!(relay_config(&settings(&[])).unwrap().srs.is_none());
        let relay = relay_config(&settings(&[("MAILBUS_SRS_SECRET", "s3cret")])).unwrap();
        let srs = relay.srs.expect("SRS on");
        assert!(srs.forward("a@origin.example", "example.org", 0).starts_with("SRS0="));
        assert!(!format!("{srs:?}").contains("s3cret"));
        let error = relay_config(&settings(&[("MAILBUS_SRS_SECRET", "  ")])).unwrap_err().to_string();
        assert_eq!(error, "MAILBUS_SRS_SECRET is empty: unset it to turn SRS off");
    }

    #[test]
    fn sender_authentication_defaults_to_tagging_under_the_host_name() {
        let policy = auth_policy(&settings(&[("MAILBUS_HOSTNAME", "mx.example.org")])).unwrap();
        assert_eq!(policy.authserv_id, "mx.example.org");
        assert_eq!((policy.spf, policy.dmarc), (Enforcement::Tag, Enforcement::Tag));
        assert!(policy.dkim && policy.arc);
        let policy = auth_policy(&settings(&[("MAILBUS_AUTHSERV_ID", "auth.example.org")])).unwrap();
        assert_eq!(policy.authserv_id, "auth.example.org");
    }

    #[test]
    fn sender_authentication_settings_that_cannot_work_fail_naming_themselves() {
        let error = auth_policy(&settings(&[("MAILBUS_DKIM_POLICY", "enforce")])).unwrap_err().to_string();
        assert!(error.contains("MAILBUS_DKIM_POLICY=enforce"), "{error}");
        let error = auth_policy(&settings(&[("MAILBUS_SPF_POLICY", "off")])).unwrap_err().to_string();
        assert!(error.contains("MAILBUS_DMARC_POLICY"), "{error}");
        let off = [("MAILBUS_SPF_POLICY", "off"), ("MAILBUS_DMARC_POLICY", "off"), ("MAILBUS_DKIM_POLICY", "off")];
        assert!(auth_policy(&settings(&off)).is_ok());
        assert!(
            Settings::from_pairs([("MAILBUS_SPF_POLICY".to_owned(), "reject".to_owned())])
                .unwrap()
                .get(MAILBUS_SPF_POLICY)
                .is_err()
        );
    }

    #[test]
    fn the_dns_resolver_setting_reaches_relay_and_smtp_ingress_alike() {
        let s = settings(&[("MAILBUS_DNS_RESOLVER", "127.0.0.1:5353"), ("MAILBUS_DNS_TIMEOUT_MS", "250")]);
        let relay = relay_config(&s).unwrap();
        assert_eq!(relay.dns.servers.to_string(), "127.0.0.1:5353");
        assert_eq!(relay.dns.timeout, std::time::Duration::from_millis(250));
        assert_eq!(dns_config(&s).unwrap(), relay.dns);
    }
}
