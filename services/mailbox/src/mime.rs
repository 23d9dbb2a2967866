//! A message parsed once, when it is stored: the IMAP ENVELOPE and BODYSTRUCTURE with every part's
//! offsets (so FETCH of a section slices the stored octets instead of parsing again), the Date field, the
//! header fields and the decoded text that SEARCH looks at (made by `search_text`). Parsing only:
//! `store::parsed` writes the result.

use mail_parser::{Address, Header, HeaderName, HeaderValue, Message, MessageParser, PartType};
use mailbus_proto::v1 as pb;

use crate::search_text::{self, SearchText};

/// Parts nested deeper than this (multiparts and message/rfc822 alike) are described as opaque
/// application/octet-stream: it bounds our recursion and keeps the stored structure well inside prost's
/// decoding recursion limit of 100.
const MAX_DEPTH: usize = 40;

/// What the store keeps of a message besides its octets.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub structure: pb::MessageStructure,
    /// The Date field, as a Unix time.
    pub sent_unix: Option<i64>,
    /// The Date field's day as written, in its own time zone (`YYYY-MM-DD`), for SENTON and friends.
    pub sent_day: Option<String>,
    /// Header fields of the message (not of its parts): names in lower case, values unfolded and with
    /// encoded words decoded.
    pub header_names: Vec<String>,
    pub header_values: Vec<String>,
    /// The decoded, case-folded text SEARCH BODY and TEXT look for substrings in.
    pub search: SearchText,
    /// Whether any leaf part is an attachment (JMAP's hasAttachment, RFC 8621 §4.1.4).
    pub has_attachment: bool,
    /// JMAP's preview: the first 256 characters of the first text body, white space folded.
    pub preview: String,
}

impl Parsed {
    /// Octets of the message's header, the blank line included.
    pub fn header_size(&self) -> u64 {
        self.structure.body.as_ref().map_or(0, |b| b.body_offset)
    }
}

/// Parses a message. It never fails: what mail-parser cannot read is described as one text part.
pub fn parse(content: &[u8]) -> Parsed {
    let Some(message) = MessageParser::default().parse(content) else {
        // mail-parser gives up only on input without any header; describe it as one text part.
        return Parsed {
            structure: pb::MessageStructure {
                envelope: Some(pb::MessageEnvelope::default()),
                body: Some(opaque(content)),
            },
            sent_unix: None,
            sent_day: None,
            header_names: Vec::new(),
            header_values: Vec::new(),
            search: search_text::of_unparsed(content),
            has_attachment: false,
            preview: String::new(),
        };
    };
    let headers = message.parts.first().map(|p| p.headers.as_slice()).unwrap_or_default();
    let (header_names, header_values): (Vec<String>, Vec<String>) =
        headers.iter().map(|h| (h.name.as_str().to_ascii_lowercase(), searchable_value(h, content))).unzip();
    // PostgreSQL text cannot hold NUL.
    let header_values: Vec<String> = header_values.into_iter().map(|v| v.replace('\0', " ")).collect();
    let header_names = header_names.into_iter().map(|v| v.replace('\0', " ")).collect();
    let search = search_text::of(&message, &header_values, |nested| {
        let headers = nested.parts.first().map(|p| p.headers.as_slice()).unwrap_or_default();
        headers.iter().map(|h| searchable_value(h, nested.raw_message.as_ref())).collect()
    });
    let body = body_part(&message, 0, content, 0, Default::default());
    let preview = {
        use crate::jmap::email::body;
        let structure = body::structure(&message);
        body::preview(&message, &body::bodies(&structure)).replace('\0', " ")
    };
    Parsed {
        has_attachment: has_attachment(&body),
        preview,
        structure: pb::MessageStructure { envelope: Some(envelope(headers, content)), body: Some(body) },
        sent_unix: message.date().map(|d| d.to_timestamp()),
        sent_day: message.date().and_then(day_as_written),
        header_names,
        header_values,
        search,
    }
}

/// RFC 9051 §6.4.4: the SENT* keys use the date as written, disregarding time and zone.
fn day_as_written(date: &mail_parser::DateTime) -> Option<String> {
    let day = chrono::NaiveDate::from_ymd_opt(i32::from(date.year), u32::from(date.month), u32::from(date.day))?;
    Some(day.format("%Y-%m-%d").to_string())
}

