//! Deliver's and Append's client streams: a header that announces the size, then body chunks, read into
//! the header and the octets with the size checked; and the MIME parse that follows, off the async threads.

use futures::StreamExt;
use mailbus_proto::v1::{self as pb, append_request, deliver_request};
use tonic::{Status, Streaming};

use crate::error::invalid;
use crate::mime::{self, Parsed};

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
pub(super) async fn read_upload<R: Upload>(
    mut stream: Streaming<R>,
    limit: u64,
) -> Result<(R::Header, Vec<u8>), Status> {
    let header = match stream.next().await {
        Some(Ok(first)) => match first.split() {
            Some(Ok(header)) => header,
            _ => return Err(invalid("the first message must be the header")),
        },
        Some(Err(status)) => return Err(status),
        None => return Err(invalid("empty request stream")),
    };
    let size = R::size(&header);
    if size > limit {
        return Err(invalid(format!("message of {size} octets exceeds the limit of {limit}")));
    }
    let mut content = Vec::with_capacity(size as usize);
    while let Some(part) = stream.next().await {
        match part?.split() {
            Some(Err(chunk)) => content.extend_from_slice(&chunk),
            _ => return Err(invalid("only body chunks may follow the header")),
        }
        if content.len() as u64 > size {
            return Err(invalid("body is longer than the header's size"));
        }
    }
    if content.len() as u64 != size {
        return Err(invalid(format!("body has {} octets, the header said {size}", content.len())));
    }
    Ok((header, content))
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
