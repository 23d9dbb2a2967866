//! `mailbus admin mail import|export` as an operator runs it: the real binary against the real stack,
//! and IMAP (imaplib) as the judge of what arrived: folders, flags, INTERNALDATE, RFC822.SIZE and the
//! octets, message by message.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use mailbus_tests::TestStack;
use mailbus_tests::clients::imap_session;
use serde_json::{Value, json};

use crate::admin::admin;

/// One message as IMAP shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shown {
    pub(crate) flags: BTreeSet<String>,
    pub(crate) internal_date: i64,
    pub(crate) size: usize,
    pub(crate) octets: Vec<u8>,
}

/// What a source holds, as the test wrote it.
struct Expected<'a> {
    flags: &'a [&'a str],
    internal_date: i64,
    octets: Vec<u8>,
}

fn shown(expected: &Expected) -> Shown {
    Shown {
        flags: expected.flags.iter().map(|f| f.to_string()).collect(),
        internal_date: expected.internal_date,
        size: expected.octets.len(),
        octets: expected.octets.clone(),
    }
}

fn latin1(text: &str) -> Vec<u8> {
    text.chars().map(|c| c as u32 as u8).collect()
}

/// The names LIST shows, and every mailbox's messages in UID order.
async fn imap_view(stack: &TestStack, user: &str, password: &str) -> Vec<(String, Vec<Shown>)> {
    let results = imap_session(stack.imap_addr(), None, json!([["login", user, password], ["list"]])).await;
    assert_eq!(results[1][0], "OK", "{results:?}");
    let mut names: Vec<String> = results[2][1]
        .as_array()
        .unwrap_or_else(|| panic!("LIST: {results:?}"))
        .iter()
        .filter_map(|line| line.as_str())
        .map(|line| line.rsplit_once("\"/\" ").unwrap().1.trim_matches('"').to_owned())
        .collect();
    names.sort();
    let mut view = Vec::new();
    for name in names {
        let steps = json!([
            ["login", user, password],
            ["select", name, true],
            ["uid", "fetch", "1:*", "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"],
        ]);
        let results = imap_session(stack.imap_addr(), None, steps).await;
        assert_eq!(results[2][0], "OK", "select {name}: {results:?}");
        view.push((name, fetched(&results[3])));
    }
    view
}

pub(crate) fn fetched(result: &Value) -> Vec<Shown> {
    let Some(items) = result[1].as_array() else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let pair = item.as_array()?;
            let (prefix, body) = (pair[0].as_str()?, pair[1].as_str()?);
            Some(Shown {
                flags: between(prefix, "FLAGS (", ")")
                    .split_whitespace()
                    .filter(|f| *f != "\\Recent")
                    .map(str::to_owned)
                    .collect(),
                internal_date: chrono::DateTime::parse_from_str(
                    between(prefix, "INTERNALDATE \"", "\""),
                    "%d-%b-%Y %H:%M:%S %z",
                )
                .expect("INTERNALDATE")
                .timestamp(),
                size: between(prefix, "RFC822.SIZE ", " ").parse().expect("RFC822.SIZE"),
                octets: latin1(body),
            })
        })
        .collect()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).unwrap_or_else(|| panic!("{start} in {text}")) + start.len();
    let to = text[from..].find(end).map_or(text.len(), |n| from + n);
    &text[from..to]
}

fn mailbox<'a>(view: &'a [(String, Vec<Shown>)], name: &str) -> &'a [Shown] {
    &view.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name} in {view:?}")).1
}

fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

/// Writes a Maildir message file with an mtime.
fn put(dir: &Path, name: &str, text: &str, mtime: i64) {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(UNIX_EPOCH + Duration::from_secs(mtime as u64)).unwrap();
}

fn message(subject: &str) -> String {
    format!(
        "From: Old Server <old@example.net>\nTo: ann@example.org\nSubject: {subject}\n\nBody of {subject}.\nFrom here, a line.\n"
    )
}

