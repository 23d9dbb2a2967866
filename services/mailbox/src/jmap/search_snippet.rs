//! SearchSnippet/get (RFC 8621 §5): for each email, its subject and a piece of its text with the words
//! the filter's `text`, `subject` and `body` conditions look for wrapped in `<mark>` and `</mark>`, the rest
//! HTML-escaped; null where no word is found.

use std::collections::HashMap;

use mail_parser::MessageParser;
use serde::Deserialize;
use serde_json::{Value, json};

use super::email::{body, query};
use super::get::unique_ids;
use super::{Ctx, MAX_OBJECTS_IN_GET, MethodError, Responses, ids, one};
use crate::store::email_query::{Condition, Filter};
use crate::store::emails;

/// Characters of text in a preview snippet (RFC 8621 §5.1: at most 255 characters).
const PREVIEW: usize = 255;

/// The most words looked for in the subject, and in the body: a filter of thousands of words must not make
/// every snippet a scan per word.
pub const MAX_TERMS: usize = 16;

/// The octets of text looked through for a snippet: its start, where a preview belongs.
pub const MAX_SCANNED: usize = 256 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnippetArgs {
    #[serde(default)]
    filter: Option<Value>,
    email_ids: Vec<String>,
}

/// A word looked for, lowercased once (character by character, as the text it is compared with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term(Vec<char>);

impl Term {
    pub fn new(word: &str) -> Term {
        Term(word.chars().map(lower).collect())
    }
}

/// The words searched for: in the subject (text, subject) and in the body (text, body); none under NOT.
/// Each list holds a word once, and at most `MAX_TERMS` of them.
#[derive(Debug, Default, PartialEq)]
pub struct Terms {
    pub subject: Vec<Term>,
    pub body: Vec<Term>,
}

pub fn terms(filter: &Filter) -> Terms {
    fn add(list: &mut Vec<Term>, text: &str) {
        for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let term = Term::new(word);
            if list.len() < MAX_TERMS && !list.contains(&term) {
                list.push(term);
            }
        }
    }
    fn walk(filter: &Filter, out: &mut Terms) {
        match filter {
            Filter::And(list) | Filter::Or(list) => list.iter().for_each(|f| walk(f, out)),
            Filter::Not(_) => {}
            Filter::Condition(Condition::Text(text)) => {
                add(&mut out.subject, text);
                add(&mut out.body, text);
            }
            Filter::Condition(Condition::HeaderContains(field, text)) if field == "subject" => {
                add(&mut out.subject, text)
            }
            Filter::Condition(Condition::Body(text)) => add(&mut out.body, text),
            Filter::Condition(_) => {}
        }
    }
    let mut out = Terms::default();
    walk(filter, &mut out);
    out
}

fn lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

