//! The import run: each source folder onto a mailbox of the account (created when missing, special
//! folders onto the account's SPECIAL-USE mailboxes), each message appended with its flags, internal date
//! and digest. A message the mailbox role refuses (quota, size) or that cannot be read is reported with
//! its file and the run goes on; the mailbox role being unreachable ends it (run it again to resume).

use std::collections::HashMap;
use std::io::BufReader;

use mailbus_proto::v1::{self as pb, mailbox_client::MailboxClient};
use tonic::Code;

use super::progress::{Counts, Progress};
use super::{Folder, Refused, Source, maildir, mbox};

type Client = MailboxClient<mailbus_grpc::TracedChannel>;

/// One message read from a source, ready to append.
pub struct Message {
    /// Where it came from, for the list of refusals: a file, `file:line`, `imap://host/folder;UID=n`.
    pub origin: String,
    pub octets: Vec<u8>,
    pub flags: Vec<String>,
    pub internal_date: Option<i64>,
}

/// What became of one message.
enum Outcome {
    Added,
    Skipped,
    Refused(String),
}

/// An import under way: what it has done so far, and the refusals to list at the end.
pub struct Run {
    client: Client,
    account: i64,
    pub counts: Counts,
    pub progress: Progress,
    refusals: Vec<String>,
}

pub async fn run(client: Client, account: i64, folders: Vec<Folder>) -> anyhow::Result<()> {
    let total = folders.iter().flat_map(|f| &f.sources).map(Source::size).sum();
    let mut run = Run::new(client, account, total);
    let existing = run.mailboxes().await?;
    for folder in folders {
        let target = target_name(&folder.name, None, &existing);
        run.counts.folders += 1;
        if let Err(why) = run.ensure_mailbox(&target, &folder.name, None, &existing).await? {
            for source in &folder.sources {
                run.refuse(&source_name(source), &why);
            }
            continue;
        }
        // Identical octets twice in one folder are two messages: the n-th copy has a digest of its own.
        let mut seen: HashMap<[u8; 32], u32> = HashMap::new();
        for source in folder.sources {
            run.import_source(&target, source, &mut seen).await?;
        }
    }
    run.finish()
}

impl Run {
    pub fn new(client: Client, account: i64, total_bytes: u64) -> Run {
        Run { client, account, counts: Counts::default(), progress: Progress::new(total_bytes), refusals: Vec::new() }
    }

    /// Ends the progress display, lists the refusals and prints the summary; an error when any
    /// message was refused.
    pub fn finish(self) -> anyhow::Result<()> {
        let Run { counts, progress, refusals, .. } = self;
        progress.finish();
        for refusal in &refusals {
            eprintln!("refused: {refusal}");
        }
        println!(
            "folders {}, messages {} ({} bytes), skipped {} (already there), refused {}",
            counts.folders, counts.added, counts.added_bytes, counts.skipped, counts.refused
        );
        if counts.refused > 0 {
            return Err(Refused(counts.refused).into());
        }
        Ok(())
    }
}

fn source_name(source: &Source) -> String {
    match source {
        Source::File { path, .. } | Source::Mbox { path, .. } => path.display().to_string(),
    }
}

/// The RFC 6154 attribute a folder's name says it is, as Dovecot's, Thunderbird's and Outlook's defaults
/// spell them.
fn special_use(name: &str) -> Option<&'static str> {
    match name.to_ascii_lowercase().as_str() {
        "sent" | "sent messages" | "sent items" | "sent mail" => Some("\\Sent"),
        "drafts" => Some("\\Drafts"),
        "trash" | "deleted messages" | "deleted items" => Some("\\Trash"),
        "junk" | "spam" => Some("\\Junk"),
        "archive" | "archives" => Some("\\Archive"),
        _ => None,
    }
}

