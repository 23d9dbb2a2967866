//! RFC 5230 vacation: every example script, and the rules of §4.5 and §5 about whom never to answer.

mod support;

use mailbus_sieve::Action;
use support::*;

const TO_ME: &str =
    "From: friend@example.net\nTo: me@example.com\nSubject: cyrus bugs\nMessage-ID: <1@example.net>\n\nhello\n";

fn replies(script: &str, message: &str) -> Vec<String> {
    vacations(&run(script, message))
}

/// §3's first examples: a reason chosen by a test.
#[test]
fn reason_by_subject() {
    let script = r#"require "vacation";
if header :contains "subject" "cyrus" {
    vacation "I'm out -- send mail to cyrus-bugs";
} else {
    vacation "I'm out -- call me at +1 304 555 0123";
}"#;
    assert_eq!(replies(script, TO_ME), ["I'm out -- send mail to cyrus-bugs"]);
    assert_eq!(replies(script, "To: me@example.com\nSubject: hi\n\nx\n"), ["I'm out -- call me at +1 304 555 0123"]);
    // Vacation does not cancel implicit keep.
    assert_eq!(run(script, TO_ME).last(), Some(&keep()));
}

/// §4.1: :subject with a match variable, and the reply's headers.
#[test]
fn subject_from_a_match_variable() {
    let script = r#"require ["vacation", "variables"];
if header :matches "subject" "*" {
    vacation :subject "Automatic response to: ${1}"
             "I'm away";
}"#;
    let actions = run(script, TO_ME);
    let Action::Vacation(reply) = &actions[0] else { panic!("{actions:?}") };
    assert_eq!(reply.subject, "Automatic response to: cyrus bugs");
    assert_eq!(reply.to, "coyote@desert.example.org");
    assert_eq!(reply.from, "me@example.com");
    assert_eq!(reply.in_reply_to.as_deref(), Some("<1@example.net>"));
    let text = reply.to_message("Tue, 10 Nov 2009 18:35:00 +0100", "<r@example.com>");
    assert!(text.contains("\r\nAuto-Submitted: auto-replied\r\n"), "{text}");
    assert!(text.contains("\r\nIn-Reply-To: <1@example.net>\r\nReferences: <1@example.net>\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nI'm away\r\n"), "{text}");
}

/// The default subject is "Re: " and the original one.
#[test]
fn default_subject() {
    let actions = run("require \"vacation\"; vacation \"away\";", TO_ME);
    let Action::Vacation(reply) = &actions[0] else { panic!("{actions:?}") };
    assert_eq!(reply.subject, "Re: cyrus bugs");
    assert_eq!(reply.record.days, 7);
}

/// §4.2: :handle makes two texts one reply, once per sender per period; the caller's record says so.
#[test]
fn handle_and_once_per_period() {
    let script = r#"require "vacation";
if header :contains "subject" "lunch" {
    vacation :handle "ran-away" "I'm out and can't meet for lunch";
} else {
    vacation :handle "ran-away" "I'm out";
}"#;
    let memory = Memory::default();
    let first = run_with(script, TO_ME, &DEFAULT, &memory);
    let Action::Vacation(reply) = &first.actions[0] else { panic!("{first:?}") };
    assert_eq!(reply.record.handle, "ran-away");
    memory.replied.borrow_mut().insert((reply.record.sender.clone(), reply.record.handle.clone()));
    let lunch = "To: me@example.com\nSubject: lunch?\n\nx\n";
    assert!(vacations(&run_with(script, lunch, &DEFAULT, &memory).actions).is_empty());
    let other = Delivery { from: Some("other@example.net"), ..DEFAULT };
    assert_eq!(vacations(&run_with(script, lunch, &other, &memory).actions), ["I'm out and can't meet for lunch"]);
}

/// §4.6 :mime with a multi-line reason, and §4.1's :days and :addresses.
#[test]
fn mime_days_and_addresses() {
    let mime = r#"require "vacation";
vacation :mime text:
Content-Type: multipart/alternative; boundary=foo

--foo

I'm at the beach relaxing.  Mmmm, surf...

--foo
Content-Type: text/html; charset=us-ascii

<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.0//EN"
"http://www.w3.org/TR/REC-html40/strict.dtd">
<HTML><HEAD><TITLE>How to relax</TITLE>
<BASE HREF="http://home.example.com/pictures/"></HEAD>
<BODY><P>I'm at the <A HREF="beach.gif">beach</A> relaxing.
Mmmm, <A HREF="ocean.gif">surf</A>...
</BODY></HTML>

--foo--
.
;"#;
    let actions = run(mime, TO_ME);
    let Action::Vacation(reply) = &actions[0] else { panic!("{actions:?}") };
    assert!(reply.mime);
    assert!(reply.body.starts_with("Content-Type: multipart/alternative; boundary=foo\r\n\r\n--foo\r\n"));
    let message = reply.to_message("Tue, 10 Nov 2009 18:35:00 +0100", "<r@example.com>");
    assert!(message.contains("MIME-Version: 1.0\r\nContent-Type: multipart/alternative"), "{message}");

    let days = r#"require "vacation";
vacation :days 23 :addresses ["tjs@example.edu",
                              "ts4z@landru.example.edu"]
"I'm away until October 19.
If it's an emergency, call 911, I guess." ;"#;
    let to_alias = "To: ts4z@landru.example.edu\nSubject: x\n\nx\n";
    let actions = run(days, to_alias);
    let Action::Vacation(reply) = &actions[0] else { panic!("{actions:?}") };
    assert_eq!(reply.record.days, 23);
    assert_eq!(reply.body, "I'm away until October 19.\r\nIf it's an emergency, call 911, I guess.");
    // Not addressed to any of ours: no reply.
    assert!(replies(days, "To: someone@example.org\nSubject: x\n\nx\n").is_empty());
}

