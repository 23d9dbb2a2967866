//! RFC 8474 OBJECTID, which imap-codec 2.0 alpha cannot parse: FETCH's `EMAILID` and `THREADID`, STATUS's
//! `MAILBOXID` and SEARCH's `EMAILID e42` / `THREADID t40` are taken out of a command (or, for the search
//! keys, spelt as a HEADER key no real field can have), so the rest goes through imap-codec; the answers
//! are spliced into what imap-codec writes. The ids are JMAP's (`e`, `t`, `m` and the row id), so IMAP and
//! JMAP name the same objects alike.

/// The search key's HEADER field for EMAILID and THREADID: a colon cannot be in a field name (RFC 5322
/// §2.2), so no search for a real field reads as one.
pub const EMAIL_FIELD: &str = "emailid:";
pub const THREAD_FIELD: &str = "threadid:";

/// The RFC 8474 items a FETCH or STATUS asked for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ObjectIds {
    pub email: bool,
    pub thread: bool,
    pub mailbox: bool,
    /// RFC 8970 FETCH PREVIEW (with or without LAZY, which changes nothing: previews are stored).
    pub preview: bool,
    /// RFC 8514 FETCH SAVEDATE (`savedate.rs`), taken out with these.
    pub savedate: bool,
    /// The command asked for nothing else: an item (FETCH UID, STATUS MESSAGES) stands in for the list
    /// imap-codec would find empty, and is not answered.
    pub filler: bool,
}

/// A command's words outside quoted strings, with the parentheses split off as words of their own.
fn words(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {}
            '(' | ')' => words.push(c.to_string()),
            '"' => {
                let mut word = String::from('"');
                loop {
                    let c = chars.next()?;
                    word.push(c);
                    match c {
                        '\\' => word.push(chars.next()?),
                        '"' => break,
                        _ => {}
                    }
                }
                words.push(word);
            }
            // A literal: left to imap-codec, which says BAD if it must.
            '{' => return None,
            _ => {
                let mut word = c.to_string();
                while let Some(&next) = chars.peek() {
                    if matches!(next, ' ' | '(' | ')' | '"') {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                words.push(word);
            }
        }
    }
    Some(words)
}

