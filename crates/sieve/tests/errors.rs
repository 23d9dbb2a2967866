//! Scripts that must be refused, with the line and column ManageSieve reports; and the limits that
//! stop a run, which must keep the message rather than lose it.

mod support;

use mailbus_sieve::{Action, Limits, RuntimeError};
use support::*;

fn refused(script: &str) -> (u32, u32, String) {
    match mailbus_sieve::parse(script, &Limits::default()) {
        Ok(_) => panic!("accepted: {script}"),
        Err(e) => (e.line, e.column, e.message),
    }
}

#[test]
fn errors_say_where_and_what() {
    let cases: &[(&str, u32, u32, &str)] = &[
        // RFC 5228 §3.2: an extension used without its require.
        ("fileinto \"x\";", 1, 1, "needs the \"fileinto\" extension"),
        ("require \"fileinto\";\nif true {\n  vacation \"x\";\n}", 3, 3, "needs the \"vacation\" extension"),
        ("if envelope \"to\" \"a\" { keep; }", 1, 4, "needs the \"envelope\" extension"),
        ("require \"copy\";\nredirect :copy \"a@b.c\";\nfileinto :copy \"x\";", 3, 1, "needs the \"fileinto\""),
        ("if header :value \"gt\" \"x\" \"1\" { keep; }", 1, 11, "needs the \"relational\""),
        ("if header :comparator \"i;ascii-numeric\" \"x\" \"1\" { keep; }", 1, 11, "comparator-i;ascii-numeric"),
        // Unknown extensions, commands, tests, tags and comparators.
        ("require [\"fileinto\", \"x-unknown\"];", 1, 1, "unsupported extension \"x-unknown\""),
        ("keep;\nfrobnicate;", 2, 1, "unknown command \"frobnicate\""),
        ("if frob { keep; }", 1, 4, "unknown test \"frob\""),
        ("if header :regex \"a\" \"b\" { keep; }", 1, 11, "unexpected tag :regex"),
        ("if header :comparator \"i;unicode\" \"a\" \"b\" { keep; }", 1, 11, "unknown comparator"),
        // Grammar.
        ("keep", 1, 5, "expected ';' or '{'"),
        ("if true { keep;", 1, 16, "expected a command or '}'"),
        ("if true keep;", 1, 1, "if needs a block"),
        ("redirect [\"a@b.c\" \"d@e.f\"];", 1, 19, "expected ',' or ']'"),
        ("if anyof(true false) { keep; }", 1, 10, "true takes no nested test"),
        ("if anyof(true, false { keep; }", 1, 22, "expected ',' or ')'"),
        ("keep;\n\"stray\";", 2, 1, "expected a command"),
        ("if true { keep; } else keep;", 1, 19, "else takes no arguments"),
        ("if true { keep; } else;", 1, 19, "else needs a block"),
        ("else { keep; }", 1, 1, "else without a preceding if"),
        ("keep;\nrequire \"fileinto\";", 2, 1, "require must come before"),
        ("redirect \"no-at-sign\";", 1, 1, "invalid address"),
        ("if size :over { keep; }", 1, 4, "size takes :over or :under"),
        ("if header :contains :is \"a\" \"b\" { keep; }", 1, 21, "more than one match type"),
        (
            "require [\"relational\", \"comparator-i;ascii-numeric\"];\nif header :contains :comparator \"i;ascii-numeric\" \"a\" \"1\" { keep; }",
            2,
            11,
            "cannot do :contains",
        ),
        ("require \"variables\";\nset \"1bad\" \"x\";", 2, 1, "invalid variable name"),
        ("require \"variables\";\nset :lower :upper \"a\" \"b\";", 2, 12, "one modifier"),
        ("require \"date\";\nif date \"date\" \"fortnight\" \"1\" { keep; }", 2, 4, "unknown date part"),
        ("require \"date\";\nif date :zone \"CET\" \"date\" \"hour\" \"1\" { keep; }", 2, 9, "invalid zone"),
        ("\"unterminated", 1, 1, "unterminated string"),
        ("keep; /* open", 1, 7, "unterminated comment"),
        ("keep; text:\nabc\n", 1, 7, "not terminated"),
        ("if size :over 99999999999999999999 { keep; }", 1, 15, "number too large"),
    ];
    let mut wrong = Vec::new();
    for (script, line, column, message) in cases {
        let (l, c, m) = refused(script);
        if !m.contains(message) || (l, c) != (*line, *column) {
            wrong.push(format!("{script:?}: got {l}:{c} {m:?}, want {line}:{column} {message:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_error_text_names_the_place() {
    let error = mailbus_sieve::parse("keep;\n  discard", &Limits::default()).unwrap_err();
    assert_eq!(error.to_string(), "line 2, column 10: expected ';' or '{', found the end of the script");
}

#[test]
fn script_size_and_nesting_limits() {
    let limits = Limits { max_script_size: 10, ..Limits::default() };
    assert!(mailbus_sieve::parse("keep;", &limits).is_ok());
    let error = mailbus_sieve::parse("discard; keep;", &limits).unwrap_err();
    assert!(error.message.contains("larger than the limit of 10 bytes"), "{error}");

    let limits = Limits { max_nesting: 3, ..Limits::default() };
    assert!(mailbus_sieve::parse("if true { if true { if true { keep; } } }", &limits).is_ok());
    let error = mailbus_sieve::parse("if true { if true { if true { if true { keep; } } } }", &limits).unwrap_err();
    assert!(error.message.contains("nested too deeply"), "{error}");
    let error = mailbus_sieve::parse("if not not not not true { keep; }", &limits).unwrap_err();
    assert!(error.message.contains("nested too deeply"), "{error}");
    // A deep script from an attacker is refused, not a stack overflow.
    let deep = format!("if {}true{} {{ keep; }}", "anyof(".repeat(100_000), ")".repeat(100_000));
    assert!(mailbus_sieve::parse(&deep, &Limits::default()).is_err());
}

fn run_limited(script: &str, limits: &Limits) -> mailbus_sieve::Outcome {
    let script = mailbus_sieve::parse(script, limits).unwrap();
    let memory = Memory::default();
    let input = mailbus_sieve::Input {
        message: b"From: a@b.c\r\nTo: me@example.com\r\nSubject: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\nx\r\n",
        envelope: mailbus_sieve::Envelope { from: Some("a@b.c"), to: "me@example.com", account: "me@example.com" },
        now: chrono::DateTime::parse_from_rfc2822(DEFAULT.now).unwrap(),
        environment: &memory,
    };
    mailbus_sieve::execute(&script, &input, limits)
}

/// RFC 5228 §2.10.6 and the issue: a run that fails keeps the message in INBOX, with the error.
#[test]
fn runtime_limits_keep_the_message() {
    let limits = Limits { max_redirects: 2, max_actions: 3, max_steps: 5_000, ..Limits::default() };
    let three = "redirect \"a@x.example\"; redirect \"b@x.example\"; redirect \"c@x.example\";";
    let outcome = run_limited(three, &limits);
    assert_eq!(outcome.error, Some(RuntimeError::TooManyRedirects(2)));
    assert_eq!(outcome.actions, [Action::Keep { flags: Vec::new() }]);
    // The same redirect twice is one redirect.
    assert_eq!(run_limited("redirect \"a@x.example\"; redirect \"a@x.example\";", &limits).error, None);

    let many = "require \"fileinto\"; fileinto \"a\"; fileinto \"b\"; fileinto \"c\"; fileinto \"d\"; fileinto \"e\";";
    let outcome = run_limited(many, &limits);
    assert_eq!(outcome.error, Some(RuntimeError::TooManyActions(3)));
    assert_eq!(outcome.actions, [Action::Keep { flags: Vec::new() }]);

    // A pattern that backtracks a lot runs out of steps instead of out of time.
    let costly =
        "require \"fileinto\"; if header :matches \"subject\" \"*a*a*a*a*a*a*a*a*a*a*b\" { discard; } fileinto \"x\";";
    let outcome = run_limited(costly, &limits);
    assert_eq!(outcome.error, Some(RuntimeError::StepsExhausted(5_000)));
    assert_eq!(outcome.actions, [Action::Keep { flags: Vec::new() }]);
    let roomy = Limits { max_steps: 10_000_000, ..limits.clone() };
    assert_eq!(run_limited(costly, &roomy).actions, [fileinto("x")]);

    // A redirect address made by variables is checked when the script runs.
    let bad = "require \"variables\"; set \"a\" \"not an address\"; redirect \"${a}\";";
    let outcome = run_limited(bad, &limits);
    assert_eq!(outcome.error, Some(RuntimeError::InvalidRedirect("not an address".into())));
    assert_eq!(outcome.actions, [Action::Keep { flags: Vec::new() }]);
}

/// Messages that are not well-formed still run: no header block, bare LF, 8-bit junk.
#[test]
fn odd_messages_do_not_panic() {
    let script = "require [\"body\", \"date\", \"relational\"]; if anyof(header :contains \"subject\" \"x\", address :domain \"from\" \"y\", body :text :contains \"z\", date :value \"gt\" \"date\" \"year\" \"1\") { discard; }";
    for message in
        ["", "\n", "no colon line\n\nbody", "Subject: =?bogus?x?abc?=\n\n", "From: <<<@@@>>>\nDate: never\n\n\u{fffd}"]
    {
        let outcome = run_with(script, message, &DEFAULT, &Memory::default());
        assert_eq!(outcome.error, None, "{message:?}");
    }
}

/// Every prefix of a script is either a script or a parse error, never a panic; and every prefix of a
/// message runs.
#[test]
fn truncated_scripts_and_messages_never_panic() {
    let script = r#"require ["fileinto", "variables", "body", "date", "relational", "index", "encoded-character", "imap4flags", "vacation", "comparator-i;ascii-numeric"];
# comment
/* block */ if anyof (header :matches "subject" "[*] *", not exists "x", date :index 1 :last :zone "+0100" "date" "hour" "09") {
  set :lower "a" text:
line ${hex:41}
..dot
.
;
  fileinto :flags ["\\Seen", "$x"] "a.${1}"; addflag "f" "g"; stop;
} elsif body :content "text" :count "ge" :comparator "i;ascii-numeric" "1K" { vacation :days 3 :subject "s" "r"; }
else { keep; }"#;
    for end in (0..=script.len()).filter(|&i| script.is_char_boundary(i)) {
        let _ = mailbus_sieve::parse(&script[..end], &Limits::default());
    }
    let parsed = mailbus_sieve::parse(script, &Limits::default()).unwrap();
    let message = "Received: from a by b; Tue, 10 Nov 2009 18:35:00 +0100\r\nDate: Tue, 10 Nov 2009 09:35:00 +0100\r\nSubject: =?utf-8?q?[list]_caf=C3=A9?=\r\nTo: me@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nY2Fmw6k=\r\n--b--\r\n";
    let memory = Memory::default();
    for end in 0..=message.len() {
        let input = mailbus_sieve::Input {
            message: &message.as_bytes()[..end],
            envelope: mailbus_sieve::Envelope { from: Some("a@b.c"), to: "me@example.com", account: "me@example.com" },
            now: chrono::DateTime::parse_from_rfc2822(DEFAULT.now).unwrap(),
            environment: &memory,
        };
        let outcome = mailbus_sieve::execute(&parsed, &input, &Limits::default());
        assert_eq!(outcome.error, None, "prefix of {end} bytes");
        assert!(!outcome.actions.is_empty());
    }
}