/// A whole message that could not be parsed as one: text/plain of its octets.
fn opaque(content: &[u8]) -> pb::BodyPart {
    pb::BodyPart {
        r#type: "text".into(),
        subtype: "plain".into(),
        params: vec![param("charset", "us-ascii")],
        encoding: "7BIT".into(),
        size: content.len() as u64,
        lines: count_lines(content),
        body_offset: 0,
        end_offset: content.len() as u64,
        ..Default::default()
    }
}

fn param(name: &str, value: &str) -> pb::Param {
    pb::Param { name: name.to_ascii_lowercase(), value: value.to_owned() }
}

fn count_lines(body: &[u8]) -> u64 {
    body.iter().filter(|&&b| b == b'\n').count() as u64
}

fn field<'a, 'x>(headers: &'a [Header<'x>], name: &HeaderName<'_>) -> Option<&'a Header<'x>> {
    headers.iter().find(|h| &h.name == name)
}

/// A field's value as written: unfolded, trimmed, encoded words left alone (what IMAP's ENVELOPE and
/// BODYSTRUCTURE strings carry).
fn raw_value(header: &Header<'_>, raw: &[u8]) -> String {
    let bytes = raw.get(header.offset_start as usize..header.offset_end as usize).unwrap_or_default();
    let text = String::from_utf8_lossy(bytes);
    text.replace("\r\n", "").replace('\n', "").trim().to_owned()
}

fn raw_field(headers: &[Header<'_>], name: HeaderName<'_>, raw: &[u8]) -> Option<String> {
    field(headers, &name).map(|h| raw_value(h, raw))
}

fn searchable_value(header: &Header<'_>, raw: &[u8]) -> String {
    // Message ids stay as written, angle brackets and all: threading (migration 0006's mailbus_msg_ids)
    // finds them by their brackets, which the parsed value has lost.
    if matches!(header.name, HeaderName::MessageId | HeaderName::InReplyTo | HeaderName::References) {
        return raw_value(header, raw).trim().to_owned();
    }
    match &header.value {
        HeaderValue::Text(text) => text.to_string(),
        HeaderValue::TextList(list) => list.join(", "),
        HeaderValue::Address(address) => {
            // A group's name is searchable too (SEARCH TO "undisclosed-recipients" finds the group).
            let addrs: Vec<String> = address_list(address)
                .into_iter()
                .filter(|a| !a.group_end)
                .map(|a| match a.group_start {
                    true => format!("{}:", a.mailbox),
                    false => format!("{} <{}@{}>", a.name, a.mailbox, a.host).trim_start().to_owned(),
                })
                .collect();
            addrs.join(", ")
        }
        _ => raw_value(header, raw),
    }
}

fn envelope(headers: &[Header<'_>], raw: &[u8]) -> pb::MessageEnvelope {
    let addresses = |name: HeaderName<'_>| match field(headers, &name).map(|h| &h.value) {
        Some(HeaderValue::Address(address)) => address_list(address),
        _ => Vec::new(),
    };
    let from = addresses(HeaderName::From);
    // RFC 9051 §7.5.2: Sender and Reply-To default to From.
    let or_from = |list: Vec<pb::EnvelopeAddress>| if list.is_empty() { from.clone() } else { list };
    pb::MessageEnvelope {
        date: raw_field(headers, HeaderName::Date, raw),
        subject: raw_field(headers, HeaderName::Subject, raw),
        sender: or_from(addresses(HeaderName::Sender)),
        reply_to: or_from(addresses(HeaderName::ReplyTo)),
        from: from.clone(),
        to: addresses(HeaderName::To),
        cc: addresses(HeaderName::Cc),
        bcc: addresses(HeaderName::Bcc),
        in_reply_to: raw_field(headers, HeaderName::InReplyTo, raw),
        message_id: raw_field(headers, HeaderName::MessageId, raw),
    }
}

/// RFC 3501 §7.4.2 ENVELOPE addresses: a group as its start marker, its members and its end marker. A
/// comment with no address (`group2: (foo) ;`, which mail-parser reads as a name) is not an address.
fn address_list(address: &Address<'_>) -> Vec<pb::EnvelopeAddress> {
    let one = |addr: &mail_parser::Addr<'_>| {
        let full = addr.address.as_deref().filter(|a| !a.is_empty())?;
        let (mailbox, host) = full.rsplit_once('@').unwrap_or((full, ""));
        Some(pb::EnvelopeAddress {
            name: addr.name.as_deref().unwrap_or_default().to_owned(),
            mailbox: mailbox.to_owned(),
            host: host.to_owned(),
            ..Default::default()
        })
    };
    match address {
        Address::List(list) => list.iter().filter_map(one).collect(),
        Address::Group(groups) => {
            let mut out = Vec::new();
            for group in groups {
                match &group.name {
                    Some(name) => {
                        out.push(pb::EnvelopeAddress {
                            mailbox: name.to_string(),
                            group_start: true,
                            ..Default::default()
                        });
                        out.extend(group.addresses.iter().filter_map(one));
                        out.push(pb::EnvelopeAddress { group_end: true, ..Default::default() });
                    }
                    None => out.extend(group.addresses.iter().filter_map(one)),
                }
            }
            out
        }
    }
}

