//! `mailbus dev`: the whole system on this machine with nothing installed but PostgreSQL's server
//! binaries and nats-server. It starts a throwaway PostgreSQL and nats-server (unless `DATABASE_URL` /
//! `NATS_URL` point at real ones), runs every role on unprivileged loopback ports, creates a demo
//! domain and account, and says how to connect.

use std::net::SocketAddr;

use anyhow::Context;
use mailbus_devstack::{Nats, Postgres, free_port};
use mailbus_proto::v1::{self as pb, directory_client::DirectoryClient};
use tokio_util::sync::CancellationToken;

use crate::roles::{self, Role};
use crate::settings::*;

const DEMO_DOMAIN: &str = "example.test";
const DEMO_ACCOUNT: &str = "demo@example.test";
const DEMO_PASSWORD: &str = "demo";

/// Unprivileged loopback defaults, unless the environment says otherwise.
const DEV_DEFAULTS: &[(&str, &str)] = &[
    (MAILBUS_SMTP_LISTEN.name, "127.0.0.1:2525"),
    (MAILBUS_SUBMISSION_LISTEN.name, "127.0.0.1:5870"),
    (MAILBUS_SUBMISSIONS_LISTEN.name, "127.0.0.1:4650"),
    (MAILBUS_IMAP_LISTEN.name, "127.0.0.1:1143"),
    (MAILBUS_IMAPS_LISTEN.name, "127.0.0.1:9930"),
    (MAILBUS_POP3_LISTEN.name, "127.0.0.1:1110"),
    (MAILBUS_POP3S_LISTEN.name, "127.0.0.1:9950"),
    (MAILBUS_MAILBOX_GRPC_LISTEN.name, "127.0.0.1:50051"),
    (MAILBUS_RELAY_GRPC_LISTEN.name, "127.0.0.1:50052"),
    (MAILBUS_SMTP_GRPC_LISTEN.name, "127.0.0.1:50053"),
    (MAILBUS_ACCESS_GRPC_LISTEN.name, "127.0.0.1:50054"),
    (MAILBUS_SMTP_METRICS_LISTEN.name, "127.0.0.1:9101"),
    (MAILBUS_RELAY_METRICS_LISTEN.name, "127.0.0.1:9102"),
    (MAILBUS_MAILBOX_METRICS_LISTEN.name, "127.0.0.1:9103"),
    (MAILBUS_ACCESS_METRICS_LISTEN.name, "127.0.0.1:9104"),
    (MAILBUS_HTTP_LISTEN.name, "127.0.0.1:8080"),
    (MAILBUS_HTTPS_LISTEN.name, "127.0.0.1:8443"),
    (MAILBUS_HTTP_METRICS_LISTEN.name, "127.0.0.1:9105"),
    (MAILBUS_HOSTNAME.name, "mail.example.test"),
];

/// Servers started for this run; they stop when this is dropped.
struct Provisioned {
    _postgres: Option<Postgres>,
    _nats: Option<Nats>,
    _dir: tempfile::TempDir,
}

fn provision(settings: &mut Settings) -> anyhow::Result<Provisioned> {
    let dir = tempfile::Builder::new().prefix("mailbus-dev-").tempdir()?;
    let postgres = if !settings.is_set(DATABASE_URL) {
        let postgres = Postgres::start(&dir.path().join("postgres"), free_port()?).context("starting PostgreSQL")?;
        settings.set(DATABASE_URL.name, &postgres.url("postgres"));
        Some(postgres)
    } else {
        None
    };
    let nats = if std::env::var_os(NATS_URL.name).is_none() {
        let nats = Nats::start(&dir.path().join("nats"), free_port()?).context("starting nats-server")?;
        settings.set(NATS_URL.name, &nats.url());
        Some(nats)
    } else {
        None
    };
    Ok(Provisioned { _postgres: postgres, _nats: nats, _dir: dir })
}

