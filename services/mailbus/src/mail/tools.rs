//! The doveadm-style tools: `search`, `fetch` and `expunge` take IMAP search keys (RFC 9051 §6.4.4),
//! parsed by imap-codec as the access role parses a SEARCH command and turned into the store's keys by
//! the same `render::search_key`, so a query means here what it means to an IMAP client; `stats` is
//! STATUS for every mailbox.

use anyhow::bail;
use futures::StreamExt;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::CommandBody;
use mailbus_proto::v1::{self as pb, mailbox_client::MailboxClient};

type Client = MailboxClient<mailbus_grpc::TracedChannel>;

/// The matches of a query in one mailbox.
pub struct Matches {
    pub mailbox: String,
    pub uids: Vec<u32>,
}

/// The command-line words of a query as one IMAP `UID SEARCH` command. Each word is one token: a word
/// that is not an atom (a space, a quote, 8-bit text: `SUBJECT "hello world"` after the shell took the
/// quotes off) becomes a literal, so nothing in it is read as syntax; parentheses stay syntax.
fn command_text(words: &[String]) -> Vec<u8> {
    let mut command = b"q UID SEARCH".to_vec();
    for word in words {
        command.push(b' ');
        let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'{'));
        if plain {
            command.extend_from_slice(word.as_bytes());
        } else {
            command.extend_from_slice(format!("{{{}}}\r\n", word.len()).as_bytes());
            command.extend_from_slice(word.as_bytes());
        }
    }
    command.extend_from_slice(b"\r\n");
    command
}

/// The query as the store's search key, with message numbers resolved against `uids` (the mailbox's
/// live UIDs, as a session that selected it would see them). The tool is no session and claims no
/// `\Recent` (RFC 3501 §2.3.2), so RECENT and NEW match nothing and OLD everything.
fn query(words: &[String], uids: &[u32]) -> anyhow::Result<pb::SearchKey> {
    let text = command_text(words);
    let command = match imap_codec::CommandCodec::default().decode(&text) {
        Ok((_, command)) => command,
        Err(_) => bail!("not IMAP search keys (RFC 9051 §6.4.4): {}", words.join(" ")),
    };
    let CommandBody::Search { criteria, .. } = command.body else {
        bail!("not IMAP search keys (RFC 9051 §6.4.4): {}", words.join(" "))
    };
    let keys = criteria.as_ref().iter().map(|k| mailbus_imap::render::search_key(k, uids, &[])).collect();
    Ok(pb::SearchKey { key: Some(pb::search_key::Key::And(pb::SearchKeys { keys })) })
}

/// The account's mailboxes: the one named, or every existing one.
async fn mailboxes(client: &mut Client, account: i64, only: Option<&str>) -> anyhow::Result<Vec<pb::MailboxListing>> {
    let request = pb::ListMailboxesRequest {
        account_id: account,
        patterns: vec![only.unwrap_or("*").to_owned()],
        with_status: true,
        ..Default::default()
    };
    let listing = client.list_mailboxes(request).await.map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    let found: Vec<pb::MailboxListing> = listing.into_inner().mailboxes.into_iter().filter(|m| m.exists).collect();
    if let Some(name) = only
        && found.is_empty()
    {
        bail!("no mailbox {name}");
    }
    Ok(found)
}

/// The matches of `words` in each mailbox (or only `only`), mailboxes with none left out.
pub async fn search(
    client: &mut Client,
    account: i64,
    only: Option<&str>,
    words: &[String],
) -> anyhow::Result<Vec<Matches>> {
    // Checked once before any mailbox, so a typing error is one message, not one per mailbox.
    query(words, &[])?;
    let mut found = Vec::new();
    for mailbox in mailboxes(client, account, only).await? {
        let error = |s: tonic::Status| anyhow::anyhow!("{}: {}", mailbox.name, s.message());
        let request = pb::SelectRequest { account_id: account, mailbox: mailbox.name.clone(), claim_recent: false };
        let live = client.select(request).await.map_err(error)?.into_inner().uids;
        let key = query(words, &live)?;
        let request = pb::SearchRequest {
            account_id: account,
            mailbox: mailbox.name.clone(),
            key: Some(key),
            ..Default::default()
        };
        let uids = client.search(request).await.map_err(error)?.into_inner().uids;
        if !uids.is_empty() {
            found.push(Matches { mailbox: mailbox.name, uids });
        }
    }
    Ok(found)
}

pub async fn print_search(
    client: &mut Client,
    account: i64,
    only: Option<&str>,
    words: &[String],
) -> anyhow::Result<()> {
    let found = search(client, account, only, words).await?;
    println!("MAILBOX\tUID");
    for matches in found {
        for uid in matches.uids {
            println!("{}\t{uid}", matches.mailbox);
        }
    }
    Ok(())
}

