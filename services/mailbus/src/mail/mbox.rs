//! mbox, read as mboxrd and mboxo alike (RFC 4155): a message starts at a `From ` line at the start of
//! the file or after an empty line; `>From `, `>>From ` lose one `>` (mboxrd's quoting, and mboxo's
//! where it can be undone); `Status:` and `X-Status:` in the header become flags, and `X-Keywords:`
//! (Dovecot's and mutt's) keywords, and they leave the stored copy; the `From ` line's asctime date is the internal date. Lines are stored with CRLF ends.

use std::io::BufRead;

/// One message of an mbox file.
#[derive(Debug, PartialEq, Eq)]
pub struct MboxMessage {
    /// The line number of its `From ` line, for reports.
    pub line: u64,
    pub octets: Vec<u8>,
    pub flags: Vec<String>,
    pub internal_date: Option<i64>,
}

/// What reading one message gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Message(MboxMessage),
    /// The file ends inside this message (no header/body separator, or no line end on its last line):
    /// a cut-off copy is not imported.
    Truncated {
        line: u64,
    },
}

/// Reads an mbox file one message at a time, holding one message in memory.
pub struct Reader<R> {
    input: R,
    line_number: u64,
    /// Octets read so far, for progress.
    consumed: u64,
    /// The `From ` line that starts the next message, once read.
    pending_from: Option<(u64, Vec<u8>)>,
    started: bool,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Reader<R> {
        Reader { input, line_number: 0, consumed: 0, pending_from: None, started: false }
    }

    fn next_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        let read = self.input.read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(None);
        }
        self.line_number += 1;
        self.consumed += read as u64;
        Ok(Some(line))
    }

    /// The octets of the file read so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next message; `Ok(None)` at the end; an error when the file does not start with `From `.
    pub fn next_message(&mut self) -> std::io::Result<Option<Read>> {
        if !self.started {
            self.started = true;
            match self.next_line()? {
                None => return Ok(None),
                Some(line) if line.starts_with(b"From ") => self.pending_from = Some((self.line_number, line)),
                Some(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "not an mbox file: the first line is not a \"From \" line",
                    ));
                }
            }
        }
        let Some((line, from)) = self.pending_from.take() else { return Ok(None) };
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut previous_empty = false;
        while let Some(next) = self.next_line()? {
            if previous_empty && next.starts_with(b"From ") {
                self.pending_from = Some((self.line_number, next));
                break;
            }
            previous_empty = next == b"\n" || next == b"\r\n";
            lines.push(next);
        }
        let at_end = self.pending_from.is_none();
        if at_end && lines.last().is_some_and(|l| !l.ends_with(b"\n")) {
            return Ok(Some(Read::Truncated { line }));
        }
        // The empty line before the next `From ` (or at the end) belongs to the separator.
        if lines.last().is_some_and(|l| l == b"\n" || l == b"\r\n") {
            lines.pop();
        }
        if !lines.iter().any(|l| l == b"\n" || l == b"\r\n") && at_end {
            return Ok(Some(Read::Truncated { line }));
        }
        let (octets, flags) = assemble(lines);
        Ok(Some(Read::Message(MboxMessage { line, octets, flags, internal_date: from_line_date(&from) })))
    }
}

/// Joins the lines with CRLF, undoing the `>From ` quoting and taking `Status:` / `X-Status:` out of the
/// header into flags.
fn assemble(lines: Vec<Vec<u8>>) -> (Vec<u8>, Vec<String>) {
    let mut octets = Vec::new();
    let mut status = String::new();
    let mut keywords: Vec<String> = Vec::new();
    let mut in_header = true;
    let mut skipping_field = false;
    for line in lines {
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if in_header {
            if text.is_empty() {
                in_header = false;
            } else if skipping_field && (text[0] == b' ' || text[0] == b'\t') {
                continue;
            } else {
                skipping_field = false;
                if let Some(value) = field_value(text, "status").or_else(|| field_value(text, "x-status")) {
                    status.push_str(&value);
                    skipping_field = true;
                    continue;
                }
                if let Some(value) = field_value(text, "x-keywords") {
                    keywords.extend(value.split([' ', ',']).filter(|k| !k.is_empty()).map(str::to_owned));
                    skipping_field = true;
                    continue;
                }
            }
        }
        let unquoted = match text.iter().position(|&b| b != b'>') {
            Some(n) if n > 0 && text[n..].starts_with(b"From ") => &text[1..],
            _ => text,
        };
        octets.extend_from_slice(unquoted);
        octets.extend_from_slice(b"\r\n");
    }
    let mut flags = status_flags(&status);
    flags.extend(keywords.into_iter().filter(|k| !k.starts_with('\\')));
    flags.sort();
    flags.dedup();
    (octets, flags)
}

fn field_value(line: &[u8], name: &str) -> Option<String> {
    let (field, value) = line.split_at(line.iter().position(|&b| b == b':')?);
    field.eq_ignore_ascii_case(name.as_bytes()).then(|| String::from_utf8_lossy(&value[1..]).trim().to_owned())
}

