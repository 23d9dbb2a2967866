//! The independent reference: Dovecot Pigeonhole's `sieve-test` (Debian's dovecot-sieve, installed by
//! deploy/prerequisites) runs the same scripts on the same messages, and both must decide the same
//! stores (mailbox, flags, `:create`), redirects, rejects, and whether vacation answers.
//!
//! `sieve-test` without `-e` prints the actions the script chose; vacation's own checks (lists, bulk,
//! auto-submitted, our address in the headers) run only when actions are executed, so a script with
//! vacation runs again with `-e`, where Pigeonhole says whether it sent or discarded the reply.
//!
//! Left out on purpose: `date :index` on `Received` (Pigeonhole 0.5.19 reads the first field whatever
//! the index; RFC 5260 §6 says otherwise, and tests/extensions.rs covers ours) and `currentdate`
//! (the two would read different clocks).

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use mailbus_sieve::Action;
use support::*;

struct Mail {
    name: &'static str,
    /// The envelope sender. Pigeonhole's sieve-test has no way to give the null sender `<>`, so the
    /// bounce here comes from MAILER-DAEMON; our own tests cover `<>`.
    from: &'static str,
    to: &'static str,
    text: &'static str,
}

const ACCOUNT: &str = "me@example.net";

const MAILS: &[Mail] = &[
    Mail {
        name: "friend",
        from: "friend@example.org",
        to: ACCOUNT,
        text: "Date: Tue, 10 Nov 2009 12:05:00 +0100\nFrom: A Friend <friend@example.org>\nTo: Me <me@example.net>\nSubject: Lunch on Friday?\nMessage-ID: <lunch@example.org>\n\nShall we?\n",
    },
    Mail {
        name: "list",
        from: "acme-users-bounces@lists.example.org",
        to: ACCOUNT,
        text: "Date: Sat, 14 Nov 2009 08:00:00 -0800\nFrom: Wile <wile@acme.example.com>\nTo: acme-users@lists.example.org\nCc: me@example.net\nSubject: [acme-users] [fwd] version 1.0 is out\nList-Id: ACME users <acme-users.lists.example.org>\nPrecedence: list\n\nNew version!\n",
    },
    Mail {
        name: "boss",
        from: "boss@example.com",
        to: ACCOUNT,
        text: "Received: from mx.example.net by us; Wed, 11 Nov 2009 09:30:00 +0000\nReceived: from origin.example.com by mx.example.net; Wed, 11 Nov 2009 09:29:00 +0000\nDate: Wed, 11 Nov 2009 10:29:00 +0100\nFrom: The Boss <boss@example.com>\nTo: me@example.net, two@example.com, three@example.com\nCc: four@example.com\nSubject: URGENT: quarterly report\nX-Priority: 1\n\nNeed it now.\n",
    },
    Mail {
        name: "spam",
        from: "x@spam.example",
        to: ACCOUNT,
        text: "Date: Sun, 15 Nov 2009 03:00:00 +0000\nFrom: x@spam.example\nTo: undisclosed-recipients:;\nSubject: =?utf-8?q?MAKE_MONEY_FAST_=E2=82=AC=E2=82=AC?=\n\nYou can make money fast, really.\n",
    },
    Mail {
        name: "multipart",
        from: "friend@example.org",
        to: "me+sieve@example.net",
        text: "Date: Tue, 10 Nov 2009 18:35:00 +0100\nFrom: friend@example.org\nTo: me+sieve@example.net\nSubject: Sieve scripts\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=outer\n\n--outer\nContent-Type: multipart/alternative; boundary=inner\n\n--inner\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nThe filter for the mis=\nsile list is attached.\n--inner\nContent-Type: text/html; charset=utf-8\n\n<p>The filter for the <b>missile</b> list is attached.</p>\n--inner--\n--outer\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nc2VjcmV0IGNvb3JkaW5hdGVz\n--outer--\n",
    },
    Mail {
        name: "bounce",
        from: "MAILER-DAEMON@example.org",
        to: ACCOUNT,
        text: "Date: Tue, 10 Nov 2009 18:35:00 +0100\nFrom: Mail Delivery System <MAILER-DAEMON@example.org>\nTo: me@example.net\nSubject: Undelivered Mail Returned to Sender\nAuto-Submitted: auto-replied\n\nSorry.\n",
    },
    Mail {
        name: "auto",
        from: "robot@example.org",
        to: ACCOUNT,
        text: "From: robot@example.org\nTo: me@example.net\nSubject: Your ticket\nAuto-Submitted: auto-generated\n\nTicket 1.\n",
    },
];

