//! mbox, read as mboxrd, mboxo and mboxcl2 alike (RFC 4155): a message starts at a `From ` line with a
//! sender and an asctime date (as mutt's and Dovecot's readers require) at the start of the file or
//! after an empty line; `>From `, `>>From ` lose one `>` (mboxrd's quoting, and mboxo's where it can be
//! undone), except in a message whose `Content-Length:` is its body's length (mboxcl2, as Dovecot
//! writes mbox: nothing there is quoted); `Status:` and `X-Status:` in the header become flags, and
//! `X-Keywords:` (Dovecot's and mutt's) keywords; they and the other fields that are the mbox's own
//! (`X-UID:`, `X-IMAP:`, `X-IMAPbase:`, `Content-Length:`) leave the stored copy, as Dovecot hides them
//! from IMAP clients. A first message with `X-IMAP:` is UW-IMAP's and Dovecot's "folder internal data"
//! pseudo-message and is not imported. The `From ` line's asctime date is the internal date. Lines are
//! stored with CRLF ends.

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
    /// Messages read so far (only the first can be the pseudo-message).
    read: u64,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Reader<R> {
        Reader { input, line_number: 0, consumed: 0, pending_from: None, started: false, read: 0 }
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
        let first = self.read == 0;
        self.read += 1;
        match self.read_one()? {
            Some((_, true)) if first => Ok(self.read_one()?.map(|(read, _)| read)),
            other => Ok(other.map(|(read, _)| read)),
        }
    }

    /// The next message, and whether it has an `X-IMAP:` field (the pseudo-message, if it is the first).
    fn read_one(&mut self) -> std::io::Result<Option<(Read, bool)>> {
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
            if previous_empty && is_from_line(&next) {
                self.pending_from = Some((self.line_number, next));
                break;
            }
            previous_empty = next == b"\n" || next == b"\r\n";
            lines.push(next);
        }
        let at_end = self.pending_from.is_none();
        if at_end && lines.last().is_some_and(|l| !l.ends_with(b"\n")) {
            return Ok(Some((Read::Truncated { line }, false)));
        }
        // The empty line before the next `From ` (or at the end) belongs to the separator.
        if lines.last().is_some_and(|l| l == b"\n" || l == b"\r\n") {
            lines.pop();
        }
        if !lines.iter().any(|l| l == b"\n" || l == b"\r\n") && at_end {
            return Ok(Some((Read::Truncated { line }, false)));
        }
        let (octets, flags, pseudo) = assemble(lines);
        let message = MboxMessage { line, octets, flags, internal_date: from_line_date(&from) };
        Ok(Some((Read::Message(message), pseudo)))
    }
}

/// A message separator: `From `, a sender and a date that [`from_line_date`] reads.
fn is_from_line(line: &[u8]) -> bool {
    line.starts_with(b"From ") && from_line_date(line).is_some()
}

/// The fields of the header that are the mbox's bookkeeping, not the message's (Dovecot's list of
/// what it hides, besides `Status:`, `X-Status:` and `X-Keywords:`, which become flags).
const MBOX_FIELDS: &[&str] = &["x-uid", "x-imap", "x-imapbase", "content-length"];

/// Joins the lines with CRLF, undoing the `>From ` quoting (unless a matching `Content-Length:` says
/// nothing was quoted) and taking `Status:` / `X-Status:` out of the header into flags; and whether the
/// header has `X-IMAP:`.
fn assemble(lines: Vec<Vec<u8>>) -> (Vec<u8>, Vec<String>, bool) {
    let header_end = lines.iter().position(|l| l == b"\n" || l == b"\r\n").unwrap_or(lines.len());
    let body_length: usize = lines.iter().skip(header_end + 1).map(Vec::len).sum();
    let content_length =
        lines[..header_end].iter().find_map(|l| field_value(l, "content-length")).and_then(|v| v.parse::<usize>().ok());
    let quoted = content_length != Some(body_length);
    let mut octets = Vec::new();
    let mut status = String::new();
    let mut keywords: Vec<String> = Vec::new();
    let mut pseudo = false;
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
                if let Some(field) = MBOX_FIELDS.iter().find(|f| field_value(text, f).is_some()) {
                    pseudo |= *field == "x-imap";
                    skipping_field = true;
                    continue;
                }
            }
        }
        let unquoted = match text.iter().position(|&b| b != b'>') {
            Some(n) if quoted && n > 0 && text[n..].starts_with(b"From ") => &text[1..],
            _ => text,
        };
        octets.extend_from_slice(unquoted);
        octets.extend_from_slice(b"\r\n");
    }
    let mut flags = status_flags(&status);
    flags.extend(keywords.into_iter().filter(|k| !k.starts_with('\\')));
    flags.sort();
    flags.dedup();
    (octets, flags, pseudo)
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

    /// As `doveadm backup` to an mbox location writes it (Dovecot 2.3): the folder's pseudo-message, then
    /// messages with `X-UID:`, `Content-Length:` and nothing quoted, so a body line may start with `From `.
    #[test]
    fn dovecots_mbox_hides_its_fields_and_pseudo_message_and_is_not_unquoted() {
        let text = b"From MAILER_DAEMON  Mon Dec 07 11:52:18 2026\nDate: Mon, 07 Dec 2026 11:52:18 +0000\nFrom: Mail System Internal Data <MAILER-DAEMON@vm>\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1796644339 0000000002 $Work\nStatus: RO\n\nThis text is part of the internal format of your mail folder.\n\nFrom src@vm  Thu Feb 01 09:00:00 2024\nFrom: a@b\nSubject: one\nX-UID: 1\nStatus: R\nX-Keywords:    \nContent-Length: 26\n\nFrom here on\n>From quoted\n\nFrom src@vm  Thu Mar 16 04:59:59 2023\nSubject: two\nX-UID: 2\nStatus: \nX-Status: F\nX-Keywords: $Work   \nContent-Length: 5\n\nBody\n\n";
        let read = read_all(text);
        assert_eq!(read.len(), 2, "{read:?}");
        let Read::Message(first) = &read[0] else { panic!("{read:?}") };
        assert_eq!(first.octets, b"From: a@b\r\nSubject: one\r\n\r\nFrom here on\r\n>From quoted\r\n");
        assert_eq!(first.flags, ["\\Seen"]);
        assert_eq!(first.internal_date, Some(1_706_778_000));
        let Read::Message(second) = &read[1] else { panic!("{read:?}") };
        assert_eq!(second.octets, b"Subject: two\r\n\r\nBody\r\n");
        assert_eq!(second.flags, ["$Work", "\\Flagged"]);
        // Without a matching Content-Length the same body is mboxrd's, and an X-IMAP: field past the
        // first message is no pseudo-message.
        let rd = b"From a Thu Feb 01 09:00:00 2024\nSubject: one\nContent-Length: 3\n\n>From quoted\n\nFrom b Thu Feb 01 09:00:00 2024\nX-IMAP: 1 2\n\nkept\n";
        let read = read_all(rd);
        assert_eq!(read.len(), 2, "{read:?}");
        let Read::Message(first) = &read[0] else { panic!("{read:?}") };
        assert_eq!(first.octets, b"Subject: one\r\n\r\nFrom quoted\r\n");
        let Read::Message(second) = &read[1] else { panic!("{read:?}") };
        assert_eq!(second.octets, b"\r\nkept\r\n");
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
