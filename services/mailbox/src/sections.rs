//! RFC 9051 §6.4.5 body sections, cut from the stored octets with the offsets parsed at delivery: no
//! message is parsed again to answer BODY[1.2.HEADER.FIELDS (Subject)]<0.100>.

use mailbus_proto::v1::{self as pb, SectionText};

use crate::mime::is_message;

/// A section's octets, decoded for BINARY when the section asks: `Err` when its Content-Transfer-Encoding
/// is one BINARY cannot undo (RFC 3516 UNKNOWN-CTE), or does not decode.
pub fn extract_section(
    content: &[u8],
    structure: &pb::MessageStructure,
    section: &pb::Section,
) -> Result<Option<Vec<u8>>, UnknownCte> {
    if !section.decode {
        return Ok(extract(content, structure, section));
    }
    let whole = pb::Section { offset: None, length: None, decode: false, ..section.clone() };
    let Some(raw) = extract(content, structure, &whole) else { return Ok(None) };
    let encoding = match section.part.as_slice() {
        [] => "7BIT".to_owned(),
        path => {
            structure.body.as_ref().and_then(|root| find(root, path)).map_or_else(String::new, |p| p.encoding.clone())
        }
    };
    let decoded = match encoding.as_str() {
        "7BIT" | "8BIT" | "BINARY" | "" => raw,
        "BASE64" => mail_parser::decoders::base64::base64_decode(&raw).ok_or(UnknownCte)?,
        "QUOTED-PRINTABLE" => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(&raw).ok_or(UnknownCte)?
        }
        _ => return Err(UnknownCte),
    };
    Ok(Some(partial(&decoded, section.offset, section.length).to_vec()))
}

/// RFC 3516: a Content-Transfer-Encoding the server cannot undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownCte;

/// The octets a section names, or None when the message has no such part (IMAP answers those with an
/// empty string, as Dovecot does).
pub fn extract<'a>(content: &'a [u8], structure: &pb::MessageStructure, section: &pb::Section) -> Option<Vec<u8>> {
    let root = structure.body.as_ref()?;
    let text = section.text();
    let whole: std::borrow::Cow<'a, [u8]> = if section.part.is_empty() {
        // The message itself: its header ends where the root part's body begins.
        let body_start = root.body_offset as usize;
        match text {
            SectionText::Unspecified | SectionText::Full => content.into(),
            SectionText::Header => content.get(..body_start)?.into(),
            SectionText::HeaderFields => fields(content.get(..body_start)?, &section.fields, true).into(),
            SectionText::HeaderFieldsNot => fields(content.get(..body_start)?, &section.fields, false).into(),
            SectionText::Text => content.get(body_start..)?.into(),
            SectionText::Mime => return None,
        }
    } else {
        let part = find(root, &section.part)?;
        if part.end_offset == 0 {
            // Inside an encoded message/rfc822: its parts do not lie in the stored octets.
            return None;
        }
        let slice = |from: u64, to: u64| content.get(from as usize..to as usize);
        match text {
            SectionText::Unspecified | SectionText::Full => slice(part.body_offset, part.end_offset)?.into(),
            SectionText::Mime => slice(part.header_offset, part.body_offset)?.into(),
            SectionText::Header | SectionText::HeaderFields | SectionText::HeaderFieldsNot | SectionText::Text => {
                if !is_message(part) {
                    return None;
                }
                let inner = part.message_body.as_deref()?;
                if inner.end_offset == 0 {
                    // An encoded message/rfc822: its parts do not lie in the stored octets.
                    return None;
                }
                let header = slice(part.body_offset, inner.body_offset)?;
                match text {
                    SectionText::Header => header.into(),
                    SectionText::HeaderFields => fields(header, &section.fields, true).into(),
                    SectionText::HeaderFieldsNot => fields(header, &section.fields, false).into(),
                    _ => slice(inner.body_offset, part.end_offset)?.into(),
                }
            }
        }
    };
    Some(partial(&whole, section.offset, section.length).to_vec())
}

/// RFC 9051 §6.4.5 part numbering: parts of a multipart count from 1; a non-multipart has just part 1
/// (its body); after a message/rfc822 part, numbering goes on inside the encapsulated message.
pub(crate) fn find<'a>(root: &'a pb::BodyPart, path: &[u32]) -> Option<&'a pb::BodyPart> {
    let mut current = root;
    for (depth, &number) in path.iter().enumerate() {
        if depth > 0 && is_message(current) {
            current = current.message_body.as_deref()?;
        }
        if current.r#type == "multipart" {
            current = current.parts.get((number as usize).checked_sub(1)?)?;
        } else if number != 1 {
            return None;
        }
    }
    Some(current)
}

/// `<offset.length>`: the octets from `offset`, at most `length` of them; past the end, nothing.
fn partial(data: &[u8], offset: Option<u64>, length: Option<u64>) -> &[u8] {
    let start = offset.map_or(0, |o| o.min(data.len() as u64) as usize);
    let rest = &data[start..];
    match length {
        Some(length) => &rest[..rest.len().min(length.min(usize::MAX as u64) as usize)],
        None => rest,
    }
}

