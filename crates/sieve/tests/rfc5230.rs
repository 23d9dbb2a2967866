//! RFC 5230 vacation: every example script (§4.2, §4.4, §4.8, §7, as printed there), and the rules of §4.5 and §5 about whom never to answer.

mod support;

use mailbus_sieve::Action;
use support::*;

const TO_ME: &str =
    "From: friend@example.net\nTo: me@example.com\nSubject: cyrus bugs\nMessage-ID: <1@example.net>\n\nhello\n";

fn replies(script: &str, message: &str) -> Vec<String> {
    vacations(&run(script, message))
}

/// What the caller does after sending a reply: remember the sender and handle for the period.
fn remember(memory: &Memory, actions: &[Action]) {
    for action in actions {
        if let Action::Vacation(reply) = action {
            memory.replied.borrow_mut().insert((reply.record.sender.clone(), reply.record.handle.clone()));
        }
    }
}

/// §4.2's first example: coyote writes twice, about "Cyrus bug" and "come over for dinner", and gets
/// both answers, because the two vacation actions are different responses.
#[test]
fn rfc_4_2_two_responses() {
    let script = r#"require "vacation";
if header :contains "subject" "cyrus" {
    vacation "I'm out -- send mail to cyrus-bugs";
} else {
    vacation "I'm out -- call me at +1 304 555 0123";
}"#;
    let first = "From: coyote@desert.example.org\nTo: roadrunner@acme.example.com\nSubject: Cyrus bug\n\nx\n";
    let second =
        "From: coyote@desert.example.org\nTo: roadrunner@acme.example.com\nSubject: come over for dinner\n\nx\n";
    let roadrunner = Delivery { to: "roadrunner@acme.example.com", account: "roadrunner@acme.example.com", ..DEFAULT };
    let memory = Memory::default();
    let one = run_with(script, first, &roadrunner, &memory);
    assert_eq!(vacations(&one.actions), ["I'm out -- send mail to cyrus-bugs"]);
    // Vacation does not cancel implicit keep (§4.7).
    assert_eq!(one.actions.last(), Some(&keep()));
    remember(&memory, &one.actions);
    let two = run_with(script, second, &roadrunner, &memory);
    assert_eq!(vacations(&two.actions), ["I'm out -- call me at +1 304 555 0123"]);
}

/// §4.2's second example: tracking uses the arguments before variable expansion, so a sender gets one
/// answer however the subjects differ; the answer's own subject is expanded.
#[test]
fn rfc_4_2_tracking_before_expansion() {
    let script = r#"require ["vacation", "variables"];
if header :matches "subject" "*" {
    vacation :subject "Automatic response to: ${1}"
             "I'm away -- send mail to foo in my absence";
}"#;
    let memory = Memory::default();
    let first = run_with(script, TO_ME, &DEFAULT, &memory);
    let Action::Vacation(reply) = &first.actions[0] else { panic!("{first:?}") };
    assert_eq!(reply.subject, "Automatic response to: cyrus bugs");
    assert_eq!(reply.body, "I'm away -- send mail to foo in my absence");
    assert_eq!(reply.to, "coyote@desert.example.org");
    assert_eq!(reply.from, "me@example.com");
    assert_eq!(reply.in_reply_to.as_deref(), Some("<1@example.net>"));
    let text = reply.to_message("Tue, 10 Nov 2009 18:35:00 +0100", "<r@example.com>");
    assert!(text.contains("\r\nAuto-Submitted: auto-replied\r\n"), "{text}");
    assert!(text.contains("\r\nIn-Reply-To: <1@example.net>\r\nReferences: <1@example.net>\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nI'm away -- send mail to foo in my absence\r\n"), "{text}");
    remember(&memory, &first.actions);
    let other_subject = "From: friend@example.net\nTo: me@example.com\nSubject: something else\n\nx\n";
    assert!(vacations(&run_with(script, other_subject, &DEFAULT, &memory).actions).is_empty());
}

