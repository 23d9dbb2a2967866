//! Bounds the text of a logged-in client's command outside its literals, as Dovecot's
//! `imap_max_line_length` (64 KiB) does. imap-next bounds a whole command, literals included, at
//! APPENDLIMIT, which an APPEND needs; without this a client could make a session buffer that much of a
//! command line with no literal at all.
//!
//! It follows the bytes as the framer will see them: a line that ends in a literal announcement
//! (`{n}`, `{n+}`, `{n-}`, or `~{n}` for a binary literal, RFC 3501 §4.3, 7888, 3516) is followed by `n`
//! octets it skips; any other line end finishes the command.

/// The most a command may hold outside its literals.
pub const MAX_COMMAND_TEXT: usize = 64 * 1024;

/// Enough of a line's end to hold `~{4294967295+}\r\n`.
const TAIL: usize = 24;

#[derive(Debug, Default)]
pub struct LineMeter {
    /// Text of the current command so far, outside literals.
    text: usize,
    /// The last bytes of the current line, for the literal announcement at its end.
    tail: Vec<u8>,
    /// Octets of a literal still to come.
    literal_left: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

impl LineMeter {
    /// Follows `bytes`; `TooLong` once the current command's text passes [`MAX_COMMAND_TEXT`].
    pub fn take(&mut self, mut bytes: &[u8]) -> Result<(), TooLong> {
        while !bytes.is_empty() {
            if self.literal_left > 0 {
                let skip = usize::try_from(self.literal_left).unwrap_or(usize::MAX).min(bytes.len());
                self.literal_left -= skip as u64;
                bytes = &bytes[skip..];
                continue;
            }
            let (line, rest, ended) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..=i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            self.text += line.len();
            if self.text > MAX_COMMAND_TEXT {
                return Err(TooLong);
            }
            self.tail.extend_from_slice(&line[line.len().saturating_sub(TAIL)..]);
            let excess = self.tail.len().saturating_sub(TAIL);
            self.tail.drain(..excess);
            if ended {
                match literal_announced(&self.tail) {
                    Some(n) => self.literal_left = n,
                    None => self.text = 0,
                }
                self.tail.clear();
            }
            bytes = rest;
        }
        Ok(())
    }
}

/// The length a line's end announces: `{n}`, `{n+}` or `{n-}` before CRLF (or a bare LF, which imap-next
/// is told to accept).
fn literal_announced(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let line = line.strip_suffix(b"+").or_else(|| line.strip_suffix(b"-")).unwrap_or(line);
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` split at `at`, both halves, and returns the outcome.
    fn split_feed(input: &[u8], at: usize) -> Result<(), TooLong> {
        let mut meter = LineMeter::default();
        meter.take(&input[..at])?;
        meter.take(&input[at..])
    }

    #[test]
    fn literals_do_not_count_and_a_long_text_does_at_every_split() {
        let mut append = b"a APPEND INBOX {70000}\r\n".to_vec();
        append.extend(std::iter::repeat_n(b'x', 70_000));
        append.extend_from_slice(b"\r\nb NOOP\r\n");
        let mut binary = b"a APPEND INBOX ~{70000+}\r\n".to_vec();
        binary.extend(std::iter::repeat_n(b'\n', 70_000));
        binary.extend_from_slice(b" {3}\r\nabc\r\n");
        let mut long = b"a SEARCH TEXT ".to_vec();
        long.extend(std::iter::repeat_n(b'y', MAX_COMMAND_TEXT));
        long.extend_from_slice(b"\r\n");
        for at in (0..append.len()).step_by(997).chain([1, 23, 24, 25]) {
            assert_eq!(split_feed(&append, at), Ok(()), "APPEND split at {at}");
        }
        for at in (0..binary.len()).step_by(997).chain([22, 23, 24, 25, 26]) {
            assert_eq!(split_feed(&binary, at), Ok(()), "binary literal split at {at}");
        }
        for at in (0..long.len()).step_by(4099) {
            assert_eq!(split_feed(&long, at), Err(TooLong), "long line split at {at}");
        }
    }

    #[test]
    fn many_short_commands_never_add_up() {
        let mut meter = LineMeter::default();
        for _ in 0..10_000 {
            assert_eq!(meter.take(b"a NOOP\r\n"), Ok(()));
        }
    }

    #[test]
    fn announcements_are_read_only_at_a_line_end() {
        assert_eq!(literal_announced(b"a LOGIN {5}\r\n"), Some(5));
        assert_eq!(literal_announced(b"a LOGIN {5+}\r\n"), Some(5));
        assert_eq!(literal_announced(b"a LOGIN {5-}\n"), Some(5));
        assert_eq!(literal_announced(b"a APPEND x ~{12}\r\n"), Some(12));
        for none in [&b"a LOGIN {5} x\r\n"[..], b"a {}\r\n", b"a {x}\r\n", b"a {99999999999999999999999}\r\n", b"}\r\n"]
        {
            assert_eq!(literal_announced(none), None, "{}", none.escape_ascii());
        }
    }
}
