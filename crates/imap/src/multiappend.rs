//! RFC 3502 MULTIAPPEND's and RFC 4469 CATENATE's syntax, read from an APPEND imap-codec rejected:
//! `tag APPEND mailbox 1*(SP [flag-list SP] [date-time SP] (literal / CATENATE (parts)))`.
//!
//! imap-next frames such a command as it frames any other (a `+` for each synchronizing literal, each
//! literal bounded by APPENDLIMIT, the whole command by APPENDLIMIT and 64 KiB), so the bytes here are a
//! whole command; this only cuts it up. The literals are borrowed from those bytes, not copied.

use imap_types::IntoStatic;
use imap_types::core::Tag;
use imap_types::flag::Flag;
use imap_types::mailbox::Mailbox;

/// One APPEND with one or more messages.
#[derive(Debug)]
pub struct Append<'a> {
    pub tag: Tag<'static>,
    pub mailbox: Mailbox<'static>,
    pub messages: Vec<Message<'a>>,
}

/// One message of an APPEND.
#[derive(Debug)]
pub struct Message<'a> {
    pub flags: Vec<Flag<'static>>,
    /// The internal date, as seconds since the epoch.
    pub date: Option<i64>,
    pub content: Content<'a>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Content<'a> {
    /// The message's octets (a literal, or a binary literal `~{n}`, RFC 3516).
    Literal(&'a [u8]),
    /// RFC 4469: the message is these parts, one after another.
    Catenate(Vec<Part<'a>>),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Part<'a> {
    Text(&'a [u8]),
    Url(String),
}

/// Why an APPEND's syntax was refused: BAD with this text (and the tag, when there was one).
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub tag: Option<Tag<'static>>,
    pub why: &'static str,
}

/// The most CATENATE parts one APPEND may have, all its messages together: each URL costs two store
/// calls.
pub const MAX_PARTS: usize = 100;
/// The most messages one APPEND may carry (the literals' total is bounded by the framer too).
pub const MAX_MESSAGES: usize = 1000;

/// `None` when `bytes` is not an APPEND; otherwise the command, or why its syntax is wrong.
pub fn parse(bytes: &[u8]) -> Option<Result<Append<'_>, Refused>> {
    let (tag, rest) = split_append(bytes)?;
    let mut cursor = Cursor { bytes: rest, parts: 0 };
    Some(cursor.append(tag.clone()).map_err(|why| Refused { tag: Some(tag), why }))
}

/// The tag of a command that begins `tag APPEND ` (one the framer cut short, too).
pub fn append_tag(bytes: &[u8]) -> Option<Tag<'static>> {
    split_append(bytes).map(|(tag, _)| tag)
}

/// The tag, and what follows `tag APPEND `.
fn split_append(bytes: &[u8]) -> Option<(Tag<'static>, &[u8])> {
    let space = bytes.iter().take(128).position(|&b| b == b' ')?;
    let tag = Tag::try_from(bytes[..space].to_vec()).ok()?;
    let rest = &bytes[space + 1..];
    let word = rest.get(..7)?;
    word.eq_ignore_ascii_case(b"APPEND ").then(|| (tag, &rest[7..]))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    /// CATENATE parts so far, in every message.
    parts: usize,
}

type Parsed<T> = Result<T, &'static str>;

impl<'a> Cursor<'a> {
    fn append(&mut self, tag: Tag<'static>) -> Parsed<Append<'a>> {
        let name = self.astring().ok_or("expected a mailbox name")?;
        let mailbox = Mailbox::try_from(name).map_err(|_| "bad mailbox name")?;
        let mut messages = Vec::new();
        while !self.line_end() {
            self.expect(b" ")?;
            if messages.len() == MAX_MESSAGES {
                return Err("too many messages in one APPEND");
            }
            messages.push(self.message()?);
        }
        if messages.is_empty() {
            return Err("APPEND needs a message");
        }
        if !self.bytes.is_empty() {
            return Err("unexpected text after the APPEND");
        }
        Ok(Append { tag, mailbox, messages })
    }

    fn message(&mut self) -> Parsed<Message<'a>> {
        let mut flags = Vec::new();
        if self.peek() == Some(b'(') {
            flags = self.flags()?;
            self.expect(b" ")?;
        }
        let mut date = None;
        if self.peek() == Some(b'"') {
            date = Some(self.date()?);
            self.expect(b" ")?;
        }
        let content = if self.word("CATENATE ") {
            Content::Catenate(self.parts()?)
        } else {
            Content::Literal(self.literal().ok_or("expected a literal or CATENATE")?)
        };
        Ok(Message { flags, date, content })
    }

    /// `(flag *(SP flag))`, or `()`.
    fn flags(&mut self) -> Parsed<Vec<Flag<'static>>> {
        self.expect(b"(")?;
        let mut flags = Vec::new();
        loop {
            if self.peek() == Some(b')') {
                self.bytes = &self.bytes[1..];
                return Ok(flags);
            }
            if !flags.is_empty() {
                self.expect(b" ")?;
            }
            let start = usize::from(self.peek() == Some(b'\\'));
            let end = start + self.bytes[start..].iter().take_while(|&&b| is_atom_char(b)).count();
            let text = std::str::from_utf8(&self.bytes[..end]).map_err(|_| "bad flag")?;
            let flag = Flag::try_from(text).map_err(|_| "bad flag")?;
            flags.push(flag.into_static());
            self.bytes = &self.bytes[end..];
        }
    }

    /// A quoted RFC 3501 date-time, `"dd-Mon-yyyy hh:mm:ss +zzzz"` (the day may be space-padded).
    fn date(&mut self) -> Parsed<i64> {
        let text = self.quoted().ok_or("bad date-time")?;
        let text = std::str::from_utf8(&text).map_err(|_| "bad date-time")?;
        let parsed = chrono::DateTime::parse_from_str(text.trim_start(), "%d-%b-%Y %H:%M:%S %z");
        parsed.map(|d| d.timestamp()).map_err(|_| "bad date-time")
    }

    /// RFC 4469: `(` cat-part *(SP cat-part) `)`, cat-part = `TEXT` SP literal / `URL` SP astring.
    fn parts(&mut self) -> Parsed<Vec<Part<'a>>> {
        self.expect(b"(")?;
        let mut parts = Vec::new();
        loop {
            if self.parts == MAX_PARTS {
                return Err("too many CATENATE parts");
            }
            self.parts += 1;
            if self.word("TEXT ") {
                parts.push(Part::Text(self.literal().ok_or("TEXT needs a literal")?));
            } else if self.word("URL ") {
                let url = self.astring().ok_or("URL needs a string")?;
                parts.push(Part::Url(String::from_utf8(url).map_err(|_| "a URL is ASCII")?));
            } else {
                return Err("expected TEXT or URL");
            }
            match self.peek() {
                Some(b')') => {
                    self.bytes = &self.bytes[1..];
                    return Ok(parts);
                }
                Some(b' ') => self.bytes = &self.bytes[1..],
                _ => return Err("expected ) or another CATENATE part"),
            }
        }
    }

    /// An atom-like string, a quoted string or a literal.
    fn astring(&mut self) -> Option<Vec<u8>> {
        match self.peek()? {
            b'"' => self.quoted(),
            b'{' => self.literal().map(<[u8]>::to_vec),
            _ => {
                let end = self.bytes.iter().take_while(|&&b| is_atom_char(b) || b == b']').count();
                if end == 0 {
                    return None;
                }
                let (word, rest) = self.bytes.split_at(end);
                self.bytes = rest;
                Some(word.to_vec())
            }
        }
    }

    /// `"..."` with `\"` and `\\` escapes; no CR or LF inside.
    fn quoted(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 1;
        loop {
            match *self.bytes.get(i)? {
                b'"' => break,
                b'\\' => {
                    let next = *self.bytes.get(i + 1)?;
                    if next != b'"' && next != b'\\' {
                        return None;
                    }
                    out.push(next);
                    i += 2;
                }
                b'\r' | b'\n' | 0 => return None,
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        self.bytes = &self.bytes[i + 1..];
        Some(out)
    }

    /// `{n}`, `{n+}`, `~{n}` or `~{n+}`, its line end, then its `n` octets.
    fn literal(&mut self) -> Option<&'a [u8]> {
        let bytes = self.bytes;
        let bytes = bytes.strip_prefix(b"~").unwrap_or(bytes).strip_prefix(b"{")?;
        let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 10 {
            return None;
        }
        let length: usize = std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()?;
        let rest = &bytes[digits..];
        let rest = rest.strip_prefix(b"+").unwrap_or(rest).strip_prefix(b"}")?;
        let rest = rest.strip_prefix(b"\r").unwrap_or(rest).strip_prefix(b"\n")?;
        if rest.len() < length {
            return None;
        }
        let (data, rest) = rest.split_at(length);
        self.bytes = rest;
        Some(data)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.first().copied()
    }

    /// The command's end: CRLF, or a bare LF (imap-next is told to accept it).
    fn line_end(&mut self) -> bool {
        for end in [&b"\r\n"[..], b"\n"] {
            if let Some(rest) = self.bytes.strip_prefix(end) {
                self.bytes = rest;
                return true;
            }
        }
        false
    }

    fn expect(&mut self, what: &'static [u8]) -> Parsed<()> {
        match self.bytes.strip_prefix(what) {
            Some(rest) => {
                self.bytes = rest;
                Ok(())
            }
            None => Err("syntax error in APPEND"),
        }
    }

    /// Takes `word` (any case) when it comes next.
    fn word(&mut self, word: &str) -> bool {
        match self.bytes.get(..word.len()) {
            Some(next) if next.eq_ignore_ascii_case(word.as_bytes()) => {
                self.bytes = &self.bytes[word.len()..];
                true
            }
            _ => false,
        }
    }
}

