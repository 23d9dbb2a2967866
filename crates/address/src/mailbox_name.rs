//! [`MailboxName`]: a mailbox's name as the store keeps it, UTF-8 with "/" between hierarchy levels and
//! "INBOX" in upper case whatever the client typed.

use std::fmt;
use std::str::FromStr;

/// A checked, normalised mailbox name: no empty levels, no control characters, no LIST wildcards, at most
/// [`MailboxName::MAX_LEN`] octets, and "INBOX" (in any case) as the first level spelt "INBOX".
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxName(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MailboxNameError {
    #[error("empty")]
    Empty,
    #[error("too long")]
    TooLong,
    #[error("control characters are not allowed")]
    ControlCharacter,
    #[error("empty hierarchy level")]
    EmptyLevel,
    #[error("\"*\" and \"%\" are not allowed")]
    Wildcard,
}

impl MailboxName {
    /// The one name every account has, and the only one that is case-insensitive (RFC 9051 §5.1).
    pub const INBOX: &'static str = "INBOX";
    /// Between hierarchy levels.
    pub const SEPARATOR: char = '/';
    /// The longest name accepted, in octets (Dovecot's default is 255 per level; this bounds the whole).
    pub const MAX_LEN: usize = 1024;

    pub fn inbox() -> Self {
        MailboxName(Self::INBOX.to_owned())
    }

    pub fn is_inbox(&self) -> bool {
        self.0 == Self::INBOX
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The names of its superiors, outermost first: "a/b/c" gives "a", "a/b". Each is a valid name, being
    /// whole levels of one.
    pub fn parents(&self) -> impl Iterator<Item = MailboxName> + '_ {
        self.0.match_indices(Self::SEPARATOR).map(|(i, _)| MailboxName(self.0[..i].to_owned()))
    }

    /// Whether this name lies somewhere below `other` in the hierarchy ("a/b/c" is below "a").
    pub fn is_below(&self, other: &MailboxName) -> bool {
        self.0.strip_prefix(other.as_str()).is_some_and(|rest| rest.starts_with(Self::SEPARATOR))
    }
}

impl FromStr for MailboxName {
    type Err = MailboxNameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if name.is_empty() {
            return Err(MailboxNameError::Empty);
        }
        if name.len() > Self::MAX_LEN {
            return Err(MailboxNameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(MailboxNameError::ControlCharacter);
        }
        if name.split(Self::SEPARATOR).any(str::is_empty) {
            return Err(MailboxNameError::EmptyLevel);
        }
        // RFC 9051 §5.1: "*" and "%" are LIST wildcards and cannot be part of a name.
        if name.contains(['*', '%']) {
            return Err(MailboxNameError::Wildcard);
        }
        let (first, rest) = name.split_once(Self::SEPARATOR).map_or((name, None), |(f, r)| (f, Some(r)));
        let first = if first.eq_ignore_ascii_case(Self::INBOX) { Self::INBOX } else { first };
        Ok(MailboxName(match rest {
            Some(rest) => format!("{first}{}{rest}", Self::SEPARATOR),
            None => first.to_owned(),
        }))
    }
}

impl fmt::Display for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<MailboxName> for String {
    fn from(name: MailboxName) -> Self {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> MailboxName {
        s.parse().unwrap()
    }

    #[test]
    fn names_are_checked_and_inbox_is_case_insensitive() {
        assert_eq!(name("inbox").as_str(), "INBOX");
        assert!(name("inbox").is_inbox());
        assert_eq!(name("InBox/Sub/inbox").as_str(), "INBOX/Sub/inbox");
        assert_eq!(name("Inboxes").as_str(), "Inboxes");
        assert_eq!(name("Ärger/2026").as_str(), "Ärger/2026");
        for bad in ["", "/a", "a/", "a//b", "a\u{0}b", "a*", "50%"] {
            assert!(bad.parse::<MailboxName>().is_err(), "{bad:?}");
        }
        assert_eq!("a".repeat(1025).parse::<MailboxName>(), Err(MailboxNameError::TooLong));
        assert_eq!("a//b".parse::<MailboxName>().unwrap_err().to_string(), "empty hierarchy level");
    }

    #[test]
    fn the_hierarchy_is_read_from_the_name() {
        assert_eq!(name("a/b/c").parents().map(String::from).collect::<Vec<_>>(), ["a", "a/b"]);
        assert!(name("a/b/c").is_below(&name("a")) && name("a/b").is_below(&name("a")));
        assert!(!name("ab").is_below(&name("a")) && !name("a").is_below(&name("a")));
    }
}
