//! Import from a live IMAP server, as imapsync and dsync do: every folder LIST shows (its hierarchy
//! delimiter turned into ours, its name out of modified UTF-7), mapped onto the account's mailboxes by
//! SPECIAL-USE attribute (RFC 6154) or name; each message with its flags and keywords and INTERNALDATE;
//! the source's subscriptions. Messages go through the same `import::Run` as a Maildir's, with the same
//! digest of their octets, so a second run, or one after a lost connection, adds nothing twice.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName};
use imap_codec::imap_types::flag::{FlagFetch, FlagNameAttribute};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::Data;
use mailbus_proto::v1::mailbox_client::MailboxClient;

use super::imap_client::{ImapClient, ImapError, Security};
use super::import::{Message, Run};

type Client = MailboxClient<mailbus_grpc::TracedChannel>;

/// Where to import from, with the password already read (never from the command line).
pub struct Source {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: String,
    pub password: String,
    pub tls: Arc<rustls::ClientConfig>,
}

/// Messages fetched per UID FETCH: a batch's octets are held in memory until they are appended.
const BATCH_MESSAGES: usize = 100;
const BATCH_BYTES: u64 = 16 << 20;
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A folder of the source.
struct Folder {
    /// As the source names it on the wire.
    wire: Mailbox<'static>,
    /// As we name it: `/` between levels, UTF-8.
    name: String,
    role: Option<&'static str>,
    messages: Vec<Remote>,
}

/// A message as the first pass saw it.
struct Remote {
    uid: NonZeroU32,
    flags: Vec<String>,
    internal_date: Option<i64>,
    size: u64,
}

pub async fn run(client: Client, account: i64, source: Source) -> anyhow::Result<()> {
    let mut imap = ImapClient::connect(&source.host, source.port, source.security, source.tls.clone(), READ_TIMEOUT)
        .await
        .with_context(|| format!("connecting to {}:{}", source.host, source.port))?;
    let login = CommandBody::login(source.user.clone(), source.password.clone())
        .map_err(|_| anyhow::anyhow!("the user name or password cannot be sent in an IMAP LOGIN"))?;
    imap.run(login, "LOGIN").await?;
    let (mut folders, skipped) = list(&mut imap).await?;
    for (name, why) in &skipped {
        eprintln!("folder {name} left out: {why}");
    }
    let subscribed = lsub(&mut imap).await?;
    for folder in &mut folders {
        folder.messages = listing(&mut imap, &folder.wire).await.with_context(|| format!("listing {}", folder.name))?;
    }
    let total = folders.iter().flat_map(|f| &f.messages).map(|m| m.size).sum();
    let mut run = Run::new(client, account, total);
    let outcome = copy(&mut imap, &mut run, &source.host, &folders, &subscribed).await;
    match outcome {
        Ok(()) => run.finish(),
        Err(error) => {
            // What was imported stays; the summary says how far the run came.
            let _ = run.finish();
            Err(error.context("the import stopped; run it again to resume: what was imported is not added twice"))
        }
    }
}

/// Every folder, selectable and not a view of others' messages, and the ones left out with why.
async fn list(imap: &mut ImapClient) -> anyhow::Result<(Vec<Folder>, Vec<(String, String)>)> {
    let reply = imap.run(CommandBody::list("", "*").context("LIST")?, "LIST").await?;
    let (mut folders, mut skipped) = (Vec::new(), Vec::new());
    for data in reply.data {
        let Data::List { items, delimiter, mailbox } = data else { continue };
        let Some(name) = our_name(&mailbox, delimiter.map(|d| d.inner())) else {
            skipped.push((format!("{mailbox:?}"), "its name is not modified UTF-7".to_owned()));
            continue;
        };
        let attributes: Vec<String> = items.iter().map(|a| a.to_string().to_ascii_lowercase()).collect();
        if items.contains(&FlagNameAttribute::Noselect) || attributes.iter().any(|a| a == "\\nonexistent") {
            continue;
        }
        // RFC 6154: \All and \Flagged are views of messages that live in other folders; importing them
        // would store every message twice.
        if let Some(view) = attributes.iter().find(|a| *a == "\\all" || *a == "\\flagged") {
            skipped.push((name, format!("{view} is a view of other folders' messages")));
            continue;
        }
        let role = attributes.iter().find_map(|a| role(a));
        folders.push(Folder { wire: mailbox, name, role, messages: Vec::new() });
    }
    // INBOX first, then by name, as a person reading the progress expects.
    folders.sort_by(|a, b| (a.name != "INBOX", &a.name).cmp(&(b.name != "INBOX", &b.name)));
    Ok((folders, skipped))
}

