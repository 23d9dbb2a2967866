//! The 7-bit downgrade of RFC 6152 §3: a peer that does not offer 8BITMIME must not receive 8-bit data,
//! so every MIME leaf part with 8-bit octets is re-encoded, quoted-printable for text and base64 for the
//! rest, and its `Content-Transfer-Encoding` says so. Multiparts and `message/rfc822` parts are walked
//! recursively; the structure, the boundaries and the 7-bit parts stay exactly as they were. 8-bit octets
//! in a header cannot be downgraded (that is what SMTPUTF8 is for), so such a message is refused.

use base64::Engine as _;

pub fn is_eight_bit(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b >= 0x80)
}

/// How deep multiparts and `message/rfc822` parts may nest before the downgrade gives up (as
/// `None`: the recipient fails with 5.6.3). Real mail nests a handful of levels; the bound keeps a
/// crafted body of thousands of nested parts from overflowing the relay's stack.
const MAX_NESTING: usize = 64;

/// The message with every 8-bit part re-encoded, or `None` when it cannot be done.
pub fn to_seven_bit(message: &[u8]) -> Option<Vec<u8>> {
    downgrade_entity(message, 0)
}

fn downgrade_entity(message: &[u8], depth: usize) -> Option<Vec<u8>> {
    if depth > MAX_NESTING {
        return None;
    }
    let (header, body) = split_entity(message);
    if is_eight_bit(header) {
        return None;
    }
    // The boundary keeps its case (Outlook's "----=_NextPart_…" has capitals); the type does not matter.
    let raw_type = header_value(header, "content-type").unwrap_or_default();
    let content_type = raw_type.to_ascii_lowercase();
    if let Some(boundary) = content_type.starts_with("multipart/").then(|| boundary(&raw_type)).flatten() {
        let mut out = header.to_vec();
        out.extend(downgrade_multipart(body, boundary.as_bytes(), depth)?);
        return Some(out);
    }
    if content_type.starts_with("message/rfc822") {
        let mut out = header.to_vec();
        out.extend(downgrade_entity(body, depth + 1)?);
        return Some(out);
    }
    if !is_eight_bit(body) {
        return Some(message.to_vec());
    }
    let text = content_type.is_empty() || content_type.starts_with("text/");
    let (encoding, encoded) =
        if text { ("quoted-printable", quoted_printable(body)) } else { ("base64", base64_lines(body)) };
    let mut out = replace_transfer_encoding(header, encoding);
    out.extend(encoded);
    Some(out)
}

/// Splits at the empty line; the header keeps its final CRLF and the separator.
fn split_entity(entity: &[u8]) -> (&[u8], &[u8]) {
    if entity.starts_with(b"\r\n") {
        return entity.split_at(2);
    }
    match entity.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(pos) => entity.split_at(pos + 4),
        None => (entity, &[]),
    }
}

/// The unfolded value of the first `name` field.
fn header_value(header: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let mut lines = text.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some((field, value)) = line.split_once(':') else { continue };
        if !field.trim().eq_ignore_ascii_case(name) {
            continue;
        }
        let mut value = value.trim().to_owned();
        while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
            value.push(' ');
            value.push_str(next.trim());
            lines.next();
        }
        return Some(value);
    }
    None
}

fn boundary(content_type: &str) -> Option<String> {
    let start = content_type.to_ascii_lowercase().find("boundary=")? + "boundary=".len();
    let rest = &content_type[start..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split([';', ' ']).next()?,
    };
    (!value.is_empty()).then(|| value.to_owned())
}

/// Downgrades each part between the boundary lines; the preamble and epilogue are kept as they are
/// (they must be 7-bit already, or the message cannot be downgraded).
fn downgrade_multipart(body: &[u8], boundary: &[u8], depth: usize) -> Option<Vec<u8>> {
    let mut delimiter = b"\r\n--".to_vec();
    delimiter.extend_from_slice(boundary);
    // The first delimiter may open the body, without a CRLF before it.
    let mut rest = body;
    let mut out = Vec::with_capacity(body.len() * 4 / 3);
    let mut first = true;
    loop {
        let found = if first && rest.starts_with(&delimiter[2..]) {
            Some((0, delimiter.len() - 2))
        } else {
            rest.windows(delimiter.len()).position(|w| w == delimiter.as_slice()).map(|p| (p, delimiter.len()))
        };
        let Some((at, len)) = found else {
            // The epilogue (or a body without its closing delimiter).
            if is_eight_bit(rest) {
                return None;
            }
            out.extend_from_slice(rest);
            return Some(out);
        };
        let part = &rest[..at];
        if first {
            if is_eight_bit(part) {
                return None;
            }
            out.extend_from_slice(part);
        } else {
            out.extend(downgrade_entity(part, depth + 1)?);
        }
        out.extend_from_slice(&rest[at..at + len]);
        rest = &rest[at + len..];
        first = false;
        // After a delimiter: "--" closes the multipart; else the line ends and a part follows.
        let line_end = rest.windows(2).position(|w| w == b"\r\n").map_or(rest.len(), |p| p + 2);
        out.extend_from_slice(&rest[..line_end]);
        let closing = rest.starts_with(b"--");
        rest = &rest[line_end..];
        if closing {
            if is_eight_bit(rest) {
                return None;
            }
            out.extend_from_slice(rest);
            return Some(out);
        }
    }
}

