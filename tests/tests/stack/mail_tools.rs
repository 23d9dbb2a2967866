//! The doveadm-style tools of `mailbus admin` as an operator runs them (the real binary): `mail search`,
//! `fetch`, `expunge` and `stats` over IMAP search keys, `domain remove` and `account rename`, with
//! imaplib as the judge of what the mailboxes hold afterwards.

use mailbus::roles::Role;
use mailbus_tests::TestStack;
use mailbus_tests::clients::imap_session;
use serde_json::{Value, json};

use crate::admin::admin;

fn mail(from: &str, subject: &str) -> String {
    format!(
        "From: {from}\r\nTo: ann@example.org\r\nSubject: {subject}\r\nX-Tag: t-{subject}\r\n\r\nBody of {subject}.\r\n"
    )
}

async fn stack_with_ann() -> TestStack {
    let stack = TestStack::builder().roles(&[Role::Mailbox, Role::Access]).start().await;
    stack.add_account("ann@example.org", "ann pw").await;
    stack
}

/// `UID FETCH 1:* (FLAGS RFC822.SIZE)` lines and the UIDVALIDITY of one mailbox, as imaplib shows them.
pub(crate) async fn imap_state(stack: &TestStack, user: &str, password: &str, mailbox: &str) -> (Vec<String>, String) {
    let steps = json!([
        ["login", user, password],
        ["select", mailbox, true],
        ["untagged", "UIDVALIDITY"],
        ["uid", "fetch", "1:*", "(FLAGS RFC822.SIZE)"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert_eq!(results[1][0], "OK", "login as {user}: {results:?}");
    assert_eq!(results[2][0], "OK", "select {mailbox}: {results:?}");
    let lines = results[4][1].as_array().cloned().unwrap_or_default();
    let lines = lines.iter().filter_map(Value::as_str).map(str::to_owned).collect();
    (lines, results[3][1].to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn search_fetch_stats_and_expunge_take_imap_search_keys() {
    let stack = stack_with_ann().await;
    let one = mail("Bob <bob@example.net>", "Quarterly report");
    let two = mail("Carol <carol@example.net>", "Lunch on Friday");
    let three = mail("Bob <bob@example.net>", "report draft");
    let steps = json!([
        ["login", "ann@example.org", "ann pw"],
        ["create", "Lists"],
        ["append", "INBOX", "(\\Seen)", null, one],
        ["append", "INBOX", null, null, two],
        ["append", "Lists", "(\\Flagged)", null, three],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert!(results[1..].iter().all(|r| r[0] == "OK"), "{results:?}");

    let (code, stdout, stderr) = admin(&stack, &["mail", "search", "ann@example.org", "SUBJECT", "report"], "").await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "MAILBOX\tUID\nINBOX\t1\nLists\t1\n");
    let args = ["mail", "search", "ann@example.org", "--mailbox", "INBOX", "UNSEEN"];
    assert_eq!(admin(&stack, &args, "").await.1, "MAILBOX\tUID\nINBOX\t2\n", "unseen in INBOX only");
    // A word with a space is one string; OR and parentheses are IMAP's.
    let args = ["mail", "search", "ann@example.org", "OR", "(FLAGGED)", "SUBJECT", "lunch on"];
    assert_eq!(admin(&stack, &args, "").await.1, "MAILBOX\tUID\nINBOX\t2\nLists\t1\n");
    let (code, _, stderr) = admin(&stack, &["mail", "search", "ann@example.org", "SINCE", "yesterday"], "").await;
    assert_eq!(code, 1);
    assert!(stderr.contains("not IMAP search keys"), "{stderr}");
    let (code, _, stderr) = admin(&stack, &["mail", "search", "ann@example.org", "--mailbox", "Nope", "ALL"], "").await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no mailbox Nope"), "{stderr}");

    let args = ["mail", "fetch", "ann@example.org", "--field", "Subject", "--field", "X-Tag", "FROM", "bob"];
    let (code, stdout, stderr) = admin(&stack, &args, "").await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "== INBOX 1\nSubject: Quarterly report\nX-Tag: t-Quarterly report\n\
         == Lists 1\nSubject: report draft\nX-Tag: t-report draft\n"
    );

    let (code, stdout, stderr) = admin(&stack, &["mail", "stats", "ann@example.org"], "").await;
    assert_eq!(code, 0, "{stderr}");
    let row = |name: &str| -> Vec<String> {
        let line =
            stdout.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_else(|| panic!("{stdout}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(row("INBOX")[1..4], [2.to_string(), 1.to_string(), (one.len() + two.len()).to_string()], "{stdout}");
    assert_eq!(row("Lists")[1..4], [1.to_string(), 1.to_string(), three.len().to_string()], "{stdout}");
    assert_eq!(row("Trash")[1..4], ["0", "0", "0"], "{stdout}");

    let (code, stdout, stderr) = admin(&stack, &["mail", "expunge", "ann@example.org", "SUBJECT", "report"], "").await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("2 message(s) expunged"), "{stdout}");
    let (inbox, _) = imap_state(&stack, "ann@example.org", "ann pw", "INBOX").await;
    assert_eq!(inbox.len(), 1, "only the lunch mail is left: {inbox:?}");
    assert!(inbox[0].contains("UID 2 "), "{inbox:?}");
    let (lists, _) = imap_state(&stack, "ann@example.org", "ann pw", "Lists").await;
    assert!(lists.is_empty(), "{lists:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn account_rename_keeps_mail_flags_uids_uidvalidity_and_aliases() {
    let stack = stack_with_ann().await;
    stack.add_account("bob@example.org", "bob pw").await;
    let steps = json!([
        ["login", "ann@example.org", "ann pw"],
        ["append", "INBOX", "(\\Seen $Work)", null, mail("Bob <bob@example.net>", "one")],
        ["append", "INBOX", null, null, mail("Bob <bob@example.net>", "two")],
        ["append", "INBOX", null, null, mail("Bob <bob@example.net>", "three")],
        ["select", "INBOX"],
        ["uid", "store", "2", "+FLAGS", "(\\Deleted)"],
        ["expunge"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert!(results[1..].iter().all(|r| r[0] == "OK"), "{results:?}");
    assert_eq!(admin(&stack, &["alias", "add", "team@example.org", "ann@example.org"], "").await.0, 0);
    let before = imap_state(&stack, "ann@example.org", "ann pw", "INBOX").await;
    assert_eq!(before.0.len(), 2, "{before:?}");
    assert!(before.1.chars().any(|c| c.is_ascii_digit()), "SELECT gave a UIDVALIDITY: {before:?}");

    for taken in ["bob@example.org", "team@example.org"] {
        let (code, _, stderr) = admin(&stack, &["account", "rename", "ann@example.org", taken], "").await;
        assert_eq!(code, 3, "renaming onto {taken} is refused as already existing: {stderr}");
    }
    let (code, _, stderr) = admin(&stack, &["account", "rename", "ann@example.org", "ann@unhosted.test"], "").await;
    assert_eq!(code, 1);
    assert!(stderr.contains("not hosted"), "{stderr}");

    let (code, stdout, stderr) = admin(&stack, &["account", "rename", "ann@example.org", "Anna@example.org"], "").await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("renamed to anna@example.org"), "{stdout}");
    assert!(!stack.authenticates("ann@example.org", "ann pw").await, "the old address is gone");
    let after = imap_state(&stack, "anna@example.org", "ann pw", "INBOX").await;
    assert_eq!(after, before, "same UIDs, flags, sizes and UIDVALIDITY under the new address");

    // The alias still leads to the account, now by its new name.
    let (_, stdout, _) = admin(&stack, &["alias", "list"], "").await;
    assert!(stdout.lines().any(|l| l.starts_with("team@example.org") && l.ends_with("anna@example.org")), "{stdout}");
    stack.deliver("q-rename", "team@example.org", mail("Dan <dan@example.net>", "four").as_bytes()).await.unwrap();
    let (lines, _) = imap_state(&stack, "anna@example.org", "ann pw", "INBOX").await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[2].contains("UID 4 "), "the next UID after the old ones: {lines:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn domain_remove_is_refused_while_it_holds_accounts_unless_forced() {
    let stack = TestStack::builder().roles(&[Role::Mailbox, Role::Access]).start().await;
    stack.add_account("ann@example.org", "ann pw").await;
    stack.add_account("xavier@other.test", "x pw").await;
    assert_eq!(admin(&stack, &["alias", "add", "info@other.test", "xavier@other.test"], "").await.0, 0);
    // An alias elsewhere that leads only to the domain's account goes with it; one that leads elsewhere too stays.
    assert_eq!(admin(&stack, &["alias", "add", "x@example.org", "xavier@other.test"], "").await.0, 0);
    let both = ["alias", "add", "all@example.org", "xavier@other.test", "ann@example.org"];
    assert_eq!(admin(&stack, &both, "").await.0, 0);

    let (code, _, stderr) = admin(&stack, &["domain", "remove", "other.test"], "").await;
    assert_eq!(code, 1);
    assert!(stderr.contains("holds 1 account(s) and 1 alias(es)"), "{stderr}");
    assert!(stack.authenticates("xavier@other.test", "x pw").await, "nothing was removed");

    assert_eq!(admin(&stack, &["domain", "add", "empty.test"], "").await.0, 0);
    let (code, _, stderr) = admin(&stack, &["domain", "remove", "empty.test"], "").await;
    assert_eq!(code, 0, "an empty domain goes without --force: {stderr}");

    let (code, stdout, stderr) = admin(&stack, &["domain", "remove", "--force", "other.test"], "").await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("domain other.test removed, with 1 account(s) and 1 alias(es)"), "{stdout}");
    assert!(!stack.authenticates("xavier@other.test", "x pw").await);
    let (_, domains, _) = admin(&stack, &["domain", "list"], "").await;
    assert_eq!(domains, "DOMAIN\nexample.org\n");
    let (_, aliases, _) = admin(&stack, &["alias", "list"], "").await;
    assert_eq!(aliases, "ALIAS            TARGETS\nall@example.org  ann@example.org\n");
    let (code, _, stderr) = admin(&stack, &["domain", "remove", "other.test"], "").await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no domain other.test"), "{stderr}");
    stack.stop().await;
}
