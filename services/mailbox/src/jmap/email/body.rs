//! An email's body parts (RFC 8621 §4.1.4): the bodyStructure tree, and textBody, htmlBody and
//! attachments by the RFC's algorithm. A leaf's partId is its IMAP section number (`1`, `1.2`; a message
//! that is not multipart has its body at `1`), and its blobId is `ids::part_blob(email, partId)`, which
//! Download decodes by the same numbering. A message/rfc822 part is a leaf: its blob is the whole
//! attached message.

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};
use serde_json::{Map, Value, json};

use super::headers;
use crate::jmap::ids;

/// Nesting deeper than this is not descended into (as `mime::MAX_DEPTH` bounds the IMAP structure).
const MAX_DEPTH: usize = 40;

/// bodyProperties when the client names none (RFC 8621 §4.2).
pub const DEFAULT_PROPERTIES: &[&str] =
    &["partId", "blobId", "size", "name", "type", "charset", "disposition", "cid", "language", "location"];

#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The IMAP section number; None for a multipart.
    pub part_id: Option<String>,
    /// Index in mail-parser's part list.
    pub index: usize,
    /// `type/subtype`, lower case.
    pub media_type: String,
    pub charset: Option<String>,
    pub disposition: Option<String>,
    pub name: Option<String>,
    pub cid: Option<String>,
    pub language: Option<Vec<String>>,
    pub location: Option<String>,
    /// Octets of the decoded content.
    pub size: usize,
    pub sub_parts: Vec<Part>,
}

impl Part {
    pub fn is_multipart(&self) -> bool {
        self.media_type.starts_with("multipart/")
    }

    fn is_inline_media(&self) -> bool {
        ["image/", "audio/", "video/"].iter().any(|p| self.media_type.starts_with(p))
    }

    /// Every leaf, in order.
    pub fn leaves(&self) -> Vec<&Part> {
        let mut out = Vec::new();
        fn walk<'a>(part: &'a Part, out: &mut Vec<&'a Part>) {
            if part.is_multipart() {
                part.sub_parts.iter().for_each(|p| walk(p, out));
            } else {
                out.push(part);
            }
        }
        walk(self, &mut out);
        out
    }
}

/// The message's body structure.
pub fn structure(message: &Message<'_>) -> Part {
    describe(message, 0, String::new(), 0, false)
}

fn describe(message: &Message<'_>, index: usize, section: String, depth: usize, in_digest: bool) -> Part {
    let part = message.parts.get(index);
    let content_type = part.and_then(|p| p.content_type());
    let media_type = match content_type {
        Some(ct) => format!(
            "{}/{}",
            ct.ctype().to_ascii_lowercase(),
            ct.subtype()
                .unwrap_or(if ct.ctype().eq_ignore_ascii_case("text") { "plain" } else { "octet-stream" })
                .to_ascii_lowercase()
        ),
        None if in_digest => "message/rfc822".to_owned(),
        None => "text/plain".to_owned(),
    };
    let children = match part.map(|p| &p.body) {
        Some(PartType::Multipart(children)) if depth < MAX_DEPTH => children.clone(),
        _ => Vec::new(),
    };
    let multipart = matches!(part.map(|p| &p.body), Some(PartType::Multipart(_)));
    // A message that is not multipart has its body at section 1.
    let own_section = if section.is_empty() && !multipart { "1".to_owned() } else { section.clone() };
    let disposition = part.and_then(|p| p.content_disposition());
    let mut out = Part {
        part_id: (!multipart).then(|| own_section.clone()),
        index,
        charset: media_type
            .starts_with("text/")
            .then(|| content_type.and_then(|ct| ct.attribute("charset")).unwrap_or("us-ascii").to_ascii_lowercase()),
        disposition: disposition.map(|d| d.ctype().to_ascii_lowercase()),
        name: part.and_then(|p| p.attachment_name()).map(str::to_owned),
        cid: part.and_then(|p| p.content_id()).map(|c| c.trim_start_matches('<').trim_end_matches('>').to_owned()),
        language: part
            .and_then(|p| p.content_language().as_text_list())
            .map(|l| l.iter().map(|s| s.to_string()).collect()),
        location: part.and_then(|p| p.content_location()).map(str::to_owned),
        size: if multipart { 0 } else { part.map_or(0, |p| p.contents().len()) },
        media_type,
        sub_parts: Vec::new(),
    };
    let digest = out.media_type == "multipart/digest";
    out.sub_parts = children
        .iter()
        .enumerate()
        .map(|(i, &child)| {
            let child_section = if section.is_empty() { format!("{}", i + 1) } else { format!("{section}.{}", i + 1) };
            describe(message, child as usize, child_section, depth + 1, digest)
        })
        .collect();
    out
}

/// textBody, htmlBody and attachments (RFC 8621 §4.1.4's algorithm).
#[derive(Debug, Default)]
pub struct Bodies<'a> {
    pub text: Vec<&'a Part>,
    pub html: Vec<&'a Part>,
    pub attachments: Vec<&'a Part>,
}

