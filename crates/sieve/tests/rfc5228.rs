//! Every example script of RFC 5228, each run on a message it is about, with the actions it must take.

mod support;

use mailbus_sieve::Action;
use support::*;

/// §1.2's Message A.
const COYOTE: &str = "Date: Tue, 1 Apr 1997 09:06:31 -0800 (PST)\n\
From: coyote@desert.example.org\n\
To: roadrunner@acme.example.com\n\
Subject: I have a present for you\n\
\n\
Look, I'm sorry about the whole anvil thing, and I really\n\
didn't mean to try and drop it on you from the top of the\n\
cliff.  I want to try to make it up to you.  I've got some\n\
great birdseed over here at my place--top of the line\n\
stuff--and if you come by, I'll have it all wrapped up\n\
for you.  I'm really sorry for all the problems I've caused\n\
for you over the years, but I know we can work this out.\n\
--\n\
Wile E. Coyote   \"Super Genius\"   coyote@desert.example.org\n";

/// §1.2's Message B.
const B1FF: &str = "From: youcouldberich!@reply-by-postal-mail.invalid\n\
Sender: b1ff@de.res.example.com\n\
To: rube@landru.example.com\n\
Date:  Mon, 31 Mar 1997 18:26:10 -0800\n\
Subject: $$$ YOU, TOO, CAN BE A MILLIONAIRE! $$$\n\
\n\
YOU MAY HAVE ALREADY WON TEN MILLION DOLLARS, BUT I DOUBT\n\
IT!  SO JUST POST THIS TO SIX HUNDRED NEWSGROUPS!  IT WILL\n\
GUARANTEE THAT YOU GET AT LEAST FIVE RESPONSES WITH MONEY!\n\
MONEY! MONEY! COLD HARD CASH!  YOU WILL RECEIVE OVER\n\
$20,000 IN LESS THAN TWO MONTHS!  AND IT'S LEGAL!!!!!!!!!\n\
!!!!!!!!!!!!!!!!!!111111111!!!!!!!11111111111!!1  JUST\n\
SEND $5 IN SMALL, UNMARKED BILLS TO THE ADDRESSES BELOW!\n";

const PLAIN: &str = "From: friend@example.net\nTo: me@example.com\nSubject: lunch\n\nhello\n";

/// §2.3: both kinds of comment, inside a command too.
#[test]
fn comments() {
    let hash = "if size :over 100k { # this is a comment\n    discard;\n}";
    let bracketed = "if size :over 100K { /* this is a comment\n    this is still a comment */ discard /* this is a comment\n    */ ;\n}";
    let big = format!("{PLAIN}{}", "x".repeat(110 * 1024));
    for script in [hash, bracketed] {
        assert_eq!(run(script, PLAIN), [keep()]);
        assert_eq!(run(script, &big), [Action::Discard]);
    }
}

/// §2.4.2.4: encoded characters.
#[test]
fn encoded_character() {
    // The example: message B is discarded.
    let script = "require \"encoded-character\";\nif header :contains \"Subject\" \"$${hex:24 24}\" {\n   discard;\n}";
    assert_eq!(run(script, B1FF), [Action::Discard]);
    assert_eq!(run(script, COYOTE), [keep()]);
    assert_eq!(run(script, "Subject: earn $$$ now\n\nx\n"), [Action::Discard]);
    assert_eq!(run(script, "Subject: earn $ now\n\nx\n"), [keep()]);
    let unicode = "require \"encoded-character\";\nif header :contains \"Subject\" \"${Unicode:263a}\" { discard; }";
    assert_eq!(run(unicode, "Subject: =?utf-8?q?smile_=E2=98=BA?=\n\nx\n"), [Action::Discard]);
    // Without the require the text is literal.
    assert_eq!(
        run("if header :contains \"Subject\" \"${hex:24}\" { discard; }", "Subject: ${hex:24}\n\nx\n"),
        [Action::Discard]
    );
}