fn replace_transfer_encoding(header: &[u8], encoding: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(header);
    let mut out = String::with_capacity(text.len() + 48);
    let mut skipping = false;
    for line in text.split_inclusive("\r\n") {
        if skipping && line.starts_with([' ', '\t']) {
            continue;
        }
        skipping =
            line.split_once(':').is_some_and(|(f, _)| f.trim().eq_ignore_ascii_case("content-transfer-encoding"));
        if skipping {
            continue;
        }
        if line == "\r\n" {
            out.push_str(&format!("Content-Transfer-Encoding: {encoding}\r\n"));
        }
        out.push_str(line);
    }
    if !out.ends_with("\r\n\r\n") {
        out.push_str(&format!("Content-Transfer-Encoding: {encoding}\r\n\r\n"));
    }
    out.into_bytes()
}

/// RFC 2045 §6.7, keeping the text's CRLF line breaks as line breaks.
fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() * 2);
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut width = 0;
        for (j, &b) in line.iter().enumerate() {
            let last = j + 1 == line.len();
            let literal = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece: Vec<u8> = if literal { vec![b] } else { format!("={b:02X}").into_bytes() };
            if width + piece.len() > 75 {
                out.extend_from_slice(b"=\r\n");
                width = 0;
            }
            width += piece.len();
            out.extend(piece);
        }
    }
    out
}

fn base64_lines(body: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(body);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    for line in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_qp(text: &[u8]) -> Vec<u8> {
        let text = String::from_utf8(text.to_vec()).unwrap().replace("=\r\n", "");
        let mut out = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn a_single_text_part_becomes_quoted_printable_and_decodes_to_the_same_text() {
        let body = "Grüße aus Köln — ça va? ".repeat(10) + "\r\nzweite Zeile = gleich \r\n";
        let message = format!(
            "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}"
        );
        let seven = to_seven_bit(message.as_bytes()).unwrap();
        assert!(!is_eight_bit(&seven));
        let (header, encoded) = split_entity(&seven);
        assert_eq!(header_value(header, "content-transfer-encoding").as_deref(), Some("quoted-printable"));
        assert_eq!(header_value(header, "subject").as_deref(), Some("x"));
        assert!(encoded.split(|&b| b == b'\n').all(|line| line.len() <= 77), "lines stay short");
        assert_eq!(decode_qp(encoded), body.as_bytes());
    }

    #[test]
    fn multiparts_keep_their_structure_and_only_8bit_parts_change() {
        let message = b"Content-Type: multipart/mixed; Boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nplain ascii\r\n--b1\r\nContent-Type: application/octet-stream\r\n\r\n\xff\xfe\x00bin\r\n--b1--\r\nepilogue\r\n";
        let seven = to_seven_bit(message).unwrap();
        assert!(!is_eight_bit(&seven));
        let text = String::from_utf8(seven).unwrap();
        assert!(text.contains("--b1\r\nContent-Type: text/plain\r\n\r\nplain ascii\r\n--b1\r\n"), "{text}");
        assert!(text.contains("Content-Transfer-Encoding: base64\r\n\r\n//4AYmlu\r\n"), "{text}");
        assert!(text.ends_with("--b1--\r\nepilogue\r\n"), "{text}");
    }

    #[test]
    fn mixed_case_boundaries_are_found() {
        let message = "Content-Type: multipart/alternative;\r\n\tboundary=\"----=_NextPart_000_0001_01DA\"\r\n\r\n------=_NextPart_000_0001_01DA\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nÄ\r\n------=_NextPart_000_0001_01DA--\r\n";
        let seven = to_seven_bit(message.as_bytes()).expect("Outlook-style boundary");
        assert!(!is_eight_bit(&seven));
        assert!(String::from_utf8(seven).unwrap().contains("=C3=84"));
    }

    /// Thousands of nested parts are refused, not recursed into until the stack overflows (checked on a
    /// thread with a small stack); nesting as deep as real mail still downgrades.
    #[test]
    fn nesting_beyond_the_bound_is_refused_and_ordinary_nesting_is_not() {
        let rfc822 = |levels: usize| {
            let mut message = "Content-Type: message/rfc822\r\n\r\n".repeat(levels);
            message.push_str("Subject: inner\r\n\r\n\u{e9}t\u{e9}\r\n");
            message.into_bytes()
        };
        let multipart = |levels: usize| {
            let mut message = String::new();
            for level in 0..levels {
                message.push_str(&format!("Content-Type: multipart/mixed; boundary=b{level}\r\n\r\n--b{level}\r\n"));
            }
            message.push_str("Content-Type: text/plain\r\n\r\n\u{e9}");
            for level in (0..levels).rev() {
                message.push_str(&format!("\r\n--b{level}--\r\n"));
            }
            message.into_bytes()
        };
        for (kind, build) in [("message/rfc822", &rfc822 as &dyn Fn(usize) -> Vec<u8>), ("multipart", &multipart)] {
            let seven = to_seven_bit(&build(10)).unwrap_or_else(|| panic!("ten levels of {kind} downgrade"));
            assert!(!is_eight_bit(&seven), "{kind}");
            assert!(String::from_utf8(seven).unwrap().contains("quoted-printable\r\n\r\n=C3=A9"), "{kind}");
            let deep = build(5_000);
            let refused = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || to_seven_bit(&deep).is_none())
                .unwrap()
                .join()
                .expect("no stack overflow");
            assert!(refused, "5,000 levels of {kind}");
        }
    }

    #[test]
    fn seven_bit_messages_are_untouched_and_8bit_headers_cannot_be_downgraded() {
        let ascii = b"Subject: hi\r\n\r\nhello\r\n";
        assert_eq!(to_seven_bit(ascii).unwrap(), ascii);
        assert!(to_seven_bit("Subject: Grüße\r\n\r\nhi\r\n".as_bytes()).is_none());
    }
}
