//! Message bodies on the wire for RETR and TOP: streamed dot-stuffing and termination (RFC 1939 §3), and
//! cutting a message down to what TOP asks for (RFC 1939 §7).

/// Dot-stuffs a body as it is streamed out, so the body never has to be held whole.
///
/// RFC 1939 §3: every line that starts with "." gets another "." in front, and the response ends with a
/// line holding only ".". A line starts after any LF, so a stray bare LF cannot smuggle an unstuffed "."
/// through. RFC 1939 §3 also wants every line to end in CRLF: stored messages already do, and a bare LF
/// that slipped in is sent as CRLF.
#[derive(Debug, Default)]
pub struct DotStuffer {
    /// The last body byte seen; `None` before the first, which counts as the start of a line.
    last: Option<u8>,
}

impl DotStuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the stuffed form of `chunk` to `out`. Chunks may split the body anywhere.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len());
        for piece in chunk.split_inclusive(|&b| b == b'\n') {
            self.push_piece(piece, out);
        }
    }

    /// `piece` is not empty and holds at most one LF, at its end.
    fn push_piece(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        if self.at_line_start() && piece.first() == Some(&b'.') {
            out.push(b'.');
        }
        match piece.split_last() {
            Some((&b'\n', text)) => {
                out.extend_from_slice(text);
                if text.last().or(self.last.as_ref()) != Some(&b'\r') {
                    out.push(b'\r');
                }
                out.push(b'\n');
            }
            _ => out.extend_from_slice(piece),
        }
        self.last = piece.last().copied().or(self.last);
    }

    fn at_line_start(&self) -> bool {
        matches!(self.last, None | Some(b'\n'))
    }

    /// Appends CRLF if the body did not end with one, then the terminating ".\r\n".
    pub fn finish(self, out: &mut Vec<u8>) {
        match self.last {
            None | Some(b'\n') => {}
            // The body ended between CR and LF; completing the pair keeps it from gaining an empty line.
            Some(b'\r') => out.push(b'\n'),
            Some(_) => out.extend_from_slice(b"\r\n"),
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// RFC 1939 §7 TOP: the header, the blank line, and the first `lines` lines of the body, from a whole
/// message. A message with no blank line is all header and comes back whole, as does one whose body has
/// fewer lines than asked for.
pub fn top(message: &[u8], lines: u32) -> &[u8] {
    let Some(body_start) = body_start(message) else {
        return message;
    };
    let Some(last_line) = usize::try_from(lines).ok().and_then(|n| n.checked_sub(1)) else {
        return &message[..body_start];
    };
    let body = &message[body_start..];
    let end = body.iter().enumerate().filter(|&(_, &b)| b == b'\n').nth(last_line).map_or(body.len(), |(lf, _)| lf + 1);
    &message[..body_start + end]
}

/// Where the body begins: just after the first empty line (RFC 5322 §2.1), if there is one.
fn body_start(message: &[u8]) -> Option<usize> {
    let mut start = 0;
    loop {
        let rest = &message[start..];
        if rest.starts_with(b"\r\n") {
            return Some(start + 2);
        }
        if rest.starts_with(b"\n") {
            return Some(start + 1);
        }
        start += rest.iter().position(|&b| b == b'\n')? + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuff_whole(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut stuffer = DotStuffer::new();
        stuffer.push(body, &mut out);
        stuffer.finish(&mut out);
        out
    }

    /// Stuffs `body` in the given pieces, including empty ones, as a reader of any buffer size would.
    fn stuff_in_pieces<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut stuffer = DotStuffer::new();
        for piece in pieces {
            stuffer.push(piece, &mut out);
        }
        stuffer.finish(&mut out);
        out
    }

    /// Checks the expected output for the body pushed whole, split once at every position, and in chunks
    /// of every size.
    fn assert_stuffs(body: &[u8], expected: &[u8]) {
        let shown = |bytes: &[u8]| bytes.escape_ascii().to_string();
        assert_eq!(shown(&stuff_whole(body)), shown(expected));
        for split in 0..=body.len() {
            let out = stuff_in_pieces([&body[..split], &[][..], &body[split..]]);
            assert_eq!(shown(&out), shown(expected), "split at {split}");
        }
        for size in 1..=body.len().max(1) {
            let out = stuff_in_pieces(body.chunks(size));
            assert_eq!(shown(&out), shown(expected), "chunks of {size}");
        }
    }

    #[test]
    fn lines_starting_with_a_dot_are_stuffed() {
        assert_stuffs(
            b".hidden\r\nSubject: x\r\n\r\n..two\r\nend.\r\n.\r\nlast\r\n",
            b"..hidden\r\nSubject: x\r\n\r\n...two\r\nend.\r\n..\r\nlast\r\n.\r\n",
        );
    }

    #[test]
    fn body_without_trailing_crlf_gets_one() {
        assert_stuffs(b"a\r\nb", b"a\r\nb\r\n.\r\n");
        assert_stuffs(b"a\r\n.", b"a\r\n..\r\n.\r\n");
        assert_stuffs(b"a\r", b"a\r\n.\r\n");
    }

    #[test]
    fn empty_body_is_just_the_terminator() {
        assert_stuffs(b"", b".\r\n");
        assert_stuffs(b"\r\n", b"\r\n.\r\n");
        assert_stuffs(b".", b"..\r\n.\r\n");
    }

    #[test]
    fn bare_lf_ends_a_line_and_is_sent_as_crlf() {
        assert_stuffs(b"a\n.b\n\n.", b"a\r\n..b\r\n\r\n..\r\n.\r\n");
        assert_stuffs(b"\r.\r\n", b"\r.\r\n.\r\n");
    }

    const MESSAGE: &[u8] = b"From: a@example.org\r\nSubject: hi\r\n\r\none\r\n.two\r\nthree\r\n";

    #[test]
    fn top_keeps_the_header_blank_line_and_asked_lines() {
        assert_eq!(top(MESSAGE, 0), b"From: a@example.org\r\nSubject: hi\r\n\r\n");
        assert_eq!(top(MESSAGE, 1), b"From: a@example.org\r\nSubject: hi\r\n\r\none\r\n");
        assert_eq!(top(MESSAGE, 2), b"From: a@example.org\r\nSubject: hi\r\n\r\none\r\n.two\r\n");
        assert_eq!(top(MESSAGE, 3), MESSAGE);
        assert_eq!(top(MESSAGE, 4), MESSAGE);
        assert_eq!(top(MESSAGE, u32::MAX), MESSAGE);
    }

    #[test]
    fn top_of_unusual_messages() {
        // All header: no blank line, so there is no body to cut.
        assert_eq!(top(b"Subject: x\r\n", 0), b"Subject: x\r\n");
        assert_eq!(top(b"", 5), b"");
        // An empty header.
        assert_eq!(top(b"\r\nbody\r\n", 0), b"\r\n");
        // A last body line without CRLF.
        assert_eq!(top(b"S: x\r\n\r\na\r\nb", 1), b"S: x\r\n\r\na\r\n");
        assert_eq!(top(b"S: x\r\n\r\na\r\nb", 2), b"S: x\r\n\r\na\r\nb");
        // Bare LF line ends.
        assert_eq!(top(b"S: x\n\na\nb\n", 1), b"S: x\n\na\n");
    }

    #[test]
    fn top_then_stuffing_gives_a_terminated_response_body() {
        let mut out = Vec::new();
        let mut stuffer = DotStuffer::new();
        stuffer.push(top(MESSAGE, 2), &mut out);
        stuffer.finish(&mut out);
        assert_eq!(out, b"From: a@example.org\r\nSubject: hi\r\n\r\none\r\n..two\r\n.\r\n");
    }
}
