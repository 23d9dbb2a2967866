//! A message body from its first octet until it is enqueued: in memory up to a limit, then in an unnamed
//! temporary file, so that a client holding an unfinished DATA or BDAT costs at most the limit in memory
//! however large its body grows. The digest the spool deduplicates with and the Message-ID are taken as
//! the octets pass, so the body is read once more only to be stored.

use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use mailbus_jetstream::INLINE_LIMIT;
use tokio::fs::File;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio_util::either::Either;

/// Bodies up to this size stay in memory. It is the size of a body that travels inside the envelope, which
/// has to be in memory whole on its way there anyway; a larger one goes to the object store, streamed from
/// its file. At the default caps that is at most 256 MiB for the process's 1000 sessions, and 12.5 MiB
/// for the 50 of one address.
pub const MEMORY_LIMIT: usize = INLINE_LIMIT;

/// The pieces in which a body goes to its file: the writer's buffer, and tokio's for the write in flight,
/// are each this large, so a body on disk costs twice this in memory.
const WRITE_BUFFER: usize = 64 * 1024;

/// A header line longer than this (RFC 5322 §2.1.1: 998 octets and CRLF) is looked at only this far for
/// the Message-ID.
const HEADER_LINE_LIMIT: usize = 1000;

/// Where bodies wait while they arrive.
#[derive(Debug, Clone)]
pub struct BodyStorage {
    /// Octets of one body kept in memory before it moves to a file.
    pub memory_limit: usize,
    /// Where those files are made. They have no name, so they vanish when closed, or when the process dies.
    pub dir: Arc<Path>,
}

impl BodyStorage {
    /// Makes one file, so that a directory that cannot hold them fails start-up rather than every large
    /// message.
    pub fn check(&self) -> io::Result<()> {
        tempfile::tempfile_in(&self.dir).map(drop)
    }
}

/// A body as its octets arrive.
pub struct BodySink {
    storage: BodyStorage,
    memory: Vec<u8>,
    file: Option<BufWriter<File>>,
    /// The first failure to keep the body. The client's data is still read to its end (only counted from
    /// then on), and the message gets 451.
    error: Option<io::Error>,
    size: usize,
    digest: ring::digest::Context,
    message_id: MessageIdScan,
    memory_peak: usize,
}

impl BodySink {
    pub fn new(storage: &BodyStorage) -> Self {
        BodySink {
            storage: storage.clone(),
            memory: Vec::new(),
            file: None,
            error: None,
            size: 0,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            message_id: MessageIdScan::default(),
            memory_peak: 0,
        }
    }

    /// Keeps `bytes` after what came before.
    pub async fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.error.is_some() {
            return;
        }
        self.size += bytes.len();
        self.digest.update(bytes);
        self.message_id.update(bytes);
        let kept = match &mut self.file {
            Some(file) => file.write_all(bytes).await,
            None if self.memory.len() + bytes.len() <= self.storage.memory_limit => {
                self.keep_in_memory(bytes);
                Ok(())
            }
            None => self.spill(bytes).await,
        };
        if let Err(error) = kept {
            self.error = Some(error);
            self.memory = Vec::new();
            self.file = None;
        }
    }

    fn keep_in_memory(&mut self, bytes: &[u8]) {
        let needed = self.memory.len() + bytes.len();
        if needed > self.memory.capacity() {
            // Doubling, but never past the limit: the capacity is what the body costs, not its length.
            let capacity = (self.memory.capacity() * 2).max(needed).min(self.storage.memory_limit);
            self.memory.reserve_exact(capacity - self.memory.len());
        }
        self.memory.extend_from_slice(bytes);
        self.memory_peak = self.memory_peak.max(self.memory.capacity());
    }

    /// Moves what is in memory to a new file, then `bytes` after it, and frees the memory.
    async fn spill(&mut self, bytes: &[u8]) -> io::Result<()> {
        let dir = self.storage.dir.clone();
        let file =
            tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir)).await.map_err(io::Error::other)??;
        let mut file = File::from_std(file);
        file.set_max_buf_size(WRITE_BUFFER);
        let mut file = BufWriter::with_capacity(WRITE_BUFFER, file);
        file.write_all(&self.memory).await?;
        self.memory = Vec::new();
        file.write_all(bytes).await?;
        tracing::debug!(dir = %self.storage.dir.display(), "message body moved to disk");
        self.file = Some(file);
        Ok(())
    }

    /// The whole body, to be read from its start; the error if any of it could not be kept.
    pub async fn finish(self) -> io::Result<Body> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let content = match self.file {
            None => Either::Left(io::Cursor::new(self.memory)),
            Some(mut file) => {
                file.flush().await?;
                let mut file = file.into_inner();
                file.rewind().await?;
                Either::Right(file)
            }
        };
        Ok(Body {
            prefix: Vec::new(),
            content,
            size: self.size,
            digest: self.digest.finish(),
            message_id: self.message_id.finish(),
            memory_peak: self.memory_peak,
        })
    }
}