pub async fn run(mut settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    for (name, value) in DEV_DEFAULTS {
        settings.default_to(name, value);
    }
    // Provisioning blocks (initdb, waiting for ports): keep it off the async workers.
    let (settings, provisioned) = tokio::task::spawn_blocking(move || {
        let provisioned = provision(&mut settings)?;
        anyhow::Ok((settings, provisioned))
    })
    .await??;
    let bound = roles::bind(&Role::ALL, &settings).await?;
    let mailbox_url = format!("http://{}", bound.mailbox.as_ref().map(|m| m.grpc_addr()).context("mailbox not bound")?);
    let serving = tokio::spawn(bound.serve(shutdown.clone()));
    create_demo(&mailbox_url).await?;
    let smtp = settings.get(MAILBUS_SMTP_LISTEN)?;
    let submission = shown(settings.get(MAILBUS_SUBMISSION_LISTEN)?);
    let submissions = shown(settings.get(MAILBUS_SUBMISSIONS_LISTEN)?);
    let imap = settings.get(MAILBUS_IMAP_LISTEN)?;
    let imaps = shown(settings.get(MAILBUS_IMAPS_LISTEN)?);
    let pop3 = settings.get(MAILBUS_POP3_LISTEN)?;
    let pop3s = shown(settings.get(MAILBUS_POP3S_LISTEN)?);
    let jmap = settings.get(MAILBUS_HTTP_LISTEN)?;
    let jmaps = shown(settings.get(MAILBUS_HTTPS_LISTEN)?);
    println!(
        "\nmailbus is running (Ctrl-C stops it)\n\
         \n  SMTP    {smtp}   e.g. swaks --server {smtp} --to {DEMO_ACCOUNT}\
         \n  submission {submission} (STARTTLS) and {submissions} (TLS): AUTH as {DEMO_ACCOUNT} / {DEMO_PASSWORD}\
         \n  IMAP    {imap} (STARTTLS) and {imaps} (TLS)   user {DEMO_ACCOUNT}, password {DEMO_PASSWORD}\
         \n  POP3    {pop3} (STLS) and {pop3s} (TLS)   user {DEMO_ACCOUNT}, password {DEMO_PASSWORD}\
         \n  JMAP    http://{jmap}/.well-known/jmap and https://{jmaps}/.well-known/jmap   Basic {DEMO_ACCOUNT} / {DEMO_PASSWORD}\
         \n  gRPC    {mailbox_url} (Directory, Mailbox, Jmap)\
         \n  metrics http://{} http://{} http://{} http://{} http://{}\
         \n  admin   MAILBUS_MAILBOX_URL={mailbox_url} mailbus admin account list\n",
        settings.get(MAILBUS_SMTP_METRICS_LISTEN)?,
        settings.get(MAILBUS_RELAY_METRICS_LISTEN)?,
        settings.get(MAILBUS_MAILBOX_METRICS_LISTEN)?,
        settings.get(MAILBUS_ACCESS_METRICS_LISTEN)?,
        settings.get(MAILBUS_HTTP_METRICS_LISTEN)?,
    );
    let result = serving.await.context("roles task panicked")?;
    drop(provisioned);
    result
}

/// A listener that may be `off`, as its setting says it.
fn shown(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "off".to_owned(), |addr| addr.to_string())
}

/// Creates the demo domain and account; both may exist already when `DATABASE_URL` is reused.
async fn create_demo(mailbox_url: &str) -> anyhow::Result<()> {
    let mut directory = DirectoryClient::new(mailbus_grpc::connect(mailbox_url)?);
    let exists = |status: &tonic::Status| status.code() == tonic::Code::AlreadyExists;
    if let Err(status) = directory.add_domain(pb::AddDomainRequest { name: DEMO_DOMAIN.into() }).await
        && !exists(&status)
    {
        return Err(status).context("creating the demo domain");
    }
    let account = pb::AddAccountRequest { address: DEMO_ACCOUNT.into(), password: DEMO_PASSWORD.into() };
    if let Err(status) = directory.add_account(account).await
        && !exists(&status)
    {
        return Err(status).context("creating the demo account");
    }
    Ok(())
}
