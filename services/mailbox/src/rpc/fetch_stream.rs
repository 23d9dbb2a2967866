//! FETCH's reply stream: the rows are read first, then each message's metadata goes out followed by its
//! sections in chunks, the octets read in batches of bounded size, while a slow client holds back only a
//! bounded buffer.

use std::pin::Pin;

use futures::Stream;
use mailbus_address::{AccountId, MailboxName, Uid};
use mailbus_proto::v1::{self as pb, MailboxEventKind};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::Instrument;

use crate::mime;
use crate::rpc::{MailboxService, mailbox_name, uids};
use crate::sections::{self, UnknownCte};
use crate::store::fetch::{self, FetchRow};
use crate::store::messages::{self, StoreMode};

/// Message octets go out in chunks of this size.
pub(super) const CHUNK: usize = 64 * 1024;

/// FETCH reads the octets of at most this many bytes' worth of messages at a time (at least one message).
const FETCH_BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// FETCH responses buffered ahead of a slow client.
const FETCH_BUFFER: usize = 64;

pub(super) type FetchStream = Pin<Box<dyn Stream<Item = Result<pb::FetchResponse, Status>> + Send>>;

type Sender = mpsc::Sender<Result<pb::FetchResponse, Status>>;

/// The caller went away: stop sending.
struct Gone;

/// Why one message's reply stopped the stream.
enum Stop {
    Gone,
    Refused(Status),
}

impl From<Gone> for Stop {
    fn from(_: Gone) -> Self {
        Stop::Gone
    }
}

/// The most octets the sections of one message may add up to, beyond twice the message: BODY[] with
/// BODY[HEADER] and BODY[TEXT] is about twice, where a FETCH naming overlapping partial ranges of a large
/// message (`BODY[]<0.n> BODY[]<1.n> …`) would make a copy of it per name, here and in the front end.
const SECTIONS_SLACK: usize = 1024 * 1024;

impl MailboxService {
    /// Sets \Seen first when the request asks (BODY[] rather than BODY.PEEK[]), then streams the rows.
    pub(super) async fn fetch_stream(&self, request: pb::FetchRequest) -> Result<FetchStream, Status> {
        let (account, mailbox) = (AccountId::from(request.account_id), mailbox_name(&request.mailbox)?);
        let uids = uids(&request.uids);
        // The mailbox's MODSEQ before this call's own \Seen (a STORE takes the next one).
        let before_seen = match request.set_seen {
            true => Some(self.mark_seen(account, &mailbox, &uids).await? - 1),
            false => None,
        };
        let (rows, found) = fetch::fetch_rows(&self.pool, account, &mailbox, &uids, request.changed_since).await?;
        let mailbox_modseq = before_seen.map_or(found, |m| m.max(0) as u64);
        let (sender, receiver) = mpsc::channel(FETCH_BUFFER);
        let pool = self.pool.clone();
        tokio::spawn(
            async move {
                if send(&sender, pb::fetch_response::Item::MailboxModseq(mailbox_modseq)).await.is_err() {
                    return;
                }
                if let Err(status) = send_rows(&pool, &request, rows, &sender).await {
                    let _ = sender.send(Err(status)).await;
                }
            }
            .in_current_span(),
        );
        Ok(Box::pin(ReceiverStream::new(receiver)))
    }

    /// Returns the MODSEQ the STORE took (or would have taken, had it changed anything).
    async fn mark_seen(&self, account: AccountId, mailbox: &MailboxName, uids: &[Uid]) -> Result<i64, Status> {
        let seen = ["\\Seen".to_owned()];
        let stored = messages::store(&self.pool, account, mailbox, uids, StoreMode::Add, &seen, None).await?;
        if !stored.changed.is_empty() {
            let kind = MailboxEventKind::FlagsChanged;
            self.events.publish(account, mailbox, kind, &stored.changed, stored.modseq, stored.uidvalidity);
        }
        Ok(stored.modseq)
    }
}

/// Whether a section lies in the message's own header, so that FETCH need read only the header octets.
fn in_top_header(section: &pb::Section) -> bool {
    use pb::SectionText::*;
    section.part.is_empty() && matches!(section.text(), Header | HeaderFields | HeaderFieldsNot)
}

