//! RFC 5258 LIST-EXTENDED (with RFC 5819 LIST-STATUS and RFC 6154 SPECIAL-USE), which imap-codec 2.0 alpha
//! cannot parse: the selection options, a parenthesised list of patterns and the return options are cut
//! out of the command, leaving a plain `LIST reference pattern` for imap-codec, and the session lists by
//! what was cut out. Also the CHILDINFO extended data item (§3.5), which imap-types cannot write.

use super::render::{Extended, parenthesised};

/// Selection options (§3, RFC 6154 §3). REMOTE selects nothing more here (there are no referrals).
const SELECTION: [&str; 4] = ["SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"];
/// Return options (§3, RFC 5819, RFC 6154).
const RETURNS: [&str; 4] = ["SUBSCRIBED", "CHILDREN", "STATUS", "SPECIAL-USE"];

/// `rest` is a command after its tag, known to start with `LIST `. None when it is not the extended
/// syntax (a plain LIST is imap-codec's) or is not valid (BAD).
pub fn rewrite(tag: &str, rest: &str) -> Option<(Extended, Vec<u8>)> {
    let mut middle = rest["LIST ".len()..].trim_start();
    let mut selection = Vec::new();
    if middle.starts_with('(') {
        let (inside, after) = parenthesised(middle)?;
        selection = inside.split_whitespace().map(str::to_ascii_uppercase).collect();
        if !selection.iter().all(|o| SELECTION.contains(&o.as_str())) {
            return None;
        }
        // §3: RECURSIVEMATCH alone (or with REMOTE only) is BAD.
        let recursive = selection.iter().any(|o| o == "RECURSIVEMATCH");
        if recursive && !selection.iter().any(|o| o != "RECURSIVEMATCH" && o != "REMOTE") {
            return None;
        }
        middle = after.trim_start();
    }
    let (mut returns, mut status) = (Vec::new(), Vec::new());
    if let Some(at) = middle.to_ascii_uppercase().rfind(" RETURN (") {
        let (inside, after) = parenthesised(&middle[at + " RETURN ".len()..])?;
        if !after.trim().is_empty() {
            return None;
        }
        (returns, status) = return_options(inside)?;
        middle = &middle[..at];
    }
    let (reference, patterns) = split_patterns(middle)?;
    if selection.is_empty() && returns.is_empty() && patterns.is_empty() {
        return None;
    }
    // A pattern list is left out for imap-codec, which parses one pattern; the session lists by the list.
    let command =
        if patterns.is_empty() { format!("{tag} LIST {middle}\r\n") } else { format!("{tag} LIST {reference} *\r\n") };
    Some((Extended::List { selection, returns, status, patterns }, command.into_bytes()))
}

/// The return options and STATUS's items, upper case.
fn return_options(inside: &str) -> Option<(Vec<String>, Vec<String>)> {
    let (mut returns, mut status) = (Vec::new(), Vec::new());
    let mut rest = inside.trim();
    while !rest.is_empty() {
        let (word, after) = rest.split_once(' ').unwrap_or((rest, ""));
        let word = word.to_ascii_uppercase();
        rest = after.trim_start();
        if word == "STATUS" && rest.starts_with('(') {
            let (items, after) = parenthesised(rest)?;
            status = items.split_whitespace().map(str::to_ascii_uppercase).collect();
            rest = after.trim_start();
        }
        if !RETURNS.contains(&word.as_str()) {
            return None;
        }
        returns.push(word);
    }
    Some((returns, status))
}

/// `reference pattern` or `reference (pattern ...)`: the reference as written, and the patterns of a list
/// (unquoted), or none for a single pattern. A literal in a pattern list is not taken (BAD).
fn split_patterns(middle: &str) -> Option<(&str, Vec<String>)> {
    let middle = middle.trim();
    let reference_end = if middle.starts_with('"') {
        quoted_end(middle)?
    } else if middle.starts_with('{') {
        // A literal reference: only a single pattern can follow that imap-codec reads whole.
        return Some((middle, Vec::new()));
    } else {
        middle.find(' ')?
    };
    let (reference, rest) = middle.split_at(reference_end);
    let rest = rest.trim_start();
    if !rest.starts_with('(') {
        return Some((reference, Vec::new()));
    }
    let (inside, after) = parenthesised(rest)?;
    if !after.trim().is_empty() {
        return None;
    }
    let patterns = words(inside)?;
    if patterns.is_empty() {
        return None;
    }
    Some((reference, patterns))
}