/// §4.2's third example: one :handle makes two texts one response; tweety asks about lunch and dinner
/// and gets a single answer.
#[test]
fn rfc_4_2_handle() {
    let script = r#"require "vacation";
if header :contains "subject" "lunch" {
    vacation :handle "ran-away" "I'm out and can't meet for lunch";
} else {
    vacation :handle "ran-away" "I'm out";
}"#;
    let spike = Delivery {
        from: Some("tweety@cage.example.org"),
        to: "spike@doghouse.example.com",
        account: "spike@doghouse.example.com",
        ..DEFAULT
    };
    let lunch = "From: tweety@cage.example.org\nTo: spike@doghouse.example.com\nSubject: lunch?\n\nx\n";
    let dinner = "From: tweety@cage.example.org\nTo: spike@doghouse.example.com\nSubject: dinner?\n\nx\n";
    let memory = Memory::default();
    let first = run_with(script, lunch, &spike, &memory);
    assert_eq!(vacations(&first.actions), ["I'm out and can't meet for lunch"]);
    let Action::Vacation(reply) = &first.actions[0] else { panic!("{first:?}") };
    assert_eq!(reply.record.handle, "ran-away");
    remember(&memory, &first.actions);
    assert!(vacations(&run_with(script, dinner, &spike, &memory).actions).is_empty());
    // In the other order the other text goes out, and again only once.
    let memory = Memory::default();
    let first = run_with(script, dinner, &spike, &memory);
    assert_eq!(vacations(&first.actions), ["I'm out"]);
    remember(&memory, &first.actions);
    assert!(vacations(&run_with(script, lunch, &spike, &memory).actions).is_empty());
    // Someone else still gets an answer.
    let other = Delivery { from: Some("other@example.net"), ..spike };
    assert_eq!(vacations(&run_with(script, lunch, &other, &memory).actions), ["I'm out and can't meet for lunch"]);
}

/// §5.3: without :subject the reply's subject is "Auto: " and the original one; without a subject at all,
/// a fixed one. Without :days, 7 (§4.1).
#[test]
fn default_subject() {
    let actions = run("require \"vacation\"; vacation \"away\";", TO_ME);
    let Action::Vacation(reply) = &actions[0] else { panic!("{actions:?}") };
    assert_eq!(reply.subject, "Auto: cyrus bugs");
    assert_eq!(reply.record.days, 7);
    let actions = run("require \"vacation\"; vacation \"away\";", "To: me@example.com\n\nx\n");
    let Action::Vacation(reply) = &actions[0] else { panic!("{actions:?}") };
    assert_eq!(reply.subject, "Automated reply");
}

/// §4.4's :mime example, as printed but for the ";" the RFC leaves out after the final "." (the
/// command is not complete without it; RFC 5228 §8.2). The reason is a whole MIME entity.
#[test]
fn rfc_4_4_mime() {
    let printed = r#"require "vacation";
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
"#;
    // Exactly as printed, without the ";", it is a syntax error.
    assert!(mailbus_sieve::parse(printed, &mailbus_sieve::Limits::default()).is_err());
    let script = format!("{printed};\n");
    let actions = run(&script, TO_ME);
    let Action::Vacation(reply) = &actions[0] else { panic!("{actions:?}") };
    assert!(reply.mime);
    assert!(reply.body.starts_with("Content-Type: multipart/alternative; boundary=foo\r\n\r\n--foo\r\n"));
    assert!(reply.body.contains("\r\n \"http://www.w3.org/TR/REC-html40/strict.dtd\">\r\n"), "{}", reply.body);
    assert!(reply.body.ends_with("\r\n--foo--\r\n"), "{}", reply.body);
    let message = reply.to_message("Tue, 10 Nov 2009 18:35:00 +0100", "<r@example.com>");
    assert!(message.contains("MIME-Version: 1.0\r\nContent-Type: multipart/alternative"), "{message}");
}

/// §4.8's first example: :days and :addresses, and a reason over two lines.
#[test]
fn rfc_4_8_days_and_addresses() {
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
    assert_eq!(actions.last(), Some(&keep()));
    // Not addressed to any of ours: no reply (§4.5).
    assert!(replies(days, "To: someone@example.org\nSubject: x\n\nx\n").is_empty());
}

/// Days are clamped to the operator's range (§4.1).
#[test]
fn days_are_clamped() {
    for (days, expected) in [(0, 1), (365, 30)] {
        let actions = run(&format!("require \"vacation\"; vacation :days {days} \"away\";"), TO_ME);
        let Action::Vacation(reply) = &actions[0] else { panic!("{actions:?}") };
        assert_eq!(reply.record.days, expected);
    }
}