/// The content type a part has by default (RFC 2046 §5.1.5): message/rfc822 in a multipart/digest, else
/// text/plain in US-ASCII.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Parent {
    #[default]
    Other,
    Digest,
}

/// Describes part `id` of `message`. `raw` is the octets the message's offsets point into; `base` is added
/// to them to make them offsets in the stored message (0 except inside an encoded message/rfc822, whose
/// offsets cannot point into the stored octets and are left as they are).
fn body_part(message: &Message<'_>, id: usize, raw: &[u8], depth: usize, parent: Parent) -> pb::BodyPart {
    let Some(part) = message.parts.get(id) else { return pb::BodyPart::default() };
    if depth >= MAX_DEPTH {
        return opaque_part(part, raw);
    }
    let headers = part.headers.as_slice();
    let content_type = field(headers, &HeaderName::ContentType).and_then(|h| h.value.as_content_type());
    let (r#type, subtype, mut params) = match content_type {
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or_default().to_ascii_lowercase(),
            ct.attributes().unwrap_or_default().iter().map(|a| param(&a.name, &a.value)).collect::<Vec<_>>(),
        ),
        None if parent == Parent::Digest => ("message".into(), "rfc822".into(), Vec::new()),
        None => ("text".into(), "plain".into(), Vec::new()),
    };
    if r#type == "text" && !params.iter().any(|p| p.name == "charset") {
        params.insert(0, param("charset", "us-ascii"));
    }
    let (body_start, end) = (part.offset_body as usize, (part.offset_end as usize).max(part.offset_body as usize));
    let body = raw.get(body_start..end).unwrap_or_default();
    let disposition = field(headers, &HeaderName::ContentDisposition).and_then(|h| h.value.as_content_type());
    let language = match field(headers, &HeaderName::ContentLanguage).map(|h| &h.value) {
        Some(HeaderValue::Text(one)) => vec![one.to_string()],
        Some(HeaderValue::TextList(list)) => list.iter().map(|l| l.to_string()).collect(),
        _ => Vec::new(),
    };
    let mut out = pb::BodyPart {
        r#type,
        subtype,
        params,
        id: raw_field(headers, HeaderName::ContentId, raw),
        description: raw_field(headers, HeaderName::ContentDescription, raw),
        encoding: raw_field(headers, HeaderName::ContentTransferEncoding, raw)
            .map_or_else(|| "7BIT".to_owned(), |e| e.to_ascii_uppercase()),
        size: body.len() as u64,
        lines: 0,
        disposition: disposition.map(|d| d.ctype().to_ascii_lowercase()),
        disposition_params: disposition
            .and_then(|d| d.attributes())
            .unwrap_or_default()
            .iter()
            .map(|a| param(&a.name, &a.value))
            .collect(),
        language,
        location: raw_field(headers, HeaderName::ContentLocation, raw),
        parts: Vec::new(),
        message_envelope: None,
        message_body: None,
        header_offset: u64::from(part.offset_header),
        body_offset: body_start as u64,
        end_offset: end as u64,
    };
    match &part.body {
        PartType::Multipart(children) => {
            let parent = if out.subtype == "digest" { Parent::Digest } else { Parent::Other };
            out.parts = children.iter().map(|&c| body_part(message, c as usize, raw, depth + 1, parent)).collect();
            out.lines = 0;
            out.size = 0;
            if out.parts.is_empty() {
                // IMAP's grammar needs at least one body in a multipart.
                out.parts.push(opaque_part(part, raw));
            }
        }
        _ if out.r#type == "multipart" => {
            // A multipart that mail-parser could not split (no boundary, or one that never appears): its
            // octets are text, as mail-parser read them.
            out.r#type = "text".into();
            out.subtype = "plain".into();
            out.params = vec![param("charset", "us-ascii")];
            out.lines = count_lines(body);
        }
        PartType::Message(nested) => {
            out.lines = count_lines(body);
            let nested_headers = nested.parts.first().map(|p| p.headers.as_slice()).unwrap_or_default();
            out.message_envelope = Some(envelope(nested_headers, nested.raw_message.as_ref()));
            let mut inner = body_part(nested, 0, nested.raw_message.as_ref(), depth + 1, Parent::Other);
            if out.encoding != "7BIT" && out.encoding != "8BIT" && out.encoding != "BINARY" {
                // Offsets into decoded octets mean nothing in the stored message.
                clear_offsets(&mut inner);
            }
            out.message_body = Some(Box::new(inner));
        }
        _ if out.r#type == "text" => out.lines = count_lines(body),
        _ => {}
    }
    out
}

