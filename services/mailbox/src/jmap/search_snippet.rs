//! SearchSnippet/get (RFC 8621 §5): for each email, its subject and a piece of its text with the words
//! the filter's `text`, `subject` and `body` conditions look for wrapped in `<mark>` and `</mark>`, the rest
//! HTML-escaped; null where no word is found.

use mail_parser::MessageParser;
use serde::Deserialize;
use serde_json::{Value, json};

use super::email::{body, query};
use super::{Ctx, MAX_OBJECTS_IN_GET, MethodError, Responses, ids, one};
use crate::store::email_query::{Condition, Filter};
use crate::store::emails;

/// Characters of text in a preview snippet (RFC 8621 §5.1: at most 255 characters).
const PREVIEW: usize = 255;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnippetArgs {
    #[serde(default)]
    filter: Option<Value>,
    email_ids: Vec<String>,
}

/// The words searched for: in the subject (text, subject) and in the body (text, body); none under NOT.
#[derive(Debug, Default, PartialEq)]
pub struct Terms {
    pub subject: Vec<String>,
    pub body: Vec<String>,
}

pub fn terms(filter: &Filter) -> Terms {
    fn walk(filter: &Filter, out: &mut Terms) {
        match filter {
            Filter::And(list) | Filter::Or(list) => list.iter().for_each(|f| walk(f, out)),
            Filter::Not(_) => {}
            Filter::Condition(Condition::Text(text)) => {
                out.subject.extend(words(text));
                out.body.extend(words(text));
            }
            Filter::Condition(Condition::HeaderContains(field, text)) if field == "subject" => {
                out.subject.extend(words(text))
            }
            Filter::Condition(Condition::Body(text)) => out.body.extend(words(text)),
            Filter::Condition(_) => {}
        }
    }
    let mut out = Terms::default();
    walk(filter, &mut out);
    out
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
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

/// Where a term starts at a word's start, as (char index, length in chars); the first found.
fn find(chars: &[char], terms: &[String], from: usize) -> Option<(usize, usize)> {
    let terms: Vec<Vec<char>> = terms.iter().map(|t| t.chars().map(lower).collect()).collect();
    (from..chars.len()).find_map(|i| {
        if i > 0 && chars[i - 1].is_alphanumeric() {
            return None;
        }
        terms
            .iter()
            .filter(|t| !t.is_empty() && i + t.len() <= chars.len())
            .find(|t| t.iter().zip(&chars[i..]).all(|(a, b)| *a == lower(*b)))
            .map(|t| (i, t.len()))
    })
}

/// `text` escaped with every term marked; None when no term occurs.
pub fn highlight(text: &str, terms: &[String]) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut at = 0;
    let mut marked = false;
    while let Some((start, length)) = find(&chars, terms, at) {
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

/// A window of the body's text around the first term, marked.
pub fn preview_snippet(text: &str, terms: &[String]) -> Option<String> {
    let folded = body::fold(text, usize::MAX);
    let chars: Vec<char> = folded.chars().collect();
    let (first, _) = find(&chars, terms, 0)?;
    // Some words of context before the match.
    let mut start = first.saturating_sub(30);
    while start > 0 && start < first && !chars[start - 1].is_whitespace() {
        start += 1;
    }
    let window: String = chars[start..].iter().take(PREVIEW).collect();
    highlight(&window, terms)
}

pub async fn get(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: SnippetArgs = super::arguments(arguments)?;
    if args.email_ids.len() > MAX_OBJECTS_IN_GET {
        return Err(MethodError::RequestTooLarge);
    }
    let filter = args.filter.as_ref().map(|f| query::parse_filter(f, 0)).transpose()?;
    let terms = filter.as_ref().map(terms).unwrap_or_default();
    let wanted: Vec<i64> = args.email_ids.iter().filter_map(|id| ids::decode(ids::EMAIL, id)).collect();
    let need_content = !terms.subject.is_empty() || !terms.body.is_empty();
    let rows = emails::rows(ctx.pool, ctx.account, &wanted, need_content).await?;
    let (mut list, mut not_found) = (Vec::new(), Vec::new());
    for id in &args.email_ids {
        let row = ids::decode(ids::EMAIL, id).and_then(|n| rows.iter().find(|r| r.id == n));
        let Some(row) = row else {
            not_found.push(id.clone());
            continue;
        };
        let message = row.content.as_deref().and_then(|c| MessageParser::default().parse(c));
        let (subject, preview) = match &message {
            Some(message) => {
                let subject = message.subject().and_then(|s| highlight(s, &terms.subject));
                let structure = body::structure(message);
                let bodies = body::bodies(&structure);
                let first = bodies.text.first().or(bodies.html.first());
                let text = first.and_then(|p| {
                    let text = body::text_of(message, p)?;
                    Some(if p.media_type == "text/html" {
                        mail_parser::decoders::html::html_to_text(&text)
                    } else {
                        text
                    })
                });
                (subject, text.and_then(|t| preview_snippet(&t, &terms.body)))
            }
            None => (None, None),
        };
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
        let terms = vec!["budget".to_owned(), "q3".to_owned()];
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
        assert_eq!(found.subject, ["hello", "world", "plans"]);
        assert_eq!(found.body, ["hello", "world"]);
    }
}
