//! The mailbox role's store, through its gRPC API, against the harness's real PostgreSQL.

mod directory;
mod mailboxes;
mod messages;

use mailbus_proto::v1 as pb;
use mailbus_tests::TestStack;

/// Appends `content` to `mailbox` with `flags`, in chunks of 1000 octets so the stream is exercised.
pub async fn append(
    stack: &TestStack,
    account_id: i64,
    mailbox: &str,
    flags: &[&str],
    internal_date_unix: Option<i64>,
    content: &[u8],
) -> Result<pb::AppendResponse, tonic::Status> {
    let header = pb::AppendHeader {
        account_id,
        mailbox: mailbox.into(),
        flags: flags.iter().map(|f| f.to_string()).collect(),
        internal_date_unix,
        size: content.len() as u64,
        import_digest: None,
    };
    let parts = mailbus_proto::upload::append(header, content, 1000);
    stack.mailbox().await.append(futures::stream::iter(parts)).await.map(tonic::Response::into_inner)
}

/// One fetched message: its metadata and each requested section's octets (None where the message has no
/// such part), plus how many chunks carried them.
#[derive(Debug)]
pub struct Fetched {
    pub message: pb::FetchedMessage,
    pub sections: Vec<Option<Vec<u8>>>,
    pub chunks: usize,
}

pub async fn fetch(stack: &TestStack, request: pb::FetchRequest) -> Result<Vec<Fetched>, tonic::Status> {
    let mut stream = stack.mailbox().await.fetch(request).await?.into_inner();
    let mut out: Vec<Fetched> = Vec::new();
    while let Some(item) = stream.message().await? {
        match item.item.expect("a fetch response carries an item") {
            pb::fetch_response::Item::Message(message) => {
                let sections = message.section_sizes.iter().map(|&s| (s >= 0).then(Vec::new)).collect();
                out.push(Fetched { message, sections, chunks: 0 });
            }
            pb::fetch_response::Item::Chunk(chunk) => {
                let current = out.last_mut().expect("chunks follow their message");
                current.chunks += 1;
                current.sections[chunk.section as usize]
                    .as_mut()
                    .expect("chunk of an existing section")
                    .extend(chunk.data);
            }
            pb::fetch_response::Item::MailboxModseq(_) => assert!(out.is_empty(), "the mailbox's MODSEQ comes first"),
        }
    }
    for fetched in &out {
        let sizes: Vec<i64> = fetched.sections.iter().map(|s| s.as_ref().map_or(-1, |d| d.len() as i64)).collect();
        assert_eq!(sizes, fetched.message.section_sizes, "announced sizes match the octets sent");
    }
    Ok(out)
}

pub fn section(part: &[u32], text: pb::SectionText) -> pb::Section {
    pb::Section { part: part.to_vec(), text: text.into(), ..Default::default() }
}
