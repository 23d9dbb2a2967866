//! RFC 5322 messages from Email/set's create objects (RFC 8621 §4.6): header fields from the convenience
//! and `header:` properties, the body from `bodyStructure` or from `textBody`/`htmlBody`/`attachments`,
//! with text from `bodyValues` and other content from blobs the caller has already read. CRLF line ends;
//! RFC 2047 encoded words for non-ASCII header text; quoted-printable for text that is not short 7-bit
//! lines, base64 for everything else; a Date and a Message-ID when the client gave none.

use std::collections::HashMap;
use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::headers::{Form, HeaderProperty};

/// Blob content the create object refers to, by blob id.
pub struct Blob {
    pub media_type: String,
    pub content: Vec<u8>,
}

/// Why a create object cannot be composed: a SetError's type and the properties at fault.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub kind: &'static str,
    pub properties: Vec<String>,
    pub description: String,
}

fn invalid(property: &str, description: impl Into<String>) -> Refused {
    Refused { kind: "invalidProperties", properties: vec![property.to_owned()], description: description.into() }
}

/// Every blobId the object names (in bodyStructure, textBody, htmlBody, attachments).
pub fn blob_ids(create: &Map<String, Value>) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(id)) = map.get("blobId") {
                    out.push(id.clone());
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(list) => list.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for key in ["bodyStructure", "textBody", "htmlBody", "attachments"] {
        if let Some(value) = create.get(key) {
            walk(value, &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The message for `create`. `now` is the Date when none is given (RFC 5322 form), `unique` a value for
/// the Message-ID's left side.
pub fn compose(
    create: &Map<String, Value>,
    blobs: &HashMap<String, Blob>,
    now: &str,
    unique: &str,
) -> Result<Vec<u8>, Refused> {
    let mut out = String::new();
    let mut names: Vec<String> = Vec::new();
    header_fields(create, &mut out, &mut names)?;
    let has = |name: &str| names.iter().any(|n| n.eq_ignore_ascii_case(name));
    if !has("Date") {
        fold_into(&mut out, "Date", now);
    }
    if !has("Message-ID") {
        let domain = first_domain(create).unwrap_or_else(|| "mailbus.invalid".to_owned());
        fold_into(&mut out, "Message-ID", &format!("<{unique}@{domain}>"));
    }
    out.push_str("MIME-Version: 1.0\r\n");
    let body = body_tree(create)?;
    let mut bytes = out.into_bytes();
    let values = create.get("bodyValues").and_then(Value::as_object);
    let mut boundary_counter = 0;
    write_part(&body, values, blobs, unique, &mut boundary_counter, &mut bytes)?;
    if !bytes.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    Ok(bytes)
}

fn first_domain(create: &Map<String, Value>) -> Option<String> {
    let email = create.get("from")?.as_array()?.first()?.get("email")?.as_str()?;
    let domain = email.rsplit_once('@')?.1;
    domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-').then(|| domain.to_owned())
}

/// The convenience properties and the fields they write.
const FIELDS: &[(&str, &str, Form)] = &[
    ("from", "From", Form::Addresses),
    ("sender", "Sender", Form::Addresses),
    ("replyTo", "Reply-To", Form::Addresses),
    ("to", "To", Form::Addresses),
    ("cc", "Cc", Form::Addresses),
    ("bcc", "Bcc", Form::Addresses),
    ("subject", "Subject", Form::Text),
    ("sentAt", "Date", Form::Date),
    ("messageId", "Message-ID", Form::MessageIds),
    ("inReplyTo", "In-Reply-To", Form::MessageIds),
    ("references", "References", Form::MessageIds),
];

fn header_fields(create: &Map<String, Value>, out: &mut String, names: &mut Vec<String>) -> Result<(), Refused> {
    for (property, name, form) in FIELDS {
        if let Some(value) = create.get(*property).filter(|v| !v.is_null()) {
            let text = field_value(*form, value).map_err(|e| invalid(property, e))?;
            fold_into(out, name, &text);
            names.push((*name).to_owned());
        }
    }
    if let Some(headers) = create.get("headers").filter(|v| !v.is_null()) {
        let list = headers.as_array().ok_or_else(|| invalid("headers", "a list of {name, value}"))?;
        for header in list {
            let name = header.get("name").and_then(Value::as_str).filter(|n| valid_name(n));
            let value = header.get("value").and_then(Value::as_str);
            let (Some(name), Some(value)) = (name, value) else { return Err(invalid("headers", "bad header")) };
            check_raw(value).map_err(|e| invalid("headers", e))?;
            let _ = write!(out, "{name}:{value}\r\n");
            names.push(name.to_owned());
        }
    }
    for (property, value) in create {
        let Some(header) = property.strip_prefix("header:").and(HeaderProperty::parse(property)) else { continue };
        if !valid_name(&header.name) || is_content_field(&header.name) {
            return Err(invalid(property, "not a header field that can be set"));
        }
        let values: Vec<&Value> = match (header.all, value) {
            (true, Value::Array(list)) => list.iter().collect(),
            (true, _) => return Err(invalid(property, ":all takes a list")),
            (false, value) => vec![value],
        };
        for value in values {
            let text = match header.form {
                Form::Raw => {
                    let raw = value.as_str().ok_or_else(|| invalid(property, "a string"))?;
                    check_raw(raw).map_err(|e| invalid(property, e))?;
                    let _ = write!(out, "{}:{raw}\r\n", header.name);
                    names.push(header.name.clone());
                    continue;
                }
                form => field_value(form, value).map_err(|e| invalid(property, e))?,
            };
            fold_into(out, &header.name, &text);
            names.push(header.name.clone());
        }
    }
    Ok(())
}

/// RFC 2045 §5.1 token: printable US-ASCII but SPACE and the tspecials.
fn is_token(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// RFC 2045 §5.1 `type "/" subtype`, both tokens.
fn is_media_type(value: &str) -> bool {
    value.split_once('/').is_some_and(|(kind, subtype)| is_token(kind) && is_token(subtype))
}

/// A Content-ID without its angle brackets (RFC 2045 §7, RFC 5322 §3.6.4 msg-id): printable US-ASCII with
/// neither brackets nor the specials a msg-id cannot hold.
fn is_content_id(value: &str) -> bool {
    let inner = value.strip_prefix('<').and_then(|v| v.strip_suffix('>')).unwrap_or(value);
    !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"".contains(&b))
}

/// RFC 5646 Language-Tag, as far as a header cares: subtags of 1 to 8 letters and digits, joined by `-`.
fn is_language_tag(value: &str) -> bool {
    !value.is_empty()
        && value.split('-').all(|sub| (1..=8).contains(&sub.len()) && sub.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b':')
}

/// Content-* fields belong to body parts (RFC 8621 §4.6: they may not be set on the Email).
fn is_content_field(name: &str) -> bool {
    name.len() >= 8 && name[..8].eq_ignore_ascii_case("content-")
}

/// A raw value may not end a field early: CR and LF only as folding.
fn check_raw(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let folding = b == b'\r' && bytes.get(i + 1) == Some(&b'\n') && matches!(bytes.get(i + 2), Some(b' ' | b'\t'));
        let after_cr = b == b'\n' && i > 0 && bytes[i - 1] == b'\r' && matches!(bytes.get(i + 1), Some(b' ' | b'\t'));
        if (b == b'\r' && !folding) || (b == b'\n' && !after_cr) || b == 0 {
            return Err("a raw value holds a line break that is not folding".into());
        }
    }
    Ok(())
}

/// A field's value written from a JMAP value in `form`.
fn field_value(form: Form, value: &Value) -> Result<String, String> {
    match form {
        Form::Raw => value.as_str().map(str::to_owned).ok_or_else(|| "a string".into()),
        Form::Text => value.as_str().map(encode_text).ok_or_else(|| "a string".into()),
        Form::Addresses => {
            let list = value.as_array().ok_or("a list of addresses")?;
            let addresses = list.iter().map(address).collect::<Result<Vec<_>, _>>()?;
            Ok(addresses.join(", "))
        }
        Form::GroupedAddresses => {
            let list = value.as_array().ok_or("a list of groups")?;
            let mut groups = Vec::new();
            for group in list {
                let members = group.get("addresses").and_then(Value::as_array).ok_or("a group needs addresses")?;
                let members = members.iter().map(address).collect::<Result<Vec<_>, _>>()?;
                match group.get("name").and_then(Value::as_str) {
                    Some(name) => groups.push(format!("{}: {};", phrase(name), members.join(", "))),
                    None => groups.push(members.join(", ")),
                }
            }
            Ok(groups.join(", "))
        }
        Form::MessageIds => {
            let list = value.as_array().ok_or("a list of message ids")?;
            let ids = list
                .iter()
                .map(|id| {
                    let id = id.as_str().ok_or("a message id is a string")?;
                    let ok = !id.is_empty()
                        && id.contains('@')
                        && id.bytes().all(|b| (0x21..=0x7e).contains(&b) && !b"<>()[]\\,;:\"".contains(&b));
                    if ok { Ok(format!("<{id}>")) } else { Err(format!("{id:?} is not a message id")) }
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(ids.join(" "))
        }
        Form::Date => {
            let text = value.as_str().ok_or("a date")?;
            let date = chrono::DateTime::parse_from_rfc3339(text).map_err(|_| format!("{text:?} is not a date"))?;
            Ok(date.to_rfc2822())
        }
        Form::Urls => {
            let list = value.as_array().ok_or("a list of URLs")?;
            let urls = list
                .iter()
                .map(|u| {
                    let u = u.as_str().ok_or("a URL is a string")?;
                    // RFC 3986 URIs are printable US-ASCII; `<` and `>` would end the field's bracket.
                    let ok = !u.is_empty() && u.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
                    if ok { Ok(format!("<{u}>")) } else { Err(format!("{u:?} is not a URL")) }
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(urls.join(", "))
        }
    }
}

/// `Name <email>` with the name quoted or encoded as needed.
fn address(value: &Value) -> Result<String, String> {
    let email = value.get("email").and_then(Value::as_str).ok_or("an address needs an email")?;
    let valid =
        email.contains('@') && email.bytes().all(|b| b > b' ' && b != b'<' && b != b'>' && b != b',' && b != 0x7f);
    if !valid {
        return Err(format!("{email:?} is not an email address"));
    }
    match value.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
        Some(name) => Ok(format!("{} <{email}>", phrase(name))),
        None => Ok(email.to_owned()),
    }
}

/// A display name: as it is when only atoms, quoted when it has specials, encoded when not ASCII.
fn phrase(name: &str) -> String {
    if !name.is_ascii() || name.bytes().any(|b| b < b' ') {
        return encoded_words(name);
    }
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || b" !#$%&'*+-/=?^_`{|}~".contains(&b)) {
        return name.to_owned();
    }
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Unstructured text: as it is when ASCII without line breaks, else RFC 2047 encoded words.
fn encode_text(text: &str) -> String {
    if text.is_ascii() && !text.bytes().any(|b| b.is_ascii_control()) { text.to_owned() } else { encoded_words(text) }
}

/// RFC 2047 B-encoded words of at most 75 characters, never splitting a character.
fn encoded_words(text: &str) -> String {
    let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        // 45 octets make 60 base64 characters: with `=?utf-8?b?` and `?=` a word stays under 75.
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| format!("=?utf-8?b?{}?=", base64::engine::general_purpose::STANDARD.encode(w)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes `Name: value`, folded at spaces so that lines stay under 78 characters where they can.
fn fold_into(out: &mut String, name: &str, value: &str) {
    let mut line_length = name.len() + 1;
    out.push_str(name);
    out.push(':');
    for (i, word) in value.split(' ').enumerate() {
        if i > 0 || !word.is_empty() {
            if line_length + 1 + word.len() > 76 && line_length > name.len() + 1 {
                out.push_str("\r\n");
                line_length = 0;
            }
            out.push(' ');
            out.push_str(word);
            line_length += 1 + word.len();
        }
    }
    out.push_str("\r\n");
}

/// A body part to write.
#[derive(Debug, Clone, PartialEq)]
struct PartSpec {
    media_type: String,
    part_id: Option<String>,
    blob_id: Option<String>,
    charset: Option<String>,
    disposition: Option<String>,
    name: Option<String>,
    cid: Option<String>,
    language: Option<Vec<String>>,
    location: Option<String>,
    /// Further header fields, each a whole line with its CRLF, checked when read.
    headers: Vec<String>,
    sub_parts: Vec<PartSpec>,
}

fn part_spec(value: &Value, property: &str) -> Result<PartSpec, Refused> {
    let bad = |what: &str| invalid(property, what.to_owned());
    let object = value.as_object().ok_or_else(|| bad("a body part is an object"))?;
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    let sub_parts = match object.get("subParts") {
        Some(Value::Array(list)) => list.iter().map(|p| part_spec(p, property)).collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    let mut headers = Vec::new();
    for (key, value) in object {
        if let Some(header) = HeaderProperty::parse(key) {
            if is_content_field(&header.name) {
                return Err(bad("Content-* fields come from the part's properties"));
            }
            let mut line = String::new();
            match header.form {
                Form::Raw => {
                    let raw = value.as_str().ok_or_else(|| bad("a raw header value is a string"))?;
                    check_raw(raw).map_err(|e| invalid(property, e))?;
                    let _ = write!(line, "{}:{raw}\r\n", header.name);
                }
                form => {
                    fold_into(&mut line, &header.name, &field_value(form, value).map_err(|e| invalid(property, e))?)
                }
            }
            headers.push(line);
        }
    }
    // A blob's part without a type takes the blob's (filled in when written).
    let media_type = text("type").map(|t| t.to_ascii_lowercase()).unwrap_or_else(|| {
        if !sub_parts.is_empty() {
            "multipart/mixed".to_owned()
        } else if object.contains_key("blobId") {
            String::new()
        } else {
            "text/plain".to_owned()
        }
    });
    if !(media_type.is_empty() || is_media_type(&media_type)) {
        return Err(bad("type is not a type/subtype of RFC 2045 tokens"));
    }
    // Values that become header fields: tokens where the RFCs want tokens, refused rather than repaired, so
    // that no CR or LF (nor any other character out of place) reaches the message.
    let charset = text("charset");
    if charset.as_deref().is_some_and(|c| !is_token(c)) {
        return Err(bad("charset is not an RFC 2045 token"));
    }
    let disposition = text("disposition");
    if disposition.as_deref().is_some_and(|d| !is_token(d)) {
        return Err(bad("disposition is not an RFC 2183 token"));
    }
    let cid = text("cid");
    if cid.as_deref().is_some_and(|c| !is_content_id(c)) {
        return Err(bad("cid is not a Content-ID"));
    }
    let language = match object.get("language") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .map(|l| l.as_str().filter(|l| is_language_tag(l)).map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("language is a list of RFC 5646 language tags"))?,
        ),
        Some(_) => return Err(bad("language is a list of RFC 5646 language tags")),
    };
    let spec = PartSpec {
        part_id: text("partId"),
        blob_id: text("blobId"),
        charset,
        disposition,
        name: text("name"),
        cid,
        language,
        location: text("location"),
        headers,
        sub_parts,
        media_type,
    };
    let multipart = spec.media_type.starts_with("multipart/");
    if multipart && spec.sub_parts.is_empty() {
        return Err(bad("a multipart needs subParts"));
    }
    if !multipart && spec.part_id.is_none() && spec.blob_id.is_none() {
        return Err(bad("a leaf needs a partId or a blobId"));
    }
    if spec.part_id.is_some() && spec.blob_id.is_some() {
        return Err(bad("a part has a partId or a blobId, not both"));
    }
    Ok(spec)
}

/// The body: `bodyStructure`, or built from textBody, htmlBody and attachments (RFC 8621 §4.6).
fn body_tree(create: &Map<String, Value>) -> Result<PartSpec, Refused> {
    if let Some(structure) = create.get("bodyStructure").filter(|v| !v.is_null()) {
        if ["textBody", "htmlBody", "attachments"].iter().any(|k| create.get(*k).is_some_and(|v| !v.is_null())) {
            return Err(invalid("bodyStructure", "bodyStructure excludes textBody, htmlBody and attachments"));
        }
        return part_spec(structure, "bodyStructure");
    }
    let single = |key: &str, media: &str| -> Result<Option<PartSpec>, Refused> {
        let Some(list) = create.get(key).filter(|v| !v.is_null()) else { return Ok(None) };
        let list = list.as_array().filter(|l| l.len() == 1).ok_or_else(|| invalid(key, "exactly one part"))?;
        let spec = part_spec(&list[0], key)?;
        if spec.media_type != media {
            return Err(invalid(key, format!("must be {media}")));
        }
        Ok(Some(spec))
    };
    let text = single("textBody", "text/plain")?;
    let html = single("htmlBody", "text/html")?;
    let attachments = match create.get("attachments") {
        Some(Value::Array(list)) => list.iter().map(|a| part_spec(a, "attachments")).collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    let multipart = |subtype: &str, parts: Vec<PartSpec>| PartSpec {
        media_type: format!("multipart/{subtype}"),
        part_id: None,
        blob_id: None,
        charset: None,
        disposition: None,
        name: None,
        cid: None,
        language: None,
        location: None,
        headers: Vec::new(),
        sub_parts: parts,
    };
    let (inline, attached): (Vec<PartSpec>, Vec<PartSpec>) =
        attachments.into_iter().partition(|a| a.cid.is_some() && a.disposition.as_deref() != Some("attachment"));
    let html = match html {
        Some(html) if !inline.is_empty() => Some(multipart("related", std::iter::once(html).chain(inline).collect())),
        Some(html) => Some(html),
        None => {
            let mut attached = attached;
            attached.extend(inline);
            return finish(text, None, attached, multipart);
        }
    };
    finish(text, html, attached, multipart)
}

fn finish(
    text: Option<PartSpec>,
    html: Option<PartSpec>,
    attached: Vec<PartSpec>,
    multipart: impl Fn(&str, Vec<PartSpec>) -> PartSpec,
) -> Result<PartSpec, Refused> {
    let main = match (text, html) {
        (Some(text), Some(html)) => Some(multipart("alternative", vec![text, html])),
        (Some(one), None) | (None, Some(one)) => Some(one),
        (None, None) => None,
    };
    match (main, attached.is_empty()) {
        (Some(main), true) => Ok(main),
        (main, _) => {
            let mut parts: Vec<PartSpec> = main.into_iter().collect();
            parts.extend(attached);
            if parts.is_empty() {
                return Err(invalid("textBody", "an email needs a body"));
            }
            Ok(multipart("mixed", parts))
        }
    }
}

fn write_part(
    part: &PartSpec,
    values: Option<&Map<String, Value>>,
    blobs: &HashMap<String, Blob>,
    unique: &str,
    counter: &mut u32,
    out: &mut Vec<u8>,
) -> Result<(), Refused> {
    let mut head = String::new();
    if part.media_type.starts_with("multipart/") {
        *counter += 1;
        let boundary = format!("=_mailbus_{unique}_{counter}");
        let _ = write!(head, "Content-Type: {}; boundary=\"{boundary}\"\r\n", part.media_type);
        write_common(part, &mut head);
        head.push_str("\r\n");
        out.extend_from_slice(head.as_bytes());
        for sub in &part.sub_parts {
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            write_part(sub, values, blobs, unique, counter, out)?;
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        return Ok(());
    }
    let mut media_type = part.media_type.clone();
    let content: Vec<u8> = match (&part.part_id, &part.blob_id) {
        (Some(id), _) => {
            let value = values
                .and_then(|v| v.get(id))
                .and_then(|v| v.get("value"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("bodyValues", format!("no body value {id:?}")))?;
            if !media_type.starts_with("text/") {
                return Err(invalid("bodyValues", "a body value is for a text part"));
            }
            value.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
        }
        (None, Some(blob)) => {
            let blob = blobs.get(blob).ok_or_else(|| Refused {
                kind: "blobNotFound",
                properties: vec![],
                description: format!("blob {blob} not found"),
            })?;
            if media_type.is_empty() {
                media_type = blob.media_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
                if !is_media_type(&media_type) {
                    media_type = "application/octet-stream".into();
                }
            }
            blob.content.clone()
        }
        (None, None) => return Err(invalid("bodyStructure", "a part without content")),
    };
    let is_text = media_type.starts_with("text/");
    let _ = write!(head, "Content-Type: {media_type}");
    if is_text {
        let charset =
            if part.part_id.is_some() { "utf-8".to_owned() } else { part.charset.clone().unwrap_or("utf-8".into()) };
        let _ = write!(head, "; charset={}", quote_param(&charset));
    }
    if let Some(name) = &part.name {
        let _ = write!(head, "; name={}", quote_param(name));
    }
    head.push_str("\r\n");
    write_common(part, &mut head);
    let seven_bit =
        content.is_ascii() && content.split(|&b| b == b'\n').all(|l| l.len() <= 998) && !content.contains(&0);
    let bare_cr_lf = content.windows(2).enumerate().any(|(i, w)| {
        (w[0] == b'\r' && w[1] != b'\n') || (w[1] == b'\n' && w[0] != b'\r') || (i == 0 && w[0] == b'\n')
    });
    let encoded = if is_text && seven_bit && !bare_cr_lf {
        head.push_str("Content-Transfer-Encoding: 7bit\r\n");
        content
    } else if is_text {
        head.push_str("Content-Transfer-Encoding: quoted-printable\r\n");
        quoted_printable(&content).into_bytes()
    } else {
        head.push_str("Content-Transfer-Encoding: base64\r\n");
        base64_lines(&content).into_bytes()
    };
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
    // The line break before a boundary belongs to the boundary (RFC 2046 §5.1.1): the caller adds it.
    out.extend_from_slice(&encoded);
    Ok(())
}

fn write_common(part: &PartSpec, head: &mut String) {
    if let Some(disposition) = &part.disposition {
        let _ = write!(head, "Content-Disposition: {}", disposition.to_ascii_lowercase());
        if let Some(name) = &part.name {
            let _ = write!(head, "; filename={}", quote_param(name));
        }
        head.push_str("\r\n");
    } else if let Some(name) = part.name.as_ref().filter(|_| !part.media_type.starts_with("text/")) {
        let _ = write!(head, "Content-Disposition: attachment; filename={}\r\n", quote_param(name));
    }
    if let Some(cid) = &part.cid {
        let _ = write!(head, "Content-ID: <{}>\r\n", cid.trim_start_matches('<').trim_end_matches('>'));
    }
    if let Some(language) = part.language.as_ref().filter(|l| !l.is_empty()) {
        let _ = write!(head, "Content-Language: {}\r\n", language.join(", "));
    }
    if let Some(location) = &part.location {
        let _ = write!(head, "Content-Location: {}\r\n", encode_text(location));
    }
    for line in &part.headers {
        head.push_str(line);
    }
}

/// A parameter value: quoted, or RFC 2047-encoded inside quotes when it has anything a quoted-string cannot
/// hold (RFC 5322 §3.2.4 qtext is printable US-ASCII), as mail clients read it; never a CR or LF.
fn quote_param(value: &str) -> String {
    if value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        format!("\"{}\"", encoded_words(value))
    }
}

fn base64_lines(content: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(content);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// RFC 2045 §6.7 quoted-printable, CRLF kept as line breaks, lines at most 76 characters.
fn quoted_printable(content: &[u8]) -> String {
    let mut out = String::new();
    let mut line = 0;
    let mut i = 0;
    while i < content.len() {
        let b = content[i];
        if b == b'\r' && content.get(i + 1) == Some(&b'\n') {
            out.push_str("\r\n");
            line = 0;
            i += 2;
            continue;
        }
        let at_line_end = matches!(content.get(i + 1), None | Some(b'\r'));
        let literal = (b == b' ' || b == b'\t') && !at_line_end || (33..=126).contains(&b) && b != b'=';
        let piece = if literal { (b as char).to_string() } else { format!("={b:02X}") };
        if line + piece.len() > 75 {
            out.push_str("=\r\n");
            line = 0;
        }
        out.push_str(&piece);
        line += piece.len();
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders as _;
    use serde_json::json;

    fn create(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn text_and_html_with_an_attachment_make_mixed_alternative() {
        let draft = create(json!({
            "from": [{"name": "Jörg Müller", "email": "jorg@example.org"}],
            "to": [{"name": "Ann, B.", "email": "ann@example.org"}, {"email": "bob@example.org"}],
            "subject": "Grüße",
            "header:X-Foo:asText": "bar",
            "textBody": [{"partId": "t", "type": "text/plain"}],
            "htmlBody": [{"partId": "h", "type": "text/html"}],
            "bodyValues": {"t": {"value": "Hallo Jörg\nzweite Zeile"}, "h": {"value": "<p>Hallo</p>"}},
            "attachments": [{"blobId": "u1", "type": "application/pdf", "name": "r.pdf"}],
        }));
        let blobs = HashMap::from([(
            "u1".to_owned(),
            Blob { media_type: "application/pdf".into(), content: vec![0, 1, 2, 3] },
        )]);
        assert_eq!(blob_ids(&draft), ["u1"]);
        let bytes = compose(&draft, &blobs, "Mon, 7 Dec 2026 10:00:00 +0000", "abc").unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\n"), "{text}");
        assert!(text.contains("To: \"Ann, B.\" <ann@example.org>, bob@example.org\r\n"), "{text}");
        assert!(text.contains("Message-ID: <abc@example.org>\r\n"), "{text}");
        assert!(text.contains("X-Foo: bar\r\n"), "{text}");
        assert!(!text.contains("\r\n\n") && !text.replace("\r\n", "").contains('\n'), "CRLF only");

        let message = mail_parser::MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(message.subject(), Some("Grüße"));
        assert_eq!(message.from().unwrap().first().unwrap().name(), Some("Jörg Müller"));
        assert_eq!(message.body_text(0).as_deref(), Some("Hallo Jörg\r\nzweite Zeile"));
        assert_eq!(message.body_html(0).as_deref(), Some("<p>Hallo</p>"));
        let attachment = message.attachment(0).unwrap();
        assert_eq!((attachment.contents(), attachment.attachment_name()), (&[0u8, 1, 2, 3][..], Some("r.pdf")));
        let root = super::super::body::structure(&message);
        assert_eq!(root.media_type, "multipart/mixed");
        assert_eq!(root.sub_parts[0].media_type, "multipart/alternative");
    }

    #[test]
    fn bad_drafts_are_refused_with_the_property() {
        let refused = |v: Value| compose(&create(v), &HashMap::new(), "now", "x").unwrap_err();
        assert_eq!(refused(json!({"from": [{"email": "no at"}]})).properties, ["from"]);
        assert_eq!(refused(json!({"textBody": [{"partId": "t", "type": "text/html"}]})).properties, ["textBody"]);
        assert_eq!(refused(json!({"textBody": [{"partId": "t"}]})).properties, ["bodyValues"]);
        assert_eq!(refused(json!({"attachments": [{"blobId": "u9"}]})).kind, "blobNotFound");
        assert_eq!(refused(json!({"header:Content-Type": " text/html"})).properties, ["header:Content-Type"]);
        assert_eq!(refused(json!({"header:X-A": "a\r\nB: c", "textBody": []})).properties, ["header:X-A"]);
    }

    #[test]
    fn client_strings_never_become_header_lines() {
        let blobs = HashMap::from([(
            "u1".to_owned(),
            Blob { media_type: "application/pdf\r\nX-Injected: blob".into(), content: vec![1, 2] },
        )]);
        let draft = |attachment: Value, extra: Value| {
            let mut draft = json!({"textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "hi"}},
                                   "attachments": [attachment]});
            draft.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            compose(&create(draft), &blobs, "Mon, 7 Dec 2026 10:00:00 +0000", "x")
        };
        let attachment = |key: &str, value: Value| {
            let mut part = json!({"blobId": "u1", "type": "application/pdf"});
            part[key] = value;
            draft(part, json!({}))
        };
        // Tokens and identifiers with anything out of place are refused.
        for (key, value) in [
            ("disposition", json!("attachment\r\nX-Injected: yes")),
            ("disposition", json!("attachment; filename=x")),
            ("cid", json!("a@b>\r\nX-Injected: yes")),
            ("cid", json!("a b@c")),
            ("language", json!(["en\r\nX-Injected: yes"])),
            ("language", json!("en")),
            ("charset", json!("utf-8\r\nX-Injected: yes")),
            ("type", json!("application/pdf\r\nX-Injected: yes")),
            ("type", json!("application/pdf; x=y")),
            ("header:X-Raw", json!("a\r\nX-Injected: yes")),
        ] {
            let refused = attachment(key, value.clone()).unwrap_err();
            assert_eq!(
                (refused.kind, refused.properties.clone()),
                ("invalidProperties", vec!["attachments".into()]),
                "{key}: {value}"
            );
        }
        let urls = draft(json!({"blobId": "u1"}), json!({"header:List-Post:asURLs": ["mailto:a>\r\nX-Injected: yes"]}));
        assert_eq!(urls.unwrap_err().properties, ["header:List-Post:asURLs"]);
        // Free text is encoded: whatever it holds stays inside its field.
        let accepted = [
            attachment("name", json!("r.pdf\r\nX-Injected: yes")).unwrap(),
            attachment("location", json!("http://x/\r\nX-Injected: yes")).unwrap(),
            attachment("header:X-Note:asText", json!("a\r\nX-Injected: yes")).unwrap(),
            attachment("header:X-Raw", json!("folded\r\n  line")).unwrap(),
            draft(
                json!({"blobId": "u1"}),
                json!({"header:X-Top:asText": "a\nX-Injected: yes", "subject": "s\rX-Injected: yes"}),
            )
            .unwrap(),
            attachment("disposition", json!("INLINE")).unwrap(),
        ];
        for bytes in accepted {
            let text = String::from_utf8(bytes.clone()).unwrap();
            assert!(!text.split("\r\n").any(|line| line.starts_with("X-Injected")), "{text}");
            assert!(!text.replace("\r\n", "").contains(['\r', '\n']), "CRLF only: {text}");
            let message = mail_parser::MessageParser::default().parse(&bytes).unwrap();
            assert!(message.parts.iter().all(|p| p.headers.iter().all(|h| h.name.as_str() != "X-Injected")));
        }
    }

    #[test]
    fn encodings_round_trip() {
        let qp = quoted_printable("a=b é \r\nnext".as_bytes());
        assert_eq!(qp, "a=3Db =C3=A9=20\r\nnext");
        let long = quoted_printable(&[b'x'; 200]);
        assert!(long.split("\r\n").all(|l| l.len() <= 76), "{long}");
        let words = encoded_words(&"ü".repeat(60));
        assert!(words.split(' ').all(|w| w.len() <= 75), "{words}");
        let subject = format!("Subject: {words}\r\n\r\n");
        let message = mail_parser::MessageParser::default().parse(subject.as_bytes()).unwrap();
        assert_eq!(message.subject(), Some("ü".repeat(60).as_str()));
    }
}
