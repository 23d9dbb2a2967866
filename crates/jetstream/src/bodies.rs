//! Reading a large body out of the body store without a consumer per read.
//!
//! async-nats's `ObjectStore::get` reads an object's chunks through an ephemeral ordered consumer, which
//! nats-server keeps for about 30 s after its last use: a burst of large messages made thousands of them
//! and ran into nats-server 2.15's default per-stream consumer limit (BENCHMARKS.md). Here the object's
//! info, then each of its chunks, comes by direct get (`$JS.API.DIRECT.GET.<stream>`, which needs
//! `allow_direct` on the body stream): a plain request that leaves nothing behind on the server. The chunks
//! are checked against the chunk count, size and SHA-256 digest the info carries before the body is used.
//!
//! [`Assembly`] is the checking, without I/O; [`read`] does the requests.

use async_nats::jetstream::{object_store, stream};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;

use crate::queue::QueueError;

/// What went wrong putting a body together from its chunks: the store holds something other than what
/// its info says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Mismatch {
    #[error("more than the {expected} chunks the object info names")]
    TooManyChunks { expected: usize },
    #[error("more than the {expected} octets the object info names")]
    TooLong { expected: usize },
    #[error("{got} chunks and {size} octets where the object info names {chunks} and {expected}")]
    Short { got: usize, size: usize, chunks: usize, expected: usize },
    #[error("digest {got} where the object info names {expected}")]
    Digest { got: String, expected: String },
}

/// One body being put together from its chunks, in order.
pub(crate) struct Assembly {
    chunks: usize,
    size: usize,
    digest: Option<String>,
    seen: usize,
    body: Vec<u8>,
    sha256: ring::digest::Context,
}

impl Assembly {
    /// For an object of `chunks` chunks and `size` octets, whose digest (`SHA-256=<base64url>`, as the
    /// object store writes it) is `digest` when the info has one.
    pub(crate) fn new(chunks: usize, size: usize, digest: Option<String>) -> Self {
        Assembly {
            chunks,
            size,
            digest,
            seen: 0,
            body: Vec::with_capacity(size),
            sha256: ring::digest::Context::new(&ring::digest::SHA256),
        }
    }

    /// Whether every chunk the info names has been pushed.
    pub(crate) fn is_complete(&self) -> bool {
        self.seen >= self.chunks
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), Mismatch> {
        if self.seen >= self.chunks {
            return Err(Mismatch::TooManyChunks { expected: self.chunks });
        }
        if self.body.len() + chunk.len() > self.size {
            return Err(Mismatch::TooLong { expected: self.size });
        }
        self.seen += 1;
        self.sha256.update(chunk);
        self.body.extend_from_slice(chunk);
        Ok(())
    }

    /// The body, once it has every chunk, the size and the digest the info names.
    pub(crate) fn finish(self) -> Result<Vec<u8>, Mismatch> {
        if self.seen != self.chunks || self.body.len() != self.size {
            return Err(Mismatch::Short {
                got: self.seen,
                size: self.body.len(),
                chunks: self.chunks,
                expected: self.size,
            });
        }
        let got = format!("SHA-256={}", URL_SAFE.encode(self.sha256.finish()));
        match self.digest {
            Some(expected) if expected != got => Err(Mismatch::Digest { got, expected }),
            _ => Ok(self.body),
        }
    }
}

/// Reads the whole body `key` from `bodies`, whose stream is `stream` (with `allow_direct`).
pub(crate) async fn read(
    bodies: &object_store::ObjectStore,
    stream: &stream::Stream,
    bucket: &str,
    key: &str,
) -> Result<Vec<u8>, QueueError> {
    let missing = || QueueError::MissingBody { key: key.to_owned() };
    let failed = |message: String| QueueError::GetBody { key: key.to_owned(), message };
    // With allow_direct in the store's cached stream info, `info` reads the last meta message by direct
    // get as well; without it, by the leader's message get. Neither makes a consumer.
    let info = bodies.info(key).await.map_err(|e| match e.kind() {
        object_store::InfoErrorKind::NotFound => missing(),
        _ => failed(e.to_string()),
    })?;
    if info.deleted {
        return Err(missing());
    }
    let subject = format!("$O.{bucket}.C.{}", info.nuid);
    let mut assembly = Assembly::new(info.chunks, info.size, info.digest.clone());
    let mut next = 1;
    while !assembly.is_complete() {
        let chunk = stream.direct_get_next_for_subject(subject.as_str(), Some(next)).await.map_err(|e| {
            match e.kind() {
                // The chunks were purged under us: the body was deleted while we read it.
                stream::DirectGetErrorKind::NotFound => missing(),
                _ => failed(e.to_string()),
            }
        })?;
        assembly.push(&chunk.payload).map_err(|e| failed(e.to_string()))?;
        next = chunk.sequence + 1;
    }
    assembly.finish().map_err(|e| failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(body: &[u8]) -> String {
        format!("SHA-256={}", URL_SAFE.encode(ring::digest::digest(&ring::digest::SHA256, body)))
    }

    #[test]
    fn chunks_that_match_the_info_make_the_body() {
        let body = b"0123456789abcdef".repeat(10);
        let mut assembly = Assembly::new(3, body.len(), Some(digest_of(&body)));
        for chunk in body.chunks(64) {
            assert!(!assembly.is_complete());
            assembly.push(chunk).unwrap();
        }
        assert!(assembly.is_complete());
        assert_eq!(assembly.finish().unwrap(), body);
    }

    #[test]
    fn a_changed_chunk_fails_the_digest() {
        let body = b"hello world".to_vec();
        let mut assembly = Assembly::new(1, body.len(), Some(digest_of(&body)));
        assembly.push(b"hello World").unwrap();
        assert!(matches!(assembly.finish(), Err(Mismatch::Digest { .. })));
    }

    #[test]
    fn too_many_chunks_or_octets_are_refused() {
        let mut assembly = Assembly::new(1, 4, None);
        assert_eq!(assembly.push(b"12345"), Err(Mismatch::TooLong { expected: 4 }));
        assembly.push(b"1234").unwrap();
        assert_eq!(assembly.push(b""), Err(Mismatch::TooManyChunks { expected: 1 }));
    }

    #[test]
    fn a_short_body_is_refused() {
        let mut assembly = Assembly::new(2, 8, None);
        assembly.push(b"1234").unwrap();
        assert_eq!(assembly.finish(), Err(Mismatch::Short { got: 1, size: 4, chunks: 2, expected: 8 }));
        let assembly = Assembly::new(1, 8, None);
        assert!(matches!(assembly.finish(), Err(Mismatch::Short { .. })));
    }

    #[test]
    fn an_empty_object_has_no_chunks() {
        // The digest as async-nats 0.51 writes it for the empty object: base64url, with padding.
        let assembly = Assembly::new(0, 0, Some("SHA-256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=".into()));
        assert!(assembly.is_complete());
        assert_eq!(assembly.finish().unwrap(), Vec::<u8>::new());
    }
}