/// §2.4.2.4's table of valid and invalid encodings.
#[test]
fn encoded_character_table() {
    let decoded = [
        ("$${hex:40}", "$@"),
        ("${hex: 40 }", "@"),
        ("${HEX: 40}", "@"),
        ("${hex:40", "${hex:40"),
        ("${hex:400}", "${hex:400}"),
        ("${hex:4${hex:30}}", "${hex:40}"),
        ("${unicode:40}", "@"),
        ("${ unicode:40}", "${ unicode:40}"),
        ("${UNICODE:40}", "@"),
        ("${UnICoDE:0000040}", "@"),
        ("${Unicode:40}", "@"),
        ("${Unicode:Cool}", "${Unicode:Cool}"),
    ];
    for (encoded, value) in decoded {
        let script = format!("require \"encoded-character\";\nif header :is \"Subject\" \"{encoded}\" {{ discard; }}");
        assert_eq!(run(&script, &format!("Subject: {value}\n\nx\n")), [Action::Discard], "{encoded}");
        assert_eq!(run(&script, &format!("Subject: {encoded}x\n\nx\n")), [keep()], "{encoded}");
    }
    for invalid in ["${unicode:200000}", "${Unicode:DF01}"] {
        let script = format!("require \"encoded-character\";\nif header :is \"Subject\" \"{invalid}\" {{ discard; }}");
        assert!(mailbus_sieve::parse(&script, &mailbus_sieve::Limits::default()).is_err(), "{invalid}");
    }
}

/// §2.5.1: a test list.
#[test]
fn test_list() {
    let script = "if anyof (not exists [\"From\", \"Date\"],\n        header :contains \"from\" \"fool@example.com\") {\n   discard;\n}";
    assert_eq!(run(script, COYOTE), [keep()]);
    assert_eq!(
        run(script, "From: Fool <fool@example.com>\nDate: Mon, 31 Mar 1997 18:26:10 -0800\n\nx\n"),
        [Action::Discard]
    );
    assert_eq!(run(script, PLAIN), [Action::Discard]);
}

/// §2.7.3: the i;octet comparator is case-sensitive.
#[test]
fn comparator_example() {
    let script =
        "if header :contains :comparator \"i;octet\" \"Subject\"\n        \"MAKE MONEY FAST\" {\n   discard;\n}";
    assert_eq!(run(script, "Subject: You can MAKE MONEY FAST\n\nx\n"), [Action::Discard]);
    assert_eq!(run(script, "Subject: You can Make Money Fast\n\nx\n"), [keep()]);
}

/// §2.10.2: implicit keep when nothing else happens.
#[test]
fn implicit_keep() {
    let script = "if size :over 500K { discard; }";
    let outcome = run_with(script, PLAIN, &DEFAULT, &Memory::default());
    assert!(outcome.implicit_keep);
    assert_eq!(outcome.actions, [keep()]);
    // "with any of the short messages offered above, the following script produces no actions"
    assert_eq!(run(script, COYOTE), [keep()]);
    assert_eq!(run(script, B1FF), [keep()]);
    assert_eq!(run("", PLAIN), [keep()]);
    assert_eq!(run("stop; discard;", PLAIN), [keep()]);
}

/// §3.1: if, elsif, else.
#[test]
fn if_elsif_else() {
    let script = r#"if header :contains ["From"] ["coyote"] {
   redirect "acm@example.com";
} elsif header :contains "Subject" "$$$" {
   redirect "postmaster@example.com";
} else {
   redirect "field@example.com";
}"#;
    // "run over message A, it redirects the message to acm@example.com; message B, to postmaster@example.com"
    assert_eq!(run(script, COYOTE), [redirect("acm@example.com")]);
    assert_eq!(run(script, B1FF), [redirect("postmaster@example.com")]);
    assert_eq!(run(script, "From: a@b.c\nSubject: win $$$\n\nx\n"), [redirect("postmaster@example.com")]);
    assert_eq!(run(script, PLAIN), [redirect("field@example.com")]);
}

