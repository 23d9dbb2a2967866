//! RFC 9051 §6.3.9 LIST patterns: which mailbox names a pattern with "*" and "%" wildcards matches.

use mailbus_address::MailboxName;

const SEPARATOR: char = MailboxName::SEPARATOR;
const INBOX: &str = MailboxName::INBOX;

/// The most patterns one LIST may give (RFC 5258 allows a list; clients send one to three).
pub const MAX_PATTERNS: usize = 64;
/// The longest pattern, reference included: twice the longest name (a longer one either matches nothing
/// or repeats wildcards to no effect), where a client could otherwise have every one of its patterns
/// joined to a reference of tens of kilobytes and matched against every mailbox.
pub const MAX_PATTERN_LEN: usize = 2 * MailboxName::MAX_LEN;

/// Whether a LIST's reference and patterns are within [`MAX_PATTERNS`] and [`MAX_PATTERN_LEN`].
pub fn within_limits(reference: &str, patterns: &[String]) -> bool {
    patterns.len() <= MAX_PATTERNS && patterns.iter().all(|p| reference.len() + p.len() <= MAX_PATTERN_LEN)
}

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
    let mut next = vec![false; name.len() + 1];
    for &c in pattern {
        next.fill(false);
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
        std::mem::swap(&mut row, &mut next);
    }
    row[name.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_has_at_most_64_patterns_of_at_most_2048_octets_with_its_reference() {
        let patterns = |n: usize, len: usize| vec!["*".repeat(len); n];
        assert!(within_limits("", &patterns(64, 2048)));
        assert!(!within_limits("", &patterns(65, 1)));
        assert!(!within_limits("", &patterns(1, 2049)));
        assert!(!within_limits(&"z".repeat(32 * 1024), &patterns(1, 1)), "the reference counts");
        assert!(within_limits("Archive/", &patterns(3, 20)));
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
}
