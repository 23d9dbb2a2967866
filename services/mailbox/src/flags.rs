//! Message flags as the store keeps them: the RFC 9051 system flags a client may set, spelt canonically,
//! and keywords, each set without duplicates.

use crate::error::MailboxError;

/// The system flags a client may set (RFC 9051 §2.3.2; \Recent is the server's alone and gone in rev2).
const SYSTEM_FLAGS: &[&str] = &["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

/// Canonical spelling of flags, without duplicates (keywords compare case-insensitively, RFC 9051 §2.3.2,
/// and keep the spelling they were first given).
pub fn canonical(given: &[String]) -> Result<Vec<String>, MailboxError> {
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
    fn flags_are_canonical_and_keywords_checked() {
        let given = ["\\SEEN", "$Forwarded", "\\seen", "$forwarded", "\\Flagged"].map(String::from);
        assert_eq!(canonical(&given).unwrap(), ["\\Seen", "$Forwarded", "\\Flagged"]);
        for bad in ["\\Recent", "\\Whatever", "two words", "", "a(b"] {
            assert!(canonical(&[bad.to_owned()]).is_err(), "{bad:?}");
        }
    }
}
