//! `mailbus admin`: the operator's commands, as calls to the mailbox role's Directory API (its DkimKeys
//! API for `dkim`, and its Mailbox API for `mail`, in `mail/`). Exit codes
//! are for scripts: 0 done, 1 failed, 3 already exists (so "create if missing" scripts can tell).

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use mailbus_proto::v1::{self as pb, directory_client::DirectoryClient};
use tonic::Code;

use crate::settings::{MAILBUS_MAILBOX_URL, MAILBUS_RELAY_URL, Settings};

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Hosted domains.
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Mail accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Aliases: addresses (or a domain's catch-all, `@domain`) that lead to accounts.
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Per-account storage and message-count limits.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// The mail queue, at the relay role's MAILBUS_RELAY_URL.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// An account's mail: import and export (Maildir, mbox), search, fetch, expunge, stats.
    #[command(subcommand)]
    Mail(crate::mail::MailCommand),
    /// DKIM signing keys of the hosted domains (RFC 6376).
    #[command(subcommand)]
    Dkim(DkimCommand),
    /// The JetStream half of a backup (NATS_URL, MAILBUS_NATS_PREFIX): the queue, its consumer's
    /// state, dead letters, bodies and buckets. `deploy/backup` pairs it with pg_dump.
    #[command(subcommand)]
    Nats(NatsCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum NatsCommand {
    /// Snapshot every stream of the prefix into a directory (created), through the server's snapshot
    /// API, while mailbus runs. Take it BEFORE pg_dump: mail delivered in between is then in the
    /// database, and its repeated delivery after a restore is recognised and dropped.
    Backup { dir: std::path::PathBuf },
    /// Restore the streams of a backup directory into a NATS where this prefix has no streams yet:
    /// before the roles start, which would create empty ones.
    Restore { dir: std::path::PathBuf },
}

#[derive(Debug, clap::Subcommand)]
pub enum DkimCommand {
    /// Make a new key and print the DNS TXT record to publish. A domain's first key of an algorithm
    /// signs at once; a later one (the next key of a rotation) waits, published, for `activate`.
    Generate {
        domain: String,
        /// rsa (rsa-sha256, 2048 bits: every receiver verifies it) or ed25519 (RFC 8463).
        #[arg(long, default_value = "rsa", value_parser = ["rsa", "ed25519"])]
        algorithm: String,
        /// The selector (`<selector>._domainkey.<domain>`); default: the algorithm and today's date.
        #[arg(long)]
        selector: Option<String>,
    },
    /// The keys with their state and DNS record.
    List {
        /// Only this domain's keys.
        domain: Option<String>,
    },
    /// Sign with this key from now on (publish its record first); the domain's previous active key of
    /// the same algorithm stops signing and stays published.
    Activate { domain: String, selector: String },
    /// Stop signing with and needing this key; its DNS record can go once mail signed with it is delivered.
    Retire { domain: String, selector: String },
    /// Delete the key for good.
    Remove { domain: String, selector: String },
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
    /// Stop hosting a domain (and drop its DKIM keys). Refused while it holds accounts or aliases.
    Remove {
        name: String,
        /// Remove its accounts and aliases too. Each account goes with ALL ITS MAIL, as `account remove`
        /// does (export it first to keep it), and out of other domains' aliases. Nothing asks to confirm.
        #[arg(long)]
        force: bool,
    },
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
    /// Set a new password, read as for `add`. It takes effect at the next login.
    Passwd { address: String },
    /// Refuse logins and mail for the account (mail to it is answered 550 5.1.1), keeping its mail.
    Disable { address: String },
    /// Undo `disable`.
    Enable { address: String },
    /// Delete the account with all its mail, and take it out of aliases.
    Remove { address: String },
    /// Give an account a new address, keeping its mail (messages, flags, UIDs, UIDVALIDITY), password,
    /// quota, Sieve scripts and the aliases that lead to it. Refused when the new address is already an
    /// account's or an alias's. Mail to the old address is refused afterwards: add an alias from it to
    /// keep it arriving.
    Rename { address: String, new_address: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum AliasCommand {
    /// Create an alias, or add targets to an existing one.
    Add {
        /// An address of a hosted domain, or `@domain` for the domain's catch-all.
        address: String,
        /// The accounts it leads to, or addresses in other domains to forward to.
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Remove the named targets of an alias, or the whole alias when none is named.
    Remove { address: String, targets: Vec<String> },
    /// List aliases and where they lead.
    List {
        #[arg(long)]
        domain: Option<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum QuotaCommand {
    /// Set an account's limits: sizes like 500M or 2G (powers of 1024), counts as numbers; `none` removes
    /// a limit. A limit not named stays as it is.
    Set {
        address: String,
        #[arg(long, value_parser = parse_size)]
        storage: Option<u64>,
        #[arg(long, value_parser = parse_count)]
        messages: Option<u64>,
    },
    /// Usage against the limits, per account.
    Show {
        /// Only this domain's accounts.
        #[arg(long)]
        domain: Option<String>,
    },
}

/// A size in octets, with an optional K/M/G/T suffix in powers of 1024; `none` is 0, "no limit".
fn parse_size(text: &str) -> Result<u64, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(0);
    }
    let upper = text.trim().to_ascii_uppercase();
    let digits = upper.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = match &upper[digits.len()..] {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        other => return Err(format!("unknown unit {other:?}; use K, M, G or T")),
    };
    let number: u64 = digits.parse().map_err(|_| format!("{text:?} is not a size"))?;
    number.checked_mul(unit).ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_count(text: &str) -> Result<u64, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(0);
    }
    text.parse().map_err(|_| format!("{text:?} is not a number"))
}

/// Exit code for "it already exists".
pub const EXIT_EXISTS: u8 = 3;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AlreadyExists(String);

pub async fn run(command: AdminCommand, settings: &Settings) -> anyhow::Result<()> {
    let url = settings.upstream(MAILBUS_MAILBOX_URL)?;
    let mut directory = DirectoryClient::new(mailbus_grpc::connect_upstream(&url));
    match command {
        AdminCommand::Domain(DomainCommand::Add { name }) => {
            let domain = directory.add_domain(pb::AddDomainRequest { name }).await.map_err(status_error)?.into_inner();
            println!("domain {} added", domain.name);
        }
        AdminCommand::Domain(DomainCommand::List) => {
            let domains = directory.list_domains(pb::ListDomainsRequest {}).await.map_err(status_error)?.into_inner();
            print_table(&["DOMAIN"], domains.domains.into_iter().map(|d| vec![d.name]).collect());
        }
        AdminCommand::Domain(DomainCommand::Remove { name, force }) => {
            let request = pb::RemoveDomainRequest { name: name.clone(), force };
            let removed = directory.remove_domain(request).await.map_err(status_error)?.into_inner();
            println!(
                "domain {name} removed, with {} account(s) and {} alias(es)",
                removed.accounts_removed, removed.aliases_removed
            );
        }
        AdminCommand::Account(AccountCommand::Rename { address, new_address }) => {
            let request = pb::RenameAccountRequest { address: address.clone(), new_address };
            let account = directory.rename_account(request).await.map_err(status_error)?.into_inner();
            println!("account {address} renamed to {} (id {})", account.address, account.id);
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
        AdminCommand::Account(AccountCommand::Passwd { address }) => {
            let password = read_password()?;
            let request = pb::UpdateAccountRequest { address, password: Some(password), ..Default::default() };
            let account = directory.update_account(request).await.map_err(status_error)?.into_inner();
            println!("password of {} changed", account.address);
        }
        AdminCommand::Account(AccountCommand::Disable { address }) => {
            set_disabled(&mut directory, address, true).await?
        }
        AdminCommand::Account(AccountCommand::Enable { address }) => {
            set_disabled(&mut directory, address, false).await?
        }
        AdminCommand::Account(AccountCommand::Remove { address }) => {
            directory
                .remove_account(pb::RemoveAccountRequest { address: address.clone() })
                .await
                .map_err(status_error)?;
            println!("account {address} removed");
        }
        AdminCommand::Alias(AliasCommand::Add { address, targets }) => {
            let alias =
                directory.add_alias(pb::AddAliasRequest { address, targets }).await.map_err(status_error)?.into_inner();
            println!("alias {} -> {}", alias.address, alias.targets.join(", "));
        }
        AdminCommand::Alias(AliasCommand::Remove { address, targets }) => {
            let request = pb::RemoveAliasRequest { address: address.clone(), targets: targets.clone() };
            directory.remove_alias(request).await.map_err(status_error)?;
            if targets.is_empty() {
                println!("alias {address} removed");
            } else {
                println!("alias {address}: removed {}", targets.join(", "));
            }
        }
        AdminCommand::Alias(AliasCommand::List { domain }) => {
            let request = pb::ListAliasesRequest { domain: domain.unwrap_or_default() };
            let aliases = directory.list_aliases(request).await.map_err(status_error)?.into_inner().aliases;
            print_table(
                &["ALIAS", "TARGETS"],
                aliases.into_iter().map(|a| vec![a.address, a.targets.join(", ")]).collect(),
            );
        }
        AdminCommand::Quota(QuotaCommand::Set { address, storage, messages }) => {
            if storage.is_none() && messages.is_none() {
                bail!("name a limit: --storage, --messages or both");
            }
            let request = pb::UpdateAccountRequest {
                address,
                quota_bytes: storage,
                quota_messages: messages,
                ..Default::default()
            };
            let account = directory.update_account(request).await.map_err(status_error)?.into_inner();
            print_quotas(vec![account]);
        }
        AdminCommand::Quota(QuotaCommand::Show { domain }) => {
            let request = pb::ListAccountsRequest { domain: domain.unwrap_or_default() };
            print_quotas(directory.list_accounts(request).await.map_err(status_error)?.into_inner().accounts);
        }
        AdminCommand::Queue(command) => return queue(command, settings).await,
        AdminCommand::Mail(command) => return crate::mail::run(command, settings).await,
        AdminCommand::Dkim(command) => return dkim(command, &url).await,
        AdminCommand::Nats(command) => return nats(command, settings).await,
    }
    Ok(())
}

async fn nats(command: NatsCommand, settings: &Settings) -> anyhow::Result<()> {
    use mailbus_jetstream::backup;
    let url = settings.get(crate::settings::NATS_URL)?;
    let names = crate::settings::nats_names(settings)?;
    let client = async_nats_connect(&url).await?;
    match command {
        NatsCommand::Backup { dir } => {
            let streams = backup::backup(&client, &names, &dir).await?;
            for (stream, size) in &streams {
                println!("{stream}: {size} bytes");
            }
            println!("{} stream(s) backed up into {}", streams.len(), dir.display());
        }
        NatsCommand::Restore { dir } => {
            let streams = backup::restore(&client, &dir).await?;
            println!("{} stream(s) restored: {}", streams.len(), streams.join(" "));
        }
    }
    client.flush().await.context("flushing to NATS")?;
    Ok(())
}

/// One connection attempt, unlike the roles' (which keep retrying): an operator's command should fail.
async fn async_nats_connect(url: &str) -> anyhow::Result<mailbus_jetstream::async_nats::Client> {
    mailbus_jetstream::async_nats::ConnectOptions::new()
        .name("mailbus admin")
        .connection_timeout(std::time::Duration::from_secs(5))
        .connect(mailbus_jetstream::servers(url))
        .await
        .with_context(|| format!("connecting to NATS at {url}"))
}

async fn dkim(command: DkimCommand, url: &mailbus_grpc::Upstream) -> anyhow::Result<()> {
    use pb::dkim_keys_client::DkimKeysClient;
    let mut keys = DkimKeysClient::new(mailbus_grpc::connect_upstream(url));
    let state = |domain: String, selector: String, state: pb::DkimKeyState| pb::SetDkimKeyStateRequest {
        domain,
        selector,
        state: state.into(),
    };
    match command {
        DkimCommand::Generate { domain, algorithm, selector } => {
            let algorithm = if algorithm == "ed25519" { pb::DkimAlgorithm::Ed25519 } else { pb::DkimAlgorithm::Rsa };
            let request = pb::GenerateDkimKeyRequest {
                domain,
                algorithm: algorithm.into(),
                selector: selector.unwrap_or_default(),
            };
            let key = keys.generate_dkim_key(request).await.map_err(status_error)?.into_inner();
            println!("key {} of {} generated ({})", key.selector, key.domain, state_name(key.state()));
            println!("publish this DNS record:");
            println!("{}", zone_line(&key));
        }
        DkimCommand::List { domain } => {
            let request = pb::ListDkimKeysRequest { domain: domain.unwrap_or_default() };
            let list = keys.list_dkim_keys(request).await.map_err(status_error)?.into_inner().keys;
            let rows = list
                .iter()
                .map(|k| {
                    let algorithm = if k.algorithm() == pb::DkimAlgorithm::Ed25519 { "ed25519" } else { "rsa" };
                    vec![
                        k.domain.clone(),
                        k.selector.clone(),
                        algorithm.to_owned(),
                        state_name(k.state()).to_owned(),
                        unix_ms(k.created_unix * 1000),
                    ]
                })
                .collect();
            print_table(&["DOMAIN", "SELECTOR", "ALGORITHM", "STATE", "CREATED"], rows);
            for key in list.iter().filter(|k| k.state() != pb::DkimKeyState::Retired) {
                println!("{}", zone_line(key));
            }
        }
        DkimCommand::Activate { domain, selector } => {
            let key = keys.set_dkim_key_state(state(domain, selector, pb::DkimKeyState::Active)).await;
            let key = key.map_err(status_error)?.into_inner();
            println!("key {} of {} active", key.selector, key.domain);
        }
        DkimCommand::Retire { domain, selector } => {
            let key = keys.set_dkim_key_state(state(domain, selector, pb::DkimKeyState::Retired)).await;
            let key = key.map_err(status_error)?.into_inner();
            println!("key {} of {} retired; its DNS record {} can go", key.selector, key.domain, key.dns_name);
        }
        DkimCommand::Remove { domain, selector } => {
            let request = pb::RemoveDkimKeyRequest { domain: domain.clone(), selector: selector.clone() };
            keys.remove_dkim_key(request).await.map_err(status_error)?;
            println!("key {selector} of {domain} removed");
        }
    }
    Ok(())
}

fn state_name(state: pb::DkimKeyState) -> &'static str {
    match state {
        pb::DkimKeyState::Active => "active",
        pb::DkimKeyState::Published => "published",
        pb::DkimKeyState::Retired => "retired",
        pb::DkimKeyState::Unspecified => "unknown",
    }
}

/// The record as a zone-file line. A TXT string holds at most 255 octets (RFC 1035 §3.3.14), so an RSA
/// key is split into several quoted strings, which receivers join.
fn zone_line(key: &pb::DkimKey) -> String {
    let strings: Vec<String> =
        key.dns_value.as_bytes().chunks(250).map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk))).collect();
    format!("{}. IN TXT {}", key.dns_name, strings.join(" "))
}

async fn queue(command: QueueCommand, settings: &Settings) -> anyhow::Result<()> {
    use pb::queue_admin_client::QueueAdminClient;
    let mut admin = QueueAdminClient::new(mailbus_grpc::connect_upstream(&settings.upstream(MAILBUS_RELAY_URL)?));
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
                "    body {}  partition {}  sequence {}  envid {:?}  ret {:?}",
                e.body_key,
                message.partition,
                message.sequence,
                e.dsn_envid,
                e.dsn_ret()
            );
        }
    }
    Ok(())
}