/// The account's mailbox for a source folder: INBOX in any case is INBOX; a special folder (by the
/// SPECIAL-USE attribute the source gave it, else by its name) is the account's mailbox with that
/// SPECIAL-USE, whatever its name; anything else keeps its name.
pub fn target_name(name: &str, role: Option<&str>, existing: &[pb::MailboxListing]) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        return "INBOX".to_owned();
    }
    role.or_else(|| special_use(name))
        .and_then(|role| existing.iter().find(|m| m.special_use.eq_ignore_ascii_case(role)))
        .map_or_else(|| name.to_owned(), |m| m.name.clone())
}

impl Run {
    pub async fn mailboxes(&mut self) -> anyhow::Result<Vec<pb::MailboxListing>> {
        let request =
            pb::ListMailboxesRequest { account_id: self.account, patterns: vec!["*".to_owned()], ..Default::default() };
        let listing = self.client.list_mailboxes(request).await.map_err(|s| anyhow::anyhow!("{}", s.message()))?;
        Ok(listing.into_inner().mailboxes.into_iter().filter(|m| m.exists).collect())
    }

    /// Creates the mailbox when missing; the inner error is a refusal to report for the folder.
    pub async fn ensure_mailbox(
        &mut self,
        target: &str,
        source: &str,
        role: Option<&str>,
        existing: &[pb::MailboxListing],
    ) -> anyhow::Result<Result<(), String>> {
        if target == "INBOX" || existing.iter().any(|m| m.name == target) {
            return Ok(Ok(()));
        }
        let special_use = role
            .or_else(|| special_use(source))
            .filter(|role| !existing.iter().any(|m| m.special_use.eq_ignore_ascii_case(role)))
            .unwrap_or_default()
            .to_owned();
        let request = pb::CreateMailboxRequest { account_id: self.account, name: target.to_owned(), special_use };
        match self.client.create_mailbox(request).await {
            Ok(_) => Ok(Ok(())),
            Err(status) if status.code() == Code::AlreadyExists => Ok(Ok(())),
            Err(status) if fatal(&status) => Err(anyhow::anyhow!("creating {target}: {}", status.message())),
            Err(status) => Ok(Err(format!("mailbox {target}: {}", status.message()))),
        }
    }

    /// Subscribes the account to a mailbox, as the source had it subscribed.
    pub async fn subscribe(&mut self, name: &str) -> anyhow::Result<()> {
        let request = pb::SubscribeRequest { account_id: self.account, name: name.to_owned(), subscribed: true };
        self.client.subscribe(request).await.map_err(|s| anyhow::anyhow!("subscribing {name}: {}", s.message()))?;
        Ok(())
    }

    pub fn refuse(&mut self, origin: &str, why: &str) {
        self.counts.refused += 1;
        self.refusals.push(format!("{origin}: {why}"));
    }

    async fn import_source(
        &mut self,
        target: &str,
        source: Source,
        seen: &mut HashMap<[u8; 32], u32>,
    ) -> anyhow::Result<()> {
        match source {
            Source::File { path, flags, size } => {
                let origin = path.display().to_string();
                match std::fs::read(&path) {
                    Ok(octets) => {
                        let internal_date = maildir::internal_date(&path);
                        let message = Message { origin, octets: super::to_crlf(&octets), flags, internal_date };
                        self.append(target, message, seen).await?;
                    }
                    Err(error) => self.refuse(&origin, &format!("cannot be read: {error}")),
                }
                self.progress.advance(size, &self.counts);
            }
            Source::Mbox { path, .. } => {
                let origin = path.display().to_string();
                let file = match std::fs::File::open(&path) {
                    Ok(file) => file,
                    Err(error) => {
                        self.refuse(&origin, &format!("cannot be read: {error}"));
                        return Ok(());
                    }
                };
                let mut reader = mbox::Reader::new(BufReader::new(file));
                let mut reported = 0;
                loop {
                    let read = reader.next_message();
                    let consumed = reader.consumed();
                    match read {
                        Ok(None) => break,
                        Ok(Some(mbox::Read::Message(m))) => {
                            let origin = format!("{origin}:{}", m.line);
                            let message =
                                Message { origin, octets: m.octets, flags: m.flags, internal_date: m.internal_date };
                            self.append(target, message, seen).await?;
                        }
                        Ok(Some(mbox::Read::Truncated { line })) => {
                            self.refuse(&format!("{origin}:{line}"), "truncated: the file ends inside this message");
                        }
                        Err(error) => {
                            self.refuse(&origin, &format!("cannot be read: {error}"));
                            break;
                        }
                    }
                    self.progress.advance(consumed - reported, &self.counts);
                    reported = consumed;
                }
            }
        }
        Ok(())
    }

