//! Deliver's and Append's client streams: a header that announces the size, then body chunks, read into
//! the header and the octets with the size checked; and the MIME parse that follows, off the async threads.

use futures::StreamExt;
use mailbus_proto::v1::{self as pb, append_request, deliver_request};
use tonic::{Status, Streaming};

use crate::error::invalid;
use crate::mime::{self, Parsed};

/// The most messages one Append stream may carry (the access role sends at most as many as the client's
/// APPEND had, which its command bound keeps far below this).
const MAX_UPLOADS: usize = 1000;

/// A client-streamed upload (Deliver, Append): a header that announces the size, then body chunks.
pub(super) trait Upload: prost::Message + Default + 'static {
    type Header;
    /// The header, or a chunk; None for an empty message.
    fn split(self) -> Option<Result<Self::Header, Vec<u8>>>;
    fn size(header: &Self::Header) -> u64;
}

impl Upload for pb::DeliverRequest {
    type Header = pb::DeliveryHeader;

    fn split(self) -> Option<Result<Self::Header, Vec<u8>>> {
        match self.part? {
            deliver_request::Part::Header(header) => Some(Ok(header)),
            deliver_request::Part::Chunk(chunk) => Some(Err(chunk)),
        }
    }

    fn size(header: &Self::Header) -> u64 {
        header.size
    }
}

impl Upload for pb::AppendRequest {
    type Header = pb::AppendHeader;

    fn split(self) -> Option<Result<Self::Header, Vec<u8>>> {
        match self.part? {
            append_request::Part::Header(header) => Some(Ok(header)),
            append_request::Part::Chunk(chunk) => Some(Err(chunk)),
        }
    }

    fn size(header: &Self::Header) -> u64 {
        header.size
    }
}

/// Reads a client stream of `header, chunk, chunk, ...` into the header and the octets, checking the size
/// the header announced against the limit and against what arrived.
pub(super) async fn read_upload<R: Upload>(stream: Streaming<R>, limit: u64) -> Result<(R::Header, Vec<u8>), Status> {
    let mut uploads = read_uploads(stream, limit, limit).await?;
    if uploads.len() > 1 {
        return Err(invalid("only body chunks may follow the header"));
    }
    Ok(uploads.pop().expect("read_uploads reads at least one"))
}

/// Reads a client stream of one or more uploads, each `header, chunk, chunk, ...` (RFC 3502 MULTIAPPEND):
/// each is checked against `limit` and against the size its header announced, and all of them together
/// against `total`, before the octets are held, so a stream cannot make the role buffer more.
pub(super) async fn read_uploads<R: Upload>(
    mut stream: Streaming<R>,
    limit: u64,
    total: u64,
) -> Result<Vec<(R::Header, Vec<u8>)>, Status> {
    let mut uploads: Vec<(R::Header, Vec<u8>)> = Vec::new();
    let mut announced = 0u64;
    let mut expected = 0u64;
    while let Some(part) = stream.next().await {
        match part?.split() {
            Some(Ok(header)) => {
                if let Some((_, content)) = uploads.last()
                    && content.len() as u64 != expected
                {
                    return Err(invalid(format!("body has {} octets, the header said {expected}", content.len())));
                }
                let size = R::size(&header);
                if size > limit {
                    return Err(invalid(format!("message of {size} octets exceeds the limit of {limit}")));
                }
                announced = announced.saturating_add(size);
                if announced > total {
                    return Err(invalid(format!("messages of {announced} octets together exceed {total}")));
                }
                if uploads.len() == MAX_UPLOADS {
                    return Err(invalid(format!("more than {MAX_UPLOADS} messages in one stream")));
                }
                expected = size;
                uploads.push((header, Vec::with_capacity(size as usize)));
            }
            Some(Err(chunk)) => {
                let Some((_, content)) = uploads.last_mut() else {
                    return Err(invalid("the first message must be the header"));
                };
                content.extend_from_slice(&chunk);
                if content.len() as u64 > expected {
                    return Err(invalid("body is longer than the header's size"));
                }
            }
            None if uploads.is_empty() => return Err(invalid("the first message must be the header")),
            None => return Err(invalid("only body chunks may follow the header")),
        }
    }
    match uploads.last() {
        None => Err(invalid("empty request stream")),
        Some((_, content)) if content.len() as u64 != expected => {
            Err(invalid(format!("body has {} octets, the header said {expected}", content.len())))
        }
        Some(_) => Ok(uploads),
    }
}

/// MIME parsing is CPU work: it runs off the async threads.
pub(super) async fn parse(content: Vec<u8>) -> Result<(Vec<u8>, Parsed), Status> {
    tokio::task::spawn_blocking(move || {
        let parsed = mime::parse(&content);
        (content, parsed)
    })
    .await
    .map_err(|e| Status::internal(format!("parsing the message: {e}")))
}
