//! Turning settings into role configurations, and binding and serving any set of roles in one process.

use std::net::SocketAddr;

use anyhow::Context;
use mailbus_access::{Access, AccessConfig};
use mailbus_mailbox::{Mailbox, MailboxConfig};
use mailbus_relay::{Relay, RelayConfig};
use mailbus_smtp_ingress::{SmtpConfig, SmtpIngress};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

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
        max_message_size: s.parse("MAILBUS_MAX_MESSAGE_SIZE")?,
        max_db_connections: s.parse("MAILBUS_DB_MAX_CONNECTIONS")?,
    })
}

pub fn relay_config(s: &Settings) -> anyhow::Result<RelayConfig> {
    Ok(RelayConfig {
        nats_url: s.string("NATS_URL")?,
        names: s.names()?,
        mailbox_url: s.string("MAILBUS_MAILBOX_URL")?,
        grpc_listen: s.addr("MAILBUS_RELAY_GRPC_LISTEN")?,
        metrics_listen: s.addr("MAILBUS_RELAY_METRICS_LISTEN")?,
        ack_wait: s.secs("MAILBUS_RELAY_ACK_WAIT_SECS")?,
        concurrency: s.parse("MAILBUS_RELAY_CONCURRENCY")?,
        nats_timeout: s.millis("MAILBUS_NATS_TIMEOUT_MS")?,
    })
}

pub fn smtp_config(s: &Settings) -> anyhow::Result<SmtpConfig> {
    Ok(SmtpConfig {
        hostname: s.hostname(),
        nats_url: s.string("NATS_URL")?,
        names: s.names()?,
        mailbox_url: s.string("MAILBUS_MAILBOX_URL")?,
        smtp_listen: s.addr("MAILBUS_SMTP_LISTEN")?,
        grpc_listen: s.addr("MAILBUS_SMTP_GRPC_LISTEN")?,
        metrics_listen: s.addr("MAILBUS_SMTP_METRICS_LISTEN")?,
        max_message_size: s.parse("MAILBUS_MAX_MESSAGE_SIZE")?,
        max_recipients: s.parse("MAILBUS_MAX_RECIPIENTS")?,
        max_connections: s.parse("MAILBUS_SMTP_MAX_CONNECTIONS")?,
        nats_timeout: s.millis("MAILBUS_NATS_TIMEOUT_MS")?,
    })
}

pub fn access_config(s: &Settings) -> anyhow::Result<AccessConfig> {
    Ok(AccessConfig {
        hostname: s.hostname(),
        mailbox_url: s.string("MAILBUS_MAILBOX_URL")?,
        pop3_listen: s.addr("MAILBUS_POP3_LISTEN")?,
        grpc_listen: s.addr("MAILBUS_ACCESS_GRPC_LISTEN")?,
        metrics_listen: s.addr("MAILBUS_ACCESS_METRICS_LISTEN")?,
        max_connections: s.parse("MAILBUS_POP3_MAX_CONNECTIONS")?,
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
    if roles.contains(&Role::SmtpIngress) {
        bound.smtp =
            Some(mailbus_smtp_ingress::bind(smtp_config(&settings)?).await.context("starting the smtp-ingress role")?);
    }
    if roles.contains(&Role::Access) {
        bound.access = Some(mailbus_access::bind(access_config(&settings)?).await.context("starting the access role")?);
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