    pub async fn append(
        &mut self,
        target: &str,
        message: Message,
        seen: &mut HashMap<[u8; 32], u32>,
    ) -> anyhow::Result<()> {
        let digest = digest(&message.octets, seen);
        let bytes = message.octets.len() as u64;
        let header = pb::AppendHeader {
            account_id: self.account,
            mailbox: target.to_owned(),
            flags: message.flags,
            internal_date_unix: message.internal_date,
            size: bytes,
            import_digest: Some(digest.to_vec()),
        };
        let parts = mailbus_proto::upload::append(header, &message.octets, 64 * 1024);
        let outcome = match self.client.append(futures::stream::iter(parts)).await {
            Ok(reply) if reply.get_ref().duplicate => Outcome::Skipped,
            Ok(_) => Outcome::Added,
            Err(status) if fatal(&status) => {
                anyhow::bail!("{}: {} (run the import again to resume)", message.origin, status.message())
            }
            Err(status) => Outcome::Refused(status.message().to_owned()),
        };
        match outcome {
            Outcome::Added => {
                self.counts.added += 1;
                self.counts.added_bytes += bytes;
            }
            Outcome::Skipped => self.counts.skipped += 1,
            Outcome::Refused(why) => self.refuse(&message.origin, &why),
        }
        Ok(())
    }
}

/// Statuses that say the mailbox role, not the message, is the problem: the run stops.
fn fatal(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Internal | Code::Unknown | Code::DeadlineExceeded | Code::Cancelled
    )
}

/// SHA-256 of the octets; the n-th identical copy in a folder (n > 0) hashes `n` after them.
fn digest(octets: &[u8], seen: &mut HashMap<[u8; 32], u32>) -> [u8; 32] {
    let mut first = [0u8; 32];
    first.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, octets).as_ref());
    let copy = seen.entry(first).or_insert(0);
    let n = *copy;
    *copy += 1;
    if n == 0 {
        return first;
    }
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(octets);
    context.update(format!("\0copy {n}").as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_folders_land_on_the_accounts_special_use_mailboxes() {
        let sent = pb::MailboxListing {
            name: "Sent".into(),
            exists: true,
            special_use: "\\Sent".into(),
            ..Default::default()
        };
        let existing = vec![sent];
        assert_eq!(target_name("Sent Items", None, &existing), "Sent");
        assert_eq!(target_name("inbox", None, &existing), "INBOX");
        assert_eq!(target_name("Lists/rust", None, &existing), "Lists/rust");
        assert_eq!(target_name("Trash", None, &existing), "Trash");
        // A source's SPECIAL-USE attribute wins over its name.
        assert_eq!(target_name("Gesendet", Some("\\Sent"), &existing), "Sent");
    }

    #[test]
    fn identical_copies_get_digests_of_their_own() {
        let mut seen = HashMap::new();
        let (a, b, c) = (digest(b"x", &mut seen), digest(b"x", &mut seen), digest(b"y", &mut seen));
        assert!(a != b && a != c && b != c);
        let mut again = HashMap::new();
        assert_eq!((digest(b"x", &mut again), digest(b"x", &mut again)), (a, b), "a second run agrees");
    }
}