/// §3.1's first example ("both Message A and B are dropped") and §4.1's (message A is filed into
/// "INBOX.harassment"); fileinto INBOX is keep (§2.10.3).
#[test]
fn require_and_fileinto() {
    let script = r#"require "fileinto";
if header :contains "from" "coyote" {
   discard;
} elsif header :contains ["subject"] ["$$$"] {
   discard;
} else {
   fileinto "INBOX";
}"#;
    assert_eq!(run(script, COYOTE), [Action::Discard]);
    assert_eq!(run(script, B1FF), [Action::Discard]);
    assert_eq!(run(script, PLAIN), [keep()]);
    let harassment =
        "require \"fileinto\";\nif header :contains [\"from\"] \"coyote\" {\n   fileinto \"INBOX.harassment\";\n}";
    assert_eq!(run(harassment, COYOTE), [fileinto("INBOX.harassment")]);
    assert_eq!(run(harassment, B1FF), [keep()]);
}

/// §3.2's examples: require alone does nothing but declare; an unknown capability is refused.
#[test]
fn require_examples() {
    for script in ["require [\"fileinto\", \"reject\"];", "require \"fileinto\";\nrequire \"vacation\";"] {
        assert_eq!(run(script, COYOTE), [keep()], "{script}");
    }
    assert!(mailbus_sieve::parse("require \"no-such-thing\";", &mailbus_sieve::Limits::default()).is_err());
}

/// §3.3 (no example there): stop ends the script; implicit keep still applies.
#[test]
fn stop() {
    let script = "require \"fileinto\";\nif header :contains \"from\" \"coyote\" { stop; }\nfileinto \"other\";";
    assert_eq!(run(script, COYOTE), [keep()]);
    assert_eq!(run(script, PLAIN), [fileinto("other")]);
}

/// §4.2, §4.3, §4.4: redirect, keep, discard.
#[test]
fn redirect_keep_discard() {
    assert_eq!(run("redirect \"bart@example.com\";", PLAIN), [redirect("bart@example.com")]);
    let keep_small = "if size :under 1M { keep; } else { discard; }";
    assert_eq!(run(keep_small, PLAIN), [keep()]);
    let big = format!("{PLAIN}{}", "x".repeat(1 << 20));
    assert_eq!(run(keep_small, &big), [Action::Discard]);
    // "Note that the above script is identical to the one below."
    let not_under = "if not size :under 1M { discard; }";
    assert_eq!(run(not_under, PLAIN), [keep()]);
    assert_eq!(run(not_under, &big), [Action::Discard]);
    let idiot = "if header :contains [\"from\"] [\"idiot@example.com\"] {\n   discard;\n}";
    assert_eq!(run(idiot, "From: Idiot <IDIOT@example.com>\n\nx\n"), [Action::Discard]);
    assert_eq!(run(idiot, PLAIN), [keep()]);
    assert_eq!(run("redirect \"bart@example.com\";", COYOTE), [redirect("bart@example.com")]);
}

/// §5.1: address with :all.
#[test]
fn address() {
    let script = "if address :is :all \"from\" \"tim@example.com\" {\n   discard;\n}";
    assert_eq!(run(script, "From: Tim <tim@example.com>\n\nx\n"), [Action::Discard]);
    assert_eq!(run(script, "From: tim@example.com.evil\n\nx\n"), [keep()]);
    // An encoded comma in a display name does not make a second address.
    let count = "require \"relational\"; if address :count \"eq\" \"from\" \"1\" { discard; }";
    assert_eq!(run(count, "From: =?utf-8?q?Doe=2C_John?= <tim@example.com>\n\nx\n"), [Action::Discard]);
}

/// §5.2, §5.3, §5.8: allof, anyof, not.
#[test]
fn allof_anyof_not() {
    let cases = [
        ("allof (false, false)", false),
        ("allof (false, true)", false),
        ("allof (true, true)", true),
        ("anyof (false, false)", false),
        ("anyof (false, true)", true),
        ("anyof (true,  true)", true),
        ("allof (true,  true)", true),
        ("not false", true),
        ("not true", false),
        ("not size :over 1M", true),
        ("not exists \"From\"", false),
    ];
    for (test, result) in cases {
        let actions = run(&format!("if {test} {{ discard; }}"), PLAIN);
        assert_eq!(actions == [Action::Discard], result, "{test}");
    }
}