const SCRIPTS: &[(&str, &str)] = &[
    (
        "rfc5228-extended",
        r#"require ["fileinto"];
if header :is "Sender" "owner-ietf-mta-filters@imc.org" { fileinto "filter"; }
elsif address :DOMAIN :is ["From", "To"] "example.net" { keep; }
elsif anyof (NOT address :all :contains ["To", "Cc", "Bcc"] "me@example.net",
             header :matches "subject" ["*make*money*fast*", "*university*dipl*mas*"]) { fileinto "spam"; }
else { fileinto "personal"; }"#,
    ),
    (
        "lists-by-variables",
        r#"require ["fileinto", "variables"];
if header :matches "List-Id" "*<*.lists.example.org>" { fileinto "lists.${2}"; stop; }
if header :matches "Subject" "[*] *" { fileinto "tagged.${1}"; }"#,
    ),
    (
        "flags",
        r#"require ["fileinto", "imap4flags"];
setflag "\\Seen";
if header :contains "subject" "urgent" { addflag ["\\Flagged", "$Important"]; keep :flags ["Work"]; }
if address :is "from" "friend@example.org" { removeflag "\\Seen"; fileinto "Friends"; }
if exists "List-Id" { addflag "$List"; }"#,
    ),
    (
        "redirects",
        r#"require ["copy"];
if address :domain :is "from" "example.com" { redirect :copy "assistant@example.net"; }
if header :contains "subject" "lunch" { redirect "calendar@example.net"; }"#,
    ),
    ("vacation-plain", "require \"vacation\";\nvacation \"I'm away until Monday.\";"),
    (
        "vacation-tagged",
        r#"require ["vacation", "variables"];
if header :matches "subject" "*" { set "s" "${1}"; }
vacation :days 3 :subject "Away: ${s}" :addresses ["me@example.net", "alias@example.net"] :handle "h1" "Back soon.";
if header :contains "subject" "report" { discard; }"#,
    ),
    (
        "body",
        r#"require ["body", "fileinto", "imap4flags"];
if body :text :contains "money fast" { fileinto "Junk"; }
if body :content "text/html" :contains "<b>" { addflag "html"; }
if body :content "text" :contains "missile list" { fileinto "Secrets"; }
if body :raw :contains "mis=" { addflag "qp"; }"#,
    ),
    (
        "relational",
        r#"require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "lt" :comparator "i;ascii-numeric" "x-priority" "3" { fileinto "Priority"; }
if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "3" { fileinto "Crowd"; }
if address :value "gt" :all "from" "m" { fileinto "From N-Z"; }"#,
    ),
    (
        "subaddress",
        r#"require ["envelope", "subaddress", "fileinto", "imap4flags"];
if envelope :detail "to" "sieve" { fileinto "Sieve"; }
if envelope :user "to" "me" { addflag "mine"; }
if envelope :domain :is "from" "spam.example" { discard; }"#,
    ),
    (
        "encoded-subject",
        "require \"fileinto\";\nif header :contains \"subject\" \"FAST \u{20ac}\u{20ac}\" { fileinto \"Euro\"; }",
    ),
    (
        "dates",
        r#"require ["date", "relational", "fileinto", "index"];
if allof(date :value "ge" :originalzone "date" "hour" "09", date :value "lt" :originalzone "date" "hour" "17") { fileinto "office-hours"; }
if date :is :zone "+0000" "date" "weekday" ["0", "6"] { fileinto "weekend"; }
if header :index 1 :last :contains "received" "origin.example.com" { fileinto "first-hop"; }"#,
    ),
    (
        "size-exists-stop",
        r#"require "fileinto";
if size :over 400 { fileinto "Big"; stop; }
if not exists "Message-ID" { fileinto "No-Id"; }
if exists ["Auto-Submitted", "Date"] { discard; }"#,
    ),
    (
        "reject",
        r#"require "reject";
if address :localpart :is "from" "x" { reject "No thanks."; }"#,
    ),
    (
        "variables-modifiers",
        r#"require ["variables", "fileinto", "relational", "comparator-i;ascii-numeric"];
if address :localpart :matches "from" "*" { set :upperfirst :lower "who" "${1}"; }
set :length "n" "${who}";
if string :value "gt" :comparator "i;ascii-numeric" "${n}" "5" { fileinto "long-${who}"; } else { fileinto "short-${who}"; }"#,
    ),
    (
        "reject-conflicts",
        r#"require ["reject", "fileinto"];
if header :contains "subject" "report" { fileinto "Reports"; }
if header :contains "subject" ["report", "lunch"] { reject "Not today."; }"#,
    ),
    (
        "counts-and-envelope",
        r#"require ["imap4flags", "relational", "fileinto", "comparator-i;ascii-numeric", "envelope"];
addflag ["a", "b"];
if hasflag :count "eq" :comparator "i;ascii-numeric" "2" { fileinto "two-flags"; }
if header :count "ge" :comparator "i;ascii-numeric" "received" "2" { fileinto "two-hops"; }
if envelope :all :is "to" "me+sieve@example.net" { fileinto "detail"; }
if address :count "eq" :comparator "i;ascii-numeric" "to" "0" { removeflag "a"; }"#,
    ),
    // The RFCs' own example scripts, exactly as printed (tests/rfc5228.rs and tests/rfc5230.rs run them
    // on the RFCs' messages).
    (
        "rfc5228-3.1-a",
        r#"require "fileinto";
if header :contains "from" "coyote" {
   discard;
} elsif header :contains ["subject"] ["$$$"] {
   discard;
} else {
   fileinto "INBOX";
}"#,
    ),
    (
        "rfc5228-3.1-b",
        r#"if header :contains ["From"] ["coyote"] {
   redirect "acm@example.com";
} elsif header :contains "Subject" "$$$" {
   redirect "postmaster@example.com";
} else {
   redirect "field@example.com";
}"#,
    ),
    (
        "rfc5228-2.4.2.4",
        r#"require "encoded-character";
if header :contains "Subject" "$${hex:24 24}" {
   discard;
}"#,
    ),
    (
        "rfc5228-2.7.3-and-5.7",
        r#"require "fileinto";
if header :contains :comparator "i;octet" "Subject"
      "MAKE MONEY FAST" {
   discard;
}
if not header :matches "Cc" "?*" { fileinto "no-cc"; }"#,
    ),
    (
        "rfc5228-9",
        r#"#
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
"#,
    ),
    (
        "rfc5228-2.4.2.4-table",
        r#"require ["encoded-character", "fileinto", "variables"];
if string :is "$${hex:40}" "$@" { fileinto "t1"; }
if string :is "${hex: 40 }" "@" { fileinto "t2"; }
if string :is "${hex:40" "@" { fileinto "t3"; }
if string :is "${hex:400}" "@" { fileinto "t4"; }
if string :is "${ unicode:40}" "@" { fileinto "t5"; }
if string :is "${UnICoDE:0000040}" "@" { fileinto "t6"; }
if string :is "${Unicode:Cool}" "${Unicode:Cool}" { fileinto "t7"; }
if string :is "${hex:}" "" { fileinto "t8"; }"#,
    ),
    (
        "rfc5230-4.8",
        r#"require "vacation";
if header :contains "from" "boss@example.edu" {
    redirect "pleeb@isp.example.org";
} else {
    vacation "Sorry, I'm away, I'll read your
message when I get around to it.";
}"#,
    ),
    (
        "rfc5230-7",
        r#"require "vacation";
if address :matches "from" "*@ourdivision.example.com"
{
    vacation :subject "Gone fishing"
             "Having lots of fun! Back in a day or two!";
} else {
    vacation :subject "Je suis parti cette semaine"
             "Je lirai votre message quand je retourne.";
}"#,
    ),
    (
        "mailbox-create",
        r#"require ["fileinto", "mailbox", "imap4flags"];
if header :contains "subject" ["Sieve", "lunch"] { fileinto :create :flags "\\Seen" "Archive/2009"; }"#,
    ),
];

