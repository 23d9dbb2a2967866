//! Comparators (RFC 4790: `i;octet`, `i;ascii-casemap`, `i;ascii-numeric`) and match types (RFC 5228
//! §2.7: `:is`, `:contains`, `:matches`; RFC 5231: `:value` and `:count` with a relation). `:matches`
//! hands back what each wildcard matched, for RFC 5229's `${1}`…

use std::cmp::Ordering;
use std::collections::HashSet;

use crate::Budget;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Octet,
    AsciiCasemap,
    AsciiNumeric,
}

impl Comparator {
    pub fn from_name(name: &str) -> Option<Comparator> {
        match name.to_ascii_lowercase().as_str() {
            "i;octet" => Some(Comparator::Octet),
            "i;ascii-casemap" => Some(Comparator::AsciiCasemap),
            "i;ascii-numeric" => Some(Comparator::AsciiNumeric),
            _ => None,
        }
    }

    /// RFC 4790 §9.1: `i;ascii-numeric` has equality and ordering, but no substring operation.
    pub fn has_substring(self) -> bool {
        self != Comparator::AsciiNumeric
    }

    fn fold(self, c: char) -> char {
        match self {
            Comparator::AsciiCasemap => c.to_ascii_lowercase(),
            _ => c,
        }
    }

    pub fn order(self, a: &str, b: &str) -> Ordering {
        match self {
            Comparator::Octet => a.as_bytes().cmp(b.as_bytes()),
            Comparator::AsciiCasemap => {
                a.bytes().map(|c| c.to_ascii_lowercase()).cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
            }
            Comparator::AsciiNumeric => numeric_order(a, b),
        }
    }

    pub fn contains(self, haystack: &str, needle: &str) -> bool {
        match self {
            Comparator::Octet => haystack.contains(needle),
            _ => haystack.to_ascii_lowercase().contains(&needle.to_ascii_lowercase()),
        }
    }
}

