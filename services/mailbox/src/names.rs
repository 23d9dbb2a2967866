//! Mailbox names and flags as the store keeps them: names are UTF-8 with "/" between levels and "INBOX"
//! in upper case whatever the client typed; flags are the RFC 9051 system flags, spelt canonically, and
//! keywords.

use crate::error::MailboxError;

pub const INBOX: &str = "INBOX";
pub const SEPARATOR: char = '/';

/// The longest name accepted, in octets (Dovecot's default is 255 per level; this bounds the whole).
const MAX_NAME: usize = 1024;

/// Checks and normalises a mailbox name: no empty levels, no control characters, and "INBOX" (any case)
/// as the first level becomes "INBOX".
pub fn mailbox_name(name: &str) -> Result<String, MailboxError> {
    let invalid = |why: &str| MailboxError::InvalidArgument(format!("mailbox name {name:?}: {why}"));
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > MAX_NAME {
        return Err(invalid("too long"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("control characters are not allowed"));
    }
    if name.split(SEPARATOR).any(str::is_empty) {
        return Err(invalid("empty hierarchy level"));
    }
    // RFC 9051 §5.1: "*" and "%" are LIST wildcards and cannot be part of a name.
    if name.contains(['*', '%']) {
        return Err(invalid("\"*\" and \"%\" are not allowed"));
    }
    let (first, rest) = name.split_once(SEPARATOR).map_or((name, None), |(f, r)| (f, Some(r)));
    let first = if first.eq_ignore_ascii_case(INBOX) { INBOX } else { first };
    Ok(match rest {
        Some(rest) => format!("{first}{SEPARATOR}{rest}"),
        None => first.to_owned(),
    })
}

/// The names of a mailbox's superiors, outermost first: "a/b/c" gives "a", "a/b".
pub fn parents(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices(SEPARATOR).map(|(i, _)| &name[..i])
}

/// RFC 9051 §6.3.9 LIST matching: "*" matches any run of characters, "%" any run without the separator.
/// INBOX matches case-insensitively, as its name is.
pub fn matches(pattern: &str, name: &str) -> bool {
    let first_level = name.split(SEPARATOR).next().unwrap_or_default();
    let case_insensitive = if first_level == INBOX { INBOX.len() } else { 0 };
    glob(pattern.as_bytes(), name.as_bytes(), case_insensitive)
}

/// Dynamic programming over (pattern position, name position), so that a pattern full of wildcards costs
/// O(pattern × name) rather than backtracking exponentially.
/// The first `case_insensitive` octets of the name (its INBOX) match letters in either case.
fn glob(pattern: &[u8], name: &[u8], case_insensitive: usize) -> bool {
    // row[j]: pattern[..i] matches name[..j].
    let mut row = vec![false; name.len() + 1];
    row[0] = true;
    for &c in pattern {
        let mut next = vec![false; name.len() + 1];
        match c {
            b'*' => {
                let mut any = false;
                for j in 0..=name.len() {
                    any |= row[j];
                    next[j] = any;
                }
            }
            b'%' => {
                let mut any = false;
                for j in 0..=name.len() {
                    if j > 0 && name[j - 1] == SEPARATOR as u8 {
                        any = false;
                    }
                    any |= row[j];
                    next[j] = any;
                }
            }
            _ => {
                for j in 1..=name.len() {
                    let same =
                        if j <= case_insensitive { name[j - 1].eq_ignore_ascii_case(&c) } else { name[j - 1] == c };
                    next[j] = row[j - 1] && same;
                }
            }
        }
        row = next;
    }
    row[name.len()]
}

/// The system flags a client may set (RFC 9051 §2.3.2; \Recent is the server's alone and gone in rev2).
const SYSTEM_FLAGS: &[&str] = &["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

/// Canonical spelling of flags, without duplicates (keywords compare case-insensitively, RFC 9051 §2.3.2,
/// and keep the spelling they were first given).
pub fn flags(given: &[String]) -> Result<Vec<String>, MailboxError> {
    let mut out: Vec<String> = Vec::with_capacity(given.len());
    for flag in given {
        let canonical = if let Some(system) = SYSTEM_FLAGS.iter().find(|s| s.eq_ignore_ascii_case(flag)) {
            (*system).to_owned()
        } else if flag.starts_with('\\') {
            return Err(MailboxError::InvalidArgument(format!("{flag} is not a flag that can be stored")));
        } else if flag.is_empty()
            || flag.len() > 255
            || flag.bytes().any(|b| b <= b' ' || b >= 0x7f || b"(){%*\"\\]".contains(&b))
        {
            return Err(MailboxError::InvalidArgument(format!("{flag:?} is not a valid keyword")));
        } else {
            flag.clone()
        };
        if !out.iter().any(|f| f.eq_ignore_ascii_case(&canonical)) {
            out.push(canonical);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_inbox_is_case_insensitive() {
        assert_eq!(mailbox_name("inbox").unwrap(), "INBOX");
        assert_eq!(mailbox_name("InBox/Sub/inbox").unwrap(), "INBOX/Sub/inbox");
        assert_eq!(mailbox_name("Inboxes").unwrap(), "Inboxes");
        assert_eq!(mailbox_name("Ärger/2026").unwrap(), "Ärger/2026");
        for bad in ["", "/a", "a/", "a//b", "a\u{0}b", "a*", "50%"] {
            assert!(mailbox_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parents("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
    }

    #[test]
    fn list_patterns_follow_rfc_9051() {
        assert!(matches("*", "a/b/c"));
        assert!(matches("%", "a"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(!matches("a/%", "a/b/c"));
        assert!(matches("a/*", "a/b/c"));
        assert!(matches("%/b", "a/b"));
        assert!(matches("*b", "a/b"));
        assert!(matches("a%c", "abbc"));
        assert!(!matches("a%c", "ab/c"));
        assert!(matches("inbox", "INBOX"));
        assert!(matches("Inbox/%", "INBOX/x"));
        assert!(!matches("inboxes", "Inboxes"), "only INBOX itself is case-insensitive");
        assert!(matches("inbox*", "INBOX") && matches("In%", "INBOX") && matches("inb*", "INBOX/Sub"));
        assert!(!matches("INBOX/sub", "INBOX/Sub"), "below INBOX, names are case-sensitive");
        assert!(matches("", "") && !matches("", "a"));
    }

    #[test]
    fn flags_are_canonical_and_keywords_checked() {
        let given = ["\\SEEN", "$Forwarded", "\\seen", "$forwarded", "\\Flagged"].map(String::from);
        assert_eq!(flags(&given).unwrap(), ["\\Seen", "$Forwarded", "\\Flagged"]);
        for bad in ["\\Recent", "\\Whatever", "two words", "", "a(b"] {
            assert!(flags(&[bad.to_owned()]).is_err(), "{bad:?}");
        }
    }
}
