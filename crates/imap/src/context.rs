//! RFC 5267 CONTEXT=SEARCH and CONTEXT=SORT, and RFC 9394's negative PARTIAL ranges, as pure functions:
//! the RETURN options SEARCH and SORT take (`RETURN (MIN MAX COUNT ALL SAVE PARTIAL 1:10 UPDATE)`),
//! which results an ESEARCH reply returns (MODSEQ and SAVE follow them), and the ADDTO and REMOVEFROM
//! lines of a live UPDATE context. The session keeps the contexts (`session/update.rs`).

/// The most RETURN options a command may give (there are seven kinds; a repeated one is harmless, a
/// flood is refused).
const MAX_OPTIONS: usize = 16;

/// RFC 5267 §4.4 / RFC 9394 §3.1 `PARTIAL 1:10` (positions counted from 1 in result order) or
/// `PARTIAL -1:-10` (counted back from the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    pub first: u32,
    pub last: u32,
    pub from_end: bool,
}

impl Partial {
    /// `1:10`, `10:1`, `-1:-10`; None for anything else (zero, mixed signs, not numbers).
    pub fn parse(word: &str) -> Option<Partial> {
        let (a, b) = word.split_once(':')?;
        let number = |s: &str| -> Option<(u32, bool)> {
            let (digits, negative) = match s.strip_prefix('-') {
                Some(rest) => (rest, true),
                None => (s, false),
            };
            if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u32 = digits.parse().ok().filter(|&n| n > 0)?;
            Some((n, negative))
        };
        let ((a, neg_a), (b, neg_b)) = (number(a)?, number(b)?);
        if neg_a != neg_b {
            return None;
        }
        Some(Partial { first: a.min(b), last: a.max(b), from_end: neg_a })
    }

    /// The 0-based indexes of `len` results this range covers, in result order.
    pub fn indexes(&self, len: usize) -> std::ops::Range<usize> {
        let (first, last) = (self.first as usize, self.last as usize);
        if first > len {
            return 0..0;
        }
        if self.from_end { len.saturating_sub(last)..len - (first - 1) } else { first - 1..last.min(len) }
    }

    pub fn text(&self) -> String {
        match self.from_end {
            true => format!("-{}:-{}", self.first, self.last),
            false => format!("{}:{}", self.first, self.last),
        }
    }
}

/// The RETURN options of a SEARCH or SORT: the option words (upper case, PARTIAL's range taken out) and
/// the range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnOptions {
    pub words: Vec<String>,
    pub partial: Option<Partial>,
}

impl ReturnOptions {
    pub fn has(&self, option: &str) -> bool {
        self.words.iter().any(|w| w == option)
    }

    /// Nothing asked for but SAVE, UPDATE and CONTEXT: ALL is meant (RFC 4731 §3.1, RFC 5267 §4.2).
    pub fn all(&self) -> bool {
        let asks_nothing = |w: &String| ["SAVE", "UPDATE", "CONTEXT"].contains(&w.as_str());
        self.has("ALL") || self.words.iter().all(asks_nothing) && self.partial.is_none()
    }

    /// The 0-based indexes, in result order, of the `len` results a reply returns: every one with ALL or
    /// COUNT, else those MIN, MAX and PARTIAL name (MODSEQ is theirs, RFC 4731 §3.2, and SAVE saves
    /// them, RFC 5182 §2.1).
    pub fn returned(&self, len: usize) -> Vec<usize> {
        if self.all() || self.has("COUNT") {
            return (0..len).collect();
        }
        let mut picked: Vec<usize> = self.partial.map(|p| p.indexes(len).collect()).unwrap_or_default();
        if self.has("MIN") && len > 0 {
            picked.push(0);
        }
        if self.has("MAX") && len > 0 {
            picked.push(len - 1);
        }
        picked.sort_unstable();
        picked.dedup();
        picked
    }
}

/// The inside of `RETURN (...)`: the options `allowed` (upper case) and PARTIAL with its range; None
/// (BAD) for anything else, a bad range, or two PARTIALs.
pub fn parse_return(inside: &str, allowed: &[&str]) -> Option<ReturnOptions> {
    let mut options = ReturnOptions::default();
    let mut words = inside.split_whitespace();
    let mut count = 0;
    while let Some(word) = words.next() {
        count += 1;
        if count > MAX_OPTIONS {
            return None;
        }
        let word = word.to_ascii_uppercase();
        if word == "PARTIAL" {
            if options.partial.is_some() {
                return None;
            }
            options.partial = Some(Partial::parse(words.next()?)?);
        } else if allowed.contains(&word.as_str()) {
            options.words.push(word);
        } else {
            return None;
        }
    }
    Some(options)
}