async fn set_disabled(
    directory: &mut DirectoryClient<mailbus_grpc::TracedChannel>,
    address: String,
    disabled: bool,
) -> anyhow::Result<()> {
    let request = pb::UpdateAccountRequest { address, disabled: Some(disabled), ..Default::default() };
    let account = directory.update_account(request).await.map_err(status_error)?.into_inner();
    println!("account {} {}", account.address, if account.disabled { "disabled" } else { "enabled" });
    Ok(())
}

/// Usage against limits; USED is the fuller of the two, as a percentage.
fn print_quotas(accounts: Vec<pb::Account>) {
    let limit = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let percent = |used: u64, quota: Option<u64>| quota.filter(|&q| q > 0).map(|q| used.saturating_mul(100) / q);
    let rows = accounts
        .into_iter()
        .map(|a| {
            let fullest = percent(a.storage_bytes, a.quota_bytes).max(percent(a.message_count, a.quota_messages));
            let fullest = fullest.map_or_else(|| "-".to_owned(), |p| format!("{p}%"));
            vec![
                a.address,
                a.storage_bytes.to_string(),
                limit(a.quota_bytes),
                a.message_count.to_string(),
                limit(a.quota_messages),
                fullest,
            ]
        })
        .collect();
    print_table(&["ADDRESS", "BYTES", "BYTE LIMIT", "MESSAGES", "MESSAGE LIMIT", "USED"], rows);
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

pub(crate) fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
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
