//! RFC 8437 UNAUTHENTICATE, which imap-codec 2.0 alpha does not parse: the command is recognised in the
//! line imap-codec rejected, and the session goes back to the not-authenticated state (the selected
//! mailbox closed without expunging, ENABLE-d extensions and the event subscription dropped with the
//! login), keeping its TLS.

use imap_types::core::Tag;

/// The tag of `line` when it is exactly `tag UNAUTHENTICATE` (any case, CRLF optional).
pub fn tag_of(line: &[u8]) -> Option<Tag<'static>> {
    let line = line.strip_suffix(b"\r\n").or_else(|| line.strip_suffix(b"\n")).unwrap_or(line);
    let space = line.iter().position(|&b| b == b' ')?;
    let (tag, verb) = (&line[..space], &line[space + 1..]);
    if !verb.eq_ignore_ascii_case(b"UNAUTHENTICATE") {
        return None;
    }
    Tag::try_from(tag.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bare_command_is_recognised() {
        assert_eq!(tag_of(b"a1 UNAUTHENTICATE\r\n").map(|t| t.inner().to_owned()), Some("a1".into()));
        assert!(tag_of(b"x unauthenticate").is_some());
        assert!(tag_of(b"a1 UNAUTHENTICATE now\r\n").is_none(), "no arguments");
        assert!(tag_of(b"UNAUTHENTICATE\r\n").is_none(), "no tag");
        assert!(tag_of(b"a+ UNAUTHENTICATE\r\n").is_none(), "not a tag");
    }
}