/// The header fields named (or, with `keep` false, those not named), in their order, each with its
/// continuation lines, followed by the blank line that ends a header.
fn fields(header: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    // Looked up, not scanned: a client may name thousands of fields, and a header may have as many lines.
    let names: std::collections::HashSet<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    let mut out = Vec::with_capacity(header.len().min(4096));
    let mut taking = false;
    let mut rest = header;
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
        let (line, next) = rest.split_at(end);
        rest = next;
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            let name = String::from_utf8_lossy(name);
            let named = names.contains(&name.trim_end().to_ascii_lowercase());
            taking = named == keep;
        }
        if taking {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::parse;

    const MESSAGE: &[u8] = b"From: a@example.org\r\n\
Subject: nested\r\n\
X-Long: one\r\n two\r\n\
Content-Type: multipart/mixed; boundary=b1\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain\r\n\
\r\n\
first part\r\n\
--b1\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
Content-Type: multipart/alternative; boundary=b2\r\n\
\r\n\
--b2\r\n\
Content-Type: text/plain\r\n\
\r\n\
inner plain\r\n\
--b2\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>inner html</p>\r\n\
--b2--\r\n\
\r\n\
--b1--\r\n";

    fn get(part: &[u32], text: SectionText, fields: &[&str]) -> Option<String> {
        let structure = parse(MESSAGE).structure;
        let section = pb::Section {
            part: part.to_vec(),
            text: text.into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            offset: None,
            length: None,
            decode: false,
        };
        extract(MESSAGE, &structure, &section).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn top_level_sections() {
        use SectionText::*;
        assert_eq!(get(&[], Full, &[]).unwrap().as_bytes(), MESSAGE);
        let header = get(&[], Header, &[]).unwrap();
        assert!(header.starts_with("From: a@example.org\r\n") && header.ends_with("boundary=b1\r\n\r\n"), "{header}");
        assert!(get(&[], Text, &[]).unwrap().starts_with("--b1\r\n"));
        assert_eq!(
            get(&[], HeaderFields, &["subject", "X-LONG"]).unwrap(),
            "Subject: nested\r\nX-Long: one\r\n two\r\n\r\n"
        );
        let not = get(&[], HeaderFieldsNot, &["Subject", "X-Long", "Content-Type"]).unwrap();
        assert_eq!(not, "From: a@example.org\r\n\r\n");
        assert_eq!(get(&[], HeaderFields, &["Nope"]).unwrap(), "\r\n");
        assert_eq!(get(&[], Mime, &[]), None);
    }

    #[test]
    fn parts_are_numbered_through_multiparts_and_encapsulated_messages() {
        use SectionText::*;
        assert_eq!(get(&[1], Full, &[]).unwrap(), "first part");
        assert_eq!(get(&[1], Mime, &[]).unwrap(), "Content-Type: text/plain\r\n\r\n");
        assert_eq!(
            get(&[2], Header, &[]).unwrap(),
            "Subject: inner\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n"
        );
        assert_eq!(get(&[2], HeaderFields, &["subject"]).unwrap(), "Subject: inner\r\n\r\n");
        assert!(get(&[2], Text, &[]).unwrap().starts_with("--b2\r\n"));
        assert_eq!(get(&[2, 1], Full, &[]).unwrap(), "inner plain");
        assert_eq!(get(&[2, 2], Full, &[]).unwrap(), "<p>inner html</p>");
        assert_eq!(get(&[2, 2], Mime, &[]).unwrap(), "Content-Type: text/html\r\n\r\n");
        assert_eq!(get(&[3], Full, &[]), None);
        assert_eq!(get(&[1, 1], Full, &[]).unwrap(), "first part", "part 1 of a non-multipart is its body");
        assert_eq!(get(&[1, 2], Full, &[]), None);
        assert_eq!(get(&[1], Header, &[]), None, "HEADER applies only to message parts");
        assert_eq!(get(&[0], Full, &[]), None);
    }

    #[test]
    fn binary_undoes_the_transfer_encoding() {
        let message = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n--b\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--b--\r\n";
        let structure = parse(message).structure;
        let binary = |part: u32| {
            let section =
                pb::Section { part: vec![part], text: SectionText::Full.into(), decode: true, ..Default::default() };
            extract_section(message, &structure, &section)
        };
        assert_eq!(binary(1), Ok(Some(vec![0, 1, 2, 3])));
        assert_eq!(binary(2), Ok(Some("café".as_bytes().to_vec())));
        assert_eq!(binary(3), Err(UnknownCte));
        assert_eq!(binary(4), Ok(None));
    }

    #[test]
    fn partial_ranges_clip_at_the_end() {
        assert_eq!(partial(b"0123456789", Some(2), Some(3)), b"234");
        assert_eq!(partial(b"0123456789", Some(8), Some(5)), b"89");
        assert_eq!(partial(b"0123456789", Some(20), Some(5)), b"");
        assert_eq!(partial(b"0123456789", None, Some(u64::MAX)), b"0123456789");
    }
}