/// A part described without looking inside: application/octet-stream over its body's octets.
fn opaque_part(part: &mail_parser::MessagePart<'_>, raw: &[u8]) -> pb::BodyPart {
    let (start, end) = (part.offset_body as usize, (part.offset_end as usize).max(part.offset_body as usize));
    pb::BodyPart {
        r#type: "application".into(),
        subtype: "octet-stream".into(),
        encoding: "7BIT".into(),
        size: raw.get(start..end).map_or(0, |b| b.len() as u64),
        header_offset: u64::from(part.offset_header),
        body_offset: start as u64,
        end_offset: end as u64,
        ..Default::default()
    }
}

fn clear_offsets(part: &mut pb::BodyPart) {
    part.header_offset = 0;
    part.body_offset = 0;
    part.end_offset = 0;
    part.parts.iter_mut().for_each(clear_offsets);
    if let Some(inner) = part.message_body.as_deref_mut() {
        clear_offsets(inner);
    }
}

/// Whether a message (described by its body structure) has an attachment, as Stalwart and Fastmail count
/// them: a leaf with `Content-Disposition: attachment`, a forwarded message, or a leaf that is neither text
/// nor part of a multipart/related (an image shown inline in an HTML body is no attachment).
pub fn has_attachment(body: &pb::BodyPart) -> bool {
    fn walk(part: &pb::BodyPart, in_related: bool, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        if part.r#type == "multipart" {
            let related = part.subtype == "related";
            return part.parts.iter().enumerate().any(|(i, p)| walk(p, related && i > 0, depth + 1));
        }
        if part.disposition.as_deref() == Some("attachment") {
            return true;
        }
        if depth == 0 {
            // The whole message is one part: only an explicit attachment counts, or a lone non-text body.
            return part.r#type != "text";
        }
        if is_message(part) {
            return true;
        }
        part.r#type != "text" && !in_related
    }
    walk(body, false, 0)
}

