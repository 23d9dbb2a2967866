//! `mailbus admin mail`: moving an account's mail in from Maildir and mbox, and out to them, through the
//! mailbox role's Mailbox API like any client. Import appends with a digest per message (`import_digest`),
//! so the mailbox role keeps what was imported and a second or resumed run adds nothing twice; export
//! reads with ListMessages, Changes and FetchMessage.

mod export;
mod imap_client;
mod imap_import;
mod import;
mod maildir;
mod mbox;
mod progress;
mod tools;

use std::path::PathBuf;

use anyhow::Context;
use mailbus_proto::v1::{self as pb, directory_client::DirectoryClient, mailbox_client::MailboxClient};

use crate::settings::{MAILBUS_MAILBOX_URL, Settings};

#[derive(Debug, clap::Subcommand)]
pub enum MailCommand {
    /// Import mail into an account from a Maildir tree (Dovecot's layout, Maildir++ folders), an mbox
    /// file or directory of mbox files, or a live IMAP server over TLS. Running it again adds nothing
    /// twice; exits 1 when any message was refused (listed with where it came from), after importing the
    /// rest, or when the source server was lost (run it again to resume).
    Import {
        address: String,
        #[command(flatten)]
        source: ImportSource,
        #[command(flatten)]
        imap: ImapOptions,
    },
    /// Export an account's mail to a Maildir tree (flags in the file names, internal dates as mtimes) or
    /// to a directory of mboxrd files, one per mailbox.
    Export {
        address: String,
        #[command(flatten)]
        target: Location,
    },
    /// The messages matching IMAP search keys (RFC 9051 §6.4.4, e.g. `UNSEEN FROM ann SINCE 1-Jan-2026`;
    /// a word with spaces is one string), one `MAILBOX<TAB>UID` line each.
    Search(Query),
    /// The chosen header fields of the messages matching the search keys, each message after a
    /// `== MAILBOX UID` line.
    Fetch {
        /// A header field to print (repeatable).
        #[arg(long = "field", value_parser = tools::field_name, default_values = ["From", "Subject", "Date"])]
        fields: Vec<String>,
        #[command(flatten)]
        query: Query,
    },
    /// Expunge the messages matching the search keys at once (no \Deleted step, no undo). `ALL` is
    /// needed to mean everything.
    Expunge(Query),
    /// Per mailbox: messages, unseen, bytes, UIDVALIDITY and UIDNEXT.
    Stats {
        address: String,
        /// Only this mailbox.
        #[arg(long)]
        mailbox: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct Query {
    address: String,
    /// Only this mailbox (default: every mailbox).
    #[arg(long)]
    mailbox: Option<String>,
    /// IMAP search keys.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    keys: Vec<String>,
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Location {
    /// A Maildir tree: its root holds INBOX's cur/ and new/, and `.Folder` directories the others.
    #[arg(long)]
    maildir: Option<PathBuf>,
    /// An mbox file (imported into INBOX), or a directory of them (one mailbox per file, directories as the
    /// hierarchy).
    #[arg(long)]
    mbox: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct ImportSource {
    /// A Maildir tree: its root holds INBOX's cur/ and new/, and `.Folder` directories the others.
    #[arg(long)]
    maildir: Option<PathBuf>,
    /// An mbox file (imported into INBOX), or a directory of them (one mailbox per file, directories as the
    /// hierarchy).
    #[arg(long)]
    mbox: Option<PathBuf>,
    /// A live IMAP server, `host` or `host:port` (993 with --imap-security implicit, 143 with starttls):
    /// every folder, flags, keywords, internal dates, subscriptions and SPECIAL-USE roles.
    #[arg(long, requires = "imap_user")]
    imap_host: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ImapOptions {
    /// The user to log in as on the IMAP server.
    #[arg(long)]
    imap_user: Option<String>,
    /// A file whose first line is the IMAP password (never a command-line argument: `ps` shows those).
    #[arg(long, conflicts_with = "imap_password_env")]
    imap_password_file: Option<PathBuf>,
    /// The name of an environment variable holding the IMAP password.
    #[arg(long)]
    imap_password_env: Option<String>,
    /// implicit: TLS from the start (IMAPS); starttls: STARTTLS before the login. Never plain text.
    #[arg(long, value_enum, default_value = "implicit")]
    imap_security: imap_client::Security,
    /// Trust the certificates in this PEM file instead of the system's roots (a private CA).
    #[arg(long, conflicts_with = "insecure")]
    imap_ca: Option<PathBuf>,
    /// Accept any certificate (self-signed, wrong name): the connection is encrypted but the server is not
    /// authenticated, so only on a network you trust.
    #[arg(long)]
    insecure: bool,
}

impl ImapOptions {
    fn source(self, host_port: &str) -> anyhow::Result<imap_import::Source> {
        let user = self.imap_user.context("--imap-user is needed with --imap-host")?;
        let password = match (&self.imap_password_file, &self.imap_password_env) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                text.lines().next().unwrap_or_default().to_owned()
            }
            (None, Some(var)) => std::env::var(var).with_context(|| format!("reading the password from ${var}"))?,
            (None, None) => anyhow::bail!("give the IMAP password with --imap-password-file or --imap-password-env"),
        };
        let default_port = match self.imap_security {
            imap_client::Security::Implicit => 993,
            imap_client::Security::Starttls => 143,
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') || host.starts_with('[') => {
                (host.trim_matches(['[', ']']).to_owned(), port.parse().context("--imap-host port")?)
            }
            _ => (host_port.to_owned(), default_port),
        };
        let tls = match (&self.imap_ca, self.insecure) {
            (_, true) => mailbus_tls::opportunistic_client_config(),
            (Some(path), false) => {
                let pem = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                mailbus_tls::client_config_trusting(&pem)?
            }
            (None, false) => mailbus_tls::client_config_system_roots()?,
        };
        Ok(imap_import::Source { host, port, security: self.imap_security, user, password, tls })
    }
}

/// Messages that were refused; the run went on without them.
#[derive(Debug, thiserror::Error)]
#[error("{0} message(s) refused")]
pub struct Refused(pub u64);

/// A folder of a source, by its mailbus name (`/` the separator), and where its messages are.
pub struct Folder {
    pub name: String,
    pub sources: Vec<Source>,
}

pub enum Source {
    /// One message in a Maildir file, with the flags its name gives.
    File { path: PathBuf, flags: Vec<String>, size: u64 },
    /// An mbox file: many messages.
    Mbox { path: PathBuf, size: u64 },
}

impl Source {
    fn size(&self) -> u64 {
        match self {
            Source::File { size, .. } | Source::Mbox { size, .. } => *size,
        }
    }
}

pub async fn run(command: MailCommand, settings: &Settings) -> anyhow::Result<()> {
    let channel = mailbus_grpc::connect_upstream(&settings.upstream(MAILBUS_MAILBOX_URL)?);
    let mut directory = DirectoryClient::new(channel.clone());
    let mut mailbox = MailboxClient::new(channel);
    match command {
        MailCommand::Search(q) => {
            let account = account_id(&mut directory, &q.address).await?;
            tools::print_search(&mut mailbox, account, q.mailbox.as_deref(), &q.keys).await
        }
        MailCommand::Fetch { fields, query: q } => {
            let account = account_id(&mut directory, &q.address).await?;
            tools::print_fetch(&mut mailbox, account, q.mailbox.as_deref(), &fields, &q.keys).await
        }
        MailCommand::Expunge(q) => {
            let account = account_id(&mut directory, &q.address).await?;
            tools::expunge(&mut mailbox, account, q.mailbox.as_deref(), &q.keys).await
        }
        MailCommand::Stats { address, mailbox: only } => {
            let account = account_id(&mut directory, &address).await?;
            tools::stats(&mut mailbox, account, only.as_deref()).await
        }
        MailCommand::Import { address, source, imap } => {
            if let Some(host) = source.imap_host {
                // The options are checked (and the password read) before anything is contacted.
                let source = imap.source(&host)?;
                let account = account_id(&mut directory, &address).await?;
                return imap_import::run(mailbox, account, source).await;
            }
            let account = account_id(&mut directory, &address).await?;
            let folders = match (source.maildir, source.mbox) {
                (Some(dir), _) => maildir::folders(&dir)?,
                (_, Some(path)) => mbox_folders(&path)?,
                _ => unreachable!("clap requires one of --maildir, --mbox and --imap-host"),
            };
            import::run(mailbox, account, folders).await
        }
        MailCommand::Export { address, target } => {
            let account = account_id(&mut directory, &address).await?;
            match (target.maildir, target.mbox) {
                (Some(dir), _) => export::run(mailbox, account, export::Format::Maildir(dir)).await,
                (_, Some(dir)) => export::run(mailbox, account, export::Format::Mbox(dir)).await,
                _ => unreachable!("clap requires one of --maildir and --mbox"),
            }
        }
    }
}

async fn account_id(
    directory: &mut DirectoryClient<mailbus_grpc::TracedChannel>,
    address: &str,
) -> anyhow::Result<i64> {
    let domain = address.rsplit_once('@').map(|(_, d)| d.to_owned()).context("the address needs a domain")?;
    let accounts = directory
        .list_accounts(pb::ListAccountsRequest { domain })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner()
        .accounts;
    accounts
        .into_iter()
        .find(|a| a.address.eq_ignore_ascii_case(address))
        .map(|a| a.id)
        .with_context(|| format!("no account {address}"))
}

/// An mbox file is INBOX; a directory holds one mailbox per file, its subdirectories the hierarchy.
fn mbox_folders(path: &std::path::Path) -> anyhow::Result<Vec<Folder>> {
    let metadata = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !metadata.is_dir() {
        let source = Source::Mbox { path: path.to_path_buf(), size: metadata.len() };
        return Ok(vec![Folder { name: "INBOX".to_owned(), sources: vec![source] }]);
    }
    let mut folders = Vec::new();
    collect_mbox(path, "", &mut folders)?;
    folders.sort_by(|a, b| (a.name != "INBOX", &a.name).cmp(&(b.name != "INBOX", &b.name)));
    Ok(folders)
}

fn collect_mbox(dir: &std::path::Path, prefix: &str, folders: &mut Vec<Folder>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        // Dot files are clients' and servers' own (Dovecot's .imap/, .subscriptions).
        if file_name.starts_with('.') {
            continue;
        }
        let name = file_name.strip_suffix(".mbox").unwrap_or(&file_name);
        // Dovecot names mbox files in modified UTF-7, as its Maildir++ folders; a name that is not
        // (mutt's UTF-8, or `R&D`) is taken as it is.
        let decoded = mailbus_imap::render::from_utf7(name);
        let name = decoded.as_deref().unwrap_or(name);
        let name = if prefix.is_empty() && name.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_owned()
        } else {
            format!("{prefix}{name}")
        };
        let path = entry.path();
        let metadata = std::fs::metadata(&path);
        match metadata {
            Ok(m) if m.is_dir() => collect_mbox(&path, &format!("{name}/"), folders)?,
            Ok(m) => folders.push(Folder { name, sources: vec![Source::Mbox { path, size: m.len() }] }),
            // A dangling link: reported when its messages are read.
            Err(_) => folders.push(Folder { name, sources: vec![Source::Mbox { path, size: 0 }] }),
        }
    }
    Ok(())
}

/// Bare LF line ends as CRLF (RFC 5322 §2.1), as SMTP delivery stores them; CRLF stays.
pub fn to_crlf(octets: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(octets.len() + octets.len() / 40);
    for (i, &b) in octets.iter().enumerate() {
        if b == b'\n' && (i == 0 || octets[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// CRLF as LF, the line end of files on Unix that Dovecot and mutt write.
pub fn to_lf(octets: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(octets.len());
    for (i, &b) in octets.iter().enumerate() {
        if b == b'\r' && octets.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_ends_convert_both_ways() {
        assert_eq!(super::to_crlf(b"a\nb\r\nc"), b"a\r\nb\r\nc");
        assert_eq!(super::to_lf(b"a\r\nb\rc\r\n"), b"a\nb\rc\n");
    }
}