/// A Maildir tree in Dovecot's exact layout: INBOX at the root (`cur/`, `new/`, `tmp/`,
/// `dovecot-keywords`, `dovecot-uidlist`), Maildir++ folders `.Sent`, `.Lists.rust` and one with a
/// modified UTF-7 name, odd flags (keywords, \Deleted and \Draft, none at all in `new/`), and one file
/// whose mtime is unusable so that the name's timestamp stands in.
fn dovecot_maildir(root: &Path) -> Vec<(&'static str, Vec<Expected<'static>>)> {
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::write(root.join("dovecot-keywords"), "0 Work\n1 $Forwarded\n").unwrap();
    std::fs::write(root.join("dovecot-uidlist"), "3 V1700000000 N5 G0123\n").unwrap();
    std::fs::write(root.join("subscriptions"), "V\t2\n\nSent\nLists\trust\n").unwrap();
    put(&root.join("cur"), "1700000001.M11P1.mail,S=96,W=103:2,S", &message("one"), 1_700_000_101);
    put(&root.join("cur"), "1700000002.M12P1.mail,S=96,W=103:2,FRab", &message("two"), 1_700_000_102);
    put(&root.join("cur"), "1700000003.M13P1.mail:2,", &message("three"), 0);
    put(&root.join("new"), "1700000004.M14P1.mail", &message("four"), 1_700_000_104);
    put(&root.join(".Sent/cur"), "1700000005.M15P1.mail:2,S", &message("sent"), 1_700_000_105);
    std::fs::write(root.join(".Sent/maildirfolder"), "").unwrap();
    put(&root.join(".Lists.rust/cur"), "1700000006.M16P1.mail:2,DST", &message("rust"), 1_700_000_106);
    put(&root.join(".Entw&APw-rfe/cur"), "1700000007.M17P1.mail:2,D", &message("draft"), 1_700_000_107);
    vec![
        (
            "INBOX",
            vec![
                Expected { flags: &["\\Seen"], internal_date: 1_700_000_101, octets: crlf(&message("one")) },
                Expected {
                    flags: &["$Forwarded", "Work", "\\Answered", "\\Flagged"],
                    internal_date: 1_700_000_102,
                    octets: crlf(&message("two")),
                },
                Expected { flags: &[], internal_date: 1_700_000_003, octets: crlf(&message("three")) },
                Expected { flags: &[], internal_date: 1_700_000_104, octets: crlf(&message("four")) },
            ],
        ),
        ("Sent", vec![Expected { flags: &["\\Seen"], internal_date: 1_700_000_105, octets: crlf(&message("sent")) }]),
        (
            "Lists/rust",
            vec![Expected {
                flags: &["\\Deleted", "\\Draft", "\\Seen"],
                internal_date: 1_700_000_106,
                octets: crlf(&message("rust")),
            }],
        ),
        (
            "Entw&APw-rfe",
            vec![Expected { flags: &["\\Draft"], internal_date: 1_700_000_107, octets: crlf(&message("draft")) }],
        ),
    ]
}

fn check(view: &[(String, Vec<Shown>)], expected: &[(&str, Vec<Expected>)]) {
    for (name, messages) in expected {
        let want: Vec<Shown> = messages.iter().map(shown).collect();
        assert_eq!(mailbox(view, name), want.as_slice(), "{name}");
    }
}

fn import_args<'a>(address: &'a str, format: &'a str, path: &'a Path) -> Vec<&'a str> {
    vec!["mail", "import", address, format, path.to_str().unwrap()]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dovecot_maildir_imports_with_folders_flags_and_dates_and_a_second_run_adds_nothing() {
    let stack = TestStack::start().await;
    stack.add_account("ann@example.org", "ann pw").await;
    let dir = tempfile::tempdir().unwrap();
    let expected = dovecot_maildir(dir.path());
    let (code, stdout, stderr) = admin(&stack, &import_args("ann@example.org", "--maildir", dir.path()), "").await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("messages 7 ("), "{stdout}");
    assert!(stdout.contains("skipped 0") && stdout.contains("refused 0"), "{stdout}");
    let view = imap_view(&stack, "ann@example.org", "ann pw").await;
    check(&view, &expected);
    let names: Vec<&str> = view.iter().map(|(n, _)| n.as_str()).collect();
    for name in ["INBOX", "Sent", "Lists", "Lists/rust", "Entw&APw-rfe", "Drafts", "Trash"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }

    let (code, stdout, stderr) = admin(&stack, &import_args("ann@example.org", "--maildir", dir.path()), "").await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("messages 0 (0 bytes), skipped 7"), "the second run imports nothing: {stdout}");
    assert_eq!(imap_view(&stack, "ann@example.org", "ann pw").await, view);
    stack.stop().await;
}

