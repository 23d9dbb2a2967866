//! RFC 6154 §3 CREATE-SPECIAL-USE, `CREATE name (USE (\Drafts))`, which imap-codec 2.0 alpha does not
//! parse: the parameter list is cut off the end of the command, and the rest goes through imap-codec.

/// The special-use attributes the store keeps (one mailbox per attribute and account).
pub const ATTRIBUTES: &[&str] = &["\\Drafts", "\\Sent", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged"];

/// `rest` (a command after its tag) as a CREATE without its `(USE (...))` parameter, and the attributes
/// it named, as written; None when it is not a CREATE with that parameter.
pub fn rewrite(tag: &str, rest: &str) -> Option<(Vec<String>, Vec<u8>)> {
    if !rest.get(..7)?.eq_ignore_ascii_case("CREATE ") {
        return None;
    }
    let upper = rest.to_ascii_uppercase();
    let at = upper.rfind(" (USE (")?;
    let inside = rest[at + " (USE (".len()..].strip_suffix("))")?;
    if inside.contains(['(', ')', '"', '{']) {
        return None;
    }
    let attributes = inside.split_whitespace().map(str::to_owned).collect();
    Some((attributes, format!("{tag} {}\r\n", &rest[..at]).into_bytes()))
}

/// The store's spelling of `given`, when it is the one attribute the store can give a mailbox.
pub fn attribute(given: &[String]) -> Option<&'static str> {
    match given {
        [one] => ATTRIBUTES.iter().copied().find(|a| a.eq_ignore_ascii_case(one)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_use_parameter_is_cut_off() {
        let (uses, line) = rewrite("c1", "CREATE \"My (USE (x)) Drafts\" (USE (\\Drafts))").unwrap();
        assert_eq!(uses, ["\\Drafts"]);
        assert_eq!(line, b"c1 CREATE \"My (USE (x)) Drafts\"\r\n");
        let (uses, line) = rewrite("c2", "create Box (use ())").unwrap();
        assert!(uses.is_empty());
        assert_eq!(line, b"c2 create Box\r\n");
        assert_eq!(rewrite("c3", "CREATE Box"), None);
        assert_eq!(rewrite("c4", "DELETE Box (USE (\\Sent))"), None);
    }

    #[test]
    fn only_one_known_attribute_can_be_given() {
        assert_eq!(attribute(&["\\sent".into()]), Some("\\Sent"));
        assert_eq!(attribute(&["\\Important".into()]), None);
        assert_eq!(attribute(&["\\Sent".into(), "\\Junk".into()]), None);
        assert_eq!(attribute(&[]), None);
    }
}
