//! The text that SEARCH BODY and TEXT (RFC 9051 §6.4.4) and Email/query's `body` and `text` (RFC 8621
//! §4.4.1) look for substrings in, made once when a message is parsed. RFC 9051 asks for a substring match
//! that disregards case, on the text as decoded (transfer encoding and charset): so every text part is kept
//! decoded, HTML as its text, the header fields and body of every attached message/rfc822 part too (a
//! bounce is found by a word of the message it returns), lower-cased, with each run of white space folded
//! into one space. A needle is folded the same way by [`fold`], and the store matches it with `LIKE`
//! under a trigram index (migration 0015). Pure: no I/O, no SQL.

use mail_parser::{Message, PartType};

/// Each of the two texts is cut here: the trigram index's cost grows with the text, and the first 256 KiB
/// of a message's text are what a search is about.
pub const MAX_SEARCH_TEXT: usize = 256 * 1024;

/// Attached messages nested deeper than this are not looked into (the structure stops there too).
const MAX_DEPTH: usize = 40;

/// What a message is searched by: its header fields' decoded values (TEXT), and its body (BODY and TEXT).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchText {
    /// The message's own header fields' values, one a line.
    pub header: String,
    /// Its text parts, and its attached messages' header values and text parts, one a line.
    pub body: String,
}

/// The searchable text of `message`, whose own header values (decoded as SEARCH HEADER sees them) are
/// `header_values`; `nested_header_values` gives those of an attached message.
pub fn of(
    message: &Message<'_>,
    header_values: &[String],
    nested_header_values: impl Fn(&Message<'_>) -> Vec<String>,
) -> SearchText {
    let mut header = Folded::default();
    header_values.iter().for_each(|v| header.push(v));
    let mut body = Folded::default();
    push_body(message, &mut body, &nested_header_values, 0);
    SearchText { header: header.0, body: body.0 }
}

/// The searchable text of what mail-parser could not read as a message: its octets, as text.
pub fn of_unparsed(content: &[u8]) -> SearchText {
    let mut body = Folded::default();
    body.push(&String::from_utf8_lossy(&content[..content.len().min(MAX_SEARCH_TEXT)]));
    SearchText { header: String::new(), body: body.0 }
}

/// Folds a needle as the stored text is folded: lower case, each run of white space one space, no NUL.
/// Its ends keep one space each if it had some (`" budget "` still asks for the word alone).
pub fn fold(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len());
    let mut space = false;
    for c in needle.chars() {
        if c.is_whitespace() || c == '\0' {
            space = true;
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.extend(c.to_lowercase());
    }
    if space {
        out.push(' ');
    }
    out
}

fn push_body(
    message: &Message<'_>,
    out: &mut Folded,
    nested_header_values: &impl Fn(&Message<'_>) -> Vec<String>,
    depth: usize,
) {
    if depth >= MAX_DEPTH {
        return;
    }
    let alternatives = alternatives_of_plain(message);
    for (index, part) in message.parts.iter().enumerate() {
        if out.is_full() {
            return;
        }
        match &part.body {
            PartType::Text(text) => out.push(text),
            // An HTML part beside a plain one (multipart/alternative) says the same again: the plain one
            // is enough. mail-parser lists such a part among the HTML bodies but not the text bodies.
            PartType::Html(_) if alternatives.contains(&(index as u32)) => {}
            PartType::Html(html) => out.push(&mail_parser::decoders::html::html_to_text(html)),
            PartType::Message(nested) => {
                nested_header_values(nested).iter().for_each(|v| out.push(v));
                push_body(nested, out, nested_header_values, depth + 1);
            }
            PartType::Binary(_) | PartType::InlineBinary(_) | PartType::Multipart(_) => {}
        }
    }
}

/// The parts listed among the HTML bodies and not the text bodies, as a set: looked up once per part,
/// where searching both lists for each part cost parts² for a message of a million empty HTML parts.
fn alternatives_of_plain(message: &Message<'_>) -> std::collections::HashSet<u32> {
    let text: std::collections::HashSet<u32> = message.text_body.iter().copied().collect();
    message.html_body.iter().copied().filter(|index| !text.contains(index)).collect()
}

/// Text folded as [`fold`] folds a needle, one line per pushed piece, at most [`MAX_SEARCH_TEXT`] octets.
#[derive(Default)]
struct Folded(String);

impl Folded {
    fn is_full(&self) -> bool {
        self.0.len() >= MAX_SEARCH_TEXT
    }

    fn push(&mut self, text: &str) {
        let folded = fold(text);
        let folded = folded.trim();
        if folded.is_empty() || self.is_full() {
            return;
        }
        if !self.0.is_empty() {
            // A line break between pieces: a folded needle has none, so no match spans two pieces.
            self.0.push('\n');
        }
        let room = MAX_SEARCH_TEXT.saturating_sub(self.0.len());
        let mut end = folded.len().min(room);
        while !folded.is_char_boundary(end) {
            end -= 1;
        }
        self.0.push_str(&folded[..end]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn body_of(raw: &[u8]) -> String {
        let message = MessageParser::default().parse(raw).unwrap();
        of(&message, &[], |nested| {
            nested.parts[0].headers.iter().filter_map(|h| h.value.as_text().map(str::to_owned)).collect()
        })
        .body
    }

    #[test]
    fn needles_fold_as_the_text_does() {
        assert_eq!(fold("  Undeliverable\r\n\tMAIL  "), " undeliverable mail ");
        assert_eq!(fold("JÖRG\0x"), "jörg x");
        assert_eq!(fold(""), "");
    }

    #[test]
    fn every_text_part_is_decoded_and_folded() {
        let qp = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Gr=C3=BC=C3=9Fe aus\r\n  K=C3=B6LN=\r\nER Dom\r\n";
        assert_eq!(body_of(qp), "grüße aus kölner dom");
        let latin1 = b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\nCaf\xe9 cr\xe8me\r\n";
        assert_eq!(body_of(latin1), "café crème");
        let b64 = b"Content-Transfer-Encoding: base64\r\n\r\nSGlkZGVuIFRyZWFzdXJl\r\n";
        assert_eq!(body_of(b64), "hidden treasure");
    }

    #[test]
    fn html_counts_once_and_attached_messages_count_with_their_headers() {
        let alternative = b"Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\n\
Content-Type: text/plain\r\n\r\nPlain words\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>Html words</p>\r\n--a--\r\n";
        assert_eq!(body_of(alternative), "plain words");
        let html_only = b"Content-Type: text/html\r\n\r\n<p>Only <b>HTML</b></p>\r\n";
        assert_eq!(body_of(html_only), "only html");
        let bounce = b"Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n--r\r\n\
Content-Type: text/plain\r\n\r\nUndeliverable.\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\n\
Final-Recipient: rfc822; x@example.net\r\n\r\n--r\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: Quarterly Figures\r\n\r\nThe original text.\r\n--r--\r\n";
        let body = body_of(bounce);
        assert!(body.contains("quarterly figures") && body.contains("the original text."), "{body}");
        assert!(body.starts_with("undeliverable."), "{body}");
    }

    #[test]
    fn text_is_cut_at_the_limit_on_a_character_boundary() {
        let mut raw = b"Content-Type: text/plain; charset=utf-8\r\n\r\n".to_vec();
        raw.extend("ö".repeat(MAX_SEARCH_TEXT).as_bytes());
        let body = body_of(&raw);
        assert!(body.len() <= MAX_SEARCH_TEXT && body.len() > MAX_SEARCH_TEXT - 2, "{}", body.len());
        assert_eq!(of_unparsed(b"no header AT ALL").body, "no header at all");
    }
}
