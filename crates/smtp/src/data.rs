//! Reading a DATA body (RFC 5321 §4.1.1.4): dot-unstuffing, the end-of-data mark, the size limit and the
//! line policies.
//!
//! Only `<CRLF>.<CRLF>` ends the body. A lone LF or CR around the dot never does, which is what defeats
//! SMTP smuggling (the 2023 attacks: `\n.\n`, `\r.\r`, `\r\n.\r`, `\n.\r\n` …). A body with bare-LF line
//! endings is refused or, by policy, stored with CRLF, so every stored message has one line-ending
//! convention. A bare CR is data, not a line ending.
//!
//! BDAT chunks (RFC 3030) do not pass through the reader: they are length-delimited, need no unstuffing
//! and cannot be smuggled into. Their bare LFs are stored as CRLF too ([`crlf_line_endings`]); the
//! long-line policy does not apply to them.

/// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets, CRLF included (the dot added for transparency
/// not counted).
pub const MAX_TEXT_LINE: usize = 1000;

/// What to do with a DATA body that has a text line over [`MAX_TEXT_LINE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongLines {
    /// Refuse the message (`500 5.5.2`); the session goes on.
    Reject,
    /// Store it as sent, as Postfix does (and pass it on as it is).
    Accept,
}

/// What to do with a DATA body whose lines end in a bare LF, the ingredient of SMTP smuggling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareLf {
    /// Refuse the message (`554 5.5.2`), as Postfix's `smtpd_forbid_bare_newline = reject` does.
    Reject,
    /// Store every bare LF as CRLF.
    Normalise,
}

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
    /// [`LongLines::Reject`] and a line was over [`MAX_TEXT_LINE`]; the body was read to its end mark.
    LineTooLong,
    /// [`BareLf::Reject`] and a line ended in a bare LF; the body was read to its end mark.
    BareLfRejected,
}

/// Where the scan of the DATA stream stands. The end mark is recognised byte by byte, strictly: a line
/// that starts after a CRLF, holds a single `.`, and ends in CRLF. (smtp-proto's receiver also ends on
/// `<CRLF>.<CR><CR><LF>`, which is exactly the kind of leniency smuggling feeds on, so we scan ourselves.)
#[derive(Debug, Clone, Copy)]
enum Scan {
    /// In a line; `line_start` after a CRLF (or at the start, which follows the DATA command's CRLF).
    Text { line_start: bool, last_cr: bool },
    /// A `.` at the start of a line.
    Dot,
    /// `.` and CR at the start of a line: an LF now ends the body.
    DotCr,
}

impl Scan {
    /// Takes one byte; returns the body bytes it releases (at most two) and whether the body has ended.
    fn step(self, b: u8, emit: &mut impl FnMut(u8)) -> Option<Scan> {
        match self {
            Scan::Text { line_start: true, .. } if b == b'.' => Some(Scan::Dot),
            Scan::Text { last_cr, .. } => {
                emit(b);
                Some(Scan::Text { line_start: last_cr && b == b'\n', last_cr: b == b'\r' })
            }
            Scan::Dot if b == b'\r' => Some(Scan::DotCr),
            // RFC 5321 §4.5.2: a leading dot with more on the line was added for transparency; drop it.
            Scan::Dot => Scan::Text { line_start: false, last_cr: false }.step(b, emit),
            Scan::DotCr if b == b'\n' => None,
            Scan::DotCr => {
                emit(b'\r');
                Scan::Text { line_start: false, last_cr: true }.step(b, emit)
            }
        }
    }
}

/// Collects one DATA body, keeping at most `max_size` octets, and applies the line policies at its end.
pub struct DataReader {
    scan: Scan,
    body: Vec<u8>,
    /// The body went over `max_size`; the rest is read and dropped.
    over: bool,
    max_size: usize,
    long_lines: LongLines,
    bare_lf: BareLf,
}

impl DataReader {
    pub fn new(max_size: usize, long_lines: LongLines, bare_lf: BareLf) -> Self {
        // The CRLF that ended the DATA command line is the first CRLF of a possible `<CRLF>.<CRLF>`, so an
        // empty body is just ".\r\n": the scan starts at the start of a line.
        DataReader {
            scan: Scan::Text { line_start: true, last_cr: false },
            body: Vec::new(),
            over: false,
            max_size,
            long_lines,
            bare_lf,
        }
    }

