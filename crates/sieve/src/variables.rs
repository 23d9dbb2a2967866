//! RFC 5229 variables: `${name}` and `${1}` references expanded in strings at run time, `set`'s
//! modifiers; and RFC 5228 §2.4.2.4 encoded characters, decoded once when the script is checked.

use std::collections::HashMap;

use crate::script::Modifier;

/// Variables by lower-case name (RFC 5229 §3: names are case-insensitive).
pub(crate) type Variables = HashMap<String, String>;

/// The longest a variable's value or an expanded string may be (RFC 5229 §3 asks for at least 4,000
/// octets; Dovecot's default is 4 KiB). Longer is cut at a character boundary, as Dovecot does: without
/// a bound, `set "a" "${a}${a}…"` a dozen times grows a value past the memory of the delivering process.
pub(crate) const MAX_VALUE: usize = 64 * 1024;

/// `value` cut to at most [`MAX_VALUE`] octets, at a character boundary.
pub(crate) fn bounded(mut value: String) -> String {
    if value.len() > MAX_VALUE {
        let mut end = MAX_VALUE;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
    }
    value
}

/// Replaces each `${name}` and `${n}`; an unknown variable is the empty string, and text that is
/// not a reference (`${` without a valid name and `}`) stays as written (RFC 5229 §3). The result is
/// cut at [`MAX_VALUE`].
pub(crate) fn expand(text: &str, variables: &Variables, matched: &[String]) -> String {
    if !text.contains("${") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if out.len() > MAX_VALUE {
            return bounded(out);
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}').map(|end| (&after[..end], end)) {
            Some((name, end)) if is_reference(name) => {
                if name.bytes().all(|c| c.is_ascii_digit()) {
                    let n: usize = name.parse().unwrap_or(usize::MAX);
                    out.push_str(matched.get(n).map_or("", String::as_str));
                } else {
                    out.push_str(variables.get(&name.to_ascii_lowercase()).map_or("", String::as_str));
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    bounded(out)
}

fn is_reference(name: &str) -> bool {
    if !name.is_empty() && name.bytes().all(|c| c.is_ascii_digit()) {
        return true;
    }
    name.split('.').all(|part| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// RFC 5229 §4.1: modifiers apply from the highest precedence down (the caller sorted them).
pub(crate) fn modify(value: String, modifiers: &[Modifier]) -> String {
    modifiers.iter().fold(value, |value, modifier| match modifier {
        Modifier::Lower => value.to_lowercase(),
        Modifier::Upper => value.to_uppercase(),
        Modifier::LowerFirst => first_char(&value, |c| c.to_lowercase().collect()),
        Modifier::UpperFirst => first_char(&value, |c| c.to_uppercase().collect()),
        Modifier::QuoteWildcard => value.chars().fold(String::new(), |mut out, c| {
            if matches!(c, '*' | '?' | '\\') {
                out.push('\\');
            }
            out.push(c);
            out
        }),
        // RFC 5229 §4.1.3: the length in characters.
        Modifier::Length => value.chars().count().to_string(),
    })
}

fn first_char(value: &str, change: impl Fn(char) -> String) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(c) => change(c) + chars.as_str(),
        None => String::new(),
    }
}

/// RFC 5228 §2.4.2.4: `${hex:41 42}` and `${unicode:263a}`; anything malformed stays as written, but a
/// code point outside Unicode is an error.
pub(crate) fn decode_encoded_characters(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let decoded = after.find('}').and_then(|end| {
            let (kind, body) = after[..end].split_once(':')?;
            let words: Vec<&str> = body.split_ascii_whitespace().collect();
            // The grammar allows blanks around the hex values but not before the name ("${ unicode:40}"
            // stays as written), and wants at least one value made only of hex digits.
            if words.is_empty() || !words.iter().all(|w| w.bytes().all(|b| b.is_ascii_hexdigit())) {
                return None;
            }
            let decoded = match kind.to_ascii_lowercase().as_str() {
                "hex" => {
                    let bytes = words
                        .iter()
                        .map(|w| (w.len() <= 2).then(|| u8::from_str_radix(w, 16).ok()).flatten())
                        .collect::<Option<Vec<u8>>>()?;
                    Ok(String::from_utf8(bytes).ok()?)
                }
                "unicode" => {
                    let mut chars = String::new();
                    for word in &words {
                        let code = u32::from_str_radix(word, 16).ok()?;
                        match char::from_u32(code) {
                            Some(c) => chars.push(c),
                            None => return Some(Err(format!("\\u{{{word}}} is not a Unicode character"))),
                        }
                    }
                    Ok(chars)
                }
                _ => return None,
            };
            Some(decoded.map(|d| (d, end)))
        });
        match decoded {
            Some(Ok((d, end))) => {
                out.push_str(&d);
                rest = &after[end + 1..];
            }
            Some(Err(message)) => return Err(message),
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cut_at_64_kib_on_a_character_boundary() {
        assert_eq!(bounded("é".repeat(40_000)).len(), MAX_VALUE);
        assert_eq!(bounded(format!("x{}", "é".repeat(40_000))).len(), MAX_VALUE - 1, "é straddles the end");
        assert_eq!(bounded("short".into()), "short");
        let variables = Variables::from([("a".to_owned(), "ab".repeat(30_000))]);
        assert_eq!(expand("${a}${a}${a}", &variables, &[]).len(), MAX_VALUE);
    }

    #[test]
    fn references_expand_and_non_references_stay() {
        let vars = Variables::from([("company".to_owned(), "ACME".to_owned())]);
        let matched = ["whole".to_owned(), "one".to_owned()];
        assert_eq!(expand("${Company} ${1} ${2} ${unknown} ${ bad} ${", &vars, &matched), "ACME one   ${ bad} ${");
    }

    #[test]
    fn modifiers_apply_by_precedence() {
        // RFC 5229 §4.1's examples.
        assert_eq!(modify("juMBlEd lETteRS".into(), &[Modifier::Lower]), "jumbled letters");
        assert_eq!(modify("juMBlEd lETteRS".into(), &[Modifier::Length]), "15");
        assert_eq!(modify("Rock*".into(), &[Modifier::QuoteWildcard]), "Rock\\*");
        assert_eq!(modify("jumBLEd".into(), &[Modifier::Lower, Modifier::UpperFirst]), "Jumbled");
    }

    #[test]
    fn encoded_characters() {
        assert_eq!(decode_encoded_characters("${hex:40}x${unicode:263a}").unwrap(), "@x\u{263a}");
        assert_eq!(decode_encoded_characters("${hex: 24 24}").unwrap(), "$$");
        assert_eq!(decode_encoded_characters("${hex:zz}").unwrap(), "${hex:zz}");
        for literal in ["${ hex:40}", "${hex:}", "${unicode: }", "${hex:+4}", "${unicode:+40}"] {
            assert_eq!(decode_encoded_characters(literal).unwrap(), literal);
        }
        assert!(decode_encoded_characters("${unicode:D800}").is_err());
    }
}