const MBOXRD: &str = "From old@example.net Tue Dec  7 05:11:31 2021
From: Old <old@example.net>
Subject: one
Status: RO
X-Status: AF

>From the start of a line.
>>From quoted once already.
From in the middle of a paragraph is no separator.

From other@example.net  Wed Dec  8 10:00:00 2021
Subject: two
X-Keywords: Work
Status: O

Unread.

From third@example.net Thu Dec  9 23:59:59 2021
Subject: three
X-Status: DT
Status: RO

Draft, deleted.

";

#[tokio::test(flavor = "multi_thread")]
async fn an_mboxrd_file_imports_unquoted_with_its_status_as_flags() {
    let stack = TestStack::start().await;
    stack.add_account("ann@example.org", "ann pw").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mbox");
    std::fs::write(&file, MBOXRD).unwrap();
    let (code, stdout, stderr) = admin(&stack, &import_args("ann@example.org", "--mbox", &file), "").await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let expected = [(
        "INBOX",
        vec![
            Expected {
                flags: &["\\Answered", "\\Flagged", "\\Seen"],
                internal_date: 1_638_853_891,
                octets: crlf(
                    "From: Old <old@example.net>\nSubject: one\n\nFrom the start of a line.\n>From quoted once already.\nFrom in the middle of a paragraph is no separator.\n",
                ),
            },
            Expected { flags: &["Work"], internal_date: 1_638_957_600, octets: crlf("Subject: two\n\nUnread.\n") },
            Expected {
                flags: &["\\Deleted", "\\Draft", "\\Seen"],
                internal_date: 1_639_094_399,
                octets: crlf("Subject: three\n\nDraft, deleted.\n"),
            },
        ],
    )];
    let view = imap_view(&stack, "ann@example.org", "ann pw").await;
    check(&view, &expected);
    let (code, stdout, _) = admin(&stack, &import_args("ann@example.org", "--mbox", &file), "").await;
    assert_eq!(code, 0);
    assert!(stdout.contains("messages 0 (0 bytes), skipped 3"), "{stdout}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn export_then_import_into_another_account_gives_identical_mailboxes() {
    let stack = TestStack::start().await;
    for user in ["ann", "bob", "cat"] {
        stack.add_account(&format!("{user}@example.org"), &format!("{user} pw")).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    dovecot_maildir(&source);
    let mbox = dir.path().join("mbox");
    std::fs::write(&mbox, MBOXRD).unwrap();
    assert_eq!(admin(&stack, &import_args("ann@example.org", "--maildir", &source), "").await.0, 0);
    // The mbox's messages join the Maildir's INBOX, so the round trip carries keywords through both.
    assert_eq!(admin(&stack, &import_args("ann@example.org", "--mbox", &mbox), "").await.0, 0);
    let ann = imap_view(&stack, "ann@example.org", "ann pw").await;
    assert_eq!(mailbox(&ann, "INBOX").len(), 7);

    let (maildir_out, mbox_out) = (dir.path().join("out-maildir"), dir.path().join("out-mbox"));
    let export = |format: &'static str, path: &Path| {
        vec!["mail".to_owned(), "export".into(), "ann@example.org".into(), format.into(), path.display().to_string()]
    };
    for args in [export("--maildir", &maildir_out), export("--mbox", &mbox_out)] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = admin(&stack, &args, "").await;
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("messages 10 ("), "{stdout}");
    }
    assert!(maildir_out.join(".Lists.rust/cur").is_dir() && mbox_out.join("Lists/rust").is_file());
    let (code, stdout, stderr) = admin(&stack, &import_args("bob@example.org", "--maildir", &maildir_out), "").await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, stderr) = admin(&stack, &import_args("cat@example.org", "--mbox", &mbox_out), "").await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(imap_view(&stack, "bob@example.org", "bob pw").await, ann, "through Maildir");
    assert_eq!(imap_view(&stack, "cat@example.org", "cat pw").await, ann, "through mbox");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_mbox_and_unreadable_maildir_files_are_reported_and_the_rest_imported() {
    let stack = TestStack::start().await;
    stack.add_account("ann@example.org", "ann pw").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cut");
    let cut = &MBOXRD[..MBOXRD.find("Draft, del").unwrap() + 5];
    std::fs::write(&file, cut).unwrap();
    let (code, stdout, stderr) = admin(&stack, &import_args("ann@example.org", "--mbox", &file), "").await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    let line = format!("refused: {}:18: truncated", file.display());
    assert!(stderr.contains(&line), "{line} in {stderr}");
    assert!(stdout.contains("messages 2 (") && stdout.contains("refused 1"), "{stdout}");

    let maildir = dir.path().join("maildir");
    put(&maildir.join(".Broken/cur"), "1700000001.M1P1.mail:2,S", &message("fine"), 1_700_000_001);
    std::fs::create_dir_all(maildir.join(".Broken/cur/1700000002.M2P1.mail:2,S")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/message", maildir.join(".Broken/cur/1700000003.M3P1.mail:2,")).unwrap();
    std::fs::create_dir_all(maildir.join("cur")).unwrap();
    let (code, stdout, stderr) = admin(&stack, &import_args("ann@example.org", "--maildir", &maildir), "").await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    for name in ["1700000002.M2P1.mail:2,S: cannot be read", "1700000003.M3P1.mail:2,: cannot be read"] {
        assert!(stderr.contains(name), "{name} in {stderr}");
    }
    assert!(stdout.contains("messages 1 (") && stdout.contains("refused 2"), "{stdout}");
    let view = imap_view(&stack, "ann@example.org", "ann pw").await;
    assert_eq!(mailbox(&view, "INBOX").len(), 2);
    assert_eq!(mailbox(&view, "Broken").len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_and_size_refusals_are_listed_and_a_run_after_raising_the_quota_resumes() {
    let stack = TestStack::builder().set("MAILBUS_MAX_MESSAGE_SIZE", "2048").start().await;
    stack.add_account("ann@example.org", "ann pw").await;
    let (code, _, stderr) = admin(&stack, &["quota", "set", "ann@example.org", "--messages", "5"], "").await;
    assert_eq!(code, 0, "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    dovecot_maildir(dir.path());
    let big = format!("Subject: big\n\n{}\n", "x".repeat(3000));
    put(&dir.path().join(".Big/cur"), "1700000008.M18P1.mail:2,S", &big, 1_700_000_108);
    let (code, stdout, stderr) = admin(&stack, &import_args("ann@example.org", "--maildir", dir.path()), "").await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("messages 5 (") && stdout.contains("refused 3"), "{stdout}");
    let refused: Vec<&str> = stderr.lines().filter(|l| l.starts_with("refused: ")).collect();
    assert_eq!(refused.len(), 3, "{stderr}");
    let root = dir.path().display().to_string();
    assert!(refused.iter().all(|line| line.contains(&root)), "{stderr}");
    let size = refused.iter().filter(|l| l.contains(".Big/cur/1700000008.M18P1.mail:2,S: message of")).count();
    let quota = refused.iter().filter(|l| l.contains("message quota exceeded")).count();
    assert_eq!((size, quota), (1, 2), "{stderr}");
    let view = imap_view(&stack, "ann@example.org", "ann pw").await;
    let total: usize = view.iter().map(|(_, messages)| messages.len()).sum();
    assert_eq!(total, 5);

    // With room again, the same command picks up where the quota stopped it.
    let (code, _, stderr) = admin(&stack, &["quota", "set", "ann@example.org", "--messages", "none"], "").await;
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = admin(&stack, &import_args("ann@example.org", "--maildir", dir.path()), "").await;
    assert_eq!(code, 1, "the big message is still too big: {stdout}{stderr}");
    assert!(
        stdout.contains("messages 2 (") && stdout.contains("skipped 5") && stdout.contains("refused 1"),
        "{stdout}"
    );
    check(&imap_view(&stack, "ann@example.org", "ann pw").await, &dovecot_maildir(tempfile::tempdir().unwrap().path()));
    stack.stop().await;
}
