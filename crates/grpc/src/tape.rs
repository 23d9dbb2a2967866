//! A request body that can be sent again: each attempt reads a [`TapeBody`] that plays back what earlier
//! attempts already pulled from the caller's body and then pulls on. What was pulled is kept up to a
//! limit, so a streamed 50 MB message is never held whole in memory: past the limit the call can no
//! longer be sent again (unless no attempt ever read a byte of it).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use tonic::Status;
use tonic::body::Body;

/// The caller's body and what attempts have pulled from it so far.
pub(crate) struct Tape {
    source: Body,
    /// Frames pulled so far, from frame number `first` on; emptied once past `limit` bytes.
    kept: Vec<Kept>,
    first: usize,
    pulled: usize,
    kept_bytes: usize,
    limit: usize,
    /// Whether any attempt has read from the body at all.
    touched: bool,
    /// The source ended without error.
    ended: bool,
}

enum Kept {
    Data(Bytes),
    Trailers(HeaderMap),
}

impl Kept {
    fn frame(&self) -> Frame<Bytes> {
        match self {
            Kept::Data(data) => Frame::data(data.clone()),
            Kept::Trailers(trailers) => Frame::trailers(trailers.clone()),
        }
    }
}

impl Tape {
    /// Keeps up to `limit` bytes of `source` for attempts after the first (0: keeps nothing).
    pub(crate) fn new(source: Body, limit: usize) -> Arc<Mutex<Tape>> {
        Arc::new(Mutex::new(Tape {
            source,
            kept: Vec::new(),
            first: 0,
            pulled: 0,
            kept_bytes: 0,
            limit,
            touched: false,
            ended: false,
        }))
    }

    /// Whether another attempt can be sent the whole body: nothing was read yet, or all that was read
    /// is still kept.
    pub(crate) fn can_replay(&self) -> bool {
        !self.touched || self.first == 0
    }

    /// Whether no attempt has read any of the body: then no server can have acted on the call.
    pub(crate) fn untouched(&self) -> bool {
        !self.touched
    }

    fn keep(&mut self, frame: &Frame<Bytes>) {
        self.pulled += 1;
        if self.first != 0 {
            self.first = self.pulled;
            return;
        }
        let (kept, size) = match (frame.data_ref(), frame.trailers_ref()) {
            (Some(data), _) => (Kept::Data(data.clone()), data.len()),
            (None, Some(trailers)) => (Kept::Trailers(trailers.clone()), 0),
            (None, None) => return,
        };
        self.kept_bytes += size;
        if self.kept_bytes > self.limit {
            self.kept = Vec::new();
            self.first = self.pulled;
        } else {
            self.kept.push(kept);
        }
    }
}

/// One attempt's view of a [`Tape`].
pub(crate) struct TapeBody {
    tape: Arc<Mutex<Tape>>,
    next: usize,
}

impl TapeBody {
    pub(crate) fn new(tape: Arc<Mutex<Tape>>) -> Self {
        TapeBody { tape, next: 0 }
    }
}

impl http_body::Body for TapeBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        let mut tape = this.tape.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tape.touched = true;
        if this.next < tape.first {
            return Poll::Ready(Some(Err(Status::internal("request body can no longer be sent again"))));
        }
        if let Some(kept) = tape.kept.get(this.next - tape.first) {
            this.next += 1;
            return Poll::Ready(Some(Ok(kept.frame())));
        }
        if tape.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut tape.source).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                tape.keep(&frame);
                this.next = tape.pulled;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                tape.ended = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(chunks: &[&'static str]) -> Body {
        let frames = chunks.iter().map(|c| Ok::<_, Status>(Frame::data(Bytes::from_static(c.as_bytes()))));
        Body::new(http_body_util::StreamBody::new(futures::stream::iter(frames.collect::<Vec<_>>())))
    }

    async fn read(body: TapeBody) -> Result<String, Status> {
        use http_body_util::BodyExt;
        let bytes = body.collect().await?.to_bytes();
        Ok(String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_second_attempt_reads_the_whole_body_again() {
        let tape = Tape::new(body_of(&["one ", "two ", "three"]), 1024);
        assert!(tape.lock().unwrap().untouched());
        assert_eq!(read(TapeBody::new(tape.clone())).await.unwrap(), "one two three");
        assert!(!tape.lock().unwrap().untouched());
        assert!(tape.lock().unwrap().can_replay());
        assert_eq!(read(TapeBody::new(tape.clone())).await.unwrap(), "one two three");
    }

    #[tokio::test]
    async fn an_attempt_that_read_part_of_the_body_leaves_the_rest_for_the_next() {
        use http_body_util::BodyExt;
        let tape = Tape::new(body_of(&["one ", "two ", "three"]), 1024);
        let mut first = TapeBody::new(tape.clone());
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "one ");
        drop(first);
        assert_eq!(read(TapeBody::new(tape)).await.unwrap(), "one two three");
    }

    #[tokio::test]
    async fn past_the_limit_the_body_cannot_be_sent_again() {
        let tape = Tape::new(body_of(&["0123456789", "0123456789"]), 15);
        assert_eq!(read(TapeBody::new(tape.clone())).await.unwrap(), "01234567890123456789");
        assert!(!tape.lock().unwrap().can_replay());
        assert!(read(TapeBody::new(tape)).await.is_err());
    }

    #[tokio::test]
    async fn an_untouched_body_is_sent_whole_even_with_nothing_kept() {
        let tape = Tape::new(body_of(&["all of it"]), 0);
        assert!(tape.lock().unwrap().can_replay());
        drop(TapeBody::new(tape.clone()));
        assert_eq!(read(TapeBody::new(tape)).await.unwrap(), "all of it");
    }
}