fn escape(c: char, out: &mut String) {
    match c {
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '&' => out.push_str("&amp;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        c => out.push(c),
    }
}

/// At most the first `MAX_SCANNED` octets of `text`, cut at a character's boundary.
fn scanned(text: &str) -> &str {
    if text.len() <= MAX_SCANNED {
        return text;
    }
    let mut end = MAX_SCANNED;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Where a term starts at a word's start in `chars` (whose lowercase is `folded`), as (char index, length
/// in chars); the first found.
fn find(chars: &[char], folded: &[char], terms: &[Term], from: usize) -> Option<(usize, usize)> {
    (from..chars.len()).find_map(|i| {
        if i > 0 && chars[i - 1].is_alphanumeric() {
            return None;
        }
        terms.iter().map(|t| t.0.as_slice()).find(|t| !t.is_empty() && folded[i..].starts_with(t)).map(|t| (i, t.len()))
    })
}

/// `text` (its first `MAX_SCANNED` octets) escaped with every term marked; None when no term occurs.
pub fn highlight(text: &str, terms: &[Term]) -> Option<String> {
    let chars: Vec<char> = scanned(text).chars().collect();
    let folded: Vec<char> = chars.iter().map(|&c| lower(c)).collect();
    let mut out = String::new();
    let mut at = 0;
    let mut marked = false;
    while let Some((start, length)) = find(&chars, &folded, terms, at) {
        chars[at..start].iter().for_each(|&c| escape(c, &mut out));
        out.push_str("<mark>");
        chars[start..start + length].iter().for_each(|&c| escape(c, &mut out));
        out.push_str("</mark>");
        at = start + length;
        marked = true;
    }
    chars[at..].iter().for_each(|&c| escape(c, &mut out));
    marked.then_some(out)
}

/// A window of the body's text (its first `MAX_SCANNED` octets) around the first term, marked.
pub fn preview_snippet(text: &str, terms: &[Term]) -> Option<String> {
    if terms.is_empty() {
        return None;
    }
    let folded_text = body::fold(scanned(text), usize::MAX);
    let chars: Vec<char> = folded_text.chars().collect();
    let folded: Vec<char> = chars.iter().map(|&c| lower(c)).collect();
    let (first, _) = find(&chars, &folded, terms, 0)?;
    // Some words of context before the match.
    let mut start = first.saturating_sub(30);
    while start > 0 && start < first && !chars[start - 1].is_whitespace() {
        start += 1;
    }
    let window: String = chars[start..].iter().take(PREVIEW).collect();
    highlight(&window, terms)
}

/// One email's snippet from its octets.
fn snippet(content: &[u8], terms: &Terms) -> (Option<String>, Option<String>) {
    let Some(message) = MessageParser::default().parse(content) else { return (None, None) };
    let subject = message.subject().and_then(|s| highlight(s, &terms.subject));
    if terms.body.is_empty() {
        return (subject, None);
    }
    let structure = body::structure(&message);
    let bodies = body::bodies(&structure);
    let first = bodies.text.first().or(bodies.html.first());
    let text = first.and_then(|p| {
        let text = body::text_of(&message, p)?;
        Some(if p.media_type == "text/html" { mail_parser::decoders::html::html_to_text(&text) } else { text })
    });
    (subject, text.and_then(|t| preview_snippet(&t, &terms.body)))
}

pub async fn get(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: SnippetArgs = super::arguments(arguments)?;
    if args.email_ids.len() > MAX_OBJECTS_IN_GET {
        return Err(MethodError::RequestTooLarge);
    }
    let email_ids = unique_ids(args.email_ids);
    let filter = args.filter.as_ref().map(|f| query::parse_filter(f, ctx.created_ids)).transpose()?;
    let terms = filter.as_ref().map(terms).unwrap_or_default();
    let wanted: Vec<i64> = email_ids.iter().filter_map(|id| ids::decode(ids::EMAIL, id)).collect();
    let rows = emails::rows(ctx.pool, ctx.account, &wanted).await?;
    let found: HashMap<i64, i64> = rows.iter().map(|r| (r.id, r.size)).collect();
    // The octets only when there is a word to look for, a batch at a time.
    let mut snippets: HashMap<i64, (Option<String>, Option<String>)> = HashMap::new();
    if !terms.subject.is_empty() || !terms.body.is_empty() {
        let sized = wanted.iter().filter_map(|id| Some((*id, *found.get(id)?)));
        for batch in emails::content_batches(sized) {
            for (id, content) in emails::contents(ctx.pool, ctx.account, &batch).await? {
                snippets.insert(id, snippet(&content, &terms));
            }
        }
    }
    let (mut list, mut not_found) = (Vec::new(), Vec::new());
    for id in &email_ids {
        let Some(email) = ids::decode(ids::EMAIL, id).filter(|n| found.contains_key(n)) else {
            not_found.push(id.clone());
            continue;
        };
        let (subject, preview) = snippets.remove(&email).unwrap_or_default();
        list.push(json!({"emailId": id, "subject": subject, "preview": preview}));
    }
    one(
        "SearchSnippet/get",
        json!({"accountId": ctx.account_id(), "list": list, "notFound": if not_found.is_empty() { Value::Null } else { json!(not_found) }}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_marked_and_the_rest_escaped() {
        let terms = vec![Term::new("budget"), Term::new("Q3")];
        assert_eq!(
            highlight("The <Budget> for Q3 & budgets", &terms).as_deref(),
            Some("The &lt;<mark>Budget</mark>&gt; for <mark>Q3</mark> &amp; <mark>budget</mark>s")
        );
        assert_eq!(highlight("nothing here", &terms), None);
        assert_eq!(highlight("subbudget", &terms), None, "terms start at a word's start");
        let long = format!("{} the budget is {}", "word ".repeat(100), "more ".repeat(100));
        let snippet = preview_snippet(&long, &terms).unwrap();
        assert!(snippet.contains("<mark>budget</mark>") && snippet.starts_with("word"), "{snippet}");
        assert!(snippet.replace("<mark>", "").replace("</mark>", "").chars().count() <= PREVIEW);
    }

    #[test]
    fn terms_come_from_text_subject_and_body_but_not_from_not() {
        let filter = Filter::And(vec![
            Filter::Condition(Condition::Text("Hello, world".into())),
            Filter::Condition(Condition::HeaderContains("subject".into(), "Plans".into())),
            Filter::Not(vec![Filter::Condition(Condition::Body("spam".into()))]),
        ]);
        let found = terms(&filter);
        let words = |list: &[&str]| list.iter().map(|w| Term::new(w)).collect::<Vec<_>>();
        assert_eq!(found.subject, words(&["hello", "world", "plans"]));
        assert_eq!(found.body, words(&["hello", "world"]));
    }

    #[test]
    fn terms_are_few_and_the_text_scanned_is_bounded() {
        let many: String = (0..100).map(|i| format!("word{i} word{i} ")).collect();
        let found = terms(&Filter::Condition(Condition::Text(many)));
        assert_eq!(found.body.len(), MAX_TERMS);
        assert_eq!(found.body[1], Term::new("WORD1"), "each word once, lowercased");
        let far = format!("{} budget", "x ".repeat(MAX_SCANNED / 2));
        let budget = [Term::new("budget")];
        assert_eq!(preview_snippet(&far, &budget), None, "a word past the scanned start is not looked for");
        assert_eq!(highlight(&far, &budget), None);
        assert!(preview_snippet(&far[MAX_SCANNED / 2..], &budget).is_some());
    }
}
