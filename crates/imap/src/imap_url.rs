//! RFC 5092 IMAP URLs as CATENATE (RFC 4469 §3) uses them: a message, or a part of it, in one of the
//! user's own mailboxes, written relative (`/INBOX;UIDVALIDITY=385759045/;UID=20/;SECTION=1.2`) or absolute
//! (`imap://alice@imap.example.org/INBOX;UIDVALIDITY=...`). Parsing only: whether the user and host are
//! this session's, and whether the message exists, the session asks afterwards.
//!
//! URLAUTH (RFC 4467), which lets another user's URL be read, is not supported: such a URL does not parse.

/// A URL naming one message (and perhaps a section and a range of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageUrl {
    /// The absolute form's user, percent-decoded (`;AUTH=` dropped).
    pub user: Option<String>,
    /// The absolute form's host, without the port.
    pub host: Option<String>,
    /// The mailbox name, percent-decoded (UTF-8, RFC 5092 §5).
    pub mailbox: String,
    pub uidvalidity: Option<u32>,
    pub uid: u32,
    /// The IMAP section spec (`1.2`, `HEADER`, `1.MIME`, ...), percent-decoded.
    pub section: Option<String>,
    /// `;PARTIAL=offset[.length]`.
    pub partial: Option<(u64, Option<u64>)>,
}

/// The URL, or `None` when it is not an IMAP message URL this server reads.
pub fn parse(url: &str) -> Option<MessageUrl> {
    let (user, host, path) = match strip_prefix_ignore_case(url, "imap://") {
        Some(rest) => {
            let slash = rest.find('/')?;
            let (authority, path) = rest.split_at(slash);
            let (user, host) = match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split(';').next().unwrap_or_default();
                    (Some(decode(user)?).filter(|u| !u.is_empty()), host)
                }
                None => (None, authority),
            };
            let host = match host.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => host,
            };
            if host.is_empty() {
                return None;
            }
            (user, Some(host.to_owned()), path)
        }
        None => (None, None, url),
    };
    // The path: `/` enc-mailbox [;UIDVALIDITY=n] `/;UID=n` [`/;SECTION=s`] [`/;PARTIAL=o[.l]`].
    let path = path.strip_prefix('/')?;
    let mut pieces = path.split("/;");
    let mailbox_part = pieces.next()?;
    let (mailbox, uidvalidity) = match find_ignore_case(mailbox_part, ";UIDVALIDITY=") {
        Some(at) => (&mailbox_part[..at], Some(number(&mailbox_part[at + ";UIDVALIDITY=".len()..])?)),
        None => (mailbox_part, None),
    };
    let mailbox = decode(mailbox)?;
    if mailbox.is_empty() {
        return None;
    }
    let uid = number(strip_prefix_ignore_case(pieces.next()?, "UID=")?)?;
    let mut section = None;
    let mut partial = None;
    for piece in pieces {
        if let Some(value) = strip_prefix_ignore_case(piece, "SECTION=") {
            if section.is_some() || partial.is_some() {
                return None;
            }
            section = Some(decode(value)?).filter(|s| !s.is_empty());
            section.as_ref()?;
        } else if let Some(value) = strip_prefix_ignore_case(piece, "PARTIAL=") {
            if partial.is_some() {
                return None;
            }
            partial = Some(match value.split_once('.') {
                Some((offset, length)) => (u64::from(number(offset)?), Some(u64::from(number(length)?))),
                None => (u64::from(number(value)?), None),
            });
        } else {
            // URLAUTH, EXPIRE and anything else this server does not read.
            return None;
        }
    }
    Some(MessageUrl { user, host, mailbox, uidvalidity, uid: nonzero(uid)?, section, partial })
}

fn nonzero(n: u32) -> Option<u32> {
    (n != 0).then_some(n)
}

/// A decimal number that fits in 32 bits, digits only.
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Undoes `%XX` escapes; the result must be UTF-8 with no control characters.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    (!text.chars().any(char::is_control)).then_some(text)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

fn find_ignore_case(text: &str, needle: &str) -> Option<usize> {
    text.to_ascii_uppercase().find(&needle.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_urls() {
        assert_eq!(
            parse("/Drafts;UIDVALIDITY=385759045/;UID=20/;SECTION=1.2"),
            Some(MessageUrl {
                user: None,
                host: None,
                mailbox: "Drafts".into(),
                uidvalidity: Some(385_759_045),
                uid: 20,
                section: Some("1.2".into()),
                partial: None,
            })
        );
        let absolute = parse("imap://alice%40example.org;AUTH=*@imap.example.org:143/My%20Box;uidvalidity=7/;uid=3/;section=HEADER.FIELDS%20(SUBJECT)/;PARTIAL=0.10").unwrap();
        assert_eq!(absolute.user.as_deref(), Some("alice@example.org"));
        assert_eq!(absolute.host.as_deref(), Some("imap.example.org"));
        assert_eq!(absolute.mailbox, "My Box");
        assert_eq!(absolute.section.as_deref(), Some("HEADER.FIELDS (SUBJECT)"));
        assert_eq!(absolute.partial, Some((0, Some(10))));
        let hostless_user = parse("imap://mail.example.org/INBOX/;UID=1").unwrap();
        assert_eq!((hostless_user.user, hostless_user.host.as_deref()), (None, Some("mail.example.org")));
    }

    #[test]
    fn what_is_not_a_message_url() {
        for url in [
            "",
            "INBOX;UID=1",
            "/INBOX",
            "/INBOX/;UID=0",
            "/INBOX/;UID=x",
            "/INBOX/;UID=99999999999",
            "/INBOX;UIDVALIDITY=/;UID=1",
            "/;UID=1",
            "/INBOX/;UID=1/;URLAUTH=anonymous:internal:91354a473744909de610943775f92038",
            "/INBOX/;UID=1/;SECTION=",
            "/IN%ZZBOX/;UID=1",
            "/IN%0ABOX/;UID=1",
            "/INBOX/;UID=1/;PARTIAL=1.2.3",
            "imap:///INBOX/;UID=1",
            "http://example.org/INBOX/;UID=1",
        ] {
            assert_eq!(parse(url), None, "{url}");
        }
    }
}
