//! JMAP's VacationResponse (RFC 8621 §8) as a Sieve script: the row becomes one `vacation` command,
//! run through the same interpreter as the account's own script, so the never-reply rules (RFC 5230 §4.5,
//! §5), the once-per-sender memory and the reply's form are the same for both.

use crate::store::sieve::VacationRow;

/// The Sieve source for a VacationResponse: plain text when it has only text, a `:mime` body
/// (multipart/alternative when it has both) when it has HTML. `:days` is left to the default
/// (`Limits::vacation_default_days`); `:from` to the account's address.
pub fn script(row: &VacationRow) -> String {
    let mut command = String::from("require [\"vacation\"];\nvacation");
    if let Some(subject) = row.subject.as_deref().filter(|s| !s.is_empty()) {
        command.push_str(" :subject ");
        command.push_str(&quoted(subject));
    }
    let text = row.text_body.as_deref().unwrap_or("");
    let body = match row.html_body.as_deref() {
        None => quoted(text),
        Some(html) if text.is_empty() => {
            command.push_str(" :mime");
            quoted(&format!("Content-Type: text/html; charset=utf-8\r\n\r\n{html}"))
        }
        Some(html) => {
            command.push_str(" :mime");
            let boundary = "=_mailbus_vacation";
            quoted(&format!(
                "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
                 --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
                 --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n\
                 --{boundary}--\r\n"
            ))
        }
    };
    command.push(' ');
    command.push_str(&body);
    command.push_str(";\n");
    command
}

/// RFC 5228 §2.4.2: a quoted string escapes only `"` and `\`.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(subject: Option<&str>, text: Option<&str>, html: Option<&str>) -> VacationRow {
        VacationRow {
            is_enabled: true,
            from_date: None,
            to_date: None,
            subject: subject.map(str::to_owned),
            text_body: text.map(str::to_owned),
            html_body: html.map(str::to_owned),
        }
    }

    #[test]
    fn a_text_response_becomes_a_vacation_command_with_its_quotes_escaped() {
        let source = script(&row(Some("Away \"now\""), Some("Back on\nMonday \\o/"), None));
        assert_eq!(
            source,
            "require [\"vacation\"];\nvacation :subject \"Away \\\"now\\\"\" \"Back on\nMonday \\\\o/\";\n"
        );
        let parsed = mailbus_sieve::parse(&source, &mailbus_sieve::Limits::default());
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn an_html_response_is_a_mime_body_and_parses() {
        for (text, html) in [(None, Some("<p>away</p>")), (Some("away"), Some("<p>away</p>"))] {
            let source = script(&row(None, text, html));
            assert!(source.contains(":mime") && source.contains("text/html"), "{source}");
            assert!(!source.contains(":subject"));
            let parsed = mailbus_sieve::parse(&source, &mailbus_sieve::Limits::default());
            assert!(parsed.is_ok(), "{source}: {parsed:?}");
        }
    }

    #[test]
    fn a_response_is_in_effect_only_when_enabled_and_between_its_dates() {
        let now = chrono::Utc::now();
        let hour = chrono::Duration::hours(1);
        let mut r = row(None, Some("x"), None);
        assert!(r.in_effect(now));
        r.from_date = Some(now + hour);
        assert!(!r.in_effect(now), "not yet");
        r.from_date = Some(now - hour);
        r.to_date = Some(now);
        assert!(!r.in_effect(now), "toDate is exclusive");
        r.to_date = Some(now + hour);
        assert!(r.in_effect(now));
        r.is_enabled = false;
        assert!(!r.in_effect(now));
    }
}
