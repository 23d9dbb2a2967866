//! Response rendering the command families share: the tagged answers and their text, the RFC 5530
//! response codes (and the one mapping from the store's typed errors to them), mailbox names both ways.

use super::*;

/// RFC 3501 §7.2.1 spells the capability `IMAP4rev1`; imap-codec writes `IMAP4REV1`, and case-sensitive
/// scanners (testssl's STARTTLS probe) look for the RFC's spelling. Rewrites it, in place and at the same
/// length, in a response that is a capability list (the greeting, `* CAPABILITY`, a login's
/// `OK [CAPABILITY`), where it always comes first; no other response is touched, so message data never is.
pub fn spell_imap4rev1(frame: &mut [u8]) {
    let Some(space) = frame.iter().position(|&b| b == b' ') else { return };
    let rest = &frame[space + 1..];
    let at = if rest.starts_with(b"CAPABILITY IMAP4REV1") {
        "CAPABILITY ".len()
    } else if rest.starts_with(b"OK [CAPABILITY IMAP4REV1") {
        "OK [CAPABILITY ".len()
    } else {
        return;
    };
    let start = space + 1 + at;
    frame[start..start + 9].copy_from_slice(b"IMAP4rev1");
}

pub(super) fn text(message: &str) -> String {
    let clean: String = message.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).take(200).collect();
    if clean.trim().is_empty() { "failed".into() } else { clean }
}

pub(super) fn ok(tag: Tag<'static>, code: Option<Code<'static>>, message: &str) -> Status<'static> {
    Status::ok(Some(tag), code, text(message)).expect("ASCII text")
}

pub(super) fn no(tag: Tag<'static>, code: Option<Code<'static>>, message: &str) -> Status<'static> {
    Status::no(Some(tag), code, text(message)).expect("ASCII text")
}

pub(super) fn bad(tag: Option<Tag<'static>>, message: &str) -> Status<'static> {
    Status::bad(tag, None, text(message)).expect("ASCII text")
}

pub(super) fn other_code(code: &str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(code.as_bytes().to_vec()))
}

/// RFC 8474 §4.1's `MAILBOXID (m12)`, JMAP's id of the same mailbox.
pub(super) fn mailbox_id_code(id: i64) -> Code<'static> {
    other_code(&format!("MAILBOXID (m{id})"))
}

pub(super) fn atom(text: &str) -> Atom<'static> {
    Atom::try_from(text.to_owned()).expect("a valid atom")
}

/// SEARCH and THREAD take the charsets every string of ours is in.
pub(super) fn searchable_charset(charset: &Charset<'_>) -> bool {
    let name = charset.as_ref();
    name.eq_ignore_ascii_case("UTF-8") || name.eq_ignore_ascii_case("US-ASCII")
}

/// `NO [BADCHARSET (UTF-8 US-ASCII)]` (RFC 9051 §7.1).
pub(super) fn bad_charset(tag: Tag<'static>) -> Status<'static> {
    let allowed = ["UTF-8", "US-ASCII"].map(|c| Charset::try_from(c).expect("valid")).to_vec();
    no(tag, Some(Code::BadCharset { allowed }), "unsupported charset")
}

/// A failed call on the store, as the NO a client understands (RFC 5530 response codes): the one place
/// the store's typed errors become IMAP's.
pub(super) fn refusal(tag: Tag<'static>, error: &StoreError) -> Status<'static> {
    let (code, message) = match error {
        StoreError::NonExistent(message) => (other_code("NONEXISTENT"), message.as_str()),
        StoreError::AlreadyExists(message) => (other_code("ALREADYEXISTS"), message.as_str()),
        StoreError::HasChildren(message) => (other_code("HASCHILDREN"), message.as_str()),
        StoreError::SpecialUseTaken(message) => (other_code("USEATTR"), message.as_str()),
        StoreError::OverQuota(message) => (Code::OverQuota, message.as_str()),
        StoreError::Cannot(message) => (other_code("CANNOT"), message.as_str()),
        StoreError::Unavailable(_) => (other_code("UNAVAILABLE"), "the mail store is unavailable, try again"),
        StoreError::Other(message) => (other_code("UNAVAILABLE"), message.as_str()),
    };
    no(tag, Some(code), message)
}

/// An untagged BYE with a response code (`LIMIT`, `UNAVAILABLE`), as bytes: what the connection says
/// when it ends a session itself (a timeout, a shutdown) or the session ends over a limit.
pub fn bye(code: Option<&str>, text: &str) -> Vec<u8> {
    encode(Status::bye(code.map(other_code), text.to_owned()).expect("ASCII text"))
}

pub(super) fn encode(status: Status<'static>) -> Vec<u8> {
    ResponseCodec::default().encode(&Response::Status(status)).dump()
}

/// A mailbox name from the client: modified UTF-7, or (after ENABLE UTF8=ACCEPT, RFC 6855 §3) UTF-8.
pub(super) fn mailbox_name_in(mailbox: &Mailbox<'_>, utf8: bool) -> Option<String> {
    match mailbox {
        Mailbox::Inbox => Some("INBOX".into()),
        Mailbox::Other(other) => {
            let name = std::str::from_utf8(other.inner().as_ref()).ok()?;
            if utf8 { Some(name.to_owned()) } else { render::from_utf7(name) }
        }
    }
}

/// A mailbox name for the client, in the form it reads.
pub(super) fn wire_mailbox_in(name: &str, utf8: bool) -> Mailbox<'static> {
    use imap_types::core::{AString, IString};
    use imap_types::extensions::utf8::QuotedUtf8;
    use imap_types::mailbox::MailboxOther;
    if utf8 && !name.is_ascii() {
        // A quoted UTF-8 string, as RFC 6855 lets the server send once the client enabled it.
        let quoted = QuotedUtf8::try_from(name.to_owned()).ok().map(IString::QuotedUtf8).map(AString::String);
        if let Some(other) = quoted.and_then(|q| MailboxOther::try_from(q).ok()) {
            return Mailbox::Other(other);
        }
    }
    let name = if utf8 { name.to_owned() } else { render::to_utf7(name) };
    Mailbox::try_from(name).unwrap_or(Mailbox::Inbox)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imap4rev1_is_spelled_as_rfc_3501_does_in_capability_lists_only() {
        for (from, to) in [
            (&b"* OK [CAPABILITY IMAP4REV1 IDLE] ready\r\n"[..], &b"* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n"[..]),
            (b"* CAPABILITY IMAP4REV1 LITERAL+\r\n", b"* CAPABILITY IMAP4rev1 LITERAL+\r\n"),
            (
                b"a1 OK [CAPABILITY IMAP4REV1 UIDPLUS] logged in\r\n",
                b"a1 OK [CAPABILITY IMAP4rev1 UIDPLUS] logged in\r\n",
            ),
            // Anything else, message data included, is left as it is.
            (
                b"* 1 FETCH (BODY[] {20}\r\nCAPABILITY IMAP4REV1)\r\n",
                b"* 1 FETCH (BODY[] {20}\r\nCAPABILITY IMAP4REV1)\r\n",
            ),
            (b"* OK IMAP4REV1\r\n", b"* OK IMAP4REV1\r\n"),
            (b"*", b"*"),
        ] {
            let mut frame = from.to_vec();
            spell_imap4rev1(&mut frame);
            assert_eq!(frame, to, "{}", String::from_utf8_lossy(from));
        }
    }
}
