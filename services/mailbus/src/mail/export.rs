//! The export run: every mailbox of the account, message by message in UID order, through ListMessages
//! (sizes and internal dates), Changes since 0 (flags) and FetchMessage (octets).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures::StreamExt;
use mailbus_proto::v1::{self as pb, mailbox_client::MailboxClient};

use super::progress::{Counts, Progress};
use super::{maildir, mbox};

type Client = MailboxClient<mailbus_grpc::TracedChannel>;

pub enum Format {
    Maildir(PathBuf),
    /// A directory: one mboxrd file per mailbox (`A/B` is the file `B` in the directory `A`; a mailbox
    /// that has children is written as `A.mbox` beside the directory `A`).
    Mbox(PathBuf),
}

pub async fn run(mut client: Client, account: i64, format: Format) -> anyhow::Result<()> {
    let request =
        pb::ListMailboxesRequest { account_id: account, patterns: vec!["*".to_owned()], ..Default::default() };
    let listing = client.list_mailboxes(request).await.map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    let mailboxes: Vec<pb::MailboxListing> = listing.into_inner().mailboxes.into_iter().filter(|m| m.exists).collect();
    let mut counts = Counts::default();
    let mut progress = Progress::new(0);
    for mailbox in &mailboxes {
        let (uids, messages) = messages(&mut client, account, &mailbox.name).await?;
        counts.folders += 1;
        match &format {
            Format::Maildir(root) => {
                let mut writer = maildir::Writer::create(root, &mailbox.name)?;
                for (summary, flags) in messages {
                    let octets = fetch(&mut client, account, &mailbox.name, summary.uid).await?;
                    writer.write(summary.uid, &octets, &flags, summary.internal_date_unix)?;
                    counts.added += 1;
                    counts.added_bytes += octets.len() as u64;
                    progress.advance(octets.len() as u64, &counts);
                }
                writer.finish(uids.0, uids.1)?;
            }
            Format::Mbox(root) => {
                let path = mbox_path(root, &mailbox.name, mailbox.has_children);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
                }
                let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                let mut out = std::io::BufWriter::new(file);
                for (summary, flags) in messages {
                    let octets = fetch(&mut client, account, &mailbox.name, summary.uid).await?;
                    mbox::write_message(&mut out, &octets, &flags, summary.internal_date_unix)?;
                    counts.added += 1;
                    counts.added_bytes += octets.len() as u64;
                    progress.advance(octets.len() as u64, &counts);
                }
                out.flush().with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    progress.finish();
    println!("folders {}, messages {} ({} bytes)", counts.folders, counts.added, counts.added_bytes);
    Ok(())
}

fn mbox_path(root: &Path, name: &str, has_children: bool) -> PathBuf {
    let mut path = root.to_path_buf();
    for part in name.split('/') {
        // A mailbox name is the user's to choose: `..` or an empty level must not leave the directory.
        path.push(if matches!(part, "" | "." | "..") { "_" } else { part });
    }
    if has_children {
        path.set_extension("mbox");
    }
    path
}

/// The mailbox's UIDVALIDITY and UIDNEXT, and its live messages in UID order, each with its flags.
async fn messages(
    client: &mut Client,
    account: i64,
    mailbox: &str,
) -> anyhow::Result<((u32, u32), Vec<(pb::MessageSummary, Vec<String>)>)> {
    let error = |s: tonic::Status| anyhow::anyhow!("{mailbox}: {}", s.message());
    let request = pb::ListMessagesRequest { account_id: account, mailbox: mailbox.to_owned() };
    let list = client.list_messages(request).await.map_err(error)?.into_inner();
    let request =
        pb::ChangesRequest { account_id: account, mailbox: mailbox.to_owned(), since_modseq: 0, claim_recent: false };
    let changes = client.changes(request).await.map_err(error)?.into_inner();
    let mut flags: HashMap<u32, Vec<String>> = changes.changed.into_iter().map(|e| (e.uid, e.flags)).collect();
    let uids = (list.uidvalidity, list.uidnext);
    let messages = list.messages.into_iter().map(|m| {
        let flags = flags.remove(&m.uid).unwrap_or_default();
        (m, flags)
    });
    Ok((uids, messages.collect()))
}

async fn fetch(client: &mut Client, account: i64, mailbox: &str, uid: u32) -> anyhow::Result<Vec<u8>> {
    let request = pb::FetchMessageRequest { account_id: account, mailbox: mailbox.to_owned(), uid };
    let mut stream = client
        .fetch_message(request)
        .await
        .map_err(|s| anyhow::anyhow!("{mailbox} uid {uid}: {}", s.message()))?
        .into_inner();
    let mut octets = Vec::new();
    while let Some(chunk) = stream.next().await {
        octets.extend_from_slice(&chunk.map_err(|s| anyhow::anyhow!("{mailbox} uid {uid}: {}", s.message()))?.data);
    }
    Ok(octets)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mbox_paths_stay_in_the_export_directory() {
        let root = std::path::Path::new("/export");
        assert_eq!(super::mbox_path(root, "Lists/rust", false), root.join("Lists/rust"));
        assert_eq!(super::mbox_path(root, "Lists", true), root.join("Lists.mbox"));
        assert_eq!(super::mbox_path(root, "../../etc/x", false), root.join("_/_/etc/x"));
    }
}
