//! The message as tests see it: header fields unfolded and RFC 2047-decoded, address lists split into
//! addresses, and the body's parts (through mail-parser) for RFC 5173's `body`.

use mail_parser::decoders::html::html_to_text;
use mail_parser::parsers::MessageStream;
use mail_parser::{MessageParser, MimeHeaders, PartType};

use crate::script::{AddressPart, BodyTransform};

pub(crate) struct Message<'a> {
    raw: &'a [u8],
    /// Field name as written, and the unfolded raw value with surrounding blanks removed.
    fields: Vec<(String, String)>,
    body_start: usize,
}

impl<'a> Message<'a> {
    pub(crate) fn new(raw: &'a [u8]) -> Self {
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut at = 0;
        let mut body_start = raw.len();
        while at < raw.len() {
            let end = raw[at..].iter().position(|&c| c == b'\n').map_or(raw.len(), |p| at + p + 1);
            let line = &raw[at..end];
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.is_empty() {
                body_start = end;
                break;
            }
            let text = String::from_utf8_lossy(text);
            if text.starts_with([' ', '\t']) {
                if let Some((_, value)) = fields.last_mut() {
                    value.push_str(&text);
                }
            } else if let Some((name, value)) = text.split_once(':') {
                fields.push((name.trim_end().to_owned(), value.to_owned()));
            }
            at = end;
        }
        for (_, value) in &mut fields {
            *value = value.trim().to_owned();
        }
        Message { raw, fields, body_start }
    }

    pub(crate) fn size(&self) -> u64 {
        self.raw.len() as u64
    }

    pub(crate) fn raw_values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.fields.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.raw_values(name).next().is_some()
    }

    /// The decoded values of every field with this name, in order (RFC 5228 §5.7).
    pub(crate) fn values(&self, name: &str) -> Vec<String> {
        self.raw_values(name).map(decode_words).collect()
    }

    pub(crate) fn message_id(&self) -> Option<String> {
        self.raw_values("message-id").next().map(str::to_owned)
    }

    pub(crate) fn body(&self, transform: &BodyTransform) -> Vec<String> {
        if let BodyTransform::Raw = transform {
            return vec![String::from_utf8_lossy(&self.raw[self.body_start.min(self.raw.len())..]).into_owned()];
        }
        let Some(parsed) = MessageParser::default().parse(self.raw) else { return Vec::new() };
        let mut out = Vec::new();
        collect_parts(&parsed, transform, &mut out, 0);
        out
    }
}

fn collect_parts(message: &mail_parser::Message<'_>, transform: &BodyTransform, out: &mut Vec<String>, depth: u32) {
    for part in &message.parts {
        let (ctype, subtype) = part
            .content_type()
            .map(|ct| (ct.ctype().to_ascii_lowercase(), ct.subtype().unwrap_or("").to_ascii_lowercase()))
            .unwrap_or_else(|| ("text".to_owned(), "plain".to_owned()));
        let wanted = match transform {
            BodyTransform::Raw => false,
            BodyTransform::Text => ctype == "text",
            BodyTransform::Content(types) => types.iter().any(|t| content_type_matches(t, &ctype, &subtype)),
        };
        match &part.body {
            PartType::Text(text) if wanted => out.push(text.to_string()),
            PartType::Html(html) if wanted => {
                out.push(if matches!(transform, BodyTransform::Text) { html_to_text(html) } else { html.to_string() })
            }
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) if wanted => {
                out.push(String::from_utf8_lossy(bytes).into_owned())
            }
            // RFC 5173 §5: the parts of an attached message are searched too.
            PartType::Message(inner) if depth < 8 => collect_parts(inner, transform, out, depth + 1),
            _ => {}
        }
    }
}

/// RFC 5173 §5: "" matches every part, "text" any text/*, "text/plain" only that type.
fn content_type_matches(wanted: &str, ctype: &str, subtype: &str) -> bool {
    match wanted.split_once('/') {
        _ if wanted.is_empty() => true,
        Some((t, s)) => t.eq_ignore_ascii_case(ctype) && s.eq_ignore_ascii_case(subtype),
        None => wanted.eq_ignore_ascii_case(ctype),
    }
}