/// A body that has arrived whole.
pub struct Body {
    /// What goes before `content`: header fields we add, and the start of the message once fields were
    /// taken out of it ([`Body::splice`]).
    prefix: Vec<u8>,
    content: Either<io::Cursor<Vec<u8>>, File>,
    size: usize,
    digest: ring::digest::Digest,
    message_id: Option<String>,
    memory_peak: usize,
}

impl Body {
    /// In octets.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The SHA-256 of the body.
    pub fn digest(&self) -> &[u8] {
        self.digest.as_ref()
    }

    /// The Message-ID header's value (at most 256 octets), from the header section only.
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// Whether the body went to a file.
    pub fn spilled(&self) -> bool {
        matches!(self.content, Either::Right(_))
    }

    /// The most memory the body's octets took while it arrived.
    pub fn memory_peak(&self) -> usize {
        self.memory_peak
    }

    pub fn into_reader(self) -> impl AsyncRead + Unpin + Send {
        io::Cursor::new(self.prefix).chain(self.content)
    }

    /// The first `limit` octets of the body as it arrived (all of it, if shorter). A body in memory is
    /// copied; one in a file is read and the file rewound. Call before [`Body::splice`].
    pub async fn head(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        match &mut self.content {
            Either::Left(memory) => {
                let all = memory.get_ref();
                Ok(all[..limit.min(all.len())].to_vec())
            }
            Either::Right(file) => {
                let mut head = Vec::with_capacity(limit.min(self.size));
                (&mut *file).take(limit as u64).read_to_end(&mut head).await?;
                file.rewind().await?;
                Ok(head)
            }
        }
    }

    /// Puts `fields` (whole header fields, CRLF-terminated) before the message and takes out the byte
    /// ranges `remove` (ascending, not overlapping) of it, as it arrived. Call at most once.
    pub async fn splice(&mut self, fields: &[u8], remove: &[Range<usize>]) -> io::Result<()> {
        let end = remove.last().map_or(0, |range| range.end);
        let mut head = self.head(end).await?;
        for range in remove.iter().rev() {
            head.drain(range.clone());
        }
        let removed: usize = remove.iter().map(|range| range.len()).sum();
        match &mut self.content {
            Either::Left(memory) => memory.set_position(end as u64),
            Either::Right(file) => {
                file.seek(io::SeekFrom::Start(end as u64)).await?;
            }
        }
        self.prefix = [fields, &head].concat();
        self.size = self.size - removed + fields.len();
        Ok(())
    }
}

/// Finds the Message-ID in the header section as the body passes, holding only the line in hand.
#[derive(Debug, Default)]
struct MessageIdScan {
    line: Vec<u8>,
    found: Option<String>,
    /// Found, or past the header section.
    done: bool,
}

impl MessageIdScan {
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.done {
                return;
            }
            if self.line.len() < HEADER_LINE_LIMIT {
                self.line.push(b);
            }
            if b == b'\n' {
                self.end_line();
            }
        }
    }

    fn end_line(&mut self) {
        // RFC 5322 §2.1: an empty line ends the header section.
        if self.line == b"\r\n" {
            self.done = true;
        } else if let Some(id) = message_id_in(&self.line) {
            self.found = Some(id.to_owned());
            self.done = true;
        }
        self.line.clear();
    }

    /// A body that is all header section may end in a line without its CRLF.
    fn finish(mut self) -> Option<String> {
        if !self.done && !self.line.is_empty() {
            self.end_line();
        }
        self.found
    }
}