    /// Consumes bytes from `input` and returns how many it used; bytes after the end-of-data mark are left
    /// for the command decoder (a pipelining client may already have sent `QUIT`).
    pub fn feed(&mut self, input: &[u8]) -> (usize, DataProgress) {
        let (body, over, max_size) = (&mut self.body, &mut self.over, self.max_size);
        let mut emit = |b: u8| {
            if !*over {
                body.push(b);
                if body.len() > max_size {
                    *over = true;
                    *body = Vec::new();
                }
            }
        };
        let mut ended_at = None;
        for (i, &b) in input.iter().enumerate() {
            match self.scan.step(b, &mut emit) {
                Some(next) => self.scan = next,
                None => {
                    ended_at = Some(i + 1);
                    break;
                }
            }
        }
        let Some(consumed) = ended_at else { return (input.len(), DataProgress::Incomplete) };
        let body = std::mem::take(&mut self.body);
        let progress = if self.over { DataProgress::TooLarge } else { self.finish(body) };
        (consumed, progress)
    }

    fn finish(&self, body: Vec<u8>) -> DataProgress {
        let bare = count_bare_lf(&body);
        if bare > 0 && self.bare_lf == BareLf::Reject {
            return DataProgress::BareLfRejected;
        }
        if self.long_lines == LongLines::Reject && has_long_line(&body) {
            return DataProgress::LineTooLong;
        }
        DataProgress::Complete(normalise_line_endings(body, bare))
    }
}

/// An LF with no CR before it. The first octet of the body follows the CRLF of the DATA command line, so
/// an LF there is bare too.
fn count_bare_lf(body: &[u8]) -> usize {
    body.iter().enumerate().filter(|&(i, &b)| b == b'\n' && (i == 0 || body[i - 1] != b'\r')).count()
}

/// Measures each line as it will be stored, with CRLF, whatever ending it arrived with.
fn has_long_line(body: &[u8]) -> bool {
    body.split(|&b| b == b'\n').any(|line| line.strip_suffix(b"\r").unwrap_or(line).len() + 2 > MAX_TEXT_LINE)
}

/// Every bare LF as CRLF.
pub fn crlf_line_endings(body: Vec<u8>) -> Vec<u8> {
    let bare = count_bare_lf(&body);
    normalise_line_endings(body, bare)
}

