//! RFC 9051 §6.3.9 LIST patterns: which mailbox names a pattern with "*" and "%" wildcards matches.

use mailbus_address::MailboxName;

const SEPARATOR: char = MailboxName::SEPARATOR;
const INBOX: &str = MailboxName::INBOX;

/// "*" matches any run of characters, "%" any run without the separator. INBOX matches
/// case-insensitively, as its name is.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