fn message_id_in(line: &[u8]) -> Option<&str> {
    let (name, value) = line.split_at_checked(11)?;
    if !name.eq_ignore_ascii_case(b"message-id:") {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?.trim();
    (!value.is_empty()).then(|| &value[..value.floor_char_boundary(256)])
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    fn storage(memory_limit: usize, dir: &Path) -> BodyStorage {
        BodyStorage { memory_limit, dir: dir.into() }
    }

    async fn read_back(body: Body) -> Vec<u8> {
        let mut all = Vec::new();
        body.into_reader().read_to_end(&mut all).await.unwrap();
        all
    }

    #[tokio::test]
    async fn splice_prepends_fields_and_takes_ranges_out_in_memory_and_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let message = b"A: 1\r\nDrop: me\r\nB: 2\r\nDrop: too\r\n\r\nbody\r\n";
        for memory_limit in [1 << 20, 8] {
            let mut sink = BodySink::new(&storage(memory_limit, dir.path()));
            sink.write(message).await;
            let mut body = sink.finish().await.unwrap();
            assert_eq!(body.spilled(), memory_limit == 8);
            assert_eq!(body.head(6).await.unwrap(), b"A: 1\r\n");
            assert_eq!(body.head(1000).await.unwrap(), message, "the whole body, and the file rewound");
            body.splice(b"X-Added: yes\r\n", &[6..16, 22..33]).await.unwrap();
            let expected = b"X-Added: yes\r\nA: 1\r\nB: 2\r\n\r\nbody\r\n";
            assert_eq!(body.size(), expected.len());
            assert_eq!(read_back(body).await, expected, "memory limit {memory_limit}");
        }
    }

    /// Every position a body can be cut at, as reads cut it.
    fn message_id_at_every_split(body: &[u8]) -> Option<String> {
        let whole = {
            let mut scan = MessageIdScan::default();
            scan.update(body);
            scan.finish()
        };
        for split in 0..=body.len() {
            let mut scan = MessageIdScan::default();
            scan.update(&body[..split]);
            scan.update(&body[split..]);
            assert_eq!(scan.finish(), whole, "split {split}");
        }
        whole
    }

    #[test]
    fn the_message_id_comes_from_the_header_section_only() {
        let body = b"Subject: x\r\nMESSAGE-ID:  <a@b.example> \r\n\r\nMessage-ID: <body@x>\r\n";
        assert_eq!(message_id_at_every_split(body).as_deref(), Some("<a@b.example>"));
        assert_eq!(message_id_at_every_split(b"Subject: x\r\n\r\nMessage-ID: <body@x>\r\n"), None);
        assert_eq!(message_id_at_every_split(b"Message-ID:\r\n\r\n"), None);
        assert_eq!(message_id_at_every_split(b"Subject: x\r\nMessage-ID: <last@x>").as_deref(), Some("<last@x>"));
        let long = format!("Message-ID: <{}\u{e9}@x>\r\n\r\n", "a".repeat(254));
        let id = message_id_at_every_split(long.as_bytes());
        assert_eq!(id.map(|id| id.len()), Some(255), "cut at a character boundary");
    }

    #[tokio::test]
    async fn a_small_body_stays_in_memory_and_a_large_one_moves_to_a_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let text: Vec<u8> = (0..20_000u32).flat_map(|n| n.to_le_bytes()).collect();
        for (limit, spills) in [(text.len(), false), (1000, true)] {
            let mut sink = BodySink::new(&storage(limit, dir.path()));
            for piece in text.chunks(777) {
                sink.write(piece).await;
            }
            let body = sink.finish().await.unwrap();
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the file has no name");
            assert_eq!(body.spilled(), spills, "limit {limit}");
            assert!(body.memory_peak() <= limit, "limit {limit}: {} in memory", body.memory_peak());
            assert_eq!(body.size(), text.len());
            assert_eq!(body.digest(), ring::digest::digest(&ring::digest::SHA256, &text).as_ref());
            assert_eq!(read_back(body).await, text, "limit {limit}");
        }
    }

    #[tokio::test]
    async fn a_body_that_cannot_go_to_disk_is_an_error_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let mut sink = BodySink::new(&storage(10, &gone));
        sink.write(b"Subject: x\r\n").await;
        sink.write(b"more\r\n").await;
        assert!(sink.finish().await.is_err());
        assert!(storage(10, &gone).check().is_err());
        assert!(storage(10, dir.path()).check().is_ok());
    }
}