/// Sends each row's metadata and then its sections in chunks, reading octets in batches of bounded size.
async fn send_rows(
    pool: &sqlx::PgPool,
    request: &pb::FetchRequest,
    rows: Vec<FetchRow>,
    sender: &Sender,
) -> Result<(), Status> {
    let wants_octets = !request.sections.is_empty();
    let header_only = request.sections.iter().all(in_top_header);
    let mut start = 0;
    while start < rows.len() {
        // At least one row per batch; more while their octets stay under the bound.
        let mut end = start + 1;
        let mut bytes = rows[start].size;
        while end < rows.len() && bytes + rows[end].size <= FETCH_BATCH_BYTES {
            bytes += rows[end].size;
            end += 1;
        }
        let batch = &rows[start..end];
        start = end;
        let octets = if wants_octets {
            let ids: Vec<i64> = batch.iter().map(|r| r.message_id).collect();
            fetch::octets(pool, &ids, header_only).await?
        } else {
            Default::default()
        };
        for row in batch {
            if wants_octets && !octets.contains_key(&row.message_id) {
                continue; // Expunged (by another session) since the rows were read: it is gone.
            }
            let Some(structure) = structure(pool, request, row, wants_octets).await? else { continue };
            let content = octets.get(&row.message_id).map(Vec::as_slice).unwrap_or_default();
            let preview = match request.preview {
                true => Some(preview(pool, row).await?),
                false => None,
            };
            match send_message(request, row, &structure, content, preview, sender).await {
                Ok(()) => {}
                Err(Stop::Gone) => return Ok(()),
                Err(Stop::Refused(status)) => return Err(status),
            }
        }
    }
    Ok(())
}

/// The row's stored structure when the reply needs one; None when the message went away meanwhile.
async fn structure(
    pool: &sqlx::PgPool,
    request: &pb::FetchRequest,
    row: &FetchRow,
    wants_octets: bool,
) -> Result<Option<pb::MessageStructure>, Status> {
    let needs_structure = request.envelope || request.body_structure || wants_octets;
    let stored = row.structure.as_deref().filter(|_| needs_structure).map(pb::MessageStructure::decode);
    Ok(match stored {
        Some(Ok(structure)) => Some(structure),
        None if !needs_structure => Some(pb::MessageStructure::default()),
        // Stored before parsing existed (and not backfilled yet), or unreadable: parse it now.
        _ => {
            let whole = fetch::octets(pool, &[row.message_id], false).await?;
            whole.get(&row.message_id).map(|whole| mime::parse(whole).structure)
        }
    })
}

/// The row's stored preview, or for a message stored before previews were, one worked out from its octets
/// (as Email/get does); empty when the message went away meanwhile.
async fn preview(pool: &sqlx::PgPool, row: &FetchRow) -> Result<String, Status> {
    if let Some(preview) = &row.preview {
        return Ok(preview.clone());
    }
    let whole = fetch::octets(pool, &[row.message_id], false).await?;
    Ok(whole.get(&row.message_id).map(|whole| mime::parse(whole).preview).unwrap_or_default())
}

/// One message's metadata, then each of its sections in chunks.
async fn send_message(
    request: &pb::FetchRequest,
    row: &FetchRow,
    structure: &pb::MessageStructure,
    content: &[u8],
    preview: Option<String>,
    sender: &Sender,
) -> Result<(), Stop> {
    let budget = content.len().saturating_mul(2).saturating_add(SECTIONS_SLACK);
    let mut total = 0usize;
    let mut sections: Vec<Result<Option<Vec<u8>>, UnknownCte>> = Vec::with_capacity(request.sections.len());
    for section in &request.sections {
        let extracted = sections::extract_section(content, structure, section);
        total = total.saturating_add(extracted.as_ref().map_or(0, |data| data.as_ref().map_or(0, Vec::len)));
        if total > budget {
            return Err(Stop::Refused(Status::invalid_argument(format!(
                "the sections asked of message UID {} add up to more than twice its size",
                row.uid.get()
            ))));
        }
        sections.push(extracted);
    }
    let meta = pb::FetchedMessage {
        uid: row.uid.get(),
        flags: row.flags.clone(),
        modseq: row.modseq,
        internal_date_unix: row.internal_date_unix,
        saved_unix: row.saved_unix,
        size: row.size,
        envelope: if request.envelope { structure.envelope.clone() } else { None },
        body_structure: if request.body_structure { structure.body.clone() } else { None },
        section_sizes: sections
            .iter()
            .map(|s| match s {
                Ok(Some(data)) => data.len() as i64,
                Ok(None) => -1,
                Err(UnknownCte) => -2,
            })
            .collect(),
        email_id: row.message_id,
        thread_id: row.thread_id,
        preview,
    };
    send(sender, pb::fetch_response::Item::Message(meta)).await?;
    for (index, data) in sections.into_iter().enumerate() {
        for chunk in data.ok().flatten().unwrap_or_default().chunks(CHUNK) {
            let chunk = pb::SectionChunk { section: index as u32, data: chunk.to_vec() };
            send(sender, pb::fetch_response::Item::Chunk(chunk)).await?;
        }
    }
    Ok(())
}

async fn send(sender: &Sender, item: pb::fetch_response::Item) -> Result<(), Gone> {
    sender.send(Ok(pb::FetchResponse { item: Some(item) })).await.map_err(|_| Gone)
}
