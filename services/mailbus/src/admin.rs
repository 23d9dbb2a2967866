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
    }
    Ok(())
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        Code::AlreadyExists => AlreadyExists(status.message().to_owned()).into(),
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