/// Whether a part is a message whose header and text sections exist (the message itself, or a
/// message/rfc822 part).
pub fn is_message(part: &pb::BodyPart) -> bool {
    part.r#type == "message" && (part.subtype == "rfc822" || part.subtype == "global")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTIPART: &[u8] = b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\n\
To: Team: ann@example.org, Bob <bob@example.org>;, carl@example.org\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and\r\n folded\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n\
Message-ID: <m1@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
preamble\r\n\
--outer\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Hello J=C3=B6rg,\r\nsecond line\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
Content-Disposition: attachment; filename=\"fwd.eml\"\r\n\
\r\n\
From: Inner <inner@example.net>\r\n\
Subject: inner\r\n\
\r\n\
Inner body.\r\n\
--outer\r\n\
Content-Type: application/octet-stream; name=\"x.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-ID: <x@y>\r\n\
\r\n\
AAECAw==\r\n\
--outer--\r\n\
epilogue\r\n";

    fn slice(content: &[u8], from: u64, to: u64) -> &str {
        std::str::from_utf8(&content[from as usize..to as usize]).unwrap()
    }

    #[test]
    fn empty_groups_are_start_and_end_markers_and_a_comment_is_not_an_address() {
        let parsed = parse(b"From: a@example.org\r\nCc: group:;, group2: (foo) ;\r\nSubject: x\r\n\r\nbody\r\n");
        let cc = parsed.structure.envelope.unwrap().cc;
        let shape: Vec<(bool, bool, &str, &str)> =
            cc.iter().map(|a| (a.group_start, a.group_end, a.mailbox.as_str(), a.name.as_str())).collect();
        assert_eq!(
            shape,
            [(true, false, "group", ""), (false, true, "", ""), (true, false, "group2", ""), (false, true, "", "")]
        );
        let at = parsed.header_names.iter().position(|n| n == "cc").unwrap();
        let searchable = &parsed.header_values[at];
        assert!(searchable.contains("group:") && searchable.contains("group2:"), "{searchable}");
        assert!(!searchable.contains("foo"), "{searchable}");
    }

    #[test]
    fn envelope_keeps_raw_strings_and_decodes_names_and_groups() {
        let parsed = parse(MULTIPART);
        let envelope = parsed.structure.envelope.unwrap();
        assert_eq!(envelope.subject.as_deref(), Some("=?utf-8?q?Gr=C3=BC=C3=9Fe?= and folded"));
        assert_eq!(envelope.date.as_deref(), Some("Tue, 24 Nov 2026 10:00:00 +0100"));
        assert_eq!(envelope.message_id.as_deref(), Some("<m1@example.org>"));
        assert_eq!(envelope.in_reply_to, None);
        assert_eq!(envelope.from[0].name, "Jörg");
        assert_eq!((envelope.from[0].mailbox.as_str(), envelope.from[0].host.as_str()), ("jorg", "example.org"));
        assert_eq!(envelope.sender, envelope.from);
        assert_eq!(envelope.reply_to, envelope.from);
        let to: Vec<(bool, bool, &str, &str)> =
            envelope.to.iter().map(|a| (a.group_start, a.group_end, a.mailbox.as_str(), a.host.as_str())).collect();
        assert_eq!(
            to,
            [
                (true, false, "Team", ""),
                (false, false, "ann", "example.org"),
                (false, false, "bob", "example.org"),
                (false, true, "", ""),
                (false, false, "carl", "example.org"),
            ]
        );
        assert_eq!(parsed.sent_unix, Some(1_795_510_800), "2026-11-24 09:00 UTC");
        assert_eq!(parsed.sent_day.as_deref(), Some("2026-11-24"));
        let late = parse(b"Date: Tue, 24 Nov 2026 23:30:00 -0500\r\nSubject: late\r\n\r\nx\r\n");
        assert_eq!(late.sent_day.as_deref(), Some("2026-11-24"), "the day as written, not 25 November in UTC");
        let subject = parsed.header_names.iter().position(|n| n == "subject").unwrap();
        assert_eq!(parsed.header_values[subject], "Grüße and folded");
        assert!(parsed.search.body.contains("hello jörg,"), "{}", parsed.search.body);
        assert!(parsed.search.body.contains("inner body."), "the attached message's text: {}", parsed.search.body);
        assert!(parsed.search.header.contains("grüße and folded"), "{}", parsed.search.header);
    }

    #[test]
    fn body_structure_has_each_part_with_offsets_into_the_stored_octets() {
        let body = parse(MULTIPART).structure.body.unwrap();
        assert_eq!((body.r#type.as_str(), body.subtype.as_str()), ("multipart", "mixed"));
        assert_eq!(body.params, [param("boundary", "outer")]);
        assert_eq!(body.parts.len(), 3);

        let text = &body.parts[0];
        assert_eq!(
            (text.r#type.as_str(), text.subtype.as_str(), text.encoding.as_str()),
            ("text", "plain", "QUOTED-PRINTABLE")
        );
        assert_eq!(slice(MULTIPART, text.body_offset, text.end_offset), "Hello J=C3=B6rg,\r\nsecond line");
        assert_eq!((text.size, text.lines), (29, 1));
        assert!(slice(MULTIPART, text.header_offset, text.body_offset).starts_with("Content-Type: text/plain"));

        let forwarded = &body.parts[1];
        assert!(is_message(forwarded));
        assert_eq!(forwarded.disposition.as_deref(), Some("attachment"));
        assert_eq!(forwarded.disposition_params, [param("filename", "fwd.eml")]);
        assert_eq!(
            slice(MULTIPART, forwarded.body_offset, forwarded.end_offset),
            "From: Inner <inner@example.net>\r\nSubject: inner\r\n\r\nInner body."
        );
        assert_eq!(forwarded.message_envelope.as_ref().unwrap().subject.as_deref(), Some("inner"));
        let inner = forwarded.message_body.as_ref().unwrap();
        assert_eq!((inner.r#type.as_str(), inner.params.clone()), ("text", vec![param("charset", "us-ascii")]));
        assert_eq!(slice(MULTIPART, inner.body_offset, inner.end_offset), "Inner body.");
        assert_eq!(
            slice(MULTIPART, inner.header_offset, inner.body_offset),
            "From: Inner <inner@example.net>\r\nSubject: inner\r\n\r\n"
        );

        let binary = &body.parts[2];
        assert_eq!((binary.r#type.as_str(), binary.encoding.as_str()), ("application", "BASE64"));
        assert_eq!(binary.id.as_deref(), Some("<x@y>"));
        assert_eq!(slice(MULTIPART, binary.body_offset, binary.end_offset), "AAECAw==");
    }

    #[test]
    fn attachments_are_counted_as_stalwart_and_fastmail_count_them() {
        assert!(parse(MULTIPART).has_attachment, "a forwarded message and a binary part");
        assert!(!parse(b"Subject: plain\r\n\r\ntext\r\n").has_attachment);
        let related = b"Content-Type: multipart/related; boundary=r\r\n\r\n--r\r\nContent-Type: text/html\r\n\r\n\
<img src=cid:a>\r\n--r\r\nContent-Type: image/png\r\nContent-ID: <a>\r\n\r\nPNG\r\n--r--\r\n";
        assert!(!parse(related).has_attachment, "an image shown inline in the HTML is no attachment");
        let text_attachment = b"Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n\r\nbody\r\n--m\r\n\
Content-Type: text/plain\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\nnotes\r\n--m--\r\n";
        assert!(parse(text_attachment).has_attachment, "a text part marked as an attachment");
        let image = b"Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n\r\nbody\r\n--m\r\n\
Content-Type: image/jpeg\r\n\r\nJPEG\r\n--m--\r\n";
        assert!(parse(image).has_attachment, "an image beside the text");
    }

    #[test]
    fn a_plain_message_without_mime_is_text_plain_us_ascii() {
        let content = b"Subject: hi\r\n\r\nline one\r\nline two\r\n";
        let body = parse(content).structure.body.unwrap();
        assert_eq!((body.r#type.as_str(), body.subtype.as_str(), body.encoding.as_str()), ("text", "plain", "7BIT"));
        assert_eq!(body.params, [param("charset", "us-ascii")]);
        assert_eq!((body.size, body.lines), (20, 2));
        assert_eq!((body.header_offset, body.body_offset, body.end_offset), (0, 15, 35));
    }

    #[test]
    fn garbage_never_panics_and_still_gets_a_structure() {
        for input in
            [&b""[..], b"\r\n\r\n", b"no header at all", b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"]
        {
            let parsed = parse(input);
            assert!(parsed.structure.body.is_some());
        }
        // PostgreSQL text cannot hold NUL: the searchable copies drop it (the octets keep it).
        // A multipart without a boundary is text; one nested a thousand deep is cut off, not recursed into.
        let body = parse(b"Content-Type: multipart/mixed\r\n\r\nno parts\r\n").structure.body.unwrap();
        assert_eq!((body.r#type.as_str(), body.subtype.as_str()), ("text", "plain"));
        let mut deep = String::new();
        for level in 0..1000 {
            deep.push_str(&format!("Content-Type: multipart/mixed; boundary=b{level}\r\n\r\n--b{level}\r\n"));
        }
        deep.push_str("\r\nbottom\r\n");
        let structure = parse(deep.as_bytes()).structure;
        let encoded = prost::Message::encode_to_vec(&structure);
        assert!(<pb::MessageStructure as prost::Message>::decode(encoded.as_slice()).is_ok(), "decodable again");
        let parsed = parse(b"Subject: a\0b\r\n\r\nnul\0here\r\n");
        let body = &parsed.search.body;
        assert!(!body.contains('\0') && body.contains("nul here"), "{body:?}");
        assert!(parsed.header_values.iter().all(|v| !v.contains('\0')));
    }
}