pub fn bodies(root: &Part) -> Bodies<'_> {
    let mut out = Bodies::default();
    walk(std::slice::from_ref(root), "mixed", false, &mut out, true, true);
    out
}

fn walk<'a>(parts: &'a [Part], multipart: &str, in_alternative: bool, out: &mut Bodies<'a>, text: bool, html: bool) {
    let (mut text_on, mut html_on) = (text, html);
    let is_alternative = multipart == "alternative";
    let text_length = text_on.then_some(out.text.len());
    let html_length = html_on.then_some(out.html.len());
    for (i, part) in parts.iter().enumerate() {
        let is_image = part.is_inline_media();
        let is_inline = part.disposition.as_deref() != Some("attachment")
            && (part.media_type == "text/plain" || part.media_type == "text/html" || is_image)
            && (i == 0 || (multipart != "related" && (is_image || part.name.is_none())));
        if part.is_multipart() {
            let sub = part.media_type.split('/').nth(1).unwrap_or_default();
            walk(&part.sub_parts, sub, in_alternative || is_alternative, out, text_on, html_on);
        } else if is_inline {
            if is_alternative {
                match part.media_type.as_str() {
                    "text/plain" => out.text.push(part),
                    "text/html" => out.html.push(part),
                    _ => out.attachments.push(part),
                }
                continue;
            } else if in_alternative {
                if part.media_type == "text/plain" {
                    html_on = false;
                }
                if part.media_type == "text/html" {
                    text_on = false;
                }
            }
            if text_on {
                out.text.push(part);
            }
            if html_on {
                out.html.push(part);
            }
            if (!text_on || !html_on) && is_image {
                out.attachments.push(part);
            }
        } else {
            out.attachments.push(part);
        }
    }
    if let (true, true, Some(text_length), Some(html_length)) = (is_alternative, text_on, text_length, html_length) {
        if !html_on {
            return;
        }
        // HTML only: the text body is the HTML.
        if text_length == out.text.len() && html_length != out.html.len() {
            let added: Vec<&Part> = out.html[html_length..].to_vec();
            out.text.extend(added);
        }
        // Plain text only: the HTML body is the text.
        if html_length == out.html.len() && text_length != out.text.len() {
            let added: Vec<&Part> = out.text[text_length..].to_vec();
            out.html.extend(added);
        }
    }
}

/// A part as an EmailBodyPart object with the asked properties (header properties included).
pub fn to_json(part: &Part, properties: &[String], message: &Message<'_>, email: i64) -> Value {
    let mut out = Map::new();
    let mime_part = message.parts.get(part.index);
    for property in properties {
        let value = match property.as_str() {
            "partId" => json!(part.part_id),
            "blobId" => json!(part.part_id.as_ref().map(|p| ids::part_blob(email, p))),
            "size" => json!(part.size),
            "name" => json!(part.name),
            "type" => json!(part.media_type),
            "charset" => json!(part.charset),
            "disposition" => json!(part.disposition),
            "cid" => json!(part.cid),
            "language" => json!(part.language),
            "location" => json!(part.location),
            "headers" => mime_part.map_or(json!([]), |p| headers::all_raw(&p.headers, raw(message))),
            "subParts" => {
                if !part.is_multipart() {
                    Value::Null
                } else {
                    Value::Array(part.sub_parts.iter().map(|p| to_json(p, properties, message, email)).collect())
                }
            }
            other => match headers::HeaderProperty::parse(other) {
                Some(header) => mime_part.map_or(Value::Null, |p| header.value(&p.headers, raw(message))),
                None => continue,
            },
        };
        out.insert(property.clone(), value);
    }
    if part.is_multipart() && !out.contains_key("subParts") {
        out.insert(
            "subParts".into(),
            Value::Array(part.sub_parts.iter().map(|p| to_json(p, properties, message, email)).collect()),
        );
    }
    Value::Object(out)
}

/// The decoded content of the part `part_id` of a message (a blob `b<email>p<part>`), with its type.
pub fn part_content(content: &[u8], part_id: &str) -> Option<super::compose::Blob> {
    let message = mail_parser::MessageParser::default().parse(content)?;
    let root = structure(&message);
    let part = root.leaves().into_iter().find(|p| p.part_id.as_deref() == Some(part_id))?;
    let mime_part = message.parts.get(part.index)?;
    Some(super::compose::Blob { media_type: part.media_type.clone(), content: mime_part.contents().to_vec() })
}

/// The octets a message's header offsets point into.
pub fn raw<'a>(message: &'a Message<'_>) -> &'a [u8] {
    message.raw_message.as_ref()
}

/// A text part's decoded text (HTML as it is); None for a part that is not text.
pub fn text_of(message: &Message<'_>, part: &Part) -> Option<String> {
    let mime_part: &MessagePart<'_> = message.parts.get(part.index)?;
    match &mime_part.body {
        PartType::Text(text) | PartType::Html(text) => Some(text.to_string()),
        _ if part.media_type.starts_with("text/") => Some(String::from_utf8_lossy(mime_part.contents()).into_owned()),
        _ => None,
    }
}

