//! `mailbus admin`: the operator's commands, as calls to the mailbox role's Directory API. Exit codes
//! are for scripts: 0 done, 1 failed, 3 already exists (so "create if missing" scripts can tell).

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use mailbus_proto::v1::{self as pb, directory_client::DirectoryClient};
use tonic::Code;

use crate::settings::Settings;

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Hosted domains.
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Mail accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// The mail queue, at the relay role's MAILBUS_RELAY_URL.
    #[command(subcommand)]
    Queue(QueueCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum QueueCommand {
    /// Every queued message with its recipients' states (`postqueue -p`).
    List,
    /// One message in full.
    Show { queue_id: String },
    /// Attempt delivery now (`postqueue -i`).
    Retry(Target),
    /// Stop delivery attempts until released (`postsuper -h`).
    Hold(Target),
    /// Undo a hold and attempt delivery now (`postsuper -H`).
    Release(Target),
    /// Remove the message, without a bounce (`postsuper -d`).
    Delete(Target),
    /// Fail every pending recipient and send the sender a DSN.
    Bounce(Target),
}

#[derive(Debug, clap::Args)]
pub struct Target {
    /// The queue id, as `queue list` shows it.
    #[arg(required_unless_present = "all")]
    queue_id: Option<String>,
    /// Every message in the queue.
    #[arg(long, conflicts_with = "queue_id")]
    all: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum DomainCommand {
    /// Start hosting a domain.
    Add { name: String },
    /// List hosted domains.
    List,
}

#[derive(Debug, clap::Subcommand)]
pub enum AccountCommand {
    /// Create an account. The password is read from standard input (first line) or, on a terminal,
    /// prompted for twice; it is never taken from the command line, where `ps` would show it.
    Add { address: String },
    /// List accounts, with their message counts and sizes.
    List {
        /// Only this domain's accounts.
        #[arg(long)]
        domain: Option<String>,
    },
}

/// Exit code for "it already exists".
pub const EXIT_EXISTS: u8 = 3;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AlreadyExists(String);

pub async fn run(command: AdminCommand, settings: &Settings) -> anyhow::Result<()> {
    let url = settings.string("MAILBUS_MAILBOX_URL")?;
    let mut directory = DirectoryClient::new(mailbus_grpc::connect(&url)?);
    match command {
        AdminCommand::Domain(DomainCommand::Add { name }) => {
            let domain = directory.add_domain(pb::AddDomainRequest { name }).await.map_err(status_error)?.into_inner();
            println!("domain {} added", domain.name);
        }
        AdminCommand::Domain(DomainCommand::List) => {
            let domains = directory.list_domains(pb::ListDomainsRequest {}).await.map_err(status_error)?.into_inner();
            print_table(&["DOMAIN"], domains.domains.into_iter().map(|d| vec![d.name]).collect());
        }
        AdminCommand::Account(AccountCommand::Add { address }) => {
            let password = read_password()?;
            let request = pb::AddAccountRequest { address, password };
            let account = directory.add_account(request).await.map_err(status_error)?.into_inner();
            println!("account {} added (id {})", account.address, account.id);
        }
        AdminCommand::Account(AccountCommand::List { domain }) => {
            let request = pb::ListAccountsRequest { domain: domain.unwrap_or_default() };
            let accounts = directory.list_accounts(request).await.map_err(status_error)?.into_inner();
            let rows = accounts
                .accounts
                .into_iter()
                .map(|a| {
                    let state = if a.disabled { "disabled" } else { "active" };
                    vec![
                        a.address,
                        a.id.to_string(),
                        state.into(),
                        a.message_count.to_string(),
                        a.storage_bytes.to_string(),
                    ]
                })
                .collect();
            print_table(&["ADDRESS", "ID", "STATE", "MESSAGES", "BYTES"], rows);
        }
        AdminCommand::Queue(command) => return queue(command, settings).await,
    }
    Ok(())
}

async fn queue(command: QueueCommand, settings: &Settings) -> anyhow::Result<()> {
    use pb::queue_admin_client::QueueAdminClient;
    let mut admin = QueueAdminClient::new(mailbus_grpc::connect(&settings.string("MAILBUS_RELAY_URL")?)?);
    let (change, target) = match command {
        QueueCommand::List => return print_queue(&mut admin, String::new(), false).await,
        QueueCommand::Show { queue_id } => return print_queue(&mut admin, queue_id, true).await,
        QueueCommand::Retry(t) => (pb::QueueChange::Retry, t),
        QueueCommand::Hold(t) => (pb::QueueChange::Hold, t),
        QueueCommand::Release(t) => (pb::QueueChange::Release, t),
        QueueCommand::Delete(t) => (pb::QueueChange::Delete, t),
        QueueCommand::Bounce(t) => (pb::QueueChange::Bounce, t),
    };
    let request = pb::ChangeQueueRequest {
        change: change.into(),
        queue_id: target.queue_id.unwrap_or_default(),
        all: target.all,
    };
    let changed = admin.change_queue(request).await.map_err(status_error)?.into_inner().changed;
    println!("{} message(s): {}", changed.len(), changed.join(" "));
    Ok(())
}

async fn print_queue(
    admin: &mut pb::queue_admin_client::QueueAdminClient<mailbus_grpc::TracedChannel>,
    queue_id: String,
    full: bool,
) -> anyhow::Result<()> {
    let wanted = queue_id.clone();
    let messages =
        admin.list_queue(pb::ListQueueRequest { queue_id }).await.map_err(status_error)?.into_inner().messages;
    if messages.is_empty() && !wanted.is_empty() {
        anyhow::bail!("no message {wanted} in the queue");
    }
    for message in messages {
        let Some(e) = message.envelope else { continue };
        let state = if e.held {
            "held".to_owned()
        } else if e.next_attempt_unix_ms > chrono::Utc::now().timestamp_millis() {
            format!("next attempt {}", unix_ms(e.next_attempt_unix_ms))
        } else {
            "due".to_owned()
        };
        let sender = if e.mail_from.is_empty() { "<>" } else { e.mail_from.as_str() };
        println!(
            "{}  {:>8}  {}  {sender}  attempts {}  {state}",
            e.queue_id,
            e.size,
            unix_ms(e.arrival_unix_ms),
            e.attempts
        );
        for r in &e.recipients {
            let status = r.status().as_str_name().trim_start_matches("RECIPIENT_STATUS_").to_lowercase();
            let error = if r.last_error.is_empty() { String::new() } else { format!("  ({})", r.last_error) };
            println!("    {:<40} {status}{error}", r.address);
        }
        if full {
            println!(
                "    body {}  sequence {}  envid {:?}  ret {:?}",
                e.body_key,
                message.sequence,
                e.dsn_envid,
                e.dsn_ret()
            );
        }
    }
    Ok(())
}

fn unix_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        Code::AlreadyExists => AlreadyExists(status.message().to_owned()).into(),
        Code::NotFound => anyhow::anyhow!("{}", status.message()),
        Code::Unavailable => anyhow::anyhow!("mailbox role unavailable: {}", status.message()),
        _ => anyhow::anyhow!("{}", status.message()),
    }
}

fn read_password() -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password: ").context("reading the password")?;
        let second = rpassword::prompt_password("again: ").context("reading the password")?;
        if first != second {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        bail!("the password must not be empty");
    }
    Ok(password)
}

fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
