//! JMAP keywords (RFC 8621 §4.1.1) and the IMAP flags they are stored as: `$seen` is `\Seen`, `$flagged`
//! `\Flagged`, `$answered` `\Answered`, `$draft` `\Draft`; `\Deleted` and `\Recent` have no keyword; any
//! other keyword is the flag of that name, compared case-insensitively and shown in lower case.

/// The system flags with a keyword of their own.
const MAPPED: &[(&str, &str)] =
    &[("$seen", "\\Seen"), ("$flagged", "\\Flagged"), ("$answered", "\\Answered"), ("$draft", "\\Draft")];

/// The keyword an IMAP flag is, if any.
pub fn of_flag(flag: &str) -> Option<String> {
    if let Some((keyword, _)) = MAPPED.iter().find(|(_, f)| f.eq_ignore_ascii_case(flag)) {
        return Some((*keyword).to_owned());
    }
    if flag.starts_with('\\') {
        return None;
    }
    Some(flag.to_ascii_lowercase())
}

/// The IMAP flag a keyword is stored as; `None` for a keyword RFC 8621 §4.1.1 does not allow (1 to 255 of
/// %x21-7e without `( ) { ] % * " \`).
pub fn to_flag(keyword: &str) -> Option<String> {
    let lower = keyword.to_ascii_lowercase();
    if let Some((_, flag)) = MAPPED.iter().find(|(k, _)| *k == lower) {
        return Some((*flag).to_owned());
    }
    let valid = !keyword.is_empty()
        && keyword.len() <= 255
        && keyword.bytes().all(|b| (0x21..=0x7e).contains(&b) && !b"(){]%*\"\\".contains(&b));
    valid.then_some(lower)
}

/// The keywords object of an email from its entries' flags (the union: a write keeps them equal).
pub fn object<'a>(flags: impl IntoIterator<Item = &'a String>) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for keyword in flags.into_iter().filter_map(|f| of_flag(f)) {
        out.insert(keyword, serde_json::Value::Bool(true));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_keywords_map_both_ways() {
        assert_eq!(of_flag("\\Seen").as_deref(), Some("$seen"));
        assert_eq!(of_flag("\\Answered").as_deref(), Some("$answered"));
        assert_eq!(of_flag("\\Deleted"), None);
        assert_eq!(of_flag("\\Recent"), None);
        assert_eq!(of_flag("$Forwarded").as_deref(), Some("$forwarded"));
        assert_eq!(to_flag("$Seen").as_deref(), Some("\\Seen"));
        assert_eq!(to_flag("$draft").as_deref(), Some("\\Draft"));
        assert_eq!(to_flag("$Work").as_deref(), Some("$work"));
        for bad in ["", "a b", "a(b", "\\Seen", "x]", "é"] {
            assert_eq!(to_flag(bad), None, "{bad:?}");
        }
        let flags = ["\\Seen", "\\Deleted", "$Work"].map(String::from);
        let keywords = object(flags.iter());
        assert_eq!(serde_json::Value::Object(keywords), serde_json::json!({"$seen": true, "$work": true}));
    }
}