/// One past the closing quote of the quoted string `text` opens with.
fn quoted_end(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// The quoted strings and atoms of a pattern list, unquoted.
fn words(inside: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut rest = inside.trim_start();
    while !rest.is_empty() {
        if rest.starts_with('"') {
            let end = quoted_end(rest)?;
            let mut word = String::new();
            let mut chars = rest[1..end - 1].chars();
            while let Some(c) = chars.next() {
                word.push(if c == '\\' { chars.next()? } else { c });
            }
            words.push(word);
            rest = rest[end..].trim_start();
        } else {
            let end = rest.find([' ', '(', ')', '{', '"']).unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            words.push(rest[..end].to_owned());
            rest = rest[end..].trim_start();
        }
    }
    Some(words)
}

/// §3.5: a LIST line (as imap-codec wrote it) with `("CHILDINFO" ("SUBSCRIBED"))` after the name.
pub fn with_child_info(line: Vec<u8>) -> Vec<u8> {
    let mut line = line;
    let end = line.len() - if line.ends_with(b"\r\n") { 2 } else { 0 };
    line.splice(end..end, b" (\"CHILDINFO\" (\"SUBSCRIBED\"))".iter().copied());
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(line: &str) -> Option<(Extended, String)> {
        let (tag, rest) = line.split_once(' ')?;
        rewrite(tag, rest).map(|(ext, rest)| (ext, String::from_utf8(rest).unwrap()))
    }

    #[test]
    fn pattern_lists_and_options_are_cut_out() {
        let (ext, rest) = list("a1 LIST \"\" (INBOX \"Sent Items\" \"a\\\\b\" %/x)").unwrap();
        let patterns = vec!["INBOX".to_owned(), "Sent Items".into(), "a\\b".into(), "%/x".into()];
        assert_eq!(ext, Extended::List { selection: vec![], returns: vec![], status: vec![], patterns });
        assert_eq!(rest, "a1 LIST \"\" *\r\n");
        let (ext, rest) =
            list("a2 LIST (SUBSCRIBED RECURSIVEMATCH) Work (% \"*\") RETURN (CHILDREN STATUS (MESSAGES))").unwrap();
        assert_eq!(
            ext,
            Extended::List {
                selection: vec!["SUBSCRIBED".into(), "RECURSIVEMATCH".into()],
                returns: vec!["CHILDREN".into(), "STATUS".into()],
                status: vec!["MESSAGES".into()],
                patterns: vec!["%".into(), "*".into()],
            }
        );
        assert_eq!(rest, "a2 LIST Work *\r\n");
        let (_, rest) = list("a3 LIST (SPECIAL-USE) \"\" \"*\"").unwrap();
        assert_eq!(rest, "a3 LIST \"\" \"*\"\r\n");
    }

    #[test]
    fn what_rfc_5258_calls_bad_is_not_taken() {
        assert_eq!(list("b1 LIST \"\" *"), None, "plain LIST is imap-codec's");
        assert_eq!(list("b2 LIST (RECURSIVEMATCH) \"\" *"), None, "RECURSIVEMATCH alone");
        assert_eq!(list("b3 LIST (REMOTE RECURSIVEMATCH) \"\" *"), None, "RECURSIVEMATCH with REMOTE only");
        assert_eq!(list("b4 LIST (FOO) \"\" *"), None, "unknown selection option");
        assert_eq!(list("b5 LIST \"\" ()"), None, "an empty pattern list");
        assert_eq!(list("b6 LIST \"\" (a {3}\r\nabc)"), None, "a literal in the list");
        assert_eq!(list("b7 LIST \"\" (a) extra"), None);
        assert_eq!(list("b8 LIST \"\" * RETURN (BAR)"), None, "unknown return option");
    }

    #[test]
    fn child_info_follows_the_name() {
        let line = with_child_info(b"* LIST () \"/\" Foo\r\n".to_vec());
        assert_eq!(line, b"* LIST () \"/\" Foo (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n");
    }
}
