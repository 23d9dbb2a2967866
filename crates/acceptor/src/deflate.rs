//! A connection's compression layer, once its protocol turned it on (IMAP COMPRESS=DEFLATE, RFC 4978):
//! both directions are raw DEFLATE streams (RFC 1951, no zlib header), and every batch of output ends
//! with a sync flush so the peer can read each response as soon as it arrives.
//!
//! Memory is bounded both ways. Only a connection that asked for compression has this state (boxed in
//! [`Wire`](crate::wire::Wire)). Inflating fills at most the room the caller gives it per call, and what
//! is left stays compressed (in `raw` or inside the inflater) until the session has taken the inflated
//! bytes: a small compressed input that expands to gigabytes is read by the session a chunk at a time,
//! and the session's own command-size and literal limits refuse it as they would the same bytes sent
//! plain.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The most compressed bytes kept waiting for the inflater: it takes everything it is given unless its
/// output is full, so more than this means a stream it cannot make progress on.
const MAX_RAW: usize = 64 * 1024;

/// The compressed output is written this much at a time.
const DEFLATED_CHUNK: usize = 16 * 1024;

/// The peer's compressed input is not a DEFLATE stream (or it ended the stream and went on sending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the compressed input is not a valid DEFLATE stream")]
pub struct CorruptInput;

pub struct Deflate {
    deflater: Compress,
    inflater: Decompress,
    /// Compressed bytes received and not yet inflated.
    pub(crate) raw: Vec<u8>,
    /// The last inflate filled all the room it had: more output may wait inside the inflater.
    more: bool,
    /// The peer ended its stream (a final block): nothing may follow.
    ended: bool,
}

impl Default for Deflate {
    fn default() -> Self {
        Self::new()
    }
}

impl Deflate {
    pub fn new() -> Self {
        Deflate {
            deflater: Compress::new(Compression::default(), false),
            inflater: Decompress::new(false),
            raw: Vec::new(),
            more: false,
            ended: false,
        }
    }

    /// Whether [`Self::inflate`] may produce something without a new read.
    pub fn has_pending(&self) -> bool {
        self.more || !self.raw.is_empty()
    }

    /// Inflates what is waiting in `raw` into `out`, at most `room` bytes (more when `out` already has
    /// spare capacity): how many bytes were added. Zero means more compressed input is needed.
    pub fn inflate(&mut self, out: &mut Vec<u8>, room: usize) -> Result<usize, CorruptInput> {
        if !self.has_pending() {
            return Ok(0);
        }
        if self.ended {
            return Err(CorruptInput);
        }
        out.reserve(room);
        let (before_in, before_out) = (self.inflater.total_in(), self.inflater.total_out());
        let status = self.inflater.decompress_vec(&self.raw, out, FlushDecompress::None).map_err(|_| CorruptInput)?;
        let consumed = (self.inflater.total_in() - before_in) as usize;
        let produced = (self.inflater.total_out() - before_out) as usize;
        self.raw.drain(..consumed);
        self.more = out.len() == out.capacity();
        if status == Status::StreamEnd {
            self.ended = true;
            self.more = false;
            if !self.raw.is_empty() {
                return Err(CorruptInput);
            }
        }
        if produced == 0 && self.raw.len() > MAX_RAW {
            return Err(CorruptInput);
        }
        Ok(produced)
    }