/// Days are clamped to the operator's range.
#[test]
fn days_are_clamped() {
    for (days, expected) in [(0, 1), (365, 30)] {
        let actions = run(&format!("require \"vacation\"; vacation :days {days} \"away\";"), TO_ME);
        let Action::Vacation(reply) = &actions[0] else { panic!("{actions:?}") };
        assert_eq!(reply.record.days, expected);
    }
}

/// §4.7's examples: vacation beside redirect, and a reason by language.
#[test]
fn beside_other_actions() {
    let script = r#"require "vacation";
if header :contains "from" "boss@example.edu" {
    redirect "pleeb@xanadu.example.com";
} else {
    vacation "Sorry, I'm away, I'll read your
message when I get around to it.";
}"#;
    assert_eq!(
        run(script, "From: boss@example.edu\nTo: me@example.com\n\nx\n"),
        [redirect("pleeb@xanadu.example.com")]
    );
    assert_eq!(replies(script, TO_ME), ["Sorry, I'm away, I'll read your\r\nmessage when I get around to it."]);

    let language = r#"require "vacation";
if header :contains ["accept-language", "content-language"] "en" {
    vacation "I am away this week.";
} else {
    vacation "Estoy ausente esta semana.";
}"#;
    assert_eq!(replies(language, "To: me@example.com\nContent-Language: en-GB\n\nx\n"), ["I am away this week."]);
    assert_eq!(replies(language, TO_ME), ["Estoy ausente esta semana."]);

    let by_domain = r#"require "vacation";
if address :matches "from" "*.example.com" {
    vacation "Sorry, I'm away this week.";
} else {
    vacation :subject "Gone fishing" "Having a lovely time on the lake.";
}"#;
    assert_eq!(
        replies(by_domain, "From: a@sales.example.com\nTo: me@example.com\n\nx\n"),
        ["Sorry, I'm away this week."]
    );
    assert_eq!(replies(by_domain, TO_ME), ["Having a lovely time on the lake."]);
}

/// §4.5 and §5: never to null, daemon or list senders, automatic or bulk mail, or ourselves.
#[test]
fn never_answers_automatic_mail() {
    let script = "require \"vacation\"; vacation \"away\";";
    assert_eq!(replies(script, TO_ME), ["away"]);
    let headers = [
        "Auto-Submitted: auto-generated",
        "Auto-Submitted: auto-replied",
        "Precedence: bulk",
        "Precedence: list",
        "Precedence: junk",
        "List-Id: <users.lists.example.net>",
        "List-Unsubscribe: <mailto:leave@example.net>",
    ];
    for header in headers {
        assert!(replies(script, &format!("{header}\n{TO_ME}")).is_empty(), "{header}");
    }
    assert_eq!(replies(script, &format!("Auto-Submitted: no\n{TO_ME}")), ["away"]);
    for sender in [
        None,
        Some("MAILER-DAEMON@example.net"),
        Some("owner-users@example.net"),
        Some("users-request@example.net"),
        Some("me@example.com"),
    ] {
        let delivery = Delivery { from: sender, ..DEFAULT };
        assert!(vacations(&run_with(script, TO_ME, &delivery, &Memory::default()).actions).is_empty(), "{sender:?}");
    }
    // Addresses compare whole: a subaddress or an alias is ours only when :addresses lists it.
    assert!(replies(script, "To: me+work@example.com\n\nx\n").is_empty());
    assert!(replies(script, "To: ME@Example.COM\n\nx\n").len() == 1);
    let listed = "require \"vacation\"; vacation :addresses \"me+work@example.com\" \"away\";";
    assert_eq!(replies(listed, "To: me+work@example.com\n\nx\n"), ["away"]);
}

/// Only one vacation per run (RFC 5230 §4.7: vacation is not repeated).
#[test]
fn a_second_vacation_is_an_error() {
    let script = "require \"vacation\"; vacation \"one\"; vacation \"two\";";
    let outcome = run_with(script, TO_ME, &DEFAULT, &Memory::default());
    assert!(outcome.error.is_some());
    assert_eq!(outcome.actions, [keep()]);
}