/// Turns every one of the `bare` bare LFs into CRLF. A bare CR is left alone: it is data, not a line ending.
fn normalise_line_endings(body: Vec<u8>, bare: usize) -> Vec<u8> {
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
        read_with(DataReader::new(max, LongLines::Accept, BareLf::Normalise), input, chunk)
    }

    fn read_with(mut reader: DataReader, input: &[u8], chunk: usize) -> (DataProgress, usize) {
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

    /// Near-misses of the end mark (the SMTP smuggling family): each must stay data, and only the final
    /// CRLF.CRLF may end the message.
    const SMUGGLING_PAYLOADS: [&[u8]; 10] = [
        b"\n.\n",
        b"\r.\r",
        b"\r\n.\r",
        b"\n.\r\n",
        b"\r.\r\n",
        b"\r\n.\n",
        b"\n.\r",
        b"\r\n.\r\r\n",
        b"\r\n. \r\n",
        b"\r\n.\x00\r\n",
    ];

    #[test]
    fn smuggling_payloads_never_end_the_body() {
        for payload in SMUGGLING_PAYLOADS {
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

    fn line_of(len_with_crlf: usize) -> Vec<u8> {
        let mut line = vec![b'x'; len_with_crlf - 2];
        line.extend_from_slice(b"\r\n");
        line
    }

    #[test]
    fn a_1000_octet_line_passes_and_a_1001_octet_line_follows_the_policy() {
        let rejecting = || DataReader::new(10_000, LongLines::Reject, BareLf::Normalise);
        let accepting = || DataReader::new(10_000, LongLines::Accept, BareLf::Normalise);
        let mut fits = line_of(MAX_TEXT_LINE);
        fits.extend_from_slice(b".\r\nQUIT\r\n");
        let mut long = b"Subject: x\r\n\r\n".to_vec();
        long.extend(line_of(MAX_TEXT_LINE + 1));
        long.extend_from_slice(b"end\r\n.\r\nQUIT\r\n");
        for chunk in [1, 7, 999, 1000, 1001, long.len()] {
            assert_eq!(read_with(rejecting(), &fits, chunk), (DataProgress::Complete(line_of(MAX_TEXT_LINE)), 6));
            assert_eq!(read_with(rejecting(), &long, chunk), (DataProgress::LineTooLong, 6), "chunk {chunk}");
            let (progress, left) = read_with(accepting(), &long, chunk);
            assert!(matches!(progress, DataProgress::Complete(body) if body.len() == long.len() - 9));
            assert_eq!(left, 6);
        }
    }

    #[test]
    fn a_stuffed_dot_does_not_count_towards_the_line_length() {
        let mut input = b".".to_vec();
        input.extend(line_of(MAX_TEXT_LINE));
        input[1] = b'.';
        input.extend_from_slice(b".\r\n");
        let (progress, _) = read_with(DataReader::new(10_000, LongLines::Reject, BareLf::Normalise), &input, 1);
        assert!(matches!(progress, DataProgress::Complete(body) if body.len() == MAX_TEXT_LINE && body[0] == b'.'));
    }

    #[test]
    fn a_bare_lf_line_is_measured_as_it_will_be_stored() {
        // 998 octets and a bare LF is 1000 octets once normalised; 999 and a bare LF is one too many.
        let reader = || DataReader::new(10_000, LongLines::Reject, BareLf::Normalise);
        let mut fits = vec![b'x'; 998];
        fits.extend_from_slice(b"\n\r\n.\r\n");
        assert!(matches!(read_with(reader(), &fits, 64).0, DataProgress::Complete(_)));
        let mut long = vec![b'x'; 999];
        long.extend_from_slice(b"\n\r\n.\r\n");
        assert_eq!(read_with(reader(), &long, 64).0, DataProgress::LineTooLong);
    }

    #[test]
    fn bare_lf_policy_reject_refuses_the_body_but_reads_it_to_the_end_mark() {
        let reject = || DataReader::new(1000, LongLines::Accept, BareLf::Reject);
        for input in [&b"a\nb\r\n.\r\nQUIT\r\n"[..], b"\nfirst octet\r\n.\r\nQUIT\r\n", b"x\r\n\n.\n\r\n.\r\nQUIT\r\n"]
        {
            for chunk in 1..=input.len() {
                assert_eq!(read_with(reject(), input, chunk), (DataProgress::BareLfRejected, 6), "{input:?} {chunk}");
            }
        }
        // CRLF throughout, and a bare CR, are fine.
        assert_eq!(read_with(reject(), b"a\rb\r\n.\r\n", 1).0, DataProgress::Complete(b"a\rb\r\n".to_vec()));
    }

    #[test]
    fn over_size_wins_over_the_line_policies() {
        let mut input = vec![b'\n'; 2000];
        input.extend_from_slice(b"\r\n.\r\n");
        let reader = DataReader::new(1000, LongLines::Reject, BareLf::Reject);
        assert_eq!(read_with(reader, &input, 100), (DataProgress::TooLarge, 0));
    }

    #[test]
    fn smuggling_payloads_never_end_the_body_when_bare_lf_is_rejected() {
        for payload in SMUGGLING_PAYLOADS {
            let mut input = b"Subject: s\r\n\r\nbefore".to_vec();
            input.extend_from_slice(payload);
            input.extend_from_slice(b"MAIL FROM:<evil@example.org>\r\n.\r\nRSET\r\n");
            // "before" precedes the payload, so an LF at its start is bare too.
            let has_bare_lf = count_bare_lf(payload) > 0;
            for chunk in [1, 2, 3, 7, input.len()] {
                let reader = DataReader::new(1000, LongLines::Reject, BareLf::Reject);
                let (progress, left) = read_with(reader, &input, chunk);
                assert_eq!(left, b"RSET\r\n".len(), "{payload:?} chunk {chunk}: the end mark was misplaced");
                match progress {
                    DataProgress::BareLfRejected => assert!(has_bare_lf, "{payload:?}"),
                    DataProgress::Complete(body) => {
                        assert!(!has_bare_lf, "{payload:?}");
                        assert!(body.windows(9).any(|w| w == b"MAIL FROM"), "{payload:?}");
                    }
                    other => panic!("{payload:?} chunk {chunk}: {other:?}"),
                }
            }
        }
    }
}