/// RFC 2047: decodes encoded words, dropping the blanks between two adjacent ones (§6.2).
pub(crate) fn decode_words(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_owned();
    }
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut pending_blanks = String::new();
    let mut last_was_word = false;
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'=' && bytes.get(at + 1) == Some(&b'?') {
            let mut stream = MessageStream::new(&bytes[at + 1..]);
            if let Some(decoded) = stream.decode_rfc2047() {
                if !last_was_word {
                    out.push_str(&pending_blanks);
                }
                pending_blanks.clear();
                out.push_str(&decoded);
                at += 1 + stream.offset();
                last_was_word = true;
                continue;
            }
        }
        let Some(c) = value.get(at..).and_then(|rest| rest.chars().next()) else {
            // Never expected (an encoded word ends in ASCII "?="), but never a panic either.
            at += 1;
            continue;
        };
        if c == ' ' || c == '\t' {
            pending_blanks.push(c);
        } else {
            out.push_str(&pending_blanks);
            pending_blanks.clear();
            out.push(c);
            last_was_word = false;
        }
        at += c.len_utf8();
    }
    out.push_str(&pending_blanks);
    out
}

/// The addresses of an address-list field (RFC 5322 §3.4): display names, comments and group names
/// dropped, `local@domain` kept.
pub(crate) fn addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut angle, mut comment) = (false, false, 0u32);
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted || comment > 0 => {
                if quoted {
                    current.push(c);
                    current.extend(chars.next());
                } else {
                    chars.next();
                }
            }
            '"' if comment == 0 => {
                quoted = !quoted;
                current.push(c);
            }
            '(' if !quoted => comment += 1,
            ')' if !quoted && comment > 0 => comment -= 1,
            _ if comment > 0 => {}
            '<' if !quoted => {
                angle = true;
                current.clear();
            }
            '>' if !quoted && angle => {
                angle = false;
                push_address(&mut out, &current);
                current.clear();
                current.push('\u{0}');
            }
            ':' if !quoted && !angle => current.clear(),
            ',' | ';' if !quoted && !angle => {
                push_address(&mut out, &current);
                current.clear();
            }
            c => current.push(c),
        }
    }
    push_address(&mut out, &current);
    out
}

fn push_address(out: &mut Vec<String>, text: &str) {
    // A NUL marks that the address already went out from its angle brackets.
    if text.starts_with('\u{0}') {
        return;
    }
    let mut address = text.trim();
    // An obsolete source route, `<@a,@b:user@host>` (RFC 5322 §4.4).
    if address.starts_with('@') {
        address = address.split_once(':').map_or("", |(_, a)| a);
    }
    if !address.is_empty() {
        out.push(address.to_owned());
    }
}

/// The part of an address a test compares; `None` when it has no such part (RFC 5233 §4: no
/// separator, no detail).
pub(crate) fn address_part(address: &str, part: AddressPart) -> Option<String> {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    match part {
        AddressPart::All => Some(address.to_owned()),
        AddressPart::LocalPart => Some(local.to_owned()),
        AddressPart::Domain => Some(domain.to_owned()),
        AddressPart::User => Some(local.split_once('+').map_or(local, |(user, _)| user).to_owned()),
        AddressPart::Detail => local.split_once('+').map(|(_, detail)| detail.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_unfold_and_decode() {
        let m =
            Message::new(b"Subject: =?utf-8?q?caf=C3=A9?= =?utf-8?b?w6k=?=\r\n  tail\r\nX-A: 1\r\nx-a:2\r\n\r\nbody");
        assert_eq!(m.values("subject"), ["caf\u{e9}\u{e9}  tail"]);
        assert_eq!(m.values("X-A"), ["1", "2"]);
        assert_eq!(m.body(&BodyTransform::Raw), ["body"]);
    }

    #[test]
    fn address_lists() {
        assert_eq!(
            addresses(
                r#""Doe, John" <john@example.com>, jane@example.org (Jane), team: a@b.c, d@e.f;, <@r.example:x@y.z>"#
            ),
            ["john@example.com", "jane@example.org", "a@b.c", "d@e.f", "x@y.z"]
        );
        assert_eq!(address_part("ken+sieve@example.org", AddressPart::Detail).as_deref(), Some("sieve"));
        assert_eq!(address_part("ken@example.org", AddressPart::Detail), None);
        assert_eq!(address_part("ken+@example.org", AddressPart::User).as_deref(), Some("ken"));
    }
}