/// An EmailBodyValue (RFC 8621 §4.1.4): the text, cut at `max_bytes` on a character boundary.
pub fn body_value(message: &Message<'_>, part: &Part, max_bytes: usize) -> Option<Value> {
    let mut text = text_of(message, part)?;
    let truncated = max_bytes > 0 && text.len() > max_bytes;
    if truncated {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    let problem = text.contains('\u{fffd}');
    Some(json!({"value": text, "isEncodingProblem": problem, "isTruncated": truncated}))
}

/// The preview (RFC 8621 §4.1.4): up to 256 characters of the first text body, white space folded; HTML
/// made text.
pub fn preview(message: &Message<'_>, bodies: &Bodies<'_>) -> String {
    let Some(first) = bodies.text.first().or(bodies.html.first()) else { return String::new() };
    let Some(text) = text_of(message, first) else { return String::new() };
    let text = if first.media_type == "text/html" { mail_parser::decoders::html::html_to_text(&text) } else { text };
    fold(&text, 256)
}

/// White space runs as one space, trimmed, at most `max` characters.
pub fn fold(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for word in text.split_whitespace() {
        if count > 0 {
            if count >= max {
                break;
            }
            out.push(' ');
            count += 1;
        }
        for c in word.chars() {
            if count >= max {
                break;
            }
            out.push(c);
            count += 1;
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXED: &[u8] = b"From: a@example.org\r\n\
Subject: parts\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
\r\n\
--alt\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello  plain\r\n   world\r\n\
--alt\r\n\
Content-Type: multipart/related; boundary=\"rel\"\r\n\
\r\n\
--rel\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>Hello html</p>\r\n\
--rel\r\n\
Content-Type: image/png\r\n\
Content-ID: <logo@x>\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAECAw==\r\n\
--rel--\r\n\
--alt--\r\n\
--outer\r\n\
Content-Type: application/pdf; name=\"report.pdf\"\r\n\
Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0=\r\n\
--outer--\r\n";

    #[test]
    fn part_ids_are_imap_sections_and_bodies_follow_the_rfc_algorithm() {
        let message = mail_parser::MessageParser::default().parse(MIXED).unwrap();
        let root = structure(&message);
        assert_eq!((root.part_id.as_deref(), root.media_type.as_str()), (None, "multipart/mixed"));
        let ids: Vec<(&str, &str)> =
            root.leaves().iter().map(|p| (p.part_id.as_deref().unwrap(), p.media_type.as_str())).collect();
        assert_eq!(
            ids,
            [("1.1", "text/plain"), ("1.2.1", "text/html"), ("1.2.2", "image/png"), ("2", "application/pdf")]
        );
        let png = root.leaves()[2];
        assert_eq!((png.cid.as_deref(), png.size, png.charset.as_deref()), (Some("logo@x"), 4, None));
        let pdf = root.leaves()[3];
        assert_eq!((pdf.name.as_deref(), pdf.disposition.as_deref()), (Some("report.pdf"), Some("attachment")));

        let bodies = bodies(&root);
        let id = |v: &[&Part]| v.iter().map(|p| p.part_id.clone().unwrap()).collect::<Vec<_>>();
        assert_eq!(id(&bodies.text), ["1.1"]);
        assert_eq!(id(&bodies.html), ["1.2.1"]);
        assert_eq!(id(&bodies.attachments), ["1.2.2", "2"]);
        assert_eq!(preview(&message, &bodies), "Hello plain world");
        let value = body_value(&message, bodies.text[0], 7).unwrap();
        assert_eq!(value, json!({"value": "Hello  ", "isEncodingProblem": false, "isTruncated": true}));
    }

    #[test]
    fn a_single_part_is_section_one_and_html_only_is_both_bodies() {
        let message = mail_parser::MessageParser::default().parse(b"Subject: x\r\n\r\nhi\r\n".as_slice()).unwrap();
        let root = structure(&message);
        assert_eq!((root.part_id.as_deref(), root.media_type.as_str()), (Some("1"), "text/plain"));
        assert_eq!(root.charset.as_deref(), Some("us-ascii"));
        let html = b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n--b--\r\n";
        let message = mail_parser::MessageParser::default().parse(html.as_slice()).unwrap();
        let root = structure(&message);
        let bodies = bodies(&root);
        assert_eq!(bodies.text.len(), 1, "the HTML stands in for the missing text");
        assert_eq!(bodies.html.len(), 1);
        assert_eq!(preview(&message, &bodies), "x");
        // Multi-byte characters are never split.
        let value = body_value(&message, bodies.text[0], 2).unwrap();
        assert_eq!(value["value"], json!("<b"));
        assert_eq!(fold("  é\u{e9}  a\n\tb ", 3), "éé");
        assert_eq!(fold(" a  b ", 10), "a b");
    }
}