/// §5.4: envelope, and the null reverse-path.
#[test]
fn envelope() {
    let script = "require \"envelope\";\nif envelope :all :is \"from\" \"tim@example.com\" {\n   discard;\n}";
    let tim = Delivery { from: Some("tim@example.com"), ..DEFAULT };
    assert_eq!(run_with(script, PLAIN, &tim, &Memory::default()).actions, [Action::Discard]);
    assert_eq!(run(script, PLAIN), [keep()]);
    let null = "require \"envelope\";\nif envelope :domain :is \"from\" \"\" { discard; }";
    let bounce = Delivery { from: None, ..DEFAULT };
    assert_eq!(run_with(null, PLAIN, &bounce, &Memory::default()).actions, [Action::Discard]);
    assert_eq!(run(null, PLAIN), [keep()]);
}

/// §5.5: exists.
#[test]
fn exists() {
    let script = "if not exists [\"From\",\"Date\"] {\n   discard;\n}";
    assert_eq!(run(script, COYOTE), [keep()]);
    assert_eq!(run(script, B1FF), [keep()]);
    assert_eq!(run(script, PLAIN), [Action::Discard]);
}

/// §5.7: header, and the empty key, on the RFC's X-Caffeine example.
#[test]
fn header() {
    let caffeine = "X-Caffeine: C8H10N4O2\nFrom: a@b.c\n\nx\n";
    assert_eq!(run("if header :is [\"X-Caffeine\"] [\"\"] { discard; }", caffeine), [keep()]);
    assert_eq!(run("if header :contains [\"X-Caffeine\"] [\"\"] { discard; }", caffeine), [Action::Discard]);
    // "absent or doesn't contain any non-whitespace characters"
    let no_cc = "if not header :matches \"Cc\" \"?*\" { discard; }";
    assert_eq!(run(no_cc, caffeine), [Action::Discard]);
    assert_eq!(run(no_cc, "Cc:   \nFrom: a@b.c\n\nx\n"), [Action::Discard]);
    assert_eq!(run(no_cc, "Cc: someone@example.com\n\nx\n"), [keep()]);
    let empty = "if header :is [\"X-Caffeine\"] [\"\"] { discard; }";
    let any = "if header :contains \"X-Caffeine\" \"\" { discard; }";
    let with_empty = "X-Caffeine:\nFrom: a@b.c\n\nx\n";
    let with_value = "X-Caffeine: Some\n\nx\n";
    assert_eq!(run(empty, with_empty), [Action::Discard]);
    assert_eq!(run(empty, with_value), [keep()]);
    assert_eq!(run(any, with_value), [Action::Discard]);
    assert_eq!(run(any, PLAIN), [keep()]);
}

/// §5.9: size.
#[test]
fn size() {
    let len = PLAIN.replace('\n', "\r\n").len();
    assert_eq!(run(&format!("if size :over {} {{ discard; }}", len - 1), PLAIN), [Action::Discard]);
    assert_eq!(run(&format!("if size :over {len} {{ discard; }}"), PLAIN), [keep()]);
    assert_eq!(run(&format!("if size :under {len} {{ discard; }}"), PLAIN), [keep()]);
}

/// §2.7: comparators and match types, including :matches wildcards and escapes.
#[test]
fn comparators_and_match_types() {
    let m = "Subject: Make Money *Fast*\n\nx\n";
    assert_eq!(run("if header :matches \"subject\" \"*money*\" { discard; }", m), [Action::Discard]);
    assert_eq!(run("if header :matches :comparator \"i;octet\" \"subject\" \"*money*\" { discard; }", m), [keep()]);
    assert_eq!(run("if header :matches \"subject\" \"make money \\\\*fast\\\\*\" { discard; }", m), [Action::Discard]);
    assert_eq!(run("if header :matches \"subject\" \"make money ?fast?\" { discard; }", m), [Action::Discard]);
    assert_eq!(run("if header :is \"subject\" \"make money\" { discard; }", m), [keep()]);
}

