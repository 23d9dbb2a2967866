//! Reading a message body: DATA (RFC 5321 §4.1.1.4) with its dot-unstuffing and end-of-data mark, and BDAT
//! chunks (RFC 3030), both under the size limit and the line policies.
//!
//! Both readers are streaming transforms: they hand the body out, unstuffed and with CRLF line endings, as
//! its octets arrive, and keep only a few octets of state, so that the connection can keep a large body on
//! disk rather than in memory. Whatever they handed out belongs to a body that is only good once it is
//! [`DataProgress::Complete`]; any other outcome means the octets are to be thrown away.
//!
//! Only `<CRLF>.<CRLF>` ends a DATA body. A lone LF or CR around the dot never does, which is what defeats
//! SMTP smuggling (the 2023 attacks: `\n.\n`, `\r.\r`, `\r\n.\r`, `\n.\r\n` …). A bare LF and a bare CR
//! are line endings to some receivers and not to others, so neither is passed on: a body that has one is
//! refused or, by policy, stored with CRLF in its place. Every stored message then has one line-ending
//! convention, and none carries a `\r.\r` to a receiver that would end the data there when we relay it
//! (outbound smuggling): every line of it starts after a CRLF, where the relay's dot-stuffing sees it.
//!
//! BDAT chunks are length-delimited, need no unstuffing and cannot be smuggled into; their line endings
//! are treated as DATA's, across chunk boundaries. The long-line policy does not apply to them.

use std::mem;

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

impl std::str::FromStr for LongLines {
    type Err = String;

    /// `accept` or `reject`, as `MAILBUS_SMTP_LONG_LINES` spells them.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "accept" => Ok(LongLines::Accept),
            "reject" => Ok(LongLines::Reject),
            _ => Err("must be accept or reject".to_owned()),
        }
    }
}

/// What to do with a body that has a bare LF or a bare CR (one not part of a CRLF), the ingredients of SMTP
/// smuggling. Named after the setting, `MAILBUS_SMTP_BARE_LF`, which covers both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareLf {
    /// Refuse the message (`554 5.5.2`), as Postfix's `smtpd_forbid_bare_newline = reject` does.
    Reject,
    /// Store every bare LF and every bare CR as CRLF.
    Normalise,
}

impl std::str::FromStr for BareLf {
    type Err = String;

    /// `normalise` (or `normalize`) or `reject`, as `MAILBUS_SMTP_BARE_LF` spells them.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "normalise" | "normalize" => Ok(BareLf::Normalise),
            "reject" => Ok(BareLf::Reject),
            _ => Err("must be normalise or reject".to_owned()),
        }
    }
}

/// Where the reading of a body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataProgress {
    /// The end has not arrived; feed more.
    Incomplete,
    /// The whole body has been handed out, unstuffed, with CRLF line endings.
    Complete,
    /// The body went over the limit. The rest was read and dropped up to its end, so the session can answer
    /// `552` and go on.
    TooLarge,
    /// [`LongLines::Reject`] and a line was over [`MAX_TEXT_LINE`]; the body was read to its end.
    LineTooLong,
    /// [`BareLf::Reject`] and the body had a bare LF or a bare CR; it was read to its end.
    BareLineEnding,
}

/// What DATA and BDAT share, applied to the unstuffed body as it passes: line endings as stored, the size
/// limit, and the facts the line policies need. A few octets of state, whatever the size of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyFilter {
    max_size: usize,
    long_lines: LongLines,
    bare_lf: BareLf,
    /// Octets of the body as stored so far, still counted once they are no longer handed out.
    size: usize,
    /// A CR whose LF may still come, in the next read or the next chunk.
    cr_pending: bool,
    /// Octets of the line in hand as stored, without its line ending.
    line_len: usize,
    long_line: bool,
    bare_line_ending: bool,
}

