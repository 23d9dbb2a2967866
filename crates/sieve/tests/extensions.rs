//! The main examples of the extensions: imap4flags (RFC 5232), copy (RFC 3894), body (RFC 5173),
//! variables (RFC 5229), relational (RFC 5231), subaddress (RFC 5233), date and index (RFC 5260),
//! mailbox (RFC 5490).

mod support;

use mailbus_sieve::Action;
use support::*;

fn flags(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// RFC 5232 §7's example: flags kept in variables, and the internal variable for implicit keep.
#[test]
fn imap4flags() {
    let script = r#"require ["fileinto", "imap4flags", "variables"];
if size :over 1M {
    addflag "MyFlags" "Big";
    if header :is "From" "boss@company.example.com" {
        # The message will be marked as "\Flagged Big" when filed into mailbox "Big messages"
        addflag "MyFlags" "\\Flagged";
    }
    fileinto :flags "${MyFlags}" "Big messages";
}
if header :is "From" "grandma@example.net" {
    addflag "MyFlags" ["\\Answered", "$MDNSent"];
    # If the message is bigger than 1Mb it will be marked as "Big \Answered $MDNSent" when filed into
    # mailbox "grandma". If the message is shorter than 1Mb it will be marked as "\Answered $MDNSent"
    fileinto :flags "${MyFlags}" "GrandMa";
}
# Handle all messages with "Disconnected" in the subject.
if header :contains "Subject" "Disconnected" {
    removeflag "MyFlags" "\\Flagged";
    fileinto :flags "${MyFlags}" "Disconnected";
}
setflag "\\Seen";
"#;
    let big = format!("From: boss@company.example.com\nSubject: Disconnected\n\n{}\n", "x".repeat(1 << 20));
    assert_eq!(
        run(script, &big),
        [
            Action::FileInto { mailbox: "Big messages".into(), flags: flags(&["Big", "\\Flagged"]), create: false },
            Action::FileInto { mailbox: "Disconnected".into(), flags: flags(&["Big"]), create: false },
        ]
    );
    assert_eq!(
        run(script, "From: grandma@example.net\n\nx\n"),
        [Action::FileInto { mailbox: "GrandMa".into(), flags: flags(&["\\Answered", "$MDNSent"]), create: false }]
    );
    // Implicit keep takes the internal variable's flags.
    assert_eq!(run(script, "From: a@b.c\n\nx\n"), [Action::Keep { flags: flags(&["\\Seen"]) }]);
    let has = "require [\"imap4flags\"]; addflag [\"\\\\Seen\", \"Work\"]; if hasflag :contains \"work\" { discard; }";
    assert_eq!(run(has, "From: a@b.c\n\nx\n"), [Action::Discard]);
}

/// RFC 3894 §4: redirect :copy and fileinto :copy keep the implicit keep.
#[test]
fn copy() {
    let script =
        "require [\"copy\", \"fileinto\"];\nredirect :copy \"sieve-admin@example.com\";\nfileinto :copy \"incoming\";";
    assert_eq!(
        run(script, "From: a@b.c\n\nx\n"),
        [Action::Redirect { address: "sieve-admin@example.com".into(), copy: true }, fileinto("incoming"), keep()]
    );
}

/// RFC 5173 §7's example, and :raw against :text.
#[test]
fn body() {
    let script = r#"require ["body", "fileinto"];
# Save any message with any text MIME part that contains the words "missile" or "coordinates" in the
# "secrets" folder.
if body :content "text" :contains ["missile", "coordinates"] {
        fileinto "secrets";
}
# Save any message with an audio/mp3 MIME part in the "jukebox" folder.
if body :content "audio/mp3" :contains "" {
        fileinto "jukebox";
}"#;
    let multipart = "From: a@b.c\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\nthe mis=\nsile is ready\n--b\nContent-Type: audio/mp3\nContent-Transfer-Encoding: base64\n\nAAAA\n--b--\n";
    assert_eq!(run(script, multipart), [fileinto("secrets"), fileinto("jukebox")]);
    assert_eq!(run(script, "From: a@b.c\n\nnothing here\n"), [keep()]);
    // :text sees the decoded text, :raw the encoded one.
    assert_eq!(
        run("require \"body\"; if body :text :contains \"missile is\" { discard; }", multipart),
        [Action::Discard]
    );
    assert_eq!(run("require \"body\"; if body :raw :contains \"missile is\" { discard; }", multipart), [keep()]);
    assert_eq!(run("require \"body\"; if body :raw :contains \"mis=\" { discard; }", multipart), [Action::Discard]);
}

/// RFC 5229 §3.2's examples of match variables, and §4's set.
#[test]
fn variables() {
    let script = r#"require ["fileinto", "variables"];
if header :matches "List-ID" "*<*@*" {
    fileinto "INBOX.lists.${2}"; stop;
}
# Imagine the header
# Subject: [acme-users] [fwd] version 1.0 is out
if header :matches "Subject" "[*] *" {
    # ${1} will hold "acme-users",
    # ${2} will hold "[fwd] version 1.0 is out"
    fileinto "INBOX.lists.${1}"; stop;
}
# Imagine the header
# To: coyote@ACME.Example.COM
if address :matches ["To", "Cc"] ["coyote@**.com",
        "wile@**.com"] {
    # ${0} is the matching address
    # ${1} is always the empty string
    # ${2} is part of the domain name ("ACME.Example")
    fileinto "INBOX.business.${2}"; stop;
} else {
    # Control wouldn't reach this block if any match was
    # successful, so no match variables are set at this
    # point.
}
if anyof (true, address :domain :matches "To" "*.com") {
    # The second test is never evaluated, so there are
    # still no match variables set.
    stop;
}"#;
    assert_eq!(run(script, "List-ID: Sieve list <sieve@lists.example.org>\n\nx\n"), [fileinto("INBOX.lists.sieve")]);
    assert_eq!(
        run(script, "Subject: [acme-users] [fwd] version 1.0 is out\n\nx\n"),
        [fileinto("INBOX.lists.acme-users")]
    );
    assert_eq!(run(script, "To: coyote@ACME.Example.COM\n\nx\n"), [fileinto("INBOX.business.ACME.Example")]);
    assert_eq!(run(script, "To: other@example.org\n\nx\n"), [keep()]);

    let set = r#"require ["variables", "fileinto"];
set "honorific"  "Mr";
set "first_name" "Wile";
set "last_name"  "Coyote";
set "vacation" text:
Dear ${HONORIFIC} ${last_name},
I'm out, please leave a message after the meep.
.
;
set :upperfirst :lower "folder" "${FIRST_NAME}-JUNK";
set :length "count" "${first_name}";
if string :matches "${vacation}" "Dear Mr Coyote,?*I'm out, please leave a message after the meep.?*" {
    fileinto "${folder}/${count}";
}
set "state" "${state} pending";
if string :matches " ${state} " "* pending *" {
    fileinto "always";
}"#;
    assert_eq!(run(set, "From: a@b.c\n\nx\n"), [fileinto("Wile-junk/4"), fileinto("always")]);
}

/// RFC 5231 §6's examples.
#[test]
fn relational() {
    let script = r#"require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "lt" :comparator "i;ascii-numeric"
   ["x-priority"] ["3"] {
    fileinto "Priority";
}
elsif address :count "gt" :comparator "i;ascii-numeric"
   ["to"] ["5"] {
    # everything with more than 5 recipients in the "to" field is considered SPAM
    fileinto "SPAM";
}
elsif address :value "gt" :all :comparator "i;ascii-casemap"
   ["from"] ["M"] {
    fileinto "From N-Z";
} else {
    fileinto "From A-M";
}
if allof ( address :count "eq" :comparator "i;ascii-numeric"
                   ["to", "cc"] ["1"] ,
           address :all :comparator "i;ascii-casemap"
                   ["to", "cc"] ["me@foo.example.com"] ) {
    fileinto "Only me";
}"#;
    assert_eq!(run(script, "X-Priority: 1\nFrom: zed@x.example\n\nx\n"), [fileinto("Priority")]);
    assert_eq!(run(script, "To: a@x, b@x, c@x, d@x, e@x, f@x\nFrom: zed@x.example\n\nx\n"), [fileinto("SPAM")]);
    assert_eq!(run(script, "From: zed@x.example\n\nx\n"), [fileinto("From N-Z")]);
    assert_eq!(
        run(script, "From: adam@x.example\nTo: me@foo.example.com\n\nx\n"),
        [fileinto("From A-M"), fileinto("Only me")]
    );
}

/// RFC 5233 §6's example: envelope :user and :detail.
#[test]
fn subaddress() {
    let script = r#"require ["envelope", "subaddress", "fileinto"];
# In this example the same user account receives mail for both "ken@example.com" and
# "postmaster@example.com"
# File all messages to postmaster into a single mailbox, ignoring the :detail part.
if envelope :user "to" "postmaster" {
    fileinto "inbox.postmaster";
    stop;
}
# File mailing list messages (subscribed as "ken+mta-filters").
if envelope :detail "to" "mta-filters" {
    fileinto "inbox.ietf-mta-filters";
}
# Redirect all mail sent to "ken+foo".
if envelope :detail "to" "foo" {
    redirect "ken@example.net";
}"#;
    let with = |to| run_with(script, "From: a@b.c\n\nx\n", &Delivery { to, ..DEFAULT }, &Memory::default()).actions;
    assert_eq!(with("postmaster+x@example.com"), [fileinto("inbox.postmaster")]);
    assert_eq!(with("ken+mta-filters@example.com"), [fileinto("inbox.ietf-mta-filters")]);
    assert_eq!(with("ken+foo@example.com"), [redirect("ken@example.net")]);
    assert_eq!(with("ken@example.com"), [keep()]);
    let empty = "require [\"envelope\", \"subaddress\"]; if envelope :detail \"to\" \"\" { discard; }";
    let run_to = |to| run_with(empty, "x: y\n\nx\n", &Delivery { to, ..DEFAULT }, &Memory::default()).actions;
    assert_eq!(run_to("ken+@example.com"), [Action::Discard]);
    assert_eq!(run_to("ken@example.com"), [keep()]);
}

/// RFC 5260 §7's examples, and :index with :last (§6).
#[test]
fn date_and_index() {
    let office = r#"require ["date", "relational", "fileinto"];
if allof(header :is "from" "boss@example.com",
         date :value "ge" :originalzone "date" "hour" "09",
         date :value "lt" :originalzone "date" "hour" "17")
{ fileinto "urgent"; }"#;
    assert_eq!(
        run(office, "From: boss@example.com\nDate: Tue, 10 Nov 2009 10:00:00 -0800\n\nx\n"),
        [fileinto("urgent")]
    );
    assert_eq!(run(office, "From: boss@example.com\nDate: Tue, 10 Nov 2009 18:00:00 -0800\n\nx\n"), [keep()]);

    let weekend = r#"require ["date", "relational", "fileinto"];
if anyof(date :is "received" "weekday" "0",
         date :is "received" "weekday" "6")
{ fileinto "weekend"; }"#;
    let saturday = "Received: from a by b; Sat, 14 Nov 2009 23:30:00 +0000\nFrom: a@b.c\n\nx\n";
    // Our local zone is +0100 (DEFAULT.now): Saturday 23:30 UTC is Sunday 00:30 here, still the weekend.
    assert_eq!(run(weekend, saturday), [fileinto("weekend")]);
    assert_eq!(run(weekend, "Received: from a by b; Tue, 10 Nov 2009 12:00:00 +0000\n\nx\n"), [keep()]);

    let away = r#"require ["date", "relational", "vacation"];
if allof(currentdate :value "ge" "date" "2009-11-01",
         currentdate :value "le" "date" "2009-11-30")
{ vacation :days 7  "I'm away during November."; }"#;
    assert_eq!(vacations(&run(away, "To: me@example.com\n\nx\n")), ["I'm away during November."]);

    let by_month = r#"require ["date", "variables", "fileinto"];
if currentdate :matches "month" "*" { set "month" "${1}"; }
if currentdate :matches "year"  "*" { set "year" "${1}"; }
fileinto "INBOX.${year}-${month}";"#;
    assert_eq!(run(by_month, "x: y\n\nx\n"), [fileinto("INBOX.2009-11")]);

    let index = r#"require ["index", "date", "fileinto"];
if date :index 1 :last :zone "+0000" "received" "date" "2009-11-09" { fileinto "first-hop-monday"; }
if header :index 1 :contains "received" "mx.example.com" { fileinto "last-hop-mx"; }"#;
    let hops = "Received: from mx.example.com by us; Tue, 10 Nov 2009 01:00:00 +0000\nReceived: from origin by relay; Mon, 9 Nov 2009 23:59:00 +0000\n\nx\n";
    assert_eq!(run(index, hops), [fileinto("first-hop-monday"), fileinto("last-hop-mx")]);
}

/// RFC 5490 §3 and §4: mailboxexists and fileinto :create.
#[test]
fn mailbox() {
    let script = r#"require ["fileinto", "reject", "mailbox"];
if mailboxexists "Partners" {
   fileinto "Partners";
} else {
   reject "This message was not accepted by the Mailstore";
}"#;
    let with_partners = Memory { mailboxes: vec!["Partners".into()], ..Memory::default() };
    assert_eq!(run_with(script, "x: y\n\nx\n", &DEFAULT, &with_partners).actions, [fileinto("Partners")]);
    assert_eq!(
        run(script, "x: y\n\nx\n"),
        [Action::Reject { reason: "This message was not accepted by the Mailstore".into(), extended: false }]
    );
    assert_eq!(
        run("require [\"fileinto\", \"mailbox\"]; fileinto :create \"INBOX.folder\";", "x: y\n\nx\n"),
        [Action::FileInto { mailbox: "INBOX.folder".into(), flags: Vec::new(), create: true }]
    );
}

/// A value that grows eightfold thirteen times (a terabyte unbounded) is cut at 64 KiB and the run goes
/// on: a user's script cannot exhaust the memory of the delivering process.
#[test]
fn variables_grow_no_further_than_64_kib() {
    let mut script = String::from("require [\"variables\", \"fileinto\"];\nset \"a\" \"0123456789\";\n");
    for _ in 0..13 {
        script.push_str("set \"a\" \"${a}${a}${a}${a}${a}${a}${a}${a}\";\n");
    }
    script.push_str("set :length \"n\" \"${a}\";\nif string :is \"${n}\" \"65536\" { fileinto \"bounded\"; }\n");
    let actions = run(&script, "From: a@example.net\nSubject: x\n\nhi\n");
    assert!(format!("{actions:?}").contains("bounded"), "{actions:?}");
}
