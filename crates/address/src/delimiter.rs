//! Plus-addressing: Postfix's `recipient_delimiter`, Dovecot's `recipient_delimiter`. A recipient
//! `alice+lists@example.org` is `alice@example.org` with the detail `lists`, so that a user can hand out
//! addresses for filtering without anyone creating them.

use std::fmt;
use std::str::FromStr;

use crate::EmailAddress;

/// The characters that separate a local part from its detail; empty turns plus-addressing off. As in
/// Postfix, each character is a delimiter of its own (`+-` makes both `alice+x` and `alice-x` alice's),
/// and the local part is cut at the first of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientDelimiter(Vec<char>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "recipient delimiter {0:?} is not allowed: it must be a character of an unquoted local part, not a letter, digit or '.'"
)]
pub struct BadDelimiter(pub char);

impl RecipientDelimiter {
    /// Plus-addressing off.
    pub fn none() -> Self {
        RecipientDelimiter(Vec::new())
    }

    pub fn is_enabled(&self) -> bool {
        !self.0.is_empty()
    }

    /// The address without its detail (`alice+lists@example.org` → `alice@example.org`), or `None` when
    /// it has none. As Postfix, a local part that starts with a delimiter has no base to cut to
    /// (`+lists@…` stays as it is), and a quoted local part is never cut.
    pub fn base(&self, address: &EmailAddress) -> Option<EmailAddress> {
        let local = address.local_part();
        if local.starts_with('"') {
            return None;
        }
        let cut = local.find(|c| self.0.contains(&c)).filter(|&at| at > 0)?;
        // `alice.+x` would leave `alice.`, which is no address.
        format!("{}@{}", &local[..cut], address.domain()).parse().ok()
    }
}

impl FromStr for RecipientDelimiter {
    type Err = BadDelimiter;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut chars = Vec::new();
        for c in s.chars() {
            // RFC 5322 §3.2.3 atext, less what would make the base of an ordinary address ambiguous.
            let allowed = c.is_ascii_punctuation() && "!#$%&'*+-/=?^_`{|}~".contains(c);
            if !allowed {
                return Err(BadDelimiter(c));
            }
            if !chars.contains(&c) {
                chars.push(c);
            }
        }
        Ok(RecipientDelimiter(chars))
    }
}

impl fmt::Display for RecipientDelimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|c| write!(f, "{c}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(delimiter: &str, address: &str) -> Option<String> {
        let delimiter: RecipientDelimiter = delimiter.parse().unwrap();
        delimiter.base(&address.parse().unwrap()).map(|a| a.to_string())
    }

    #[test]
    fn the_detail_is_cut_at_the_first_delimiter() {
        assert_eq!(base("+", "alice+lists@example.org").as_deref(), Some("alice@example.org"));
        assert_eq!(base("+", "Alice+Lists+more@example.org").as_deref(), Some("Alice@example.org"));
        assert_eq!(base("+", "alice+@example.org").as_deref(), Some("alice@example.org"));
        assert_eq!(base("+-", "alice-lists@example.org").as_deref(), Some("alice@example.org"));
        assert_eq!(base("+-", "al-ice+x@example.org").as_deref(), Some("al@example.org"));
    }

    #[test]
    fn addresses_without_a_detail_have_no_base() {
        assert_eq!(base("+", "alice@example.org"), None);
        assert_eq!(base("+", "+lists@example.org"), None, "nothing before the delimiter");
        assert_eq!(base("+", "alice.+x@example.org"), None, "the base would not be an address");
        assert_eq!(base("+", "\"alice+x\"@example.org"), None, "quoted local parts are not cut");
        assert_eq!(base("", "alice+lists@example.org"), None, "empty turns it off");
        assert_eq!(base("-", "alice+lists@example.org"), None);
    }

    #[test]
    fn delimiters_are_checked() {
        for bad in ["a", "1", ".", "@", " ", "\"", "é", "+ "] {
            assert!(bad.parse::<RecipientDelimiter>().is_err(), "{bad:?}");
        }
        let parsed: RecipientDelimiter = "+-+".parse().unwrap();
        assert_eq!(parsed.to_string(), "+-");
        assert!(parsed.is_enabled());
        assert!(!"".parse::<RecipientDelimiter>().unwrap().is_enabled());
    }
}