impl BodyFilter {
    pub(crate) fn new(max_size: usize, long_lines: LongLines, bare_lf: BareLf) -> Self {
        BodyFilter {
            max_size,
            long_lines,
            bare_lf,
            size: 0,
            cr_pending: false,
            line_len: 0,
            long_line: false,
            bare_line_ending: false,
        }
    }

    /// Octets of the body as stored so far.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Takes one unstuffed octet and hands out what it releases. A CR is held until the next octet says
    /// whether it was bare.
    fn push(&mut self, b: u8, body: &mut Vec<u8>) {
        if mem::take(&mut self.cr_pending) {
            self.end_line(b != b'\n', body);
            if b == b'\n' {
                return;
            }
        }
        match b {
            b'\r' => self.cr_pending = true,
            b'\n' => self.end_line(true, body),
            _ => {
                self.line_len += 1;
                // Measured as stored, with a CRLF, whatever ending the line arrives with.
                self.long_line |= self.line_len + 2 > MAX_TEXT_LINE;
                self.hand_out(&[b], body);
            }
        }
    }

    /// A line ends, in a CRLF or in a bare LF or CR, which is stored as CRLF.
    fn end_line(&mut self, bare: bool, body: &mut Vec<u8>) {
        self.bare_line_ending |= bare;
        self.line_len = 0;
        self.hand_out(b"\r\n", body);
    }

    fn hand_out(&mut self, bytes: &[u8], body: &mut Vec<u8>) {
        self.size += bytes.len();
        // A refused body is only counted from then on: nothing will store it, and the size limit still
        // outranks the line policies.
        if self.outcome() == DataProgress::Complete {
            body.extend_from_slice(bytes);
        }
    }

    /// The body has ended: a CR still held had no LF after it.
    fn finish(&mut self, body: &mut Vec<u8>) {
        if mem::take(&mut self.cr_pending) {
            self.end_line(true, body);
        }
    }

    /// What the body amounts to so far: [`DataProgress::Complete`] while nothing refuses it.
    pub(crate) fn outcome(&self) -> DataProgress {
        if self.size > self.max_size {
            DataProgress::TooLarge
        } else if self.bare_line_ending && self.bare_lf == BareLf::Reject {
            DataProgress::BareLineEnding
        } else if self.long_line && self.long_lines == LongLines::Reject {
            DataProgress::LineTooLong
        } else {
            DataProgress::Complete
        }
    }
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

/// Reads one DATA body: finds its end mark, unstuffs it, and hands it out through the size limit and the
/// line policies.
pub struct DataReader {
    scan: Scan,
    filter: BodyFilter,
}

impl DataReader {
    pub fn new(max_size: usize, long_lines: LongLines, bare_lf: BareLf) -> Self {
        // The CRLF that ended the DATA command line is the first CRLF of a possible `<CRLF>.<CRLF>`, so an
        // empty body is just ".\r\n": the scan starts at the start of a line.
        DataReader {
            scan: Scan::Text { line_start: true, last_cr: false },
            filter: BodyFilter::new(max_size, long_lines, bare_lf),
        }
    }

    /// Consumes octets from `input`, appends the body they release to `body`, and returns how many it used;
    /// octets after the end-of-data mark are left for the command decoder (a pipelining client may already
    /// have sent `QUIT`).
    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> (usize, DataProgress) {
        let filter = &mut self.filter;
        let mut emit = |b: u8| filter.push(b, body);
        for (i, &b) in input.iter().enumerate() {
            match self.scan.step(b, &mut emit) {
                Some(next) => self.scan = next,
                // The body ended with the CRLF before the dot, so no CR is held back.
                None => return (i + 1, self.filter.outcome()),
            }
        }
        (input.len(), DataProgress::Incomplete)
    }
}

/// Reads one BDAT chunk (RFC 3030 §2): exactly its announced size, which follows the command line with no
/// reply in between. A chunk the transaction takes passes through the filter of the body, which goes on
/// from chunk to chunk since a CRLF may straddle two; one it does not take is read and dropped all the
/// same, or the client's data would be taken for commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkReader {
    left: usize,
    /// The last chunk: a CR at its very end is bare.
    last: bool,
    /// `None`: the chunk is dropped.
    filter: Option<BodyFilter>,
}