fn join(words: &[String]) -> String {
    let mut out = String::new();
    for word in words {
        if !out.is_empty() && !out.ends_with('(') && word != ")" {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Whether a FETCH or STATUS item stays for imap-codec; an RFC 8474 one is noted instead.
fn keep(word: &str, verb: &str, ids: &mut ObjectIds) -> bool {
    let flag = match (word.to_ascii_uppercase().as_str(), verb) {
        ("EMAILID", "FETCH") => &mut ids.email,
        ("THREADID", "FETCH") => &mut ids.thread,
        ("MAILBOXID", "STATUS") => &mut ids.mailbox,
        ("PREVIEW", "FETCH") => &mut ids.preview,
        ("SAVEDATE", "FETCH") => &mut ids.savedate,
        _ => return true,
    };
    *flag = true;
    false
}

/// `line` (a whole command, CRLF optional) without its RFC 8474 additions, and which were there; None
/// when it has none.
pub fn rewrite(line: &str) -> Option<(ObjectIds, String)> {
    let line = line.strip_suffix("\r\n").or_else(|| line.strip_suffix('\n')).unwrap_or(line);
    let (tag, rest) = line.split_once(' ')?;
    let mut words = words(rest)?;
    let at = usize::from(words.first()?.eq_ignore_ascii_case("UID"));
    let verb = words.get(at)?.to_ascii_uppercase();
    let mut ids = ObjectIds::default();
    match verb.as_str() {
        "FETCH" | "STATUS" => {
            if verb == "FETCH" {
                drop_preview_modifiers(&mut words, at)?;
            }
            let before = words.len();
            // Inside a section (`BODY[HEADER.FIELDS (EMAILID)]`) a word is a field name.
            let mut section = false;
            words.retain(|w| {
                let inside = section || w.contains('[');
                section = inside && !w.contains(']');
                inside || keep(w, &verb, &mut ids)
            });
            if words.len() == before {
                return None;
            }
            let filler = if verb == "FETCH" { "UID" } else { "MESSAGES" };
            if let Some(empty) = words.windows(2).position(|w| w[0] == "(" && w[1] == ")") {
                words.insert(empty + 1, filler.into());
                ids.filler = true;
            } else if verb == "FETCH" && words.len() == at + 2 {
                // `FETCH 1 EMAILID`: the one item was taken out.
                words.push(filler.into());
                ids.filler = true;
            }
        }
        "SEARCH" => {
            let mut found = false;
            let mut i = at + 1;
            while i < words.len() {
                // RFC 8514's keys: a date (checked here, so a bad one is BAD) or none.
                if let Some((field, dated)) = crate::savedate::search_field(&words[i]) {
                    let (value, taken) = match dated {
                        true => (words.get(i + 1).filter(|v| crate::savedate::parse_date(v).is_some())?.clone(), 2),
                        false => (String::new(), 1),
                    };
                    let value = value.trim_matches('"').to_owned();
                    words.splice(i..i + taken, ["HEADER".to_owned(), format!("\"{field}\""), format!("\"{value}\"")]);
                    found = true;
                    i += 3;
                    continue;
                }
                let field = match words[i].to_ascii_uppercase().as_str() {
                    "EMAILID" => EMAIL_FIELD,
                    "THREADID" => THREAD_FIELD,
                    _ => {
                        i += 1;
                        continue;
                    }
                };
                let value = words.get(i + 1).filter(|v| v.bytes().all(|b| b.is_ascii_alphanumeric()))?.clone();
                words.splice(i..i + 2, ["HEADER".to_owned(), format!("\"{field}\""), format!("\"{value}\"")]);
                found = true;
                i += 3;
            }
            if !found {
                return None;
            }
        }
        _ => return None,
    }
    Some((ids, format!("{tag} {}\r\n", join(&words))))
}

/// RFC 8970 `PREVIEW (LAZY)`: the modifiers go, `PREVIEW` stays to be noted; None for a modifier other
/// than LAZY (imap-codec then answers BAD).
fn drop_preview_modifiers(words: &mut Vec<String>, at: usize) -> Option<()> {
    let (mut i, mut section) = (at + 1, false);
    while i < words.len() {
        let inside = section || words[i].contains('[');
        section = inside && !words[i].contains(']');
        if !inside && words[i].eq_ignore_ascii_case("PREVIEW") && words.get(i + 1).is_some_and(|w| w == "(") {
            let close = i + 1 + words[i + 1..].iter().position(|w| w == ")")?;
            if !words[i + 2..close].iter().all(|m| m.eq_ignore_ascii_case("LAZY")) {
                return None;
            }
            words.drain(i + 1..=close);
        }
        i += 1;
    }
    Some(())
}

/// The row id of an RFC 8474 id of `kind` (`e`, `t`), or 0, which names nothing, for anything else.
pub fn decode(kind: char, id: &str) -> i64 {
    id.strip_prefix(kind)
        .filter(|digits| !digits.is_empty() && !digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

/// `response` (one untagged line imap-codec wrote, ending in `)\r\n`) with `items` added inside its
/// last parenthesis, as the FETCH and STATUS answers with object ids are written.
pub fn splice(mut response: Vec<u8>, items: &str) -> Vec<u8> {
    let Some(close) = response.iter().rposition(|&b| b == b')') else { return response };
    let space = if response[..close].ends_with(b"(") { "" } else { " " };
    response.splice(close..close, format!("{space}{items}").into_bytes());
    response
}

/// RFC 8474 §7's answer: `EMAILID (e42) THREADID (t40)`, as asked, and RFC 8970's `PREVIEW "text"`.
pub fn fetch_items(ids: ObjectIds, email: i64, thread: i64, preview: &str) -> String {
    let mut items = Vec::new();
    if ids.email {
        items.push(format!("EMAILID (e{email})"));
    }
    if ids.thread {
        items.push(format!("THREADID (t{thread})"));
    }
    if ids.preview {
        items.push(format!("PREVIEW {}", string(preview)));
    }
    items.join(" ")
}

/// An IMAP string: quoted when it is printable ASCII, else a literal (8-bit text needs one in IMAP4rev1).
fn string(text: &str) -> String {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        format!("{{{}}}\r\n{text}", text.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_items_are_taken_out_and_a_lone_one_stands_in_for_the_list() {
        let (ids, line) = rewrite("a1 FETCH 1:* (FLAGS EMAILID THREADID)\r\n").unwrap();
        assert_eq!(line, "a1 FETCH 1:* (FLAGS)\r\n");
        assert_eq!(ids, ObjectIds { email: true, thread: true, ..Default::default() });
        let (ids, line) = rewrite("a2 UID FETCH 5 (EMAILID)").unwrap();
        assert_eq!(line, "a2 UID FETCH 5 (UID)\r\n");
        assert!(ids.email && ids.filler);
        let (ids, line) = rewrite("a3 fetch 2 threadid").unwrap();
        assert_eq!(line, "a3 fetch 2 UID\r\n");
        assert!(ids.thread && ids.filler && !ids.email);
        assert_eq!(rewrite("a4 FETCH 1 (FLAGS)"), None);
        assert_eq!(rewrite("a5 FETCH 1 (BODY.PEEK[HEADER.FIELDS (EMAILID)])"), None, "a field name");
    }

    #[test]
    fn preview_and_its_lazy_modifier_are_taken_out() {
        let (ids, line) = rewrite("p FETCH 1:* (FLAGS PREVIEW (LAZY))").unwrap();
        assert_eq!(line, "p FETCH 1:* (FLAGS)\r\n");
        assert!(ids.preview && !ids.filler);
        let (ids, line) = rewrite("p UID FETCH 2 PREVIEW").unwrap();
        assert_eq!(line, "p UID FETCH 2 UID\r\n");
        assert!(ids.preview && ids.filler);
        assert_eq!(rewrite("p FETCH 1 (PREVIEW (FUZZY))"), None, "an unknown modifier");
        let items = fetch_items(ObjectIds { preview: true, ..Default::default() }, 1, 1, "say \"hi\" \\o");
        assert_eq!(items, "PREVIEW \"say \\\"hi\\\" \\\\o\"");
        let items = fetch_items(ObjectIds { preview: true, ..Default::default() }, 1, 1, "café");
        assert_eq!(items, "PREVIEW {5}\r\ncafé");
    }

    #[test]
    fn status_mailboxid_is_taken_out() {
        let (ids, line) = rewrite("s STATUS \"My (box) MAILBOXID\" (MESSAGES MAILBOXID)\r\n").unwrap();
        assert_eq!(line, "s STATUS \"My (box) MAILBOXID\" (MESSAGES)\r\n");
        assert!(ids.mailbox && !ids.filler);
        let (ids, line) = rewrite("s STATUS INBOX (MAILBOXID)").unwrap();
        assert_eq!(line, "s STATUS INBOX (MESSAGES)\r\n");
        assert!(ids.mailbox && ids.filler);
    }

    #[test]
    fn search_keys_become_header_keys_no_field_can_match() {
        let (_, line) = rewrite("s UID SEARCH RETURN (COUNT) OR EMAILID e42 NOT THREADID t40").unwrap();
        assert_eq!(
            line,
            "s UID SEARCH RETURN (COUNT) OR HEADER \"emailid:\" \"e42\" NOT HEADER \"threadid:\" \"t40\"\r\n"
        );
        assert_eq!(rewrite("s SEARCH SUBJECT \"EMAILID e1\""), None, "quoted text is text");
        assert_eq!(rewrite("s SEARCH EMAILID"), None, "no value");
        assert_eq!(rewrite("s SEARCH EMAILID \"e\\\"1\""), None, "an id is alphanumeric");
        assert_eq!(rewrite("s SEARCH SUBJECT {3}"), None, "literals are left alone");
    }

    #[test]
    fn ids_decode_only_as_jmap_writes_them() {
        assert_eq!(decode('e', "e42"), 42);
        for wrong in ["t42", "e", "e042", "e4x", "E42"] {
            assert_eq!(decode('e', wrong), 0, "{wrong}");
        }
    }

    #[test]
    fn answers_are_spliced_into_the_last_parenthesis() {
        let fetch = splice(
            b"* 1 FETCH (UID 5)\r\n".to_vec(),
            &fetch_items(ObjectIds { email: true, thread: true, ..Default::default() }, 42, 40, ""),
        );
        assert_eq!(fetch, b"* 1 FETCH (UID 5 EMAILID (e42) THREADID (t40))\r\n");
        assert_eq!(splice(b"* STATUS INBOX ()\r\n".to_vec(), "MAILBOXID (m3)"), b"* STATUS INBOX (MAILBOXID (m3))\r\n");
    }
}