/// §4.8's second example: vacation beside redirect.
#[test]
fn rfc_4_8_beside_redirect() {
    let script = r#"require "vacation";
if header :contains "from" "boss@example.edu" {
    redirect "pleeb@isp.example.org";
} else {
    vacation "Sorry, I'm away, I'll read your
message when I get around to it.";
}"#;
    assert_eq!(run(script, "From: boss@example.edu\nTo: me@example.com\n\nx\n"), [redirect("pleeb@isp.example.org")]);
    assert_eq!(replies(script, TO_ME), ["Sorry, I'm away, I'll read your\r\nmessage when I get around to it."]);
    assert_eq!(run(script, TO_ME).last(), Some(&keep()));
}

/// §7's first example: a reason by language.
#[test]
fn rfc_7_by_language() {
    let language = r#"require "vacation";
if header :contains ["accept-language", "content-language"] "en"
{
    vacation "I am away this week.";
} else {
    vacation "Estoy ausente esta semana.";
}"#;
    assert_eq!(replies(language, "To: me@example.com\nContent-Language: en-GB\n\nx\n"), ["I am away this week."]);
    assert_eq!(replies(language, "To: me@example.com\nAccept-Language: en\n\nx\n"), ["I am away this week."]);
    assert_eq!(replies(language, "To: me@example.com\nContent-Language: es\n\nx\n"), ["Estoy ausente esta semana."]);
    assert_eq!(replies(language, TO_ME), ["Estoy ausente esta semana."]);
}

/// §7's second example: informal text inside the division, formal text in another language outside.
#[test]
fn rfc_7_by_division() {
    let by_division = r#"require "vacation";
if address :matches "from" "*@ourdivision.example.com"
{
    vacation :subject "Gone fishing"
             "Having lots of fun! Back in a day or two!";
} else {
    vacation :subject "Je suis parti cette semaine"
             "Je lirai votre message quand je retourne.";
}"#;
    let colleague = "From: Pat <pat@ourdivision.example.com>\nTo: me@example.com\nSubject: hi\n\nx\n";
    let actions = run(by_division, colleague);
    let Action::Vacation(reply) = &actions[0] else { panic!("{actions:?}") };
    assert_eq!(
        (reply.subject.as_str(), reply.body.as_str()),
        ("Gone fishing", "Having lots of fun! Back in a day or two!")
    );
    let actions = run(by_division, TO_ME);
    let Action::Vacation(reply) = &actions[0] else { panic!("{actions:?}") };
    assert_eq!(
        (reply.subject.as_str(), reply.body.as_str()),
        ("Je suis parti cette semaine", "Je lirai votre message quand je retourne.")
    );
    // A subdomain is not the division.
    let sub = "From: x@sales.ourdivision.example.com\nTo: me@example.com\n\nx\n";
    assert_eq!(replies(by_division, sub), ["Je lirai votre message quand je retourne."]);
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

/// A subject that decodes (RFC 2047) to CR LF and more header fields, or a script's variable holding
/// one, stays one line in the reply: the sender does not get to write headers or a body into a reply
/// we send and sign.
#[test]
fn a_decoded_subject_with_line_breaks_stays_one_header_line() {
    let message = "From: friend@example.net\nTo: me@example.com\nSubject: =?utf-8?b?aGkNCkJjYzogdmljdGltQGV4YW1wbGUub3JnDQoNCmJ1eSBub3c=?=\n\nhello\n";
    for script in [
        r#"require "vacation"; vacation "away";"#,
        r#"require ["vacation", "variables"]; if header :matches "subject" "*" { vacation :subject "Re: ${1}" "away"; }"#,
    ] {
        let outcome = run(script, message);
        let Some(Action::Vacation(reply)) = outcome.first() else { panic!("{outcome:?}") };
        let text = reply.to_message("Tue, 10 Nov 2009 18:35:00 +0100", "<r@example.com>");
        let (head, body) = text.split_once("\r\n\r\n").expect("a header and a body");
        assert!(!head.contains("\r\nBcc:"), "{text}");
        assert_eq!(head.lines().filter(|l| l.starts_with("Subject:")).count(), 1, "{text}");
        assert!(head.contains("Subject: ") && head.contains("Bcc: victim@example.org"), "{text}");
        assert_eq!(body, "away\r\n", "{text}");
    }
}
