//! Reading a DATA body (RFC 5321 §4.1.1.4): dot-unstuffing, the end-of-data mark and the size limit.
//!
//! Only `<CRLF>.<CRLF>` ends the body. A lone LF or CR around the dot never does, which is what defeats
//! SMTP smuggling (the 2023 attacks: `\n.\n`, `\r.\r`, `\r\n.\r`, `\n.\r\n` …). Lines that end in a bare LF
//! are stored with CRLF, so every stored message has one line-ending convention.

use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};

/// What a call to [`DataReader::feed`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum DataProgress {
    /// The end-of-data mark has not arrived; feed more.
    Incomplete,
    /// The whole body, unstuffed, with CRLF line endings.
    Complete(Vec<u8>),
    /// The body went over the limit. Its bytes were discarded up to the end-of-data mark, so the session
    /// can answer `552` and go on.
    TooLarge,
}

enum Receiver {
    Keeping { receiver: DataReceiver, body: Vec<u8> },
    Discarding(DummyDataReceiver),
}

/// Collects one DATA body, keeping at most `max_size` octets.
pub struct DataReader {
    receiver: Receiver,
    max_size: usize,
}

impl DataReader {
    pub fn new(max_size: usize) -> Self {
        // The CRLF that ended the DATA command line is the first CRLF of a possible `<CRLF>.<CRLF>`, so an
        // empty body is just ".\r\n". The receiver starts with no history, so give it that CRLF.
        let mut receiver = DataReceiver::new();
        let mut body = Vec::new();
        receiver.ingest(&mut b"\r\n".iter(), &mut body);
        body.clear();
        DataReader { receiver: Receiver::Keeping { receiver, body }, max_size }
    }

    /// Consumes bytes from `input` and returns how many it used; bytes after the end-of-data mark are left
    /// for the command decoder (a pipelining client may already have sent `QUIT`).
    pub fn feed(&mut self, input: &[u8]) -> (usize, DataProgress) {
        let mut iter = input.iter();
        let done = match &mut self.receiver {
            Receiver::Keeping { receiver, body } => {
                let done = receiver.ingest(&mut iter, body);
                if body.len() > self.max_size && !done {
                    self.receiver = Receiver::Discarding(DummyDataReceiver::new_data(receiver));
                } else if body.len() > self.max_size {
                    return (input.len() - iter.as_slice().len(), DataProgress::TooLarge);
                }
                done
            }
            Receiver::Discarding(receiver) => receiver.ingest(&mut iter),
        };
        let consumed = input.len() - iter.as_slice().len();
        if !done {
            return (consumed, DataProgress::Incomplete);
        }
        match std::mem::replace(&mut self.receiver, Receiver::Discarding(DummyDataReceiver::new_bdat(0))) {
            Receiver::Keeping { body, .. } => (consumed, DataProgress::Complete(normalise_line_endings(body))),
            Receiver::Discarding(_) => (consumed, DataProgress::TooLarge),
        }
    }
}

/// Turns every bare LF into CRLF. A bare CR is left alone: it is data, not a line ending.
fn normalise_line_endings(body: Vec<u8>) -> Vec<u8> {
    let bare = body.iter().enumerate().filter(|&(i, &b)| b == b'\n' && (i == 0 || body[i - 1] != b'\r')).count();
    if bare == 0 {
        return body;
    }
    let mut out = Vec::with_capacity(body.len() + bare);
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' && (i == 0 || body[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `chunk` octets, as Stalwart's tests do, and returns the outcome with the
    /// number of bytes left over after the end-of-data mark.
    fn read_in_chunks(input: &[u8], chunk: usize, max: usize) -> (DataProgress, usize) {
        let mut reader = DataReader::new(max);
        let mut buf: Vec<u8> = Vec::new();
        let mut total_consumed = 0;
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            let (consumed, progress) = reader.feed(&buf);
            buf.drain(..consumed);
            total_consumed += consumed;
            if progress != DataProgress::Incomplete {
                return (progress, input.len() - total_consumed);
            }
        }
        (DataProgress::Incomplete, input.len() - total_consumed)
    }

    #[test]
    fn body_is_unstuffed_and_ends_only_at_crlf_dot_crlf() {
        let input = b"Subject: x\r\n\r\n..leading dot\r\nline\r\n.\r\nQUIT\r\n";
        for chunk in 1..=input.len() {
            let (progress, left) = read_in_chunks(input, chunk, 1000);
            assert_eq!(
                progress,
                DataProgress::Complete(b"Subject: x\r\n\r\n.leading dot\r\nline\r\n".to_vec()),
                "chunk {chunk}"
            );
            assert_eq!(left, b"QUIT\r\n".len(), "chunk {chunk}");
        }
    }

    #[test]
    fn smuggling_payloads_never_end_the_body() {
        // Each of these must be data; only the final CRLF.CRLF ends the message.
        for payload in [&b"\n.\n"[..], b"\r.\r", b"\r\n.\r", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\n.\r"] {
            let mut input = b"Subject: s\r\n\r\nbefore".to_vec();
            input.extend_from_slice(payload);
            input.extend_from_slice(b"MAIL FROM:<evil@example.org>\r\n.\r\n");
            for chunk in [1, 2, 3, 7, input.len()] {
                let (progress, left) = read_in_chunks(&input, chunk, 1000);
                let DataProgress::Complete(body) = progress else { panic!("{payload:?} chunk {chunk}: {progress:?}") };
                assert!(body.windows(9).any(|w| w == b"MAIL FROM"), "{payload:?}: smuggled command left the body");
                assert_eq!(left, 0);
            }
        }
    }

    #[test]
    fn bare_lf_lines_are_stored_with_crlf() {
        let (progress, _) = read_in_chunks(b"a\nb\r\nc\n\r\n.\r\n", 1, 100);
        // "c\n" is a line, then an empty line, then the end mark.
        assert_eq!(progress, DataProgress::Complete(b"a\r\nb\r\nc\r\n\r\n".to_vec()));
    }

    #[test]
    fn over_size_body_is_discarded_to_the_end_mark() {
        let mut input = vec![b'x'; 5000];
        input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        for chunk in [1, 100, 4096, input.len()] {
            let (progress, left) = read_in_chunks(&input, chunk, 1000);
            assert_eq!(progress, DataProgress::TooLarge, "chunk {chunk}");
            assert_eq!(left, 6, "chunk {chunk}");
        }
    }

    #[test]
    fn empty_body_and_leading_dot_line() {
        assert_eq!(read_in_chunks(b".\r\n", 1, 10).0, DataProgress::Complete(Vec::new()));
        assert_eq!(read_in_chunks(b"..x\r\n.\r\n", 1, 10).0, DataProgress::Complete(b".x\r\n".to_vec()));
    }
}