/// §9: the extended example.
#[test]
fn extended_example() {
    let script = r#"#
# Example Sieve Filter
# Declare any optional features or extension used by the script
#
require ["fileinto"];

#
# Handle messages from known mailing lists
# Move messages from IETF filter discussion list to filter mailbox
#
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
        fileinto "filter";  # move to "filter" mailbox
        }
#
# Keep all messages to or from people in my company
#
elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
        keep;               # keep in "In" mailbox
        }

#
# Try and catch unsolicited email.  If a message is not to me,
# or it contains a subject known to be spam, file it away.
#
elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"])
        {
        fileinto "spam";   # move to "spam" mailbox
        }
else
        {
        # Move all other (non-company) mail to "personal"
        # mailbox.
        fileinto "personal";
        }
"#;
    // Neither of §1.2's messages is to me@example.com, nor from or to example.com.
    assert_eq!(run(script, COYOTE), [fileinto("spam")]);
    assert_eq!(run(script, B1FF), [fileinto("spam")]);
    assert_eq!(run(script, "Sender: owner-ietf-mta-filters@imc.org\n\nx\n"), [fileinto("filter")]);
    assert_eq!(run(script, "From: boss@example.com\n\nx\n"), [keep()]);
    assert_eq!(run(script, "From: x@spam.example\nTo: other@example.net\n\nx\n"), [fileinto("spam")]);
    // Addressed to us (in Cc, so "To" is not our domain), but with a spam subject.
    let spam = "From: x@spam.example\nTo: list@lists.example.net\nCc: me@example.com\nSubject: MAKE MONEY FAST\n\nx\n";
    assert_eq!(run(script, spam), [fileinto("spam")]);
    assert_eq!(run(script, "From: mum@home.example\nCc: me@example.com\nSubject: tea\n\nx\n"), [fileinto("personal")]);
}

/// §2.10.3: the same action twice is one action.
#[test]
fn duplicate_actions_merge() {
    let script = "require \"fileinto\"; keep; fileinto \"INBOX\"; redirect \"a@b.c\"; redirect \"A@B.C\"; fileinto \"x\"; fileinto \"x\";";
    assert_eq!(run(script, PLAIN), [keep(), redirect("a@b.c"), fileinto("x")]);
}

/// §2.6.2: a reject (RFC 5429) cancels implicit keep, and is refused beside vacation.
#[test]
fn reject() {
    let script = "require \"reject\";\nif header :contains \"subject\" \"MAKE MONEY FAST\" {\n   reject \"I do not participate in illegal schemes.\";\n}";
    let actions = run(script, "Subject: MAKE MONEY FAST\n\nx\n");
    assert_eq!(
        actions,
        [Action::Reject { reason: "I do not participate in illegal schemes.".into(), extended: false }]
    );
    let conflicts = [
        "require [\"reject\", \"vacation\"]; vacation \"away\"; reject \"no\";",
        "require [\"reject\", \"vacation\"]; reject \"no\"; vacation \"away\";",
        "require [\"reject\", \"fileinto\"]; fileinto \"x\"; reject \"no\";",
        "require \"reject\"; reject \"no\"; keep;",
        "require \"reject\"; redirect \"a@b.c\"; reject \"no\";",
        "require \"reject\"; reject \"no\"; reject \"again\";",
    ];
    for script in conflicts {
        let outcome = run_with(script, "To: me@example.com\n\nx\n", &DEFAULT, &Memory::default());
        assert!(matches!(outcome.error, Some(mailbus_sieve::RuntimeError::Conflict(_))), "{script}");
        assert_eq!(outcome.actions, [keep()], "{script}");
    }
    // Discard and reject go together; reject alone cancels implicit keep.
    assert_eq!(
        run("require \"reject\"; discard; reject \"no\";", "x: y\n\nx\n"),
        [Action::Reject { reason: "no".into(), extended: false }]
    );
}