impl ChunkReader {
    pub(crate) fn new(size: usize, last: bool, filter: Option<BodyFilter>) -> Self {
        ChunkReader { left: size, last, filter }
    }

    /// Whether the chunk's octets are handed out to be kept, rather than dropped.
    pub fn keeps(&self) -> bool {
        self.filter.is_some()
    }

    /// Consumes octets of the chunk from `input` (and no more), appends what they release to `body`, and
    /// returns how many it used and whether the chunk is complete. An empty chunk is complete at once.
    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> (usize, bool) {
        let take = self.left.min(input.len());
        self.left -= take;
        if let Some(filter) = &mut self.filter {
            for &b in &input[..take] {
                filter.push(b, body);
            }
            if self.left == 0 && self.last {
                filter.finish(body);
            }
        }
        (take, self.left == 0)
    }

    pub(crate) fn into_filter(self) -> Option<BodyFilter> {
        self.filter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DATA reader's result: the body handed out if it was complete, else how it ended.
    type Read = Result<Vec<u8>, DataProgress>;

    /// Feeds `input` in pieces of `chunk` octets, as Stalwart's tests do, and returns the outcome with the
    /// number of bytes left over after the end-of-data mark.
    fn read_in_chunks(input: &[u8], chunk: usize, max: usize) -> (Read, usize) {
        read_with(DataReader::new(max, LongLines::Accept, BareLf::Normalise), input, chunk)
    }

    fn read_with(reader: DataReader, input: &[u8], chunk: usize) -> (Read, usize) {
        let (progress, body, left) = read_all(reader, input, chunk);
        (if progress == DataProgress::Complete { Ok(body) } else { Err(progress) }, left)
    }

    /// The outcome, everything handed out, and the number of bytes left over.
    fn read_all(mut reader: DataReader, input: &[u8], chunk: usize) -> (DataProgress, Vec<u8>, usize) {
        let mut buf: Vec<u8> = Vec::new();
        let mut body = Vec::new();
        let mut total_consumed = 0;
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            let (consumed, progress) = reader.feed(&buf, &mut body);
            buf.drain(..consumed);
            total_consumed += consumed;
            if progress != DataProgress::Incomplete {
                return (progress, body, input.len() - total_consumed);
            }
        }
        (DataProgress::Incomplete, body, input.len() - total_consumed)
    }

    /// LFs without a CR before them and CRs without an LF after them.
    fn bare_line_endings(text: &[u8]) -> usize {
        let bare_lf = text.iter().enumerate().filter(|&(i, &b)| b == b'\n' && (i == 0 || text[i - 1] != b'\r'));
        let bare_cr = text.iter().enumerate().filter(|&(i, &b)| b == b'\r' && text.get(i + 1) != Some(&b'\n'));
        bare_lf.count() + bare_cr.count()
    }