fn sieve_test() -> &'static str {
    let path = "/usr/bin/sieve-test";
    assert!(Path::new(path).exists(), "sieve-test is missing: run deploy/prerequisites (Debian's dovecot-sieve)");
    path
}

/// Pigeonhole refuses to run as root; run it as nobody then.
fn as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn pigeonhole(dir: &Path, mail: &Mail, script: &Path, message: &Path, execute: bool) -> String {
    let mut command = if as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", sieve_test()]);
        c
    } else {
        Command::new(sieve_test())
    };
    command.env("HOME", dir).env("TZ", "UTC");
    if execute {
        command.arg("-e").arg("-l").arg(format!("maildir:{}/mail", dir.display()));
    }
    command.args(["-f", mail.from, "-r", ACCOUNT, "-a", mail.to]).arg(script).arg(message);
    let out = command.output().expect("run sieve-test");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("Fatal") && !stdout.contains("script compile failed"),
        "sieve-test failed:\n{stdout}\n{stderr}"
    );
    stdout + &stderr
}

/// Pigeonhole's result, as the same normalised set of actions as ours.
fn reference(dir: &Path, mail: &Mail, script: &Path, message: &Path) -> BTreeSet<String> {
    let listing = pigeonhole(dir, mail, script, message, false);
    let mut actions = BTreeSet::new();
    let mut store: Option<(String, Vec<String>, bool)> = None;
    let mut vacation = false;
    let flush = |store: &mut Option<(String, Vec<String>, bool)>, actions: &mut BTreeSet<String>| {
        if let Some((mailbox, flags, create)) = store.take() {
            actions.insert(stored(&mailbox, &flags, create));
        }
    };
    for line in listing.lines() {
        let line = line.trim();
        if let Some(mailbox) = line.strip_prefix("* store message in folder: ") {
            flush(&mut store, &mut actions);
            store = Some((mailbox.to_owned(), Vec::new(), false));
        } else if let Some(flags) = line.strip_prefix("+ add IMAP flags: ") {
            if let Some((_, list, _)) = &mut store {
                list.extend(flags.split_whitespace().map(str::to_owned));
            }
        } else if line == "+ create mailbox if it does not exist" {
            if let Some((_, _, create)) = &mut store {
                *create = true;
            }
        } else if let Some(address) = line.strip_prefix("* redirect message to: ") {
            flush(&mut store, &mut actions);
            actions.insert(format!("redirect {}", address.trim_matches(['<', '>'])));
        } else if line.starts_with("* reject message") {
            flush(&mut store, &mut actions);
            actions.insert("reject".to_owned());
        } else if line.starts_with("* send vacation message") {
            flush(&mut store, &mut actions);
            vacation = true;
        } else if line.starts_with("* ") {
            flush(&mut store, &mut actions);
        }
    }
    flush(&mut store, &mut actions);
    // A runtime error (such as reject beside fileinto) keeps the message, as ours does.
    if listing.contains("resolved with successful implicit keep") {
        return BTreeSet::from([stored("INBOX", &[], false)]);
    }
    if vacation && pigeonhole(dir, mail, script, message, true).contains("sent vacation response") {
        actions.insert("vacation".to_owned());
    }
    actions
}