    /// One step of compressing `plain` (from `*taken` on) into `deflated` (cleared first, at most a
    /// chunk), ending with a sync flush (RFC 4978 §4: each response burst must reach the peer whole):
    /// `true` once all of `plain` and the flush are out. The caller writes `deflated` after each step.
    pub fn deflate_step(&mut self, plain: &[u8], taken: &mut usize, deflated: &mut Vec<u8>) -> bool {
        deflated.clear();
        deflated.reserve(DEFLATED_CHUNK);
        let before = self.deflater.total_in();
        // Compressing into a Vec with room cannot fail: a stream error here is a bug in the codec.
        self.deflater.compress_vec(&plain[*taken..], deflated, FlushCompress::Sync).expect("deflate into memory");
        *taken += (self.deflater.total_in() - before) as usize;
        // Done when all input is in and the flush did not fill the buffer (nothing more inside).
        *taken == plain.len() && deflated.len() < deflated.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflate_chunks(deflate: &mut Deflate, plain: &[u8], mut write: impl FnMut(&[u8])) {
        let (mut taken, mut scratch) = (0, Vec::new());
        loop {
            let done = deflate.deflate_step(plain, &mut taken, &mut scratch);
            write(&scratch);
            if done {
                return;
            }
        }
    }

    fn deflate_all(deflate: &mut Deflate, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        deflate_chunks(deflate, plain, |chunk| out.extend_from_slice(chunk));
        out
    }

    fn inflate_raw(compressed: &[u8]) -> Vec<u8> {
        let mut inflater = Decompress::new(false);
        let mut out = Vec::with_capacity(compressed.len() * 1000 + 1024);
        inflater.decompress_vec(compressed, &mut out, FlushDecompress::Sync).unwrap();
        out
    }

    #[test]
    fn each_burst_is_readable_alone_and_ends_with_the_sync_marker() {
        let mut deflate = Deflate::new();
        let first = deflate_all(&mut deflate, b"* OK first\r\n");
        // RFC 1951 §3.2.4: a sync flush ends with an empty stored block, 00 00 ff ff.
        assert!(first.ends_with(&[0, 0, 0xff, 0xff]), "{first:x?}");
        let second = deflate_all(&mut deflate, b"a1 OK second\r\n");
        assert!(second.ends_with(&[0, 0, 0xff, 0xff]), "{second:x?}");
        // One stream: the second burst is read after the first, by the same inflater.
        let mut both = first.clone();
        both.extend_from_slice(&second);
        assert_eq!(inflate_raw(&first), b"* OK first\r\n");
        assert_eq!(inflate_raw(&both), b"* OK first\r\na1 OK second\r\n");
    }

    #[test]
    fn a_large_burst_goes_out_in_chunks_and_compresses() {
        let mut deflate = Deflate::new();
        let plain: Vec<u8> = (0..400_000u32).map(|i| b"abcdefgh\r\n"[(i % 10) as usize]).collect();
        let mut chunks = 0;
        let mut out = Vec::new();
        deflate_chunks(&mut deflate, &plain, |chunk| {
            chunks += 1;
            assert!(chunk.len() <= scratch_limit(), "{}", chunk.len());
            out.extend_from_slice(chunk);
        });
        assert!(out.len() < plain.len() / 10, "{} bytes", out.len());
        assert_eq!(inflate_raw(&out), plain);
        assert!(chunks >= 1);
    }

    fn scratch_limit() -> usize {
        // `reserve` may round up; never more than twice the chunk.
        2 * DEFLATED_CHUNK
    }

    /// Compresses `plain` as a client would (its own raw DEFLATE stream, sync-flushed).
    fn client_stream(plain: &[u8]) -> Vec<u8> {
        let mut client = Deflate::new();
        deflate_all(&mut client, plain)
    }

    #[test]
    fn input_split_anywhere_inflates_to_the_same_bytes() {
        let plain = b"a1 SELECT INBOX\r\na2 FETCH 1:* (FLAGS)\r\n";
        let compressed = client_stream(plain);
        for split in 0..=compressed.len() {
            let mut deflate = Deflate::new();
            let mut out = Vec::new();
            deflate.raw.extend_from_slice(&compressed[..split]);
            while deflate.inflate(&mut out, 512).unwrap() > 0 {}
            deflate.raw.extend_from_slice(&compressed[split..]);
            while deflate.inflate(&mut out, 512).unwrap() > 0 {}
            assert_eq!(out, plain, "split at {split}");
        }
    }

    #[test]
    fn a_bomb_inflates_only_as_much_as_there_is_room_for_each_time() {
        // 64 MiB of one letter compresses to about 64 KiB.
        let plain = vec![b'a'; 64 * 1024 * 1024];
        let compressed = client_stream(&plain);
        assert!(compressed.len() < 128 * 1024, "{}", compressed.len());
        let mut deflate = Deflate::new();
        deflate.raw.extend_from_slice(&compressed);
        let mut out = Vec::new();
        let produced = deflate.inflate(&mut out, 8192).unwrap();
        assert!(produced > 0 && out.capacity() <= 16 * 1024, "{produced} bytes, capacity {}", out.capacity());
        // The rest is still waiting, compressed, for the next call.
        assert!(deflate.has_pending());
        out.clear();
        let again = deflate.inflate(&mut out, 8192).unwrap();
        assert!(again > 0 && out.capacity() <= 16 * 1024);
    }

    #[test]
    fn garbage_is_refused_not_a_panic() {
        let mut deflate = Deflate::new();
        // BTYPE 11 is reserved (RFC 1951 §3.2.3): an error at once.
        deflate.raw.extend_from_slice(&[0xff; 64]);
        let mut out = Vec::new();
        assert_eq!(deflate.inflate(&mut out, 512), Err(CorruptInput));
        // And so is anything after the peer's final block.
        let mut ended = Compress::new(Compression::default(), false);
        let mut finished = Vec::with_capacity(1024);
        ended.compress_vec(b"a1 NOOP\r\n", &mut finished, FlushCompress::Finish).unwrap();
        finished.extend_from_slice(b"more");
        let mut deflate = Deflate::new();
        deflate.raw.extend_from_slice(&finished);
        let mut out = Vec::new();
        assert_eq!(deflate.inflate(&mut out, 512), Err(CorruptInput));
    }
}