/// Prints each match's chosen header fields as the message has them, unfolded, after a line naming it.
pub async fn print_fetch(
    client: &mut Client,
    account: i64,
    only: Option<&str>,
    fields: &[String],
    words: &[String],
) -> anyhow::Result<()> {
    for matches in search(client, account, only, words).await? {
        let section =
            pb::Section { text: pb::SectionText::HeaderFields.into(), fields: fields.to_vec(), ..Default::default() };
        let request = pb::FetchRequest {
            account_id: account,
            mailbox: matches.mailbox.clone(),
            uids: matches.uids.clone(),
            sections: vec![section],
            ..Default::default()
        };
        let error = |s: tonic::Status| anyhow::anyhow!("{}: {}", matches.mailbox, s.message());
        let mut stream = client.fetch(request).await.map_err(error)?.into_inner();
        let mut current: Option<(u32, Vec<u8>)> = None;
        while let Some(item) = stream.next().await {
            match item.map_err(error)?.item {
                Some(pb::fetch_response::Item::Message(message)) => {
                    print_header(&matches.mailbox, current.take());
                    current = Some((message.uid, Vec::new()));
                }
                Some(pb::fetch_response::Item::Chunk(chunk)) => {
                    if let Some((_, octets)) = current.as_mut() {
                        octets.extend_from_slice(&chunk.data);
                    }
                }
                _ => {}
            }
        }
        print_header(&matches.mailbox, current);
    }
    Ok(())
}

fn print_header(mailbox: &str, message: Option<(u32, Vec<u8>)>) {
    let Some((uid, octets)) = message else { return };
    println!("== {mailbox} {uid}");
    // RFC 5322 §2.2.3: a folded field is unfolded by taking out each CRLF before white space.
    let text = String::from_utf8_lossy(&octets).replace("\r\n ", " ").replace("\r\n\t", " ");
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        println!("{line}");
    }
}

/// Expunges every match at once (no \Deleted step, as `doveadm expunge`); prints how many per mailbox.
pub async fn expunge(client: &mut Client, account: i64, only: Option<&str>, words: &[String]) -> anyhow::Result<()> {
    let mut total = 0;
    for matches in search(client, account, only, words).await? {
        let request = pb::ExpungeRequest {
            account_id: account,
            mailbox: matches.mailbox.clone(),
            uids: matches.uids,
            deleted_only: false,
        };
        let expunged = client
            .expunge(request)
            .await
            .map_err(|s| anyhow::anyhow!("{}: {}", matches.mailbox, s.message()))?
            .into_inner()
            .expunged;
        println!("{}: {} expunged", matches.mailbox, expunged.len());
        total += expunged.len();
    }
    println!("{total} message(s) expunged");
    Ok(())
}

/// Per mailbox: messages, unseen, bytes, and UIDVALIDITY/UIDNEXT (which `account rename` and an import
/// keep or move on).
pub async fn stats(client: &mut Client, account: i64, only: Option<&str>) -> anyhow::Result<()> {
    let rows = mailboxes(client, account, only)
        .await?
        .into_iter()
        .map(|m| {
            let status = m.status.unwrap_or_default();
            vec![
                m.name,
                status.messages.to_string(),
                status.unseen.to_string(),
                status.size.to_string(),
                status.uidvalidity.to_string(),
                status.uidnext.to_string(),
            ]
        })
        .collect();
    crate::admin::print_table(&["MAILBOX", "MESSAGES", "UNSEEN", "BYTES", "UIDVALIDITY", "UIDNEXT"], rows);
    Ok(())
}

/// A field name as RFC 5322 §3.6.8 allows it (printable ASCII but the colon), for `--field`.
pub fn field_name(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?} is not a header field name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &[&str]) -> Vec<String> {
        text.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn words_with_spaces_and_8_bit_text_are_literals_not_syntax() {
        let text = command_text(&words(&["SUBJECT", "hello world", "FROM", "jürgen"]));
        assert_eq!(text, "q UID SEARCH SUBJECT {11}\r\nhello world FROM {7}\r\njürgen\r\n".as_bytes());
    }

    #[test]
    fn a_query_becomes_the_store_keys_imap_search_gives() {
        use pb::search_key::Key;
        let key = query(&words(&["UNSEEN", "OR", "(FROM", "ann)", "FLAGGED", "1:2"]), &[7, 9, 12]).unwrap();
        let Some(Key::And(all)) = key.key else { panic!("{key:?}") };
        assert_eq!(all.keys.len(), 3, "{all:?}");
        assert!(matches!(&all.keys[0].key, Some(Key::Not(_))));
        assert!(matches!(&all.keys[1].key, Some(Key::Or(_))));
        // Message numbers are the mailbox's UIDs in order.
        assert_eq!(all.keys[2].key, Some(Key::Uids(pb::UidList { uids: vec![7, 9] })));
    }

    #[test]
    fn a_malformed_query_is_refused_with_the_rfc_named() {
        let error = query(&words(&["SINCE", "yesterday"]), &[]).unwrap_err().to_string();
        assert!(error.contains("RFC 9051"), "{error}");
        assert!(query(&words(&[]), &[]).is_err());
        assert!(field_name("Subject").is_ok());
        assert!(field_name("Sub ject").is_err());
    }
}