fn role(attribute: &str) -> Option<&'static str> {
    match attribute {
        "\\sent" => Some("\\Sent"),
        "\\drafts" => Some("\\Drafts"),
        "\\trash" => Some("\\Trash"),
        "\\junk" => Some("\\Junk"),
        "\\archive" => Some("\\Archive"),
        _ => None,
    }
}

/// The source's name in ours: out of modified UTF-7 (RFC 3501 §5.1.3), its delimiter turned into `/`
/// (a `/` inside a level, which our hierarchy would split, becomes `_`).
fn our_name(mailbox: &Mailbox<'_>, delimiter: Option<char>) -> Option<String> {
    let wire = match mailbox {
        Mailbox::Inbox => return Some("INBOX".to_owned()),
        Mailbox::Other(other) => std::str::from_utf8(other.inner().as_ref()).ok()?,
    };
    let name = mailbus_imap::render::from_utf7(wire)?;
    let levels: Vec<String> = match delimiter {
        Some(d) => name.split(d).map(|level| level.replace('/', "_")).collect(),
        None => vec![name.replace('/', "_")],
    };
    let joined = levels.join("/");
    Some(if joined.eq_ignore_ascii_case("INBOX") { "INBOX".to_owned() } else { joined })
}

async fn lsub(imap: &mut ImapClient) -> anyhow::Result<HashSet<String>> {
    let reply = imap.run(CommandBody::lsub("", "*").context("LSUB")?, "LSUB").await?;
    Ok(reply
        .data
        .into_iter()
        .filter_map(|data| match data {
            Data::Lsub { delimiter, mailbox, .. } => our_name(&mailbox, delimiter.map(|d| d.inner())),
            _ => None,
        })
        .collect())
}

/// The folder's messages with their flags, dates and sizes, in UID order.
async fn listing(imap: &mut ImapClient, wire: &Mailbox<'static>) -> anyhow::Result<Vec<Remote>> {
    let reply = imap.run(CommandBody::examine(wire.clone()).context("EXAMINE")?, "EXAMINE").await?;
    let exists = reply.data.iter().find_map(|d| if let Data::Exists(n) = d { Some(*n) } else { None });
    if exists.unwrap_or(0) == 0 {
        return Ok(Vec::new());
    }
    let items = MacroOrMessageDataItemNames::MessageDataItemNames(vec![
        MessageDataItemName::Uid,
        MessageDataItemName::Flags,
        MessageDataItemName::InternalDate,
        MessageDataItemName::Rfc822Size,
    ]);
    let reply = imap.run(CommandBody::fetch("1:*", items, true).context("FETCH")?, "UID FETCH").await?;
    let mut messages: Vec<Remote> = reply
        .data
        .into_iter()
        .filter_map(|data| {
            let Data::Fetch { items, .. } = data else { return None };
            let mut remote = Remote { uid: NonZeroU32::MIN, flags: Vec::new(), internal_date: None, size: 0 };
            let mut has_uid = false;
            for item in items.into_inner() {
                match item {
                    MessageDataItem::Uid(uid) => (remote.uid, has_uid) = (uid, true),
                    MessageDataItem::Flags(flags) => remote.flags = flag_names(flags),
                    MessageDataItem::InternalDate(date) => remote.internal_date = Some(date.as_ref().timestamp()),
                    MessageDataItem::Rfc822Size(size) => remote.size = u64::from(size),
                    _ => {}
                }
            }
            has_uid.then_some(remote)
        })
        .collect();
    messages.sort_by_key(|m| m.uid);
    messages.dedup_by_key(|m| m.uid);
    Ok(messages)
}

/// Flags and keywords as our store spells them; \Recent is the server's and session's, not the message's.
fn flag_names(flags: Vec<FlagFetch<'_>>) -> Vec<String> {
    flags
        .into_iter()
        .filter_map(|f| match f {
            FlagFetch::Flag(flag) => Some(flag.to_string()),
            FlagFetch::Recent => None,
        })
        .collect()
}