/// RFC 4790 §9.1.1: the number is the leading digits; a string that does not start with a digit is
/// positive infinity, equal to every other such string.
fn numeric_order(a: &str, b: &str) -> Ordering {
    fn digits(s: &str) -> Option<&str> {
        let end = s.bytes().position(|c| !c.is_ascii_digit()).unwrap_or(s.len());
        (end > 0).then(|| s[..end].trim_start_matches('0'))
    }
    match (digits(a), digits(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Relation {
    pub fn from_name(name: &str) -> Option<Relation> {
        match name.to_ascii_lowercase().as_str() {
            "gt" => Some(Relation::Gt),
            "ge" => Some(Relation::Ge),
            "lt" => Some(Relation::Lt),
            "le" => Some(Relation::Le),
            "eq" => Some(Relation::Eq),
            "ne" => Some(Relation::Ne),
            _ => None,
        }
    }

    pub fn holds(self, order: Ordering) -> bool {
        match self {
            Relation::Gt => order == Ordering::Greater,
            Relation::Ge => order != Ordering::Less,
            Relation::Lt => order == Ordering::Less,
            Relation::Le => order != Ordering::Greater,
            Relation::Eq => order == Ordering::Equal,
            Relation::Ne => order != Ordering::Equal,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    Is,
    Contains,
    Matches,
    Value(Relation),
    Count(Relation),
}

/// A test's result; `captures` holds what `:matches` found (`${0}` first) when it succeeded.
pub struct Matched {
    pub result: bool,
    pub captures: Option<Vec<String>>,
}

/// Whether any value matches any key (RFC 5228 §2.7.1), with `:count` counting the values instead.
pub fn test(
    comparator: Comparator,
    kind: MatchType,
    values: &[String],
    keys: &[String],
    budget: &mut Budget,
) -> Result<Matched, crate::RuntimeError> {
    if let MatchType::Count(relation) = kind {
        let count = values.len().to_string();
        let result = keys.iter().any(|key| relation.holds(comparator.order(&count, key)));
        return Ok(Matched { result, captures: None });
    }
    for value in values {
        for key in keys {
            budget.spend(1 + (value.len() as u64 + key.len() as u64) / 64)?;
            let hit = match kind {
                MatchType::Is => comparator.order(value, key) == Ordering::Equal,
                MatchType::Contains => comparator.contains(value, key),
                MatchType::Value(relation) => relation.holds(comparator.order(value, key)),
                MatchType::Matches => {
                    if let Some(mut captures) = wildcard(comparator, value, key, budget)? {
                        captures.insert(0, value.clone());
                        return Ok(Matched { result: true, captures: Some(captures) });
                    }
                    false
                }
                MatchType::Count(_) => unreachable!("handled above"),
            };
            if hit {
                return Ok(Matched { result: true, captures: None });
            }
        }
    }
    Ok(Matched { result: false, captures: None })
}

/// Each `*` is one level of recursion; a pattern with more is refused rather than risk the stack.
const MAX_STARS: usize = 256;

#[derive(Clone, Copy)]
enum Glob {
    Star,
    One,
    Char(char),
}

/// RFC 5228 §2.7.1 `:matches`: `*` is any sequence, `?` one character, `\` quotes the next one. Each
/// `*` first tries the shortest run (RFC 5229 §3.2's example), and states known to fail are
/// remembered, so the work stays bounded by pattern × value and is charged to the budget.
pub fn wildcard(
    comparator: Comparator,
    value: &str,
    pattern: &str,
    budget: &mut Budget,
) -> Result<Option<Vec<String>>, crate::RuntimeError> {
    let mut glob = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        glob.push(match c {
            '*' => Glob::Star,
            '?' => Glob::One,
            '\\' => Glob::Char(chars.next().unwrap_or('\\')),
            c => Glob::Char(c),
        });
    }
    if glob.iter().filter(|g| matches!(g, Glob::Star)).count() > MAX_STARS {
        return Err(crate::RuntimeError::PatternTooComplex(MAX_STARS));
    }
    let value: Vec<char> = value.chars().collect();
    let mut matcher = Wildcard { comparator, glob, value, failed: HashSet::new(), captures: Vec::new(), budget };
    if matcher.at(0, 0)? {
        Ok(Some(matcher.captures.into_iter().map(|(start, end)| matcher.value[start..end].iter().collect()).collect()))
    } else {
        Ok(None)
    }
}

struct Wildcard<'b> {
    comparator: Comparator,
    glob: Vec<Glob>,
    value: Vec<char>,
    failed: HashSet<(usize, usize)>,
    captures: Vec<(usize, usize)>,
    budget: &'b mut Budget,
}

impl Wildcard<'_> {
    /// Matches from glob `g` and value `v`. Literals and `?` advance in a loop; only `*` recurses,
    /// and [`MAX_STARS`] bounds how deep.
    fn at(&mut self, mut g: usize, mut v: usize) -> Result<bool, crate::RuntimeError> {
        let (start_g, start_v, captured) = (g, v, self.captures.len());
        loop {
            self.budget.spend(1)?;
            if self.failed.contains(&(g, v)) {
                break;
            }
            match self.glob.get(g).copied() {
                None if v == self.value.len() => return Ok(true),
                None => break,
                Some(Glob::Char(c)) => {
                    if v < self.value.len() && self.comparator.fold(c) == self.comparator.fold(self.value[v]) {
                        (g, v) = (g + 1, v + 1);
                        continue;
                    }
                    break;
                }
                Some(Glob::One) => {
                    if v < self.value.len() {
                        self.captures.push((v, v + 1));
                        (g, v) = (g + 1, v + 1);
                        continue;
                    }
                    break;
                }
                Some(Glob::Star) => {
                    for end in v..=self.value.len() {
                        self.captures.push((v, end));
                        if self.at(g + 1, end)? {
                            return Ok(true);
                        }
                        self.captures.pop();
                    }
                    self.failed.insert((g, v));
                    break;
                }
            }
        }
        self.captures.truncate(captured);
        self.failed.insert((start_g, start_v));
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globbed(value: &str, pattern: &str) -> Option<Vec<String>> {
        wildcard(Comparator::AsciiCasemap, value, pattern, &mut Budget::new(100_000)).unwrap()
    }

    #[test]
    fn wildcards_capture_shortest_first() {
        // RFC 5229 §3.2's example.
        assert_eq!(
            globbed("[acme-users] [fwd] version 1.0 is out", "[*] *").unwrap(),
            ["acme-users", "[fwd] version 1.0 is out"]
        );
        assert_eq!(globbed("abc", "a?c").unwrap(), ["b"]);
        assert!(globbed("abc", "a?").is_none());
        assert!(globbed("a*c", "a\\*c").is_some());
        assert!(globbed("abc", "a\\*c").is_none());
        assert!(globbed("ABC", "abc").is_some());
    }

    #[test]
    fn a_pathological_pattern_stays_within_its_budget() {
        let value = "a".repeat(200);
        let pattern = "*a*a*a*a*a*a*a*a*a*ab";
        assert!(wildcard(Comparator::Octet, &value, pattern, &mut Budget::new(1_000_000)).unwrap().is_none());
        assert!(wildcard(Comparator::Octet, &value, pattern, &mut Budget::new(100)).is_err());
    }

    #[test]
    fn long_patterns_do_not_recurse_per_character() {
        let value = "a".repeat(300_000);
        let pattern = format!("{}*", "?".repeat(299_999));
        let captures = wildcard(Comparator::Octet, &value, &pattern, &mut Budget::new(10_000_000)).unwrap().unwrap();
        assert_eq!(captures.len(), 300_000);
        assert!(wildcard(Comparator::Octet, &value, &value, &mut Budget::new(10_000_000)).unwrap().is_some());
        let stars = "*".repeat(MAX_STARS + 1);
        assert_eq!(
            wildcard(Comparator::Octet, "a", &stars, &mut Budget::new(1_000)).unwrap_err(),
            crate::RuntimeError::PatternTooComplex(MAX_STARS)
        );
    }

    #[test]
    fn ascii_numeric_orders_numbers_and_puts_words_last() {
        assert_eq!(numeric_order("10", "9"), Ordering::Greater);
        assert_eq!(numeric_order("007", "7"), Ordering::Equal);
        assert_eq!(numeric_order("abc", "99999"), Ordering::Greater);
        assert_eq!(numeric_order("abc", "x"), Ordering::Equal);
        assert_eq!(numeric_order("3 apples", "3"), Ordering::Equal);
    }
}