fn stored(mailbox: &str, flags: &[String], create: bool) -> String {
    let mut flags: Vec<String> = flags.iter().map(|f| f.to_ascii_lowercase()).collect();
    flags.sort();
    flags.dedup();
    let create = if create && mailbox != "INBOX" { " (create)" } else { "" };
    format!("store {mailbox} [{}]{create}", flags.join(" "))
}

fn ours(script: &str, mail: &Mail) -> BTreeSet<String> {
    let delivery =
        Delivery { from: Some(mail.from), to: mail.to, account: ACCOUNT, now: "Tue, 10 Nov 2009 18:35:00 +0000" };
    let outcome = run_with(script, mail.text, &delivery, &Memory::default());
    outcome
        .actions
        .iter()
        .filter_map(|action| match action {
            Action::Keep { flags } => Some(stored("INBOX", flags, false)),
            Action::FileInto { mailbox, flags, create } => Some(stored(mailbox, flags, *create)),
            Action::Redirect { address, .. } => Some(format!("redirect {address}")),
            Action::Reject { .. } => Some("reject".to_owned()),
            Action::Vacation(_) => Some("vacation".to_owned()),
            Action::Discard => None,
        })
        .collect()
}

#[test]
fn same_actions_as_pigeonhole() {
    let dir = tempfile::tempdir().unwrap();
    // sieve-test runs as nobody when we are root: it must read our files and write its own.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let mut differences = Vec::new();
    let mut compared = 0;
    let mut kinds = BTreeSet::new();
    for (name, script) in SCRIPTS {
        let script_path = dir.path().join(format!("{name}.sieve"));
        fs::write(&script_path, script).unwrap();
        for mail in MAILS {
            let message_path = dir.path().join(format!("{}.eml", mail.name));
            fs::write(&message_path, mail.text.replace('\n', "\r\n")).unwrap();
            let expected = reference(dir.path(), mail, &script_path, &message_path);
            let got = ours(script, mail);
            kinds.extend(got.iter().map(|a| a.split(' ').next().unwrap().to_owned()));
            compared += 1;
            if got != expected {
                differences.push(format!("{name} on {}:\n  pigeonhole {expected:?}\n  ours       {got:?}", mail.name));
            }
        }
    }
    assert!(differences.is_empty(), "{} of {compared} differ:\n{}", differences.len(), differences.join("\n"));
    // The set must exercise every kind of action, or it proves less than it claims.
    assert_eq!(kinds, BTreeSet::from(["redirect", "reject", "store", "vacation"].map(str::to_owned)));
}