/// ` PARTIAL (1:10 3,5:7)` (RFC 5267 §4.4): the range and the results in it, `set` already written in
/// the reply's order, NIL when there are none.
pub fn partial_data(partial: &Partial, set: &str) -> String {
    let set = if set.is_empty() { "NIL" } else { set };
    format!(" PARTIAL ({} {set})", partial.text())
}

/// The most tags one CANCELUPDATE may name.
const MAX_CANCEL: usize = 64;

/// RFC 5267 §4.3.5 `tag CANCELUPDATE "t1" "t2"` (a whole line, CRLF optional): its tag and the quoted
/// tags, or Err(tag) when the arguments are not one or more quoted strings. None when it is not
/// CANCELUPDATE at all.
pub fn cancel_update(line: &[u8]) -> Option<Result<(String, Vec<String>), String>> {
    let line = std::str::from_utf8(line).ok()?;
    let line = line.strip_suffix("\r\n").or_else(|| line.strip_suffix('\n')).unwrap_or(line);
    let (tag, rest) = line.split_once(' ')?;
    let (verb, args) = rest.split_once(' ').unwrap_or((rest, ""));
    if !verb.eq_ignore_ascii_case("CANCELUPDATE") {
        return None;
    }
    let mut tags = Vec::new();
    for arg in args.split(' ') {
        let inner = arg.strip_prefix('"').and_then(|a| a.strip_suffix('"'));
        match inner {
            Some(t) if !t.is_empty() && !t.contains(['"', '\\']) && tags.len() < MAX_CANCEL => tags.push(t.to_owned()),
            _ => return Some(Err(tag.to_owned())),
        }
    }
    Some(Ok((tag.to_owned(), tags)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_update_takes_quoted_tags() {
        assert_eq!(
            cancel_update(b"c CANCELUPDATE \"a\" \"b\"\r\n"),
            Some(Ok(("c".into(), vec!["a".into(), "b".into()])))
        );
        assert_eq!(cancel_update(b"c cancelupdate a\r\n"), Some(Err("c".into())));
        assert_eq!(cancel_update(b"c CANCELUPDATE\r\n"), Some(Err("c".into())));
        assert_eq!(cancel_update(b"c CANCELUPDATE \"\"\r\n"), Some(Err("c".into())));
        assert_eq!(cancel_update(b"c NOOP\r\n"), None);
    }

    #[test]
    fn ranges_parse_either_way_round_and_from_the_end() {
        assert_eq!(Partial::parse("1:10"), Some(Partial { first: 1, last: 10, from_end: false }));
        assert_eq!(Partial::parse("10:1"), Some(Partial { first: 1, last: 10, from_end: false }));
        assert_eq!(Partial::parse("-1:-5"), Some(Partial { first: 1, last: 5, from_end: true }));
        for bad in ["0:3", "1:-3", "1", "a:b", "1:99999999999", ":", "-:-1", "1:2:3"] {
            assert_eq!(Partial::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn indexes_are_clipped_to_the_results() {
        let p = |w: &str| Partial::parse(w).unwrap();
        assert_eq!(p("1:3").indexes(5), 0..3);
        assert_eq!(p("4:10").indexes(5), 3..5);
        assert_eq!(p("6:10").indexes(5), 0..0);
        assert_eq!(p("-1:-2").indexes(5), 3..5);
        assert_eq!(p("-4:-9").indexes(5), 0..2);
        assert_eq!(p("-6:-9").indexes(5), 0..0);
    }

    #[test]
    fn options_parse_and_say_what_is_returned() {
        let allowed = ["MIN", "MAX", "COUNT", "ALL", "SAVE", "UPDATE"];
        let options = parse_return("min partial 2:3", &allowed).unwrap();
        assert_eq!(options.words, ["MIN"]);
        assert_eq!(options.returned(5), [0, 1, 2]);
        assert!(!options.all());
        assert!(parse_return("", &allowed).unwrap().all());
        assert!(parse_return("SAVE UPDATE", &allowed).unwrap().all());
        assert!(parse_return("CONTEXT", &["CONTEXT"]).unwrap().all());
        assert!(!parse_return("CONTEXT COUNT", &["CONTEXT", "COUNT"]).unwrap().all());
        assert_eq!(parse_return("PARTIAL 1:2 PARTIAL 3:4", &allowed), None);
        assert_eq!(parse_return("PARTIAL", &allowed), None);
        assert_eq!(parse_return("FUZZY", &allowed), None);
        assert_eq!(parse_return(&"MIN ".repeat(17), &allowed), None);
    }
}