    #[test]
    fn body_is_unstuffed_and_ends_only_at_crlf_dot_crlf() {
        let input = b"Subject: x\r\n\r\n..leading dot\r\nline\r\n.\r\nQUIT\r\n";
        for chunk in 1..=input.len() {
            let (body, left) = read_in_chunks(input, chunk, 1000);
            assert_eq!(body, Ok(b"Subject: x\r\n\r\n.leading dot\r\nline\r\n".to_vec()), "chunk {chunk}");
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

    fn smuggling_input(payload: &[u8], after: &[u8]) -> Vec<u8> {
        let mut input = b"Subject: s\r\n\r\nbefore".to_vec();
        input.extend_from_slice(payload);
        input.extend_from_slice(b"MAIL FROM:<evil@example.org>\r\n.\r\n");
        input.extend_from_slice(after);
        input
    }

    #[test]
    fn smuggling_payloads_never_end_the_body() {
        for payload in SMUGGLING_PAYLOADS {
            let input = smuggling_input(payload, b"");
            for chunk in [1, 2, 3, 7, input.len()] {
                let (body, left) = read_in_chunks(&input, chunk, 1000);
                let Ok(body) = body else { panic!("{payload:?} chunk {chunk}: {body:?}") };
                assert!(body.windows(9).any(|w| w == b"MAIL FROM"), "{payload:?}: smuggled command left the body");
                assert_eq!(left, 0);
            }
        }
    }

    /// The stored form of every smuggling payload has CRLF line endings only, so a relay that dot-stuffs
    /// each line after a CRLF (RFC 5321 §4.5.2) sends no end mark but its own: nothing we relay can end
    /// a message early at a receiver that takes a bare CR or LF for a line ending.
    #[test]
    fn smuggling_payloads_are_stored_without_bare_cr_or_lf() {
        for payload in SMUGGLING_PAYLOADS {
            let input = smuggling_input(payload, b"");
            for chunk in 1..=input.len() {
                let (body, _) = read_in_chunks(&input, chunk, 1000);
                let body = body.unwrap();
                assert_eq!(bare_line_endings(&body), 0, "{payload:?} chunk {chunk}: {body:?}");
                let mut wire = body.iter().enumerate().fold(Vec::new(), |mut wire, (i, &b)| {
                    if b == b'.' && (i == 0 || body[i - 1] == b'\n') {
                        wire.push(b'.');
                    }
                    wire.push(b);
                    wire
                });
                wire.extend_from_slice(b".\r\n");
                let end = wire.windows(5).position(|w| w == b"\r\n.\r\n");
                assert_eq!(end, Some(wire.len() - 5), "{payload:?}: relayed, it would end early");
            }
        }
        let (body, _) = read_in_chunks(&smuggling_input(b"\r.\r", b""), 1, 1000);
        assert_eq!(body, Ok(b"Subject: s\r\n\r\nbefore\r\n.\r\nMAIL FROM:<evil@example.org>\r\n".to_vec()));
    }

    #[test]
    fn bare_lf_and_bare_cr_lines_are_stored_with_crlf() {
        let (body, _) = read_in_chunks(b"a\nb\r\nc\n\r\n.\r\n", 1, 100);
        // "c\n" is a line, then an empty line, then the end mark.
        assert_eq!(body, Ok(b"a\r\nb\r\nc\r\n\r\n".to_vec()));
        let input = b"\ra\rb\r\rc\r\r\n.\r\n";
        for chunk in 1..=input.len() {
            let (body, _) = read_in_chunks(input, chunk, 100);
            assert_eq!(body, Ok(b"\r\na\r\nb\r\n\r\nc\r\n\r\n".to_vec()), "chunk {chunk}");
        }
    }

    #[test]
    fn over_size_body_is_discarded_to_the_end_mark() {
        let mut input = vec![b'x'; 5000];
        input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        for chunk in [1, 100, 4096, input.len()] {
            let (progress, handed_out, left) =
                read_all(DataReader::new(1000, LongLines::Accept, BareLf::Normalise), &input, chunk);
            assert_eq!(progress, DataProgress::TooLarge, "chunk {chunk}");
            assert_eq!(left, 6, "chunk {chunk}");
            assert!(handed_out.len() <= 1000, "chunk {chunk}: {} octets handed out", handed_out.len());
        }
    }

    #[test]
    fn normalising_counts_towards_the_size_limit() {
        // 499 bare LFs and a CRLF are stored as 1000 octets.
        let mut input = vec![b'\n'; 499];
        input.extend_from_slice(b"\r\n.\r\n");
        assert!(read_in_chunks(&input, 7, 1000).0.is_ok());
        assert_eq!(read_in_chunks(&input, 7, 999).0, Err(DataProgress::TooLarge));
    }

    #[test]
    fn empty_body_and_leading_dot_line() {
        assert_eq!(read_in_chunks(b".\r\n", 1, 10).0, Ok(Vec::new()));
        assert_eq!(read_in_chunks(b"..x\r\n.\r\n", 1, 10).0, Ok(b".x\r\n".to_vec()));
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
            assert_eq!(read_with(rejecting(), &fits, chunk), (Ok(line_of(MAX_TEXT_LINE)), 6));
            assert_eq!(read_with(rejecting(), &long, chunk), (Err(DataProgress::LineTooLong), 6), "chunk {chunk}");
            let (body, left) = read_with(accepting(), &long, chunk);
            assert_eq!(body.map(|body| body.len()), Ok(long.len() - 9));
            assert_eq!(left, 6);
        }
    }

    #[test]
    fn a_stuffed_dot_does_not_count_towards_the_line_length() {
        let mut input = b".".to_vec();
        input.extend(line_of(MAX_TEXT_LINE));
        input[1] = b'.';
        input.extend_from_slice(b".\r\n");
        let (body, _) = read_with(DataReader::new(10_000, LongLines::Reject, BareLf::Normalise), &input, 1);
        let body = body.unwrap();
        assert!(body.len() == MAX_TEXT_LINE && body[0] == b'.');
    }

    #[test]
    fn a_line_with_a_bare_ending_is_measured_as_it_will_be_stored() {
        // 998 octets and a bare LF or CR is 1000 octets once normalised; 999 and one is one too many.
        let reader = || DataReader::new(10_000, LongLines::Reject, BareLf::Normalise);
        for ending in [b'\n', b'\r'] {
            let mut fits = vec![b'x'; 998];
            fits.push(ending);
            fits.extend_from_slice(b"x\r\n.\r\n");
            assert!(read_with(reader(), &fits, 64).0.is_ok(), "{ending}");
            let mut long = vec![b'x'; 999];
            long.push(ending);
            long.extend_from_slice(b"x\r\n.\r\n");
            assert_eq!(read_with(reader(), &long, 64).0, Err(DataProgress::LineTooLong), "{ending}");
        }
    }

    #[test]
    fn bare_lf_policy_reject_refuses_bare_lf_and_bare_cr_but_reads_to_the_end_mark() {
        let reject = || DataReader::new(1000, LongLines::Accept, BareLf::Reject);
        for input in [
            &b"a\nb\r\n.\r\nQUIT\r\n"[..],
            b"\nfirst octet\r\n.\r\nQUIT\r\n",
            b"x\r\n\n.\n\r\n.\r\nQUIT\r\n",
            b"a\rb\r\n.\r\nQUIT\r\n",
            b"\rfirst octet\r\n.\r\nQUIT\r\n",
            b"x\r\n\r.\r\r\n.\r\nQUIT\r\n",
        ] {
            for chunk in 1..=input.len() {
                let (progress, handed_out, left) = read_all(reject(), input, chunk);
                assert_eq!((progress, left), (DataProgress::BareLineEnding, 6), "{input:?} {chunk}");
                assert_eq!(bare_line_endings(&handed_out), 0, "{input:?} {chunk}: nothing bare is handed out");
            }
        }
        // CRLF throughout is fine.
        assert_eq!(read_with(reject(), b"a\r\nb\r\n.\r\n", 1).0, Ok(b"a\r\nb\r\n".to_vec()));
    }

    #[test]
    fn over_size_wins_over_the_line_policies() {
        let mut input = vec![b'\n'; 2000];
        input.extend_from_slice(b"\r\n.\r\n");
        let reader = DataReader::new(1000, LongLines::Reject, BareLf::Reject);
        assert_eq!(read_with(reader, &input, 100), (Err(DataProgress::TooLarge), 0));
    }

    #[test]
    fn smuggling_payloads_never_end_the_body_when_bare_lf_is_rejected() {
        for payload in SMUGGLING_PAYLOADS {
            let input = smuggling_input(payload, b"RSET\r\n");
            // "before" precedes the payload and "MAIL" follows it.
            let has_bare = bare_line_endings(&[b"e", payload, b"M"].concat()) > 0;
            for chunk in [1, 2, 3, 7, input.len()] {
                let reader = DataReader::new(1000, LongLines::Reject, BareLf::Reject);
                let (body, left) = read_with(reader, &input, chunk);
                assert_eq!(left, b"RSET\r\n".len(), "{payload:?} chunk {chunk}: the end mark was misplaced");
                match body {
                    Err(DataProgress::BareLineEnding) => assert!(has_bare, "{payload:?}"),
                    Ok(body) => {
                        assert!(!has_bare, "{payload:?}");
                        assert!(body.windows(9).any(|w| w == b"MAIL FROM"), "{payload:?}");
                    }
                    other => panic!("{payload:?} chunk {chunk}: {other:?}"),
                }
            }
        }
    }

    /// Reads `chunks` as one BDAT body, each chunk followed by a pipelined command and fed in two pieces cut
    /// at `split`; returns the filter's verdict and the body handed out.
    fn read_chunks(filter: BodyFilter, chunks: &[&[u8]], split: usize) -> (DataProgress, Vec<u8>) {
        let mut filter = Some(filter);
        let mut body = Vec::new();
        for (n, chunk) in chunks.iter().enumerate() {
            let mut reader = ChunkReader::new(chunk.len(), n + 1 == chunks.len(), filter.take());
            let mut input = chunk.to_vec();
            input.extend_from_slice(b"NOOP\r\n");
            let at = split.min(input.len());
            let (used, done) = reader.feed(&input[..at], &mut body);
            let (more, done_now) = reader.feed(&input[used..], &mut body);
            assert!(done || done_now, "chunk {n} complete");
            assert_eq!(&input[used + more..], b"NOOP\r\n", "chunk {n}: exactly its size is read");
            filter = reader.into_filter();
        }
        (filter.unwrap().outcome(), body)
    }

    #[test]
    fn bdat_line_endings_are_normalised_across_chunks() {
        let normalise = BodyFilter::new(1000, LongLines::Accept, BareLf::Normalise);
        let chunks: [&[u8]; 5] = [b"a\r", b"\nb\r", b"c\n", b"\r.\r", b"d\r"];
        for split in 0..=8 {
            let (progress, body) = read_chunks(normalise, &chunks, split);
            assert_eq!(progress, DataProgress::Complete);
            assert_eq!(body, b"a\r\nb\r\nc\r\n\r\n.\r\nd\r\n", "split {split}");
        }
        let reject = BodyFilter::new(1000, LongLines::Accept, BareLf::Reject);
        assert_eq!(read_chunks(reject, &[b"a\r", b"\nb\r\n"], 1), (DataProgress::Complete, b"a\r\nb\r\n".to_vec()));
        let bare: [&[&[u8]]; 3] = [&[b"a\r", b"b\r\n"], &[b"a\r\n", b"\r"], &[b"a\r\n\nb"]];
        for bare in bare {
            assert_eq!(read_chunks(reject, bare, 1).0, DataProgress::BareLineEnding, "{bare:?}");
        }
    }

    #[test]
    fn a_dropped_chunk_is_read_to_its_end_and_hands_out_nothing() {
        let mut reader = ChunkReader::new(5, true, None);
        let mut body = Vec::new();
        assert!(!reader.keeps());
        assert_eq!(reader.feed(b"abc", &mut body), (3, false));
        assert_eq!(reader.feed(b"de\r\nQUIT\r\n", &mut body), (2, true));
        assert!(body.is_empty());
        assert_eq!(ChunkReader::new(0, true, None).feed(b"QUIT\r\n", &mut body), (0, true));
    }
}