/// RFC 3501 ATOM-CHAR: any CHAR except atom-specials.
fn is_atom_char(b: u8) -> bool {
    b.is_ascii() && !b.is_ascii_control() && !b"(){ %*\"\\]".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(bytes: &[u8]) -> Append<'_> {
        parse(bytes).expect("an APPEND").expect("valid")
    }

    fn refused(bytes: &[u8]) -> &'static str {
        parse(bytes).expect("an APPEND").expect_err("invalid").why
    }

    #[test]
    fn several_messages_with_flags_dates_and_both_literal_kinds() {
        let append = parsed(
            b"a1 APPEND saved-messages (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {3}\r\nabc \
              {2+}\r\nde ~{1}\r\nf\r\n",
        );
        assert_eq!(append.tag.as_ref(), "a1");
        assert_eq!(append.messages.len(), 3);
        assert_eq!(append.messages[0].flags, vec![Flag::Seen]);
        assert_eq!(append.messages[0].date, Some(760_686_745));
        assert_eq!(append.messages[0].content, Content::Literal(b"abc"));
        assert_eq!(append.messages[1].content, Content::Literal(b"de"));
        assert_eq!(append.messages[2].content, Content::Literal(b"f"));
    }

    #[test]
    fn catenate_parts() {
        let append = parsed(b"A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL \"/Drafts;UIDVALIDITY=385759045/;UID=20/;SECTION=HEADER\" TEXT {3}\r\n\r\n\r URL /Drafts;UIDVALIDITY=385759045/;UID=20/;SECTION=1.MIME)\r\n");
        assert_eq!(append.messages[0].flags.len(), 3);
        let Content::Catenate(parts) = &append.messages[0].content else { panic!("not catenated") };
        assert_eq!(
            parts,
            &vec![
                Part::Url("/Drafts;UIDVALIDITY=385759045/;UID=20/;SECTION=HEADER".into()),
                Part::Text(b"\r\n\r"),
                Part::Url("/Drafts;UIDVALIDITY=385759045/;UID=20/;SECTION=1.MIME".into()),
            ]
        );
    }

    #[test]
    fn other_commands_are_not_taken() {
        assert!(parse(b"a SELECT INBOX\r\n").is_none());
        assert!(parse(b"a APPENDX INBOX {1}\r\nx\r\n").is_none());
        assert!(parse(b"APPEND\r\n").is_none());
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        assert_eq!(refused(b"a APPEND INBOX\r\n"), "APPEND needs a message");
        assert_eq!(refused(b"a APPEND INBOX {5}\r\nab\r\n"), "expected a literal or CATENATE");
        assert_eq!(refused(b"a APPEND INBOX {99999999999}\r\nab\r\n"), "expected a literal or CATENATE");
        assert_eq!(refused(b"a APPEND INBOX \"bad date\" {1}\r\nx\r\n"), "bad date-time");
        assert_eq!(refused(b"a APPEND INBOX CATENATE ()\r\n"), "expected TEXT or URL");
        assert_eq!(refused(b"a APPEND INBOX CATENATE (URL \"x\r\n"), "URL needs a string");
        assert_eq!(refused(b"a APPEND INBOX {1}\r\nx junk\r\n"), "expected a literal or CATENATE");
        assert_eq!(refused(b"a APPEND INBOX {1}\r\nx\r\nmore"), "unexpected text after the APPEND");
        // The parts are counted across the messages of one APPEND.
        let message = format!(" CATENATE ({})", vec!["URL /INBOX/;UID=1"; 60].join(" "));
        let two = format!("a APPEND INBOX{message}{message}\r\n");
        assert_eq!(refused(two.as_bytes()), "too many CATENATE parts");
        assert!(parse(format!("a APPEND INBOX{message}\r\n").as_bytes()).unwrap().is_ok());
        // Every prefix and every one-byte change of a valid command parses or is refused, never panics.
        let valid = b"t APPEND INBOX (\\Seen) \"01-Jan-2020 00:00:00 +0000\" {2}\r\nab CATENATE (TEXT {1+}\r\nx URL \"/INBOX;UID=1\")\r\n";
        for end in 0..valid.len() {
            let _ = parse(&valid[..end]);
        }
        for at in 0..valid.len() {
            for b in [b'{', b'}', b'"', b'\\', b'(', b')', b' ', b'\n', b'9', 0] {
                let mut changed = valid.to_vec();
                changed[at] = b;
                let _ = parse(&changed);
            }
        }
    }
}