/// `Status:` R (read) and O (old, not recent); `X-Status:` A answered, F flagged, T draft, D deleted, as
/// mutt and Dovecot's mbox write them.
pub fn status_flags(letters: &str) -> Vec<String> {
    let mut flags: Vec<String> = letters
        .chars()
        .filter_map(|c| match c {
            'R' => Some("\\Seen"),
            'A' => Some("\\Answered"),
            'F' => Some("\\Flagged"),
            'T' => Some("\\Draft"),
            'D' => Some("\\Deleted"),
            _ => None,
        })
        .map(str::to_owned)
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

/// The asctime date of `From sender Tue Dec  7 05:11:31 2026`, read as UTC (a trailing zone, which some
/// writers add, is ignored).
pub fn from_line_date(line: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(line);
    let words: Vec<&str> = text.split_whitespace().collect();
    let parse = |slice: &[&str]| {
        chrono::NaiveDateTime::parse_from_str(&slice.join(" "), "%a %b %d %H:%M:%S %Y")
            .ok()
            .map(|t| t.and_utc().timestamp())
    };
    let n = words.len();
    (n >= 7)
        .then(|| parse(&words[n - 5..]))
        .flatten()
        .or_else(|| (n >= 8).then(|| parse(&words[n - 6..n - 1])).flatten())
}

/// Writes one mailbox as mboxrd.
pub fn write_message(
    out: &mut impl std::io::Write,
    octets: &[u8],
    flags: &[String],
    internal_date: i64,
) -> std::io::Result<()> {
    let date = chrono::DateTime::from_timestamp(internal_date, 0).unwrap_or_default();
    writeln!(out, "From MAILER-DAEMON {}", date.format("%a %b %e %H:%M:%S %Y"))?;
    let has = |flag: &str| flags.iter().any(|f| f.eq_ignore_ascii_case(flag));
    let status: String = [("\\Seen", 'R')].iter().filter(|(f, _)| has(f)).map(|(_, c)| *c).chain(['O']).collect();
    let x_status: String = [("\\Answered", 'A'), ("\\Flagged", 'F'), ("\\Draft", 'T'), ("\\Deleted", 'D')]
        .iter()
        .filter(|(f, _)| has(f))
        .map(|(_, c)| *c)
        .collect();
    let lf = super::to_lf(octets);
    let header_end = lf.windows(2).position(|w| w == b"\n\n").map_or(lf.len(), |p| p + 1);
    let (header, body) = lf.split_at(header_end);
    out.write_all(header)?;
    writeln!(out, "Status: {status}")?;
    if !x_status.is_empty() {
        writeln!(out, "X-Status: {x_status}")?;
    }
    let keywords: Vec<&str> = flags.iter().filter(|f| !f.starts_with('\\')).map(String::as_str).collect();
    if !keywords.is_empty() {
        writeln!(out, "X-Keywords: {}", keywords.join(" "))?;
    }
    for line in body.split_inclusive(|&b| b == b'\n') {
        // mboxrd: every `>*From ` line gains one `>`, so reading takes exactly one away.
        if line.iter().position(|&b| b != b'>').is_some_and(|n| line[n..].starts_with(b"From ")) {
            out.write_all(b">")?;
        }
        out.write_all(line)?;
    }
    if !lf.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &[u8]) -> Vec<Read> {
        let mut reader = Reader::new(text);
        std::iter::from_fn(|| reader.next_message().unwrap()).collect()
    }

    #[test]
    fn mboxrd_is_unquoted_and_status_becomes_flags() {
        let text = b"From a@example.org Tue Dec  7 05:11:31 2021\nSubject: one\nStatus: RO\nX-Status: AF\n\n>From here\n>>From there\nFrom the middle is not a separator\n\nFrom b@example.org Wed Dec  8 10:00:00 2021\nSubject: two\n\nbody\n\n";
        let read = read_all(text);
        assert_eq!(read.len(), 2);
        let Read::Message(first) = &read[0] else { panic!("{read:?}") };
        assert_eq!(
            first.octets,
            b"Subject: one\r\n\r\nFrom here\r\n>From there\r\nFrom the middle is not a separator\r\n"
        );
        assert_eq!(first.flags, ["\\Answered", "\\Flagged", "\\Seen"]);
        assert_eq!(first.internal_date, Some(1_638_853_891));
        let Read::Message(second) = &read[1] else { panic!("{read:?}") };
        assert_eq!((second.line, second.octets.as_slice()), (10, &b"Subject: two\r\n\r\nbody\r\n"[..]));
        assert!(second.flags.is_empty());
    }

    #[test]
    fn a_file_cut_inside_a_line_or_header_is_truncated() {
        let cut =
            b"From a Tue Dec  7 05:11:31 2021\nSubject: one\n\nbody\n\nFrom b Tue Dec  7 05:11:31 2021\nSubject: tw";
        let read = read_all(cut);
        assert!(matches!(read[0], Read::Message(_)));
        assert_eq!(read[1], Read::Truncated { line: 6 });
        let header_only = b"From a Tue Dec  7 05:11:31 2021\nSubject: one\n";
        assert_eq!(read_all(header_only), [Read::Truncated { line: 1 }]);
        assert!(Reader::new(&b"Subject: not mbox\n"[..]).next_message().is_err());
    }

    #[test]
    fn written_messages_read_back_the_same() {
        let mut out = Vec::new();
        let octets = b"Subject: x\r\n\r\nFrom me\r\n>From you\r\nend";
        let flags = vec!["\\Seen".to_owned(), "\\Flagged".to_owned(), "Work".to_owned()];
        write_message(&mut out, octets, &flags, 1_638_853_891).unwrap();
        write_message(&mut out, b"Subject: y\r\n\r\n", &[], 0).unwrap();
        let read = read_all(&out);
        let Read::Message(first) = &read[0] else { panic!("{read:?}") };
        assert_eq!(first.octets, b"Subject: x\r\n\r\nFrom me\r\n>From you\r\nend\r\n");
        assert_eq!(first.flags, ["Work", "\\Flagged", "\\Seen"]);
        assert_eq!(first.internal_date, Some(1_638_853_891));
        let Read::Message(second) = &read[1] else { panic!("{read:?}") };
        assert_eq!(second.octets, b"Subject: y\r\n\r\n");
    }
}