/// The second pass: each folder onto its mailbox, the octets fetched in batches and appended.
async fn copy(
    imap: &mut ImapClient,
    run: &mut Run,
    host: &str,
    folders: &[Folder],
    subscribed: &HashSet<String>,
) -> anyhow::Result<()> {
    let existing = run.mailboxes().await?;
    for folder in folders {
        let target = super::import::target_name(&folder.name, folder.role, &existing);
        run.counts.folders += 1;
        if let Err(why) = run.ensure_mailbox(&target, &folder.name, folder.role, &existing).await? {
            for message in &folder.messages {
                run.refuse(&origin(host, &folder.name, message.uid), &why);
            }
            continue;
        }
        if subscribed.contains(&folder.name) {
            run.subscribe(&target).await?;
        }
        if folder.messages.is_empty() {
            continue;
        }
        imap.run(CommandBody::examine(folder.wire.clone()).context("EXAMINE")?, "EXAMINE").await?;
        let mut seen = HashMap::new();
        for batch in batches(&folder.messages) {
            let mut octets =
                fetch_bodies(imap, batch).await.with_context(|| format!("fetching from {}", folder.name))?;
            for remote in batch {
                let Some(body) = octets.remove(&remote.uid) else {
                    // Expunged on the source since the listing: nothing to import.
                    continue;
                };
                let message = Message {
                    origin: origin(host, &folder.name, remote.uid),
                    octets: body,
                    flags: remote.flags.clone(),
                    internal_date: remote.internal_date,
                };
                run.append(&target, message, &mut seen).await?;
                let counts = run.counts;
                run.progress.advance(remote.size, &counts);
            }
        }
    }
    Ok(())
}

fn origin(host: &str, folder: &str, uid: NonZeroU32) -> String {
    format!("imap://{host}/{folder};UID={uid}")
}

/// Runs of messages of at most BATCH_MESSAGES and (unless one alone is larger) BATCH_BYTES.
fn batches(messages: &[Remote]) -> Vec<&[Remote]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, message) in messages.iter().enumerate() {
        if i > start && (i - start >= BATCH_MESSAGES || bytes + message.size > BATCH_BYTES) {
            out.push(&messages[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += message.size;
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    out
}

async fn fetch_bodies(imap: &mut ImapClient, batch: &[Remote]) -> Result<HashMap<NonZeroU32, Vec<u8>>, ImapError> {
    let set: Vec<String> = batch.iter().map(|m| m.uid.to_string()).collect();
    let items = MacroOrMessageDataItemNames::MessageDataItemNames(vec![
        MessageDataItemName::Uid,
        MessageDataItemName::BodyExt { section: None, partial: None, peek: true },
    ]);
    let command = CommandBody::fetch(set.join(",").as_str(), items, true)
        .map_err(|e| ImapError::Protocol(format!("UID set: {e:?}")))?;
    let reply = imap.run(command, "UID FETCH").await?;
    let mut bodies = HashMap::new();
    for data in reply.data {
        let Data::Fetch { items, .. } = data else { continue };
        let (mut uid, mut body) = (None, None);
        for item in items.into_inner() {
            match item {
                MessageDataItem::Uid(u) => uid = Some(u),
                MessageDataItem::BodyExt { section: None, data, .. } => {
                    body = data.0.map(|s| s.as_ref().to_vec());
                }
                _ => {}
            }
        }
        if let (Some(uid), Some(body)) = (uid, body) {
            bodies.insert(uid, body);
        }
    }
    Ok(bodies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other(name: &str) -> Mailbox<'static> {
        Mailbox::try_from(name.to_owned()).unwrap()
    }

    #[test]
    fn names_leave_modified_utf7_and_take_our_delimiter() {
        assert_eq!(our_name(&other("Lists.rust"), Some('.')).unwrap(), "Lists/rust");
        assert_eq!(our_name(&other("Entw&APw-rfe"), Some('/')).unwrap(), "Entwürfe");
        assert_eq!(our_name(&other("a/b.c"), Some('.')).unwrap(), "a_b/c", "a slash inside a level");
        assert_eq!(our_name(&Mailbox::Inbox, Some('.')).unwrap(), "INBOX");
        assert_eq!(our_name(&other("&Jjo"), Some('.')), None, "not modified UTF-7");
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let remote = |uid: u32, size: u64| Remote {
            uid: NonZeroU32::new(uid).unwrap(),
            flags: Vec::new(),
            internal_date: None,
            size,
        };
        let many: Vec<Remote> = (1..=250).map(|uid| remote(uid, 10)).collect();
        assert_eq!(batches(&many).iter().map(|b| b.len()).collect::<Vec<_>>(), [100, 100, 50]);
        let big = [remote(1, BATCH_BYTES), remote(2, 1), remote(3, BATCH_BYTES * 2)];
        assert_eq!(batches(&big).iter().map(|b| b.len()).collect::<Vec<_>>(), [1, 1, 1]);
        assert!(batches(&[]).is_empty());
    }
}
