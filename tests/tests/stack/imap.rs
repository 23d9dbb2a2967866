//! IMAP with real clients: Python's imaplib (through `tests/clients/imap_session.py`) and curl, against
//! the whole stack. Sync across sessions and replicas, IDLE, STARTTLS and bad input.

use mailbus::roles::Role;
use mailbus_tests::clients::{Pop3End, SmtpOutcome, imap_session, imapclient_session, pop3_session, smtp_send};
use mailbus_tests::{Infra, TestStack};
use serde_json::{Value, json};

use crate::{PATIENCE, message};

/// Waits until a client script has appended `lines` lines to `marker` (it does so once the server has
/// accepted its IDLE, or at a `mark` step).
async fn wait_for_marks(marker: &std::path::Path, lines: usize) {
    mailbus_tests::wait_until(PATIENCE, &format!("{lines} marks in {}", marker.display()), async || {
        std::fs::read_to_string(marker).map_or(0, |text| text.lines().count()) >= lines
    })
    .await;
}

pub(crate) async fn deliver(stack: &TestStack, to: &str, subject: &str) {
    let sent = smtp_send(stack.smtp_addr(), "sender@example.net", &[to], &message(to, subject)).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { code: 250, .. }), "{sent:?}");
}

/// A step's reply type ("OK", "NO", "BAD", "error") and its data flattened into one string.
fn reply(result: &Value) -> (String, String) {
    let kind = result[0].as_str().unwrap_or_default().to_owned();
    let mut text = String::new();
    flatten(&result[1], &mut text);
    (kind, text)
}

fn flatten(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        Value::Null => {}
        other => out.push_str(&other.to_string()),
    }
}

/// A bare IMAP connection, logged in with INBOX selected, for tests that need two sessions at once.
pub(crate) async fn selected_inbox(stack: &TestStack, user: &str, password: &str) -> mailbus_tests::raw::RawClient {
    let mut client = mailbus_tests::raw::RawClient::connect("127.0.0.1", stack.imap_addr()).await;
    client.line().await.expect("a greeting");
    client.send(format!("a LOGIN {user} \"{password}\"\r\nb SELECT INBOX\r\n").as_bytes()).await;
    assert!(client.line_starting("b ").await.expect("SELECT answered").starts_with("b OK"));
    client
}

fn ok(results: &[Value], index: usize) -> String {
    let (kind, text) = reply(&results[index]);
    assert_eq!(kind, "OK", "step {index}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn imaplib_reads_flags_copies_moves_appends_searches_and_expunges() {
    let stack = TestStack::start().await;
    let ann = stack.add_account("ann@example.org", "ann pw").await;
    deliver(&stack, "ann@example.org", "first").await;
    deliver(&stack, "ann@example.org", "second").await;
    let uids = stack.wait_for_inbox(ann, 2, PATIENCE).await;
    let steps = json!([
        ["capabilities"],                       // 1
        ["login", "ann@example.org", "ann pw"], // 2
        ["list", "\"\"", "*"],                  // 3
        ["select", "INBOX"],                    // 4
        ["fetch", "1:*", "(UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT)])"], // 5
        ["fetch", "2", "(BODY[])"],             // 6
        ["fetch", "2", "(FLAGS)"],              // 7
        ["store", "1", "+FLAGS", "(\\Flagged $Important)"], // 8
        ["search", null, "UNSEEN"],             // 9
        ["uid", "SEARCH", "SUBJECT", "second"], // 10
        ["copy", "1:2", "Archive"],             // 11
        ["uid", "MOVE", format!("{}", uids[0]), "Trash"], // 12
        ["append", "Drafts", "(\\Draft)", null, "Subject: draft\r\n\r\nA draft.\r\n"], // 13
        ["create", "Projects/2026"],            // 14
        ["rename", "Projects", "Work"],         // 15
        ["list", "Work", "*"],                  // 16
        ["status", "Archive", "(MESSAGES UIDNEXT UNSEEN SIZE)"], // 17
        ["store", "1", "+FLAGS.SILENT", "(\\Deleted)"], // 18
        ["expunge"],                            // 19
        ["select", "INBOX"],                    // 20
        ["delete", "Work"],                     // 21
        ["delete", "Work/2026"],                // 22
        ["fetch", "9", "(FLAGS)"],              // 23
        ["logout"],                             // 24
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert!(ok(&results, 0).contains("mailbus IMAP ready"));
    let caps = ok(&results, 1);
    // imaplib upper-cases the list; the spelling itself is checked on the raw OK line below.
    for cap in ["IMAP4REV1", "IDLE", "LITERAL+", "STARTTLS", "AUTH=PLAIN", "ID", "ENABLE", "SASL-IR"] {
        assert!(caps.contains(cap), "{cap} missing: {caps}");
    }
    let login = ok(&results, 2);
    assert!(login.contains("[CAPABILITY IMAP4rev1") && login.contains("UIDPLUS"), "capabilities with the OK: {login}");
    let list = ok(&results, 3);
    assert!(list.contains("(\\HasNoChildren \\Sent) \"/\" Sent"), "{list}");
    assert!(list.contains("\"/\" INBOX"), "{list}");
    assert_eq!(ok(&results, 4).trim(), "2", "SELECT answers with EXISTS");
    let fetched = ok(&results, 5);
    assert!(fetched.contains("ENVELOPE (") && fetched.contains("\"first\""), "{fetched}");
    assert!(
        fetched.contains("BODYSTRUCTURE (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" "),
        "{fetched}"
    );
    assert!(fetched.contains("Subject: second"), "{fetched}");
    let body = ok(&results, 6);
    assert!(body.contains("Subject: second") && body.contains(".A line that starts with a dot."), "{body}");
    assert!(ok(&results, 7).contains("\\Seen"), "BODY[] without PEEK sets \\Seen");
    let stored = ok(&results, 8);
    assert!(stored.contains("\\Flagged") && stored.contains("$Important"), "{stored}");
    assert_eq!(ok(&results, 9).trim(), "1", "message 2 was read");
    assert_eq!(ok(&results, 10).trim(), uids[1].to_string());
    let copied = ok(&results, 11);
    assert!(copied.contains("[COPYUID ") && copied.contains(" 1:2 1:2]"), "{copied}");
    ok(&results, 12);
    assert!(ok(&results, 13).contains("[APPENDUID "), "{:?}", results[13]);
    ok(&results, 14);
    ok(&results, 15);
    let work = ok(&results, 16);
    assert!(work.contains("Work/2026") && work.contains("\\HasChildren"), "{work}");
    let status = ok(&results, 17);
    assert!(status.contains("MESSAGES 2") && status.contains("UIDNEXT 3") && status.contains("SIZE "), "{status}");
    ok(&results, 18);
    // imaplib hands back every EXPUNGE since the last call: the MOVE's and this one's.
    assert_eq!(ok(&results, 19).trim(), "1\n1", "MOVE expunged message 1, then EXPUNGE the new message 1");
    assert_eq!(ok(&results, 20).trim(), "0", "INBOX is empty: one moved away, one expunged");
    let (kind, text) = reply(&results[21]);
    assert_eq!(kind, "NO", "a parent with children is not deleted: {text}");
    assert!(text.contains("HASCHILDREN"), "{text}");
    ok(&results, 22);
    assert_eq!(reply(&results[23]).0, "error", "FETCH of a message that does not exist is BAD");
    assert_eq!(reply(&results[24]).0, "BYE", "imaplib reports the BYE of LOGOUT");
    stack.stop().await;
}

/// Two sessions of one account on two access replicas: a delivery reaches the IDLE one within a second,
/// and a flag change made in one shows in the other at its next command.
#[tokio::test(flavor = "multi_thread")]
async fn changes_reach_an_idle_session_on_another_replica() {
    let mut stack = TestStack::start().await;
    let first_access = stack.imap_addr();
    stack.start_roles(&[Role::Access]).await;
    let second_access = stack.imap_addr();
    assert_ne!(first_access, second_access);
    let bea = stack.add_account("bea@example.org", "bea pw").await;
    deliver(&stack, "bea@example.org", "before").await;
    stack.wait_for_inbox(bea, 1, PATIENCE).await;

    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("idling");
    let watcher = {
        let steps = json!([
            ["login", "bea@example.org", "bea pw"],
            ["select", "INBOX"],
            ["idle", 20, marker], // 3: the delivery
            ["idle", 20, marker], // 4: the other session's flag change
            ["noop"],
        ]);
        tokio::spawn(async move { imap_session(first_access, None, steps).await })
    };
    wait_for_marks(&marker, 1).await;
    deliver(&stack, "bea@example.org", "during idle").await;
    stack.wait_for_inbox(bea, 2, PATIENCE).await;
    // The first IDLE has ended with the EXISTS and the second has begun.
    wait_for_marks(&marker, 2).await;
    let steps = json!([
        ["login", "bea@example.org", "bea pw"],
        ["select", "INBOX"],
        ["store", "1", "+FLAGS", "(\\Answered)"],
        ["logout"],
    ]);
    let other = imap_session(second_access, None, steps).await;
    ok(&other, 3);
    let watched = watcher.await.unwrap();
    let (_, idle) = reply(&watched[3]);
    assert!(idle.contains("* 2 EXISTS"), "{idle}");
    let (_, flags) = reply(&watched[4]);
    // The watcher selected INBOX first: the message is recent to it (RFC 3501 §2.3.2).
    assert!(flags.contains("* 1 FETCH (FLAGS (\\Answered \\Recent)"), "{flags}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logindisabled_until_starttls_and_993_speaks_tls_from_the_first_byte() {
    let stack = TestStack::builder().set("MAILBUS_IMAP_PLAINTEXT_AUTH", "never").start().await;
    stack.add_account("cy@example.org", "cy pw").await;
    let cafile = Infra::get().tls_cert.clone();
    let steps = json!([
        ["capabilities"],
        ["login", "cy@example.org", "cy pw"],
        ["starttls"],
        ["capabilities"],
        ["login", "cy@example.org", "cy pw"],
        ["logout"]
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert!(ok(&results, 1).contains("LOGINDISABLED"));
    assert_eq!(reply(&results[2]).0, "error", "LOGIN refused before TLS: {:?}", results[2]);
    ok(&results, 3);
    ok(&results, 5);
    let steps = json!([["login", "cy@example.org", "cy pw"], ["select", "INBOX"], ["logout"]]);
    let tls = imap_session(stack.imaps.unwrap(), Some(("implicit", cafile.as_path())), steps).await;
    ok(&tls, 1);
    ok(&tls, 2);
    let wrong = json!([["login", "cy@example.org", "nope"]]);
    let results = imap_session(stack.imaps.unwrap(), Some(("implicit", cafile.as_path())), wrong).await;
    assert!(reply(&results[1]).1.contains("AUTHENTICATIONFAILED"), "{:?}", results[1]);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_commands_get_bad_and_the_session_goes_on() {
    let stack = TestStack::start().await;
    stack.add_account("dan@example.org", "dan pw").await;
    let steps = json!([
        ["raw", "a1 FROBNICATE"],
        ["raw", "a2 SELECT"],
        ["raw", "a3 FETCH 1 (FLAGS)"],
        ["raw", "a4 LOGIN dan@example.org \"dan pw\""],
        ["raw", "a5 FETCH 1 (FLAGS)"],
        ["raw", "a6 SELECT INBOX"],
        ["raw", "a7 FETCH 1:* (FLAGS)"],
        ["raw", "a8 STORE 5 +FLAGS (\\Seen)"],
        ["raw", "a9 UID FETCH 1:* (FLAGS)"],
        ["raw", "b1 SEARCH CHARSET KOI8-R ALL"],
        ["raw", "b2 NOOP"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let last = |i: usize| reply(&results[i]).1.lines().last().unwrap_or_default().to_owned();
    assert!(last(1).starts_with("a1 BAD"), "{}", last(1));
    assert!(last(2).starts_with("a2 BAD"), "{}", last(2));
    assert!(last(3).starts_with("a3 BAD"), "{}", last(3));
    assert!(last(4).starts_with("a4 OK"), "{}", last(4));
    assert!(last(5).starts_with("a5 BAD"), "no mailbox selected: {}", last(5));
    assert!(last(6).starts_with("a6 OK [READ-WRITE]"), "{}", last(6));
    assert!(last(7).starts_with("a7 BAD"), "RFC 9051 §9: * names no message in an empty mailbox: {}", last(7));
    assert!(last(8).starts_with("a8 BAD"), "{}", last(8));
    assert!(last(9).starts_with("a9 OK"), "{}", last(9));
    assert!(last(10).starts_with("b1 NO [BADCHARSET"), "{}", last(10));
    assert!(last(11).starts_with("b2 OK"), "{}", last(11));
    stack.stop().await;
}

/// Issue 7's last clause: mail expunged over POP3 disappears from an IMAP session with EXPUNGE.
#[tokio::test(flavor = "multi_thread")]
async fn a_pop3_deletion_reaches_a_selected_imap_session_as_expunge() {
    let stack = TestStack::start().await;
    let eve = stack.add_account("eve@example.org", "eve pw").await;
    deliver(&stack, "eve@example.org", "pop me").await;
    stack.wait_for_inbox(eve, 1, PATIENCE).await;
    let imap = stack.imap_addr();
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("idling");
    let steps = json!([["login", "eve@example.org", "eve pw"], ["select", "INBOX"], ["idle", 20, marker], ["noop"]]);
    let watcher = tokio::spawn(async move { imap_session(imap, None, steps).await });
    wait_for_marks(&marker, 1).await;
    let popped = pop3_session(stack.pop3_addr(), "eve@example.org", "eve pw", Pop3End::DeleteAndQuit).await;
    assert_eq!(popped.stat.0, 1);
    let watched = watcher.await.unwrap();
    assert_eq!(ok(&watched, 2).trim(), "1");
    let (_, idle) = reply(&watched[3]);
    assert!(idle.contains("* 1 EXPUNGE"), "{idle}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_lists_and_fetches_over_imap_and_imaps() {
    let stack = TestStack::start().await;
    let fay = stack.add_account("fay@example.org", "fay pw").await;
    deliver(&stack, "fay@example.org", "curl-imap").await;
    stack.wait_for_inbox(fay, 1, PATIENCE).await;
    let curl = |url: String, extra: Vec<String>| async move {
        let output = tokio::process::Command::new("curl")
            .args(["--silent", "--show-error", "--user", "fay@example.org:fay pw"])
            .args(extra)
            .arg(url)
            .output()
            .await
            .expect("curl is needed (deploy/prerequisites installs it)");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let listing = curl(format!("imap://{}/", stack.imap_addr()), vec![]).await;
    assert!(listing.contains("INBOX") && listing.contains("Sent"), "{listing}");
    let cafile = Infra::get().tls_cert.display().to_string();
    let fetched = curl(format!("imaps://{}/INBOX;UID=1", stack.imaps.unwrap()), vec!["--cacert".into(), cafile]).await;
    assert!(fetched.contains("Subject: curl-imap"), "{fetched}");
    stack.stop().await;
}

/// mbsync (isync) keeps a local Maildir in sync: a full first sync, then a server-side flag change and a
/// new message, a flag set on the device, and a server-side expunge, each carried over by the next run.
#[tokio::test(flavor = "multi_thread")]
async fn mbsync_syncs_a_maildir_both_ways() {
    let stack = TestStack::start().await;
    let gil = stack.add_account("gil@example.org", "gil pw").await;
    deliver(&stack, "gil@example.org", "one").await;
    deliver(&stack, "gil@example.org", "two").await;
    stack.wait_for_inbox(gil, 2, PATIENCE).await;
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    std::fs::create_dir_all(&maildir).unwrap();
    let rc = dir.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount gil\nHost 127.0.0.1\nPort {}\nUser gil@example.org\nPass \"gil pw\"\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount gil\n\n\
             MaildirStore local\nPath {m}/\nInbox {m}/INBOX\nSubFolders Verbatim\n\n\
             Channel gil\nFar :remote:\nNear :local:\nPatterns *\nCreate Near\nSync All\nExpunge Both\nSyncState *\n",
            stack.imap_addr().port(),
            m = maildir.display()
        ),
    )
    .unwrap();
    let mbsync = || async {
        let output = tokio::process::Command::new("mbsync")
            .args(["-c", rc.to_str().unwrap(), "-a"])
            .output()
            .await
            .expect("mbsync is needed (deploy/prerequisites installs isync)");
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "mbsync failed: {text}");
    };
    // Local messages of a Maildir folder: (file name's flags, contents).
    let local = |folder: &str| -> Vec<(String, String)> {
        let mut found = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(maildir.join(folder).join(sub)) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let flags = name.rsplit_once(":2,").map(|(_, f)| f.to_owned()).unwrap_or_default();
                found.push((flags, std::fs::read_to_string(&path).unwrap()));
            }
        }
        found.sort_by(|a, b| a.1.cmp(&b.1));
        found
    };

    mbsync().await;
    let inbox = local("INBOX");
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    assert!(
        inbox.iter().any(|(_, m)| m.contains("Subject: one")) && inbox.iter().any(|(_, m)| m.contains("Subject: two"))
    );
    for folder in ["Sent", "Drafts", "Trash", "Junk", "Archive"] {
        assert!(maildir.join(folder).join("cur").is_dir(), "{folder} was created locally");
    }

    // On the server: a flag on "one", and a third message.
    let steps = json!([
        ["login", "gil@example.org", "gil pw"],
        ["select", "INBOX"],
        ["uid", "STORE", "1", "+FLAGS", "(\\Flagged)"],
        ["logout"]
    ]);
    ok(&imap_session(stack.imap_addr(), None, steps).await, 3);
    deliver(&stack, "gil@example.org", "three").await;
    stack.wait_for_inbox(gil, 3, PATIENCE).await;
    mbsync().await;
    let inbox = local("INBOX");
    assert_eq!(inbox.len(), 3, "{inbox:?}");
    let one = inbox.iter().find(|(_, m)| m.contains("Subject: one")).unwrap();
    assert!(one.0.contains('F'), "the server's \\Flagged reached the device: {inbox:?}");

    // On the device: "two" is marked seen (Maildir flag S); the next run sets \Seen on the server.
    let cur = maildir.join("INBOX").join("cur");
    let new = maildir.join("INBOX").join("new");
    for dir in [&new, &cur] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if std::fs::read_to_string(&path).unwrap().contains("Subject: two") {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let base = name.split(":2,").next().unwrap().to_owned();
                std::fs::rename(&path, cur.join(format!("{base}:2,S"))).unwrap();
            }
        }
    }
    mbsync().await;
    let steps =
        json!([["login", "gil@example.org", "gil pw"], ["select", "INBOX"], ["uid", "SEARCH", "SEEN"], ["logout"]]);
    let seen = imap_session(stack.imap_addr(), None, steps).await;
    assert_eq!(ok(&seen, 3).trim(), "2", "the device's \\Seen reached the server");

    // An expunge on the server removes the local copy at the next run.
    let steps = json!([
        ["login", "gil@example.org", "gil pw"],
        ["select", "INBOX"],
        ["uid", "STORE", "3", "+FLAGS", "(\\Deleted)"],
        ["expunge"],
        ["logout"]
    ]);
    ok(&imap_session(stack.imap_addr(), None, steps).await, 4);
    mbsync().await;
    let inbox = local("INBOX");
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    assert!(!inbox.iter().any(|(_, m)| m.contains("Subject: three")));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_is_reported_and_connections_per_user_and_address_are_capped() {
    let stack = TestStack::builder().set("MAILBUS_IMAP_MAX_USER_CONNECTIONS", "2").start().await;
    let hal = stack.add_account("hal@example.org", "hal pw").await;
    let limits = mailbus_proto::v1::UpdateAccountRequest {
        address: "hal@example.org".into(),
        quota_bytes: Some(10 * 1024 * 1024),
        quota_messages: Some(500),
        ..Default::default()
    };
    stack.directory().await.update_account(limits).await.unwrap();
    deliver(&stack, "hal@example.org", "counted").await;
    stack.wait_for_inbox(hal, 1, PATIENCE).await;
    let steps = json!([["login", "hal@example.org", "hal pw"], ["getquotaroot", "INBOX"], ["getquota", "\"\""]]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let root = ok(&results, 2);
    assert!(root.contains("INBOX \"\""), "{root}");
    assert!(root.contains("(STORAGE 1 10240 MESSAGE 1 500)"), "{root}");
    assert!(ok(&results, 3).contains("STORAGE 1 10240"), "{:?}", results[3]);

    // Two sessions from this address hold both slots; a third is refused until one ends.
    let addr = stack.imap_addr();
    let scratch = tempfile::tempdir().unwrap();
    let (held, release) = (scratch.path().join("held"), scratch.path().join("release"));
    let hold = || {
        let steps =
            json!([["login", "hal@example.org", "hal pw"], ["mark", held], ["await_file", release, 60], ["logout"]]);
        tokio::spawn(async move { imap_session(addr, None, steps).await })
    };
    let (first, second) = (hold(), hold());
    wait_for_marks(&held, 2).await;
    let refused = imap_session(addr, None, json!([["login", "hal@example.org", "hal pw"]])).await;
    assert!(reply(&refused[1]).1.contains("LIMIT"), "{:?}", refused[1]);
    std::fs::write(&release, "").unwrap();
    ok(&first.await.unwrap(), 1);
    ok(&second.await.unwrap(), 1);
    let again = imap_session(addr, None, json!([["login", "hal@example.org", "hal pw"], ["logout"]])).await;
    ok(&again, 1);

    // An account has at most 10,000 mailboxes: filled to one short of that (straight into the table),
    // CREATE makes the last, and the next is NO [OVERQUOTA], over JMAP overQuota.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url).await.unwrap();
    sqlx::query(
        "INSERT INTO mailboxes (account_id, name, uidvalidity)
         SELECT $1, 'bulk/' || g, g FROM generate_series(1, 9999 - (SELECT count(*) FROM mailboxes WHERE account_id = $1)) g",
    )
    .bind(hal)
    .execute(&mut db)
    .await
    .unwrap();
    let steps = json!([
        ["raw", "a1 LOGIN hal@example.org \"hal pw\""],
        ["raw", "a2 CREATE last"],
        ["raw", "a3 CREATE one-too-many"],
        ["raw", "a4 CREATE parent/child"]
    ]);
    let results = imap_session(addr, None, steps).await;
    assert!(reply(&results[2]).1.contains("a2 OK"), "{:?}", results[2]);
    for refused in &results[3..5] {
        assert!(reply(refused).1.contains("NO [OVERQUOTA]"), "{refused:?}");
    }
    let create = json!({"accountId": format!("a{hal}"), "create": {"m": {"name": "jmap-too"}}});
    let set = stack.jmap_call(hal, "Mailbox/set", create).await;
    assert_eq!(set[0].1["notCreated"]["m"]["type"], "overQuota", "{set:?}");
    // A Sieve `fileinto :create` that cannot make its mailbox keeps the message in INBOX.
    crate::sieve::activate(&stack, hal, "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"sorted\";\n").await;
    deliver(&stack, "hal@example.org", "filed where it can be").await;
    stack.wait_for_inbox(hal, 2, PATIENCE).await;
    stack.stop().await;
}

/// What an independent review found, each pinned: an unknown UID in UID EXPUNGE expunges nothing; the
/// selected mailbox renamed under the session stays selected; a SASL line that is not base64 ends the
/// AUTHENTICATE with a tagged BAD instead of leaving the client waiting.
#[tokio::test(flavor = "multi_thread")]
async fn uid_expunge_of_unknown_uids_rename_of_the_selected_mailbox_and_bad_sasl_lines() {
    let stack = TestStack::start().await;
    let ivy = stack.add_account("ivy@example.org", "ivy pw").await;
    deliver(&stack, "ivy@example.org", "keep me").await;
    stack.wait_for_inbox(ivy, 1, PATIENCE).await;
    let steps = json!([
        ["raw", "a1 LOGIN ivy@example.org \"ivy pw\""],
        ["raw", "a2 CREATE Projects"],
        ["raw", "a3 SELECT INBOX"],
        ["raw", "a4 COPY 1 Projects"],
        ["raw", "a5 STORE 1 +FLAGS (\\Deleted)"],
        ["raw", "a6 UID EXPUNGE 4000000000"],
        ["raw", "a7 FETCH 1 (FLAGS)"],
        ["raw", "a8 SELECT Projects"],
        ["raw", "a9 RENAME Projects Work"],
        ["raw", "b1 NOOP"],
        ["raw", "b2 FETCH 1 (UID)"],
        ["raw", "b3 AUTHENTICATE PLAIN"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let text = |i: usize| reply(&results[i]).1;
    assert!(text(6).contains("a6 OK"), "{}", text(6));
    assert!(
        text(7).contains("\\Deleted") && text(7).contains("a7 OK"),
        "the \\Deleted message is still there: {}",
        text(7)
    );
    assert!(text(10).contains("b1 OK") && !text(10).contains("BYE"), "{}", text(10));
    assert!(text(11).contains("* 1 FETCH (UID 1)"), "still selected under its new name: {}", text(11));
    assert!(text(12).contains("b3 BAD"), "already authenticated: {}", text(12));

    // A SASL response line that is not base64.
    let steps = json!([["raw", "c1 AUTHENTICATE PLAIN"], ["raw", "!!!", "c1"], ["raw", "c2 NOOP"]]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert!(reply(&results[1]).1.starts_with("+"), "{:?}", results[1]);
    let answered = reply(&results[2]).1;
    assert!(answered.contains("c1 BAD"), "{answered}");
    assert!(reply(&results[3]).1.contains("c2 OK"), "{:?}", results[3]);
    stack.stop().await;
}

/// QRESYNC (RFC 7162 §3.2): a client that comes back with its UIDVALIDITY and MODSEQ learns what it
/// missed in the SELECT itself, and expunges come as VANISHED.
#[tokio::test(flavor = "multi_thread")]
async fn qresync_reports_what_a_returning_client_missed_and_expunges_as_vanished() {
    let stack = TestStack::start().await;
    let jon = stack.add_account("jon@example.org", "jon pw").await;
    for subject in ["q1", "q2", "q3"] {
        deliver(&stack, "jon@example.org", subject).await;
    }
    stack.wait_for_inbox(jon, 3, PATIENCE).await;
    let login = ["raw", "a1 LOGIN jon@example.org \"jon pw\""];
    let first =
        imap_session(stack.imap_addr(), None, json!([login, ["raw", "a2 SELECT INBOX"], ["raw", "a3 LOGOUT"]])).await;
    let selected = reply(&first[2]).1;
    let code = |name: &str| -> String {
        let start =
            selected.find(&format!("[{name} ")).unwrap_or_else(|| panic!("{name} in {selected}")) + name.len() + 2;
        selected[start..].split(']').next().unwrap().to_owned()
    };
    let (uidvalidity, modseq) = (code("UIDVALIDITY"), code("HIGHESTMODSEQ"));

    // While the client is away: message 1 expunged, message 2 read.
    let away = json!([
        login,
        ["raw", "b1 SELECT INBOX"],
        ["raw", "b2 STORE 1 +FLAGS (\\Deleted)"],
        ["raw", "b3 EXPUNGE"],
        ["raw", "b4 STORE 1 +FLAGS (\\Seen)"],
        ["raw", "b5 LOGOUT"]
    ]);
    imap_session(stack.imap_addr(), None, away).await;

    let back = json!([
        login,
        ["raw", format!("c1 SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")],
        ["raw", "c2 ENABLE QRESYNC"],
        ["raw", format!("c3 SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:3))")],
        ["raw", "c4 STORE 1 +FLAGS.SILENT (\\Deleted)"],
        ["raw", "c5 EXPUNGE"],
        ["raw", format!("c6 UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")],
    ]);
    let results = imap_session(stack.imap_addr(), None, back).await;
    let text = |i: usize| reply(&results[i]).1;
    assert!(text(2).contains("c1 BAD"), "QRESYNC needs ENABLE first: {}", text(2));
    assert!(text(3).contains("* ENABLED QRESYNC"), "{}", text(3));
    let resynced = text(4);
    assert!(resynced.contains("* VANISHED (EARLIER) 1"), "{resynced}");
    assert!(resynced.contains("* 1 FETCH (UID 2 FLAGS (\\Seen) MODSEQ ("), "{resynced}");
    assert!(!resynced.contains("UID 3 FLAGS"), "message 3 did not change: {resynced}");
    assert!(resynced.contains("c3 OK [READ-WRITE]"), "{resynced}");
    let expunged = text(6);
    assert!(expunged.contains("* VANISHED 2") && !expunged.contains("EXPUNGE\n"), "{expunged}");
    let fetched = text(7);
    assert!(fetched.contains("* VANISHED (EARLIER) 1:2"), "{fetched}");
    assert!(fetched.contains("c6 OK"), "{fetched}");
    stack.stop().await;
}

/// IMAPClient, a parser we did not write, reads our ENVELOPE and BODYSTRUCTURE of a MIME message with an
/// encoded display name, a forwarded message and an attachment, and sees a delivery during IDLE.
#[tokio::test(flavor = "multi_thread")]
async fn imapclient_parses_envelope_and_body_structure_and_idles() {
    let stack = TestStack::start().await;
    let kim = stack.add_account("kim@example.org", "kim pw").await;
    let mime = b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.net>\r\nTo: kim@example.org\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHallo.\r\n\
--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: a@example.net\r\nSubject: inner\r\n\r\nInner.\r\n\
--b\r\nContent-Type: application/pdf; name=\"x.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n\
--b--\r\n";
    let sent = smtp_send(stack.smtp_addr(), "jorg@example.net", &["kim@example.org"], mime).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { code: 250, .. }), "{sent:?}");
    stack.wait_for_inbox(kim, 1, PATIENCE).await;
    let seen = imapclient_session(stack.imap_addr(), "kim@example.org", "kim pw", &["structure"]).await;
    let message = &seen[0];
    assert_eq!(message["subject"], "Grüße");
    assert_eq!(message["from"], json!([["Jörg", "jorg", "example.net"]]));
    let body = &message["body"];
    assert_eq!(body["multipart"], "mixed");
    let types: Vec<&str> =
        body["parts"].as_array().unwrap().iter().map(|p| p["type"].as_str().unwrap_or("multipart")).collect();
    assert_eq!(types, ["text/plain", "message/rfc822", "application/pdf"]);

    let addr = stack.imap_addr();
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("idling");
    let marker_arg = marker.display().to_string();
    let idle = tokio::spawn(async move {
        imapclient_session(addr, "kim@example.org", "kim pw", &["idle", "20", &marker_arg]).await
    });
    wait_for_marks(&marker, 1).await;
    deliver(&stack, "kim@example.org", "while idle").await;
    let responses = idle.await.unwrap();
    assert!(responses["responses"].as_array().unwrap().iter().any(|r| r == &json!([2, "EXISTS"])), "{responses}");
    stack.stop().await;
}

/// RFC 9051's examples, replayed: the server's lines must be the RFC's, up to the values that differ by
/// nature (UIDVALIDITY, MODSEQ, dates).
#[tokio::test(flavor = "multi_thread")]
async fn transcripts_from_the_rfc_examples() {
    let stack = TestStack::start().await;
    let id = stack.add_account("smith@example.org", "pw").await;
    // Eleven messages, so that §6.4.3's EXPUNGE example (3, 4, 7 and 11 deleted) can be replayed.
    for n in 1..=11u32 {
        let body = format!(
            "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nFrom: Fred Foobar <foobar@Blurdybloop.example>\r\nSubject: afternoon meeting {n}\r\nTo: mooch@owatagu.siam.edu.example\r\n\r\nHello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
        );
        crate::store::append(&stack, id, "INBOX", &[], Some(760_686_745), body.as_bytes()).await.unwrap();
    }
    let steps = json!([
        ["raw", "a001 LOGIN smith@example.org pw"],
        ["raw", "A002 LIST \"\" \"\""], // §6.3.9: the delimiter
        ["raw", "A682 LIST \"\" *"],
        ["raw", "A042 STATUS INBOX (MESSAGES UIDNEXT)"], // §6.3.11
        ["raw", "A142 SELECT INBOX"],                    // §6.3.2
        ["raw", "A654 FETCH 2:4 (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)])"], // §6.4.5
        ["raw", "A003 STORE 3,4,7,11 +FLAGS (\\Deleted)"], // §6.4.6
        ["raw", "A202 EXPUNGE"],                         // §6.4.3
        ["raw", "A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\""], // §6.4.4
        ["raw", "A283 SEARCH TEXT \"afternoon meeting 5\""],
        ["raw", "A004 UID FETCH 1:* (UID)"],
        ["raw", "A005 LOGOUT"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let lines = |i: usize| -> Vec<String> { reply(&results[i]).1.lines().map(str::to_owned).collect() };
    assert_eq!(lines(2), ["* LIST (\\Noselect) \"/\" \"\"", "A002 OK LIST completed"]);
    assert_eq!(lines(3)[0], "* LIST (\\HasNoChildren) \"/\" INBOX");
    assert!(lines(3).contains(&"* LIST (\\HasNoChildren \\Sent) \"/\" Sent".to_owned()), "{:?}", lines(3));
    assert_eq!(lines(4), ["* STATUS INBOX (MESSAGES 11 UIDNEXT 12)", "A042 OK STATUS completed"]);
    let select = lines(5);
    assert_eq!(select[0], "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
    assert_eq!(select[1], "* 11 EXISTS");
    // The eleven arrived before any session selected INBOX: this one is the first, they are its recent.
    assert_eq!(select[2], "* 11 RECENT");
    assert_eq!(select[3], "* OK [UNSEEN 1] first unseen");
    assert_eq!(select[4], "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] flags permitted");
    assert_eq!(select[5], "* OK [UIDNEXT 12] predicted next UID");
    assert!(select[6].starts_with("* OK [UIDVALIDITY ") && select[6].ends_with("] UIDs valid"), "{select:?}");
    assert!(select[7].starts_with("* OK [HIGHESTMODSEQ "), "{select:?}");
    assert!(select[8].starts_with("* OK [MAILBOXID (m") && select[8].ends_with(")] mailbox id"), "{select:?}");
    assert_eq!(select[9], "A142 OK [READ-WRITE] SELECT completed");
    let fetched = lines(6);
    assert_eq!(fetched[0], "* 2 FETCH (FLAGS (\\Recent) BODY[HEADER.FIELDS (DATE FROM)] {88}");
    assert_eq!(fetched[1], "Date: Mon, 7 Feb 1994 21:52:25 -0800");
    assert_eq!(fetched[2], "From: Fred Foobar <foobar@Blurdybloop.example>");
    assert_eq!(fetched[3], "");
    assert_eq!(fetched[4], ")");
    assert_eq!(fetched.last().unwrap(), "A654 OK FETCH completed");
    let stored = lines(7);
    assert_eq!(stored[0], "* 3 FETCH (FLAGS (\\Deleted \\Recent))");
    assert_eq!(stored[3], "* 11 FETCH (FLAGS (\\Deleted \\Recent))");
    // §6.4.3: each EXPUNGE renumbers the messages after it.
    assert_eq!(lines(8), ["* 3 EXPUNGE", "* 3 EXPUNGE", "* 5 EXPUNGE", "* 8 EXPUNGE", "A202 OK EXPUNGE completed"]);
    assert_eq!(lines(9), ["* SEARCH", "A282 OK SEARCH completed"]);
    assert_eq!(lines(10), ["* SEARCH 3", "A283 OK SEARCH completed"], "message 5 is number 3 once 3 and 4 are gone");
    let uids: Vec<String> = lines(11).into_iter().filter(|l| l.starts_with("* ")).collect();
    assert_eq!(uids.len(), 7);
    assert_eq!(uids[2], "* 3 FETCH (UID 5)");
    assert_eq!(lines(12), ["* BYE logging out", "A005 OK LOGOUT completed"]);
}

/// Mailbox names are modified UTF-7 for IMAP4rev1 clients and UTF-8 after ENABLE UTF8=ACCEPT (RFC 6855),
/// the same mailbox either way.
#[tokio::test(flavor = "multi_thread")]
async fn mailbox_names_are_modified_utf7_or_utf8_after_enable() {
    let stack = TestStack::start().await;
    stack.add_account("lea@example.org", "pw").await;
    let steps = json!([
        ["raw", "a1 LOGIN lea@example.org pw"],
        ["raw", "a2 CREATE Entw&APw-rfe"],
        ["raw", "a3 LIST \"\" Entw*"],
        ["raw", "a4 ENABLE UTF8=ACCEPT"],
        ["raw", "a5 CREATE \"Grüße\""],
        ["raw", "a6 LIST \"\" *e"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let text = |i: usize| reply(&results[i]).1;
    assert!(text(2).contains("a2 OK"), "{}", text(2));
    assert!(text(3).contains("* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe"), "{}", text(3));
    assert!(text(4).contains("* ENABLED UTF8=ACCEPT"), "{}", text(4));
    assert!(text(5).contains("a5 OK"), "{}", text(5));
    // The client script reads octets as Latin-1: UTF-8 shows as its octets.
    let octets = |s: &str| s.bytes().map(char::from).collect::<String>();
    let listed = text(6);
    assert!(listed.contains(&format!("\"/\" \"{}\"", octets("Entwürfe"))), "quoted UTF-8: {listed}");
    assert!(listed.contains(&octets("Grüße")), "{listed}");
    let steps = json!([["raw", "b1 LOGIN lea@example.org pw"], ["raw", "b2 LIST \"\" Gr*"]]);
    let plain = imap_session(stack.imap_addr(), None, steps).await;
    assert!(reply(&plain[2]).1.contains("\"/\" Gr&APwA3w-e"), "{:?}", plain[2]);
    stack.stop().await;
}

/// ESEARCH (RFC 4731), LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819), which imap-codec does not
/// parse: the options are cut out and the rest goes through imap-codec.
#[tokio::test(flavor = "multi_thread")]
async fn esearch_list_extended_and_list_status() {
    let stack = TestStack::start().await;
    let id = stack.add_account("max@example.org", "pw").await;
    for n in 1..=4u32 {
        let flags: &[&str] = if n % 2 == 0 { &["\\Seen"] } else { &[] };
        let body = format!("Subject: m{n}\r\n\r\nbody\r\n");
        crate::store::append(&stack, id, "INBOX", flags, None, body.as_bytes()).await.unwrap();
    }
    let steps = json!([
        ["raw", "a1 LOGIN max@example.org pw"],
        ["raw", "a2 SELECT INBOX"],
        ["raw", "a3 SEARCH RETURN (MIN MAX COUNT) UNSEEN"],
        ["raw", "a4 UID SEARCH RETURN () ALL"],
        ["raw", "a5 SEARCH RETURN (COUNT) SUBJECT nothing-like-this"],
        ["raw", "a6 SUBSCRIBE Gone"],
        ["raw", "a7 LIST (SUBSCRIBED) \"\" \"*\" RETURN (CHILDREN)"],
        ["raw", "a8 LIST \"\" \"INBOX\" RETURN (STATUS (MESSAGES UNSEEN SIZE))"],
        ["raw", "a9 SEARCH RETURN (MIN"],
        ["raw", "b1 SEARCH RETURN é(MIN) ALL"],
        ["raw", "b2 SEARCH RETURN (FOO) ALL"],
        ["raw", "b3 ENABLE UTF8=ACCEPT"],
        ["raw", "b4 NOOP"],
        ["raw", "b5 SEARCH RETURN (COUNT) CHARSET UTF-8 SUBJECT {2+}\r\nm3"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let lines = |i: usize| -> Vec<String> { reply(&results[i]).1.lines().map(str::to_owned).collect() };
    assert_eq!(lines(3), ["* ESEARCH (TAG \"a3\") MIN 1 MAX 3 COUNT 2", "a3 OK SEARCH completed"]);
    assert_eq!(lines(4), ["* ESEARCH (TAG \"a4\") UID ALL 1:4", "a4 OK SEARCH completed"]);
    assert_eq!(lines(5), ["* ESEARCH (TAG \"a5\") COUNT 0", "a5 OK SEARCH completed"]);
    let subscribed = lines(7);
    assert!(
        subscribed.contains(&"* LIST (\\NonExistent \\Subscribed \\HasNoChildren) \"/\" Gone".to_owned()),
        "{subscribed:?}"
    );
    assert!(subscribed.contains(&"* LIST (\\Subscribed \\HasNoChildren) \"/\" INBOX".to_owned()), "{subscribed:?}");
    let status = lines(8);
    assert_eq!(status[0], "* LIST (\\HasNoChildren) \"/\" INBOX");
    assert!(status[1].starts_with("* STATUS INBOX (MESSAGES 4 UNSEEN 2 SIZE "), "{status:?}");
    assert!(lines(9).last().unwrap().starts_with("a9 BAD"), "{:?}", lines(9));
    assert!(lines(10).last().unwrap().starts_with("b1 BAD"), "{:?}", lines(10));
    assert!(lines(11).last().unwrap().starts_with("b2 BAD"), "unknown RETURN option: {:?}", lines(11));
    assert!(lines(12).last().unwrap().starts_with("b3 BAD"), "ENABLE while selected: {:?}", lines(12));
    assert!(lines(13).last().unwrap().starts_with("b4 OK"), "{:?}", lines(13));
    assert_eq!(lines(14), ["* ESEARCH (TAG \"b5\") COUNT 1", "b5 OK SEARCH completed"], "a literal search string");
    stack.stop().await;
}

/// BINARY (RFC 3516): a part with its transfer encoding undone, its size, UNKNOWN-CTE, and a partial fetch
/// that names its origin (§4.2).
#[tokio::test(flavor = "multi_thread")]
async fn binary_fetches_decoded_parts() {
    let stack = TestStack::start().await;
    let id = stack.add_account("ned@example.org", "pw").await;
    let mime = b"Subject: b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nplain\r\n--x\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gYmluYXJ5DQo=\r\n--x\r\nContent-Transfer-Encoding: x-unknown\r\n\r\n???\r\n--x--\r\n";
    crate::store::append(&stack, id, "INBOX", &[], None, mime).await.unwrap();
    let steps = json!([
        ["raw", "a1 LOGIN ned@example.org pw"],
        ["raw", "a2 SELECT INBOX"],
        ["raw", "a3 FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])"],
        ["raw", "a4 FETCH 1 (BINARY.PEEK[3])"],
        ["raw", "a5 CAPABILITY"],
        ["raw", "a6 FETCH 1 (BINARY.PEEK[2]<0.5> BINARY.PEEK[2]<6.100> BINARY.PEEK[2])"],
        ["raw", "a7 UID FETCH 1 (BINARY.PEEK[2]<2.3> EMAILID)"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let text = |i: usize| reply(&results[i]).1;
    assert!(text(3).starts_with("* 1 FETCH (BINARY[2] ~{14}\nhello binary\n"), "{}", text(3));
    assert!(text(3).contains("BINARY.SIZE[2] 14)") && text(3).contains("a3 OK"), "{}", text(3));
    assert!(text(4).contains("a4 NO [UNKNOWN-CTE]"), "{}", text(4));
    assert!(text(5).contains(" BINARY"), "{}", text(5));
    assert!(
        text(6).starts_with("* 1 FETCH (BINARY[2]<0> ~{5}\nhello BINARY[2]<6> ~{8}\nbinary\n BINARY[2] ~{14}\n"),
        "{}",
        text(6)
    );
    assert!(text(7).starts_with("* 1 FETCH (UID 1 BINARY[2]<2> ~{3}\nllo EMAILID (e"), "{}", text(7));
    stack.stop().await;
}

/// ENABLE IMAP4rev2 (RFC 9051): ESEARCH answers SEARCH, no RECENT, UTF-8 names; and SEARCHRES's `$`.
#[tokio::test(flavor = "multi_thread")]
async fn imap4rev2_when_enabled_and_searchres() {
    let stack = TestStack::start().await;
    let id = stack.add_account("ola@example.org", "pw").await;
    for n in 1..=3u32 {
        let flags: &[&str] = if n == 2 { &["\\Seen"] } else { &[] };
        crate::store::append(&stack, id, "INBOX", flags, None, format!("Subject: r{n}\r\n\r\nx\r\n").as_bytes())
            .await
            .unwrap();
    }
    let steps = json!([
        ["raw", "a1 LOGIN ola@example.org pw"],
        ["raw", "a2 ENABLE IMAP4rev2"],
        ["raw", "a3 SELECT INBOX"],
        ["raw", "a4 SEARCH UNSEEN"],
        ["raw", "a5 SEARCH RETURN (SAVE) UNSEEN"],
        ["raw", "a6 FETCH $ (UID)"],
        ["raw", "a7 UID STORE $ +FLAGS (\\Flagged)"],
        ["raw", "a8 CREATE \"Entwürfe\""],
        ["raw", "a9 LIST \"\" Entw*"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let text = |i: usize| reply(&results[i]).1;
    assert!(ok(&results, 0).contains("IMAP4rev2"), "advertised in the greeting");
    assert!(text(2).contains("* ENABLED IMAP4rev2"), "{}", text(2));
    assert!(!text(3).contains("RECENT"), "{}", text(3));
    assert!(text(4).contains("* ESEARCH (TAG \"a4\") ALL 1,3"), "{}", text(4));
    assert!(!text(5).contains("ESEARCH") && text(5).contains("a5 OK"), "{}", text(5));
    assert!(
        text(6).contains("* 1 FETCH (UID 1)") && text(6).contains("* 3 FETCH (UID 3)") && !text(6).contains("UID 2"),
        "{}",
        text(6)
    );
    assert!(text(7).contains("FLAGS (\\Flagged) UID 3)") && text(7).contains("a7 OK"), "{}", text(7));
    let octets = |s: &str| s.bytes().map(char::from).collect::<String>();
    assert!(text(9).contains(&octets("Entwürfe")), "UTF-8 names in IMAP4rev2: {}", text(9));
    stack.stop().await;
}

/// COPY and MOVE into the mailbox they come from, as Dovecot allows: each gives the messages new UIDs
/// (COPYUID says which), a MOVE expunges the old ones, and UIDNEXT only grows.
#[tokio::test(flavor = "multi_thread")]
async fn copy_and_move_into_the_same_mailbox_give_new_uids() {
    let stack = TestStack::start().await;
    let eve = stack.add_account("eve@example.org", "eve pw").await;
    deliver(&stack, "eve@example.org", "loop").await;
    let uids = stack.wait_for_inbox(eve, 1, PATIENCE).await;
    let steps = json!([
        ["login", "eve@example.org", "eve pw"],        // 1
        ["select", "INBOX"],                           // 2
        ["copy", "1", "INBOX"],                        // 3
        ["uid", "MOVE", uids[0].to_string(), "INBOX"], // 4
        ["noop"],                                      // 5
        ["uid", "SEARCH", "ALL"],                      // 6
        ["status", "INBOX", "(MESSAGES UIDNEXT)"],     // 7
        ["logout"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let (first, copy, moved) = (uids[0], uids[0] + 1, uids[0] + 2);
    let copied = ok(&results, 3);
    assert!(copied.contains("COPYUID") && copied.contains(&format!(" {first} {copy}]")), "{copied}");
    ok(&results, 4);
    let found = ok(&results, 6);
    assert_eq!(found.trim(), format!("{copy} {moved}"), "the moved message has a new UID, the old one is gone");
    let status = ok(&results, 7);
    assert!(status.contains("MESSAGES 2") && status.contains(&format!("UIDNEXT {}", moved + 1)), "{status}");
}

/// RFC 2180 §4.2.1, as Dovecot: STORE on a message another session expunged (known here, its EXPUNGE
/// not yet sent) answers OK and skips it, instead of NO [EXPUNGEISSUED]; the EXPUNGE comes at the next
/// command that may carry it.
#[tokio::test(flavor = "multi_thread")]
async fn store_skips_a_message_another_session_expunged() {
    let stack = TestStack::start().await;
    let fay = stack.add_account("fay@example.org", "fay pw").await;
    deliver(&stack, "fay@example.org", "one").await;
    deliver(&stack, "fay@example.org", "two").await;
    stack.wait_for_inbox(fay, 2, PATIENCE).await;
    let session = async || selected_inbox(&stack, "fay@example.org", "fay pw").await;
    let (mut first, mut second) = (session().await, session().await);
    second.send(b"c STORE 1 +FLAGS.SILENT (\\Deleted)\r\nd EXPUNGE\r\n").await;
    assert!(second.line_starting("d ").await.expect("EXPUNGE answered").starts_with("d OK"));
    // FETCH by number may not carry the EXPUNGE (RFC 9051 §7.4.1): the first session learns of it and
    // says EXPUNGEISSUED once the event has reached it.
    // It is not told of it by a push (IDLE would announce the EXPUNGE), so it asks until it knows.
    mailbus_tests::wait_until(PATIENCE, "the expunge reaching the first session", async || {
        first.send(b"e FETCH 1 (FLAGS)\r\n").await;
        first.line_starting("e ").await.expect("FETCH answered").contains("EXPUNGEISSUED")
    })
    .await;
    first.send(b"f STORE 1:2 +FLAGS (\\Flagged)\r\n").await;
    let stored = first.line_starting("f ").await.expect("STORE answered");
    assert!(stored.starts_with("f OK"), "{stored}");
    first.send(b"g NOOP\r\n").await;
    let mut lines = Vec::new();
    while let Some(line) = first.line().await {
        let done = line.starts_with("g ");
        lines.push(line);
        if done {
            break;
        }
    }
    assert!(lines.iter().any(|l| l == "* 1 EXPUNGE"), "{lines:?}");
}

/// RFC 3501 §6.3.9: LSUB with `%` lists the unsubscribed parent of a subscribed child, as \Noselect; `*`
/// lists only what is subscribed.
#[tokio::test(flavor = "multi_thread")]
async fn lsub_with_percent_shows_an_unsubscribed_parent_as_noselect() {
    let stack = TestStack::start().await;
    stack.add_account("gus@example.org", "gus pw").await;
    let steps = json!([
        ["login", "gus@example.org", "gus pw"], // 1
        ["create", "Lists/rust"],               // 2
        ["subscribe", "Lists/rust"],            // 3
        ["lsub", "\"\"", "%"],                  // 4
        ["lsub", "\"\"", "*"],                  // 5
        ["logout"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let percent = ok(&results, 4);
    assert!(percent.contains("\\Noselect") && percent.contains("\"/\" Lists"), "{percent}");
    assert!(!percent.contains("Lists/rust"), "{percent}");
    let star = ok(&results, 5);
    assert!(star.contains("Lists/rust") && !star.contains("\"/\" Lists\n"), "{star}");
}

/// RFC 7162 §3.1: a FETCH MODSEQ that turns CONDSTORE on is answered with HIGHESTMODSEQ first; and an
/// ESEARCH's MODSEQ is the highest of the messages it returns (RFC 4731 §3.2), so RETURN (MIN) gives the
/// first match's, not the mailbox's.
#[tokio::test(flavor = "multi_thread")]
async fn condstore_enabled_by_fetch_reports_highestmodseq_and_esearch_modseq_follows_what_it_returns() {
    let stack = TestStack::start().await;
    let hal = stack.add_account("hal@example.org", "hal pw").await;
    for subject in ["one", "two", "three"] {
        deliver(&stack, "hal@example.org", subject).await;
    }
    stack.wait_for_inbox(hal, 3, PATIENCE).await;
    let steps = json!([
        ["login", "hal@example.org", "hal pw"],     // 1
        ["select", "INBOX"],                        // 2
        ["raw", "s1 STORE 3 +FLAGS (\\Flagged)"],   // 3
        ["raw", "f1 FETCH 1 (MODSEQ)"],             // 4
        ["raw", "f2 FETCH 1:3 (MODSEQ)"],           // 5
        ["raw", "e1 SEARCH RETURN (MIN) MODSEQ 1"], // 6
        ["raw", "e2 SEARCH RETURN (ALL) MODSEQ 1"], // 7
        ["logout"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let first_fetch = ok(&results, 4);
    let highest = first_fetch.find("[HIGHESTMODSEQ ").expect("HIGHESTMODSEQ before the first FETCH MODSEQ");
    assert!(highest < first_fetch.find("* 1 FETCH").expect("the FETCH"), "{first_fetch}");
    let modseqs = ok(&results, 5);
    let modseq_of = |n: u32| -> u64 {
        let at =
            modseqs.find(&format!("* {n} FETCH (MODSEQ (")).expect("a MODSEQ") + format!("* {n} FETCH (MODSEQ (").len();
        modseqs[at..].split(')').next().unwrap().parse().unwrap()
    };
    let (first, third) = (modseq_of(1), modseq_of(3));
    assert!(first < third, "the STORE made message 3 the latest change: {modseqs}");
    let min = ok(&results, 6);
    assert!(min.contains(&format!("MIN 1 MODSEQ {first}")), "RETURN (MIN) reports message 1's MODSEQ: {min}");
    let all = ok(&results, 7);
    assert!(all.contains(&format!("ALL 1:3 MODSEQ {third}")), "{all}");
}

/// RFC 3501 §7.2.6: a keyword new to the mailbox is announced in FLAGS and PERMANENTFLAGS before the
/// first FETCH that carries it, in the session that set it and in one that learns of it later.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_keyword_is_announced_in_flags_before_a_fetch_carries_it() {
    let stack = TestStack::start().await;
    let ida = stack.add_account("ida@example.org", "ida pw").await;
    deliver(&stack, "ida@example.org", "tagged").await;
    stack.wait_for_inbox(ida, 1, PATIENCE).await;
    let steps = json!([
        ["login", "ida@example.org", "ida pw"],  // 1
        ["select", "INBOX"],                     // 2
        ["raw", "s1 STORE 1 +FLAGS ($Project)"], // 3
        ["raw", "s2 STORE 1 +FLAGS ($Project)"], // 4
        ["logout"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let first = ok(&results, 3);
    let flags = first.find("* FLAGS (").expect("an untagged FLAGS for the new keyword");
    assert!(first[flags..].lines().next().unwrap().contains("$Project"), "{first}");
    assert!(first.contains("[PERMANENTFLAGS (") && first.contains("$Project \\*)"), "{first}");
    assert!(flags < first.find("* 1 FETCH").expect("the FETCH"), "FLAGS comes first: {first}");
    assert!(!ok(&results, 4).contains("* FLAGS"), "a keyword is announced once");

    // Another session, selected before a keyword existed, is told when the change reaches it.
    let session = async || selected_inbox(&stack, "ida@example.org", "ida pw").await;
    let (mut watching, mut setting) = (session().await, session().await);
    watching.send(b"i IDLE\r\n").await;
    assert!(watching.line_starting("+").await.is_some(), "IDLE accepted");
    setting.send(b"c STORE 1 +FLAGS.SILENT ($Later)\r\n").await;
    assert!(setting.line_starting("c ").await.expect("STORE answered").starts_with("c OK"));
    // The change is pushed to the session in IDLE; each line waits at most 30 s.
    let mut seen = Vec::new();
    while !seen.last().is_some_and(|l: &String| l.contains("FETCH") && l.contains("$Later")) {
        seen.push(watching.line().await.expect("the change pushed in IDLE"));
    }
    let fetch = seen.len() - 1;
    let flags = seen.iter().position(|l| l.starts_with("* FLAGS (") && l.contains("$Later"));
    assert!(flags.is_some_and(|f| f < fetch), "{seen:?}");
}

/// RFC 9051 §6.4.4: SENTON, SENTBEFORE and SENTSINCE use the day written in the Date field, whatever its
/// time zone; 23:30 at -0500 on 24 November is 25 November in UTC, and must still be sent on the 24th.
#[tokio::test(flavor = "multi_thread")]
async fn sent_dates_are_the_day_written_in_the_date_field() {
    let stack = TestStack::start().await;
    stack.add_account("jo@example.org", "jo pw").await;
    let late = "Date: Tue, 24 Nov 2026 23:30:00 -0500\r\nFrom: a@example.net\r\nSubject: late\r\n\r\nx\r\n";
    let steps = json!([
        ["login", "jo@example.org", "jo pw"],          // 1
        ["append", "INBOX", null, null, late],         // 2
        ["select", "INBOX"],                           // 3
        ["search", null, "SENTON", "24-Nov-2026"],     // 4
        ["search", null, "SENTON", "25-Nov-2026"],     // 5
        ["search", null, "SENTBEFORE", "25-Nov-2026"], // 6
        ["search", null, "SENTSINCE", "25-Nov-2026"],  // 7
        ["logout"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert_eq!(ok(&results, 4).trim(), "1", "sent on the 24th as written");
    assert_eq!(ok(&results, 5).trim(), "", "not on the 25th, its UTC day");
    assert_eq!(ok(&results, 6).trim(), "1");
    assert_eq!(ok(&results, 7).trim(), "");
}

/// RFC 3501 §7.4.2: empty groups in ENVELOPE are start and end markers, a comment in a group is no
/// address; and SEARCH CC finds a group by its name.
#[tokio::test(flavor = "multi_thread")]
async fn envelope_groups_are_markers_and_search_finds_a_group_by_name() {
    let stack = TestStack::start().await;
    stack.add_account("kim@example.org", "kim pw").await;
    let grouped = "From: a@example.net\r\nCc: group:;, group2: (foo) ;\r\nSubject: groups\r\n\r\nx\r\n";
    let steps = json!([
        ["login", "kim@example.org", "kim pw"],   // 1
        ["append", "INBOX", null, null, grouped], // 2
        ["select", "INBOX"],                      // 3
        ["fetch", "1", "(ENVELOPE)"],             // 4
        ["search", null, "CC", "group2"],         // 5
        ["logout"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let envelope = ok(&results, 4);
    let groups = "((NIL NIL \"group\" NIL)(NIL NIL NIL NIL)(NIL NIL \"group2\" NIL)(NIL NIL NIL NIL))";
    assert!(envelope.contains(groups), "{envelope}");
    assert_eq!(ok(&results, 5).trim(), "1");
}

/// The JMAP ids of an account's mailboxes by name, and of its emails with their threads.
async fn jmap_ids(
    stack: &TestStack,
    account: i64,
) -> (std::collections::HashMap<String, String>, Vec<(String, String)>) {
    let mailboxes = stack.jmap_call(account, "Mailbox/get", json!({"ids": null, "properties": ["name"]})).await;
    let mailboxes = mailboxes[0].1["list"].as_array().expect("a list").iter();
    let mailboxes = mailboxes.map(|m| (m["name"].as_str().unwrap().to_owned(), m["id"].as_str().unwrap().to_owned()));
    let emails = stack.jmap_call(account, "Email/get", json!({"ids": null, "properties": ["threadId"]})).await;
    let mut emails: Vec<(String, String)> = emails[0].1["list"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| (e["id"].as_str().unwrap().to_owned(), e["threadId"].as_str().unwrap().to_owned()))
        .collect();
    // Email ids are row ids, so this is delivery order, as IMAP's sequence numbers are.
    emails.sort_by_key(|(id, _)| id[1..].parse::<i64>().unwrap());
    (mailboxes.collect(), emails)
}

/// RFC 8474 OBJECTID: MAILBOXID in SELECT, STATUS and CREATE, EMAILID and THREADID in FETCH and SEARCH,
/// each the id JMAP gives the same object; a reply shares its parent's THREADID as it shares its threadId.
#[tokio::test(flavor = "multi_thread")]
async fn objectid_names_mailboxes_emails_and_threads_as_jmap_does() {
    let stack = TestStack::start().await;
    let id = stack.add_account("oda@example.org", "pw").await;
    for body in [
        "From: a@example.net\r\nSubject: plans\r\nMessage-ID: <p@example.net>\r\n\r\nShall we?\r\n",
        "From: b@example.net\r\nSubject: lunch\r\nMessage-ID: <l@example.net>\r\n\r\nNoon.\r\n",
        "From: c@example.net\r\nSubject: Re: plans\r\nMessage-ID: <r@example.net>\r\nIn-Reply-To: <p@example.net>\r\nReferences: <p@example.net>\r\n\r\nYes.\r\n",
    ] {
        crate::store::append(&stack, id, "INBOX", &[], None, body.as_bytes()).await.unwrap();
    }
    let (mailboxes, emails) = jmap_ids(&stack, id).await;
    let inbox = &mailboxes["INBOX"];
    assert_eq!(emails.len(), 3);
    assert_eq!(emails[0].1, emails[2].1, "the reply is in its parent's thread: {emails:?}");
    assert_ne!(emails[0].1, emails[1].1, "{emails:?}");
    let (e1, e2, e3) = (&emails[0].0, &emails[1].0, &emails[2].0);
    let (t1, t2) = (&emails[0].1, &emails[1].1);
    let steps = json!([
        ["raw", "a1 LOGIN oda@example.org pw"],
        ["raw", "a2 CAPABILITY"],
        ["raw", "a3 SELECT INBOX"],
        ["raw", "a4 STATUS INBOX (MAILBOXID)"],
        ["raw", "a5 STATUS INBOX (MESSAGES MAILBOXID)"],
        ["raw", "a6 CREATE Projects"],
        ["raw", "a7 FETCH 1:* (EMAILID THREADID)"],
        ["raw", "a8 UID FETCH 2 (FLAGS EMAILID)"],
        ["raw", "a9 FETCH 3 THREADID"],
        ["raw", format!("b1 SEARCH EMAILID {e2}")],
        ["raw", format!("b2 UID SEARCH THREADID {t1}")],
        ["raw", format!("b3 SEARCH RETURN (COUNT) OR THREADID {t2} EMAILID {e3}")],
        ["raw", "b4 SEARCH EMAILID e999999999 THREADID x1"],
        ["raw", "b5 FETCH 1 (BODY.PEEK[HEADER.FIELDS (EMAILID)])"],
        ["raw", "b6 LOGOUT"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let lines = |i: usize| -> Vec<String> { reply(&results[i]).1.lines().map(str::to_owned).collect() };
    assert!(lines(2)[0].split(' ').any(|c| c == "OBJECTID"), "{:?}", lines(2));
    assert!(lines(3).contains(&format!("* OK [MAILBOXID ({inbox})] mailbox id")), "{:?}", lines(3));
    assert_eq!(lines(4), [format!("* STATUS INBOX (MAILBOXID ({inbox}))"), "a4 OK STATUS completed".into()]);
    assert_eq!(lines(5), [format!("* STATUS INBOX (MESSAGES 3 MAILBOXID ({inbox}))"), "a5 OK STATUS completed".into()]);
    let (mailboxes, _) = jmap_ids(&stack, id).await;
    assert_eq!(lines(6), [format!("a6 OK [MAILBOXID ({})] CREATE completed", mailboxes["Projects"])]);
    assert_eq!(
        lines(7),
        [
            format!("* 1 FETCH (EMAILID ({e1}) THREADID ({t1}))"),
            format!("* 2 FETCH (EMAILID ({e2}) THREADID ({t2}))"),
            format!("* 3 FETCH (EMAILID ({e3}) THREADID ({t1}))"),
            "a7 OK FETCH completed".into(),
        ]
    );
    assert_eq!(
        lines(8),
        [format!("* 2 FETCH (UID 2 FLAGS (\\Recent) EMAILID ({e2}))"), "a8 OK FETCH completed".into()]
    );
    assert_eq!(lines(9), [format!("* 3 FETCH (THREADID ({t1}))"), "a9 OK FETCH completed".into()]);
    assert_eq!(lines(10), ["* SEARCH 2", "b1 OK SEARCH completed"]);
    assert_eq!(lines(11), ["* SEARCH 1 3", "b2 OK SEARCH completed"]);
    assert_eq!(lines(12), ["* ESEARCH (TAG \"b3\") COUNT 2", "b3 OK SEARCH completed"]);
    assert_eq!(lines(13), ["* SEARCH", "b4 OK SEARCH completed"], "ids of nothing match nothing");
    let header = lines(14);
    assert_eq!(header[0], "* 1 FETCH (BODY[HEADER.FIELDS (EMAILID)] {2}", "a field named EMAILID is a field");
}

/// RFC 5256 THREAD: REFERENCES groups exactly as JMAP's Thread objects do and nests replies under what
/// they reply to; ORDEREDSUBJECT groups by base subject under the first message.
#[tokio::test(flavor = "multi_thread")]
async fn thread_references_are_jmap_threads_nested_by_reply() {
    let stack = TestStack::start().await;
    let id = stack.add_account("tim@example.org", "pw").await;
    let mails = [
        ("plans", "<p@example.net>", ""),
        ("lunch", "<l@example.net>", ""),
        ("Re: plans", "<r1@example.net>", "In-Reply-To: <p@example.net>\r\n"),
        (
            "Re: Re: plans",
            "<r2@example.net>",
            "In-Reply-To: <r1@example.net>\r\nReferences: <p@example.net> <r1@example.net>\r\n",
        ),
        ("Re: plans", "<r3@example.net>", "In-Reply-To: <p@example.net>\r\n"),
        ("Re: lunch", "<l2@example.net>", "References: <l@example.net>\r\n"),
    ];
    for (n, (subject, message_id, links)) in mails.iter().enumerate() {
        let body =
            format!("From: a@example.net\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n{links}\r\nText.\r\n");
        let date = 1_700_000_000 + 1000 * n as i64;
        crate::store::append(&stack, id, "INBOX", &[], Some(date), body.as_bytes()).await.unwrap();
    }
    let steps = json!([
        ["raw", "a1 LOGIN tim@example.org pw"],
        ["raw", "a2 SELECT INBOX"],
        ["raw", "a3 THREAD REFERENCES UTF-8 ALL"],
        ["raw", "a4 UID THREAD ORDEREDSUBJECT US-ASCII ALL"],
        ["raw", "a5 THREAD REFERENCES UTF-8 SUBJECT lunch"],
        ["raw", "a6 THREAD REFS UTF-8 ALL"],
        ["raw", "a7 THREAD REFERENCES ISO-8859-1 ALL"],
        ["raw", "a8 CAPABILITY"],
        ["raw", "a9 LOGOUT"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let lines = |i: usize| -> Vec<String> { reply(&results[i]).1.lines().map(str::to_owned).collect() };
    assert_eq!(lines(3), ["* THREAD (1 (3 4)(5))(2 6)", "a3 OK THREAD completed"]);
    assert_eq!(lines(4), ["* THREAD (1 (3)(4)(5))(2 6)", "a4 OK THREAD completed"]);
    assert_eq!(lines(5), ["* THREAD (2 6)", "a5 OK THREAD completed"]);
    assert!(lines(6)[0].starts_with("a6 BAD"), "{:?}", lines(6));
    assert!(lines(7)[0].starts_with("a7 NO [BADCHARSET"), "{:?}", lines(7));
    let caps = &lines(8)[0];
    assert!(caps.contains(" THREAD=REFERENCES") && caps.contains(" THREAD=ORDEREDSUBJECT"), "{caps}");
    // JMAP's threads of the same messages: sequence numbers are delivery order, as email ids are.
    let (_, emails) = jmap_ids(&stack, id).await;
    let thread_ids: Vec<&String> = emails.iter().map(|(_, t)| t).collect();
    let threads = stack.jmap_call(id, "Thread/get", json!({"ids": [thread_ids[0], thread_ids[1]]})).await;
    let groups: Vec<Vec<usize>> = threads[0].1["list"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| {
            let members = t["emailIds"].as_array().unwrap().iter().map(|e| e.as_str().unwrap());
            let mut numbers: Vec<usize> =
                members.map(|e| emails.iter().position(|(id, _)| id == e).unwrap() + 1).collect();
            numbers.sort();
            numbers
        })
        .collect();
    assert_eq!(groups, [vec![1, 3, 4, 5], vec![2, 6]], "the groups of a3's answer");
}

/// Sends `command` (tagged `tag`) and reads every line up to and including its tagged answer.
pub(crate) async fn answer(client: &mut mailbus_tests::raw::RawClient, tag: &str, command: &str) -> Vec<String> {
    client.send(format!("{tag} {command}\r\n").as_bytes()).await;
    let mut lines = Vec::new();
    while let Some(line) = client.line().await {
        let done = line.starts_with(&format!("{tag} "));
        lines.push(line);
        if done {
            return lines;
        }
    }
    panic!("the connection closed before {tag} was answered: {lines:?}");
}

/// A bare IMAP connection, logged in, nothing selected.
pub(crate) async fn logged_in(stack: &TestStack, user: &str, password: &str) -> mailbus_tests::raw::RawClient {
    let mut client = mailbus_tests::raw::RawClient::connect("127.0.0.1", stack.imap_addr()).await;
    client.line().await.expect("a greeting");
    let login = answer(&mut client, "l", &format!("LOGIN {user} \"{password}\"")).await;
    assert!(login.last().is_some_and(|l| l.starts_with("l OK")), "{login:?}");
    client
}

fn has(lines: &[String], wanted: &str) -> bool {
    lines.iter().any(|l| l == wanted)
}

/// RFC 3501 §2.3.2 `\Recent`: a message is recent to exactly one session, the first to SELECT the mailbox
/// (or to catch up with the message) read-write; EXAMINE and STATUS see it without taking it; FETCH FLAGS
/// and SEARCH RECENT, NEW and OLD follow the session's own; an IMAP4rev2 session neither sees nor takes it.
#[tokio::test(flavor = "multi_thread")]
async fn recent_belongs_to_the_first_session_that_selects() {
    let stack = TestStack::start().await;
    let rae = stack.add_account("rae@example.org", "rae pw").await;
    for (n, flags) in [(1, &["\\Seen"][..]), (2, &[][..])] {
        let body = format!("Subject: r{n}\r\n\r\nx\r\n");
        crate::store::append(&stack, rae, "INBOX", flags, None, body.as_bytes()).await.unwrap();
    }
    let session = async || logged_in(&stack, "rae@example.org", "rae pw").await;

    let mut examiner = session().await;
    let examined = answer(&mut examiner, "e1", "EXAMINE INBOX").await;
    assert!(has(&examined, "* 2 RECENT"), "EXAMINE sees them: {examined:?}");
    let status = answer(&mut examiner, "e2", "STATUS INBOX (MESSAGES RECENT)").await;
    assert!(has(&status, "* STATUS INBOX (MESSAGES 2 RECENT 2)"), "{status:?}");

    let mut first = session().await;
    let selected = answer(&mut first, "a1", "SELECT INBOX").await;
    assert!(has(&selected, "* 2 RECENT"), "EXAMINE took none of them: {selected:?}");
    let fetched = answer(&mut first, "a2", "FETCH 1:* (FLAGS)").await;
    assert!(has(&fetched, "* 1 FETCH (FLAGS (\\Seen \\Recent))"), "{fetched:?}");
    assert!(has(&fetched, "* 2 FETCH (FLAGS (\\Recent))"), "{fetched:?}");
    assert!(has(&answer(&mut first, "a3", "SEARCH RECENT").await, "* SEARCH 1 2"));
    assert!(has(&answer(&mut first, "a4", "SEARCH NEW").await, "* SEARCH 2"));
    assert!(has(&answer(&mut first, "a5", "SEARCH OLD").await, "* SEARCH"));

    let mut second = session().await;
    let selected = answer(&mut second, "b1", "SELECT INBOX").await;
    assert!(has(&selected, "* 0 RECENT"), "the first session has them: {selected:?}");
    let fetched = answer(&mut second, "b2", "FETCH 2 (FLAGS)").await;
    assert!(has(&fetched, "* 2 FETCH (FLAGS ())"), "{fetched:?}");
    assert!(has(&answer(&mut second, "b3", "SEARCH OLD").await, "* SEARCH 1 2"));
    assert!(has(&answer(&mut second, "b4", "SEARCH RECENT").await, "* SEARCH"));
    let status = answer(&mut examiner, "e3", "STATUS INBOX (RECENT)").await;
    assert!(has(&status, "* STATUS INBOX (RECENT 0)"), "{status:?}");

    // A new message is recent to the session that catches up with it first, and to it alone.
    deliver(&stack, "rae@example.org", "third").await;
    stack.wait_for_inbox(rae, 3, PATIENCE).await;
    let synced = answer(&mut second, "b5", "NOOP").await;
    assert!(has(&synced, "* 3 EXISTS") && has(&synced, "* 1 RECENT"), "{synced:?}");
    assert!(has(&answer(&mut second, "b6", "FETCH 3 (FLAGS)").await, "* 3 FETCH (FLAGS (\\Recent))"));
    let synced = answer(&mut first, "a6", "NOOP").await;
    assert!(has(&synced, "* 3 EXISTS") && has(&synced, "* 2 RECENT"), "{synced:?}");
    assert!(has(&answer(&mut first, "a7", "SEARCH RECENT").await, "* SEARCH 1 2"));

    // IMAP4rev2 (RFC 9051) has no \Recent: no RECENT response, no flag, and it takes nothing from others.
    deliver(&stack, "rae@example.org", "fourth").await;
    stack.wait_for_inbox(rae, 4, PATIENCE).await;
    let mut modern = session().await;
    assert!(has(&answer(&mut modern, "r1", "ENABLE IMAP4rev2").await, "* ENABLED IMAP4rev2"));
    let selected = answer(&mut modern, "r2", "SELECT INBOX").await;
    assert!(!selected.iter().any(|l| l.contains("RECENT")), "{selected:?}");
    let fetched = answer(&mut modern, "r3", "FETCH 4 (FLAGS)").await;
    assert!(!fetched.iter().any(|l| l.contains("\\Recent")), "{fetched:?}");
    let mut last = session().await;
    let selected = answer(&mut last, "c1", "SELECT INBOX").await;
    assert!(has(&selected, "* 1 RECENT"), "the IMAP4rev2 session took nothing: {selected:?}");
    stack.stop().await;
}

/// RFC 5258 LIST-EXTENDED with RFC 5819 and RFC 6154: a list of patterns, every selection option
/// (SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE) and return option (CHILDREN, SUBSCRIBED, STATUS,
/// SPECIAL-USE), and CHILDINFO for the parents RECURSIVEMATCH brings in.
#[tokio::test(flavor = "multi_thread")]
async fn list_extended_takes_pattern_lists_and_every_option() {
    let stack = TestStack::start().await;
    stack.add_account("lex@example.org", "lex pw").await;
    let mut client = logged_in(&stack, "lex@example.org", "lex pw").await;
    for (tag, command) in [
        ("s1", "CREATE Work/Alpha"),
        ("s2", "CREATE Work/Beta"),
        ("s3", "SUBSCRIBE Work/Alpha"),
        ("s4", "SUBSCRIBE Lost/Child"),
        ("s5", "APPEND Work/Alpha {12+}\r\nSubject: a\r\n"),
    ] {
        let done = answer(&mut client, tag, command).await;
        assert!(done.last().unwrap().starts_with(&format!("{tag} OK")), "{done:?}");
    }

    let listed = answer(&mut client, "a1", "LIST \"\" (INBOX \"Work/%\")").await;
    assert_eq!(
        listed,
        [
            "* LIST (\\HasNoChildren) \"/\" INBOX",
            "* LIST (\\HasNoChildren) \"/\" Work/Alpha",
            "* LIST (\\HasNoChildren) \"/\" Work/Beta",
            "a1 OK LIST completed",
        ]
    );

    let recursive = answer(&mut client, "a2", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" % RETURN (CHILDREN)").await;
    assert!(has(&recursive, "* LIST (\\Subscribed \\HasNoChildren) \"/\" INBOX"), "{recursive:?}");
    assert!(has(&recursive, "* LIST (\\HasChildren) \"/\" Work (\"CHILDINFO\" (\"SUBSCRIBED\"))"), "{recursive:?}");
    assert!(
        has(&recursive, "* LIST (\\NonExistent \\HasNoChildren) \"/\" Lost (\"CHILDINFO\" (\"SUBSCRIBED\"))"),
        "{recursive:?}"
    );
    assert!(!recursive.iter().any(|l| l.contains("Work/Alpha")), "% stops at Work: {recursive:?}");
    let plain = answer(&mut client, "a3", "LIST (SUBSCRIBED) \"\" %").await;
    assert!(!plain.iter().any(|l| l.contains("CHILDINFO") || l.contains(" Work")), "{plain:?}");
    let alone = answer(&mut client, "a4", "LIST (RECURSIVEMATCH) \"\" %").await;
    assert!(alone.last().unwrap().starts_with("a4 BAD"), "RFC 5258 §3: {alone:?}");

    let special = answer(&mut client, "a5", "LIST (SPECIAL-USE) \"\" * RETURN (SPECIAL-USE)").await;
    assert!(has(&special, "* LIST (\\HasNoChildren \\Sent) \"/\" Sent"), "{special:?}");
    assert!(!special.iter().any(|l| l.contains("INBOX") || l.contains("Work")), "{special:?}");

    let remote = answer(&mut client, "a6", "LIST (REMOTE) \"\" (Work Work/Alpha) RETURN (SUBSCRIBED CHILDREN)").await;
    assert_eq!(
        remote,
        [
            "* LIST (\\HasChildren) \"/\" Work",
            "* LIST (\\Subscribed \\HasNoChildren) \"/\" Work/Alpha",
            "a6 OK LIST completed",
        ]
    );
    let status = answer(&mut client, "a7", "LIST \"\" (Work/Alpha Work/Beta) RETURN (STATUS (MESSAGES))").await;
    assert_eq!(
        status,
        [
            "* LIST (\\HasNoChildren) \"/\" Work/Alpha",
            "* STATUS Work/Alpha (MESSAGES 1)",
            "* LIST (\\HasNoChildren) \"/\" Work/Beta",
            "* STATUS Work/Beta (MESSAGES 0)",
            "a7 OK LIST completed",
        ]
    );
    stack.stop().await;
}

/// One session's view of the selected INBOX while others expunge: the UIDs by message number, kept as the
/// server's untagged EXPUNGE responses say.
struct View {
    client: mailbus_tests::raw::RawClient,
    uids: Vec<u32>,
}

impl View {
    /// Runs `command` and applies the EXPUNGEs it brought; returns its SEARCH result, if any, less what an
    /// EXPUNGE after it removed (a message may go between the search and the command's end).
    async fn run(&mut self, tag: &str, command: &str) -> Vec<u32> {
        let lines = answer(&mut self.client, tag, command).await;
        assert!(lines.last().unwrap().starts_with(&format!("{tag} OK")), "{command}: {lines:?}");
        let mut found = Vec::new();
        for line in &lines {
            if let Some(number) = line.strip_prefix("* ").and_then(|l| l.strip_suffix(" EXPUNGE")) {
                let number: usize = number.parse().unwrap();
                assert!(number >= 1 && number <= self.uids.len(), "{line} of {} messages", self.uids.len());
                let gone = self.uids.remove(number - 1);
                found.retain(|&u| u != gone);
            } else if let Some(list) = line.strip_prefix("* SEARCH") {
                found = list.split_whitespace().map(|u| u.parse().unwrap()).collect();
            }
        }
        found
    }
}

/// RFC 3501 §7.4.1 under concurrency, as a compliance run with ten clients on one mailbox found it: once a
/// session's EXPUNGE is answered, every other session's next command that may carry EXPUNGE reports it,
/// though the event announcing it may still be on its way. Ten sessions each expunge their own messages
/// one by one, at once, and after each check that their view (UIDs by number, kept from EXPUNGE responses
/// alone) holds nothing another session's answered EXPUNGE removed before the check began, and is what the
/// store holds.
#[tokio::test(flavor = "multi_thread")]
async fn every_session_reports_expunges_other_sessions_completed() {
    const SESSIONS: u32 = 10;
    const EACH: u32 = 5;
    let stack = TestStack::start().await;
    let id = stack.add_account("exa@example.org", "exa pw").await;
    for n in 1..=SESSIONS * EACH {
        let body = format!("Subject: e{n}\r\n\r\nx\r\n");
        crate::store::append(&stack, id, "INBOX", &[], None, body.as_bytes()).await.unwrap();
    }
    let answered = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::<u32>::new()));
    let mut views = Vec::new();
    for _ in 0..SESSIONS {
        let client = selected_inbox(&stack, "exa@example.org", "exa pw").await;
        let mut view = View { client, uids: Vec::new() };
        view.uids = view.run("v", "UID SEARCH ALL").await;
        assert_eq!(view.uids.len() as u32, SESSIONS * EACH);
        views.push(view);
    }
    let sessions = views.into_iter().enumerate().map(|(session, mut view)| {
        let answered = answered.clone();
        async move {
            // Session s owns the UIDs s+1, s+1+SESSIONS, ...: the expunges interleave.
            for uid in (0..EACH).map(|k| session as u32 + 1 + k * SESSIONS) {
                view.run("s", &format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)")).await;
                view.run("x", &format!("UID EXPUNGE {uid}")).await;
                answered.lock().unwrap().insert(uid);
                let before: Vec<u32> = answered.lock().unwrap().iter().copied().collect();
                let found = view.run("c", "UID SEARCH ALL").await;
                let missed: Vec<&u32> = before.iter().filter(|u| view.uids.contains(u)).collect();
                assert!(missed.is_empty(), "session {session} was not told of the expunge of {missed:?}");
                assert_eq!(view.uids, found, "session {session}'s numbering against the store");
            }
        }
    });
    let all = futures::future::join_all(sessions);
    tokio::time::timeout(PATIENCE, all).await.expect("the sessions finished in time");
    stack.stop().await;
}

/// The same, made certain: with nats-server stopped (SIGSTOP), one session's EXPUNGE is answered and the
/// other's next UID command must still report it, though no event can reach it until the server goes on.
#[tokio::test(flavor = "multi_thread")]
async fn an_expunge_is_reported_before_its_event_arrives() {
    let nats = mailbus_tests::infra::dedicated_nats("expunge-event");
    let stack = TestStack::builder().nats(&nats.url()).start().await;
    let id = stack.add_account("eve2@example.org", "eve pw").await;
    for n in 1..=2 {
        let body = format!("Subject: s{n}\r\n\r\nx\r\n");
        crate::store::append(&stack, id, "INBOX", &[], None, body.as_bytes()).await.unwrap();
    }
    let session = async || {
        let client = selected_inbox(&stack, "eve2@example.org", "eve pw").await;
        let mut view = View { client, uids: Vec::new() };
        view.uids = view.run("v", "UID SEARCH ALL").await;
        view
    };
    let (mut expunger, mut other) = (session().await, session().await);
    nats.pause();
    expunger.run("s", "UID STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    expunger.run("x", "UID EXPUNGE 1").await;
    let found = other.run("c", "UID SEARCH ALL").await;
    nats.resume();
    assert_eq!(other.uids, [2], "the other session was told of the expunge");
    assert_eq!(found, [2]);
    stack.stop().await;
}

/// RFC 5256 SORT and RFC 5957 SORT=DISPLAY: each key orders by what the RFC names (the base subject, the
/// Date field or else the internal date, the first address's local part or display name), REVERSE turns
/// one key round, later keys break ties, and what stays equal keeps mailbox order.
#[tokio::test(flavor = "multi_thread")]
async fn sort_orders_by_every_key_and_display_name() {
    let stack = TestStack::start().await;
    let id = stack.add_account("sid@example.org", "pw").await;
    let mails = [
        (
            "From: \"Adam Zed\" <zed@example.net>\r\nTo: bob@example.org\r\nCc: carl@example.org\r\n\
             Subject: Re: beta\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n",
            500,
        ),
        (
            "From: alice@example.net\r\nTo: \"Xavier\" <xav@example.org>\r\nSubject: alpha\r\n\
             Date: Wed, 03 Jan 2024 10:00:00 +0000\r\n",
            2000,
        ),
        ("From: \"bob\" <Bob@example.net>\r\nTo: \"zz\" <ann@example.org>\r\nSubject: Fwd: Gamma\r\n", 10),
    ];
    for (n, (header, size)) in mails.iter().enumerate() {
        let body = format!("{header}\r\n{}\r\n", "x".repeat(*size));
        // Internal dates in November 2023: the one without a Date field sorts by it, before the others.
        let date = 1_700_000_000 + 1000 * n as i64;
        crate::store::append(&stack, id, "INBOX", &[], Some(date), body.as_bytes()).await.unwrap();
    }
    let steps = json!([
        ["raw", "a1 LOGIN sid@example.org pw"],
        ["raw", "a2 SELECT INBOX"],
        ["raw", "a3 SORT (SUBJECT) UTF-8 ALL"],
        ["raw", "a4 SORT (DATE) UTF-8 ALL"],
        ["raw", "a5 SORT (REVERSE ARRIVAL) US-ASCII ALL"],
        ["raw", "a6 SORT (FROM) UTF-8 ALL"],
        ["raw", "a7 SORT (DISPLAYFROM) UTF-8 ALL"],
        ["raw", "a8 SORT (TO) UTF-8 ALL"],
        ["raw", "a9 SORT (DISPLAYTO) UTF-8 ALL"],
        ["raw", "b1 SORT (REVERSE SIZE) UTF-8 ALL"],
        ["raw", "b2 SORT (CC SUBJECT) UTF-8 ALL"],
        ["raw", "b3 UID SORT (CC) UTF-8 NOT SUBJECT alpha"],
        ["raw", "b4 SORT (SUBJECT) ISO-8859-1 ALL"],
        ["raw", "b5 SORT (COLOUR) UTF-8 ALL"],
        ["raw", "b6 CAPABILITY"],
        ["raw", "b7 SORT RETURN (MIN MAX COUNT) (SUBJECT) UTF-8 ALL"],
        ["raw", "b8 UID SORT RETURN () (REVERSE ARRIVAL) UTF-8 ALL"],
        ["raw", "b9 SORT RETURN (SAVE) (SUBJECT) UTF-8 ALL"],
        ["raw", "c1 LOGOUT"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let lines = |i: usize| -> Vec<String> { reply(&results[i]).1.lines().map(str::to_owned).collect() };
    let sorted = |i: usize| -> String {
        let lines = lines(i);
        assert!(lines.last().unwrap().contains(" OK SORT completed"), "{lines:?}");
        lines[0].clone()
    };
    assert_eq!(sorted(3), "* SORT 2 1 3", "alpha, beta, gamma");
    assert_eq!(sorted(4), "* SORT 3 1 2", "no Date: its internal date, in 2023");
    assert_eq!(sorted(5), "* SORT 3 2 1");
    assert_eq!(sorted(6), "* SORT 2 3 1", "alice, Bob, zed");
    assert_eq!(sorted(7), "* SORT 1 2 3", "Adam Zed, alice@example.net, bob");
    assert_eq!(sorted(8), "* SORT 3 1 2", "ann, bob, xav");
    assert_eq!(sorted(9), "* SORT 1 2 3", "bob@example.org, Xavier, zz");
    assert_eq!(sorted(10), "* SORT 2 1 3");
    assert_eq!(sorted(11), "* SORT 2 3 1", "no Cc first, by subject; then carl");
    assert_eq!(sorted(12), "* SORT 3 1");
    assert!(lines(13)[0].starts_with("b4 NO [BADCHARSET"), "{:?}", lines(13));
    assert!(lines(14)[0].starts_with("b5 BAD"), "{:?}", lines(14));
    let caps = &lines(15)[0];
    assert!(caps.contains(" SORT ") && caps.contains(" SORT=DISPLAY") && caps.contains(" ESORT"), "{caps}");
    // RFC 5267 ESORT: MIN and MAX are the first and last in sort order; ALL keeps the order.
    assert_eq!(lines(16), ["* ESEARCH (TAG \"b7\") MIN 2 MAX 3 COUNT 3", "b7 OK SORT completed"]);
    assert_eq!(lines(17), ["* ESEARCH (TAG \"b8\") UID ALL 3,2,1", "b8 OK SORT completed"]);
    // RFC 5182 §2.4: ESORT's SAVE keeps the result for `$` and, alone, returns nothing.
    assert_eq!(lines(18), ["b9 OK SORT completed, result saved"]);
    stack.stop().await;
}

/// RFC 5032 WITHIN: OLDER and YOUNGER count seconds back from now against the internal date, alone, in
/// OR and NOT, for SEARCH and SORT alike.
#[tokio::test(flavor = "multi_thread")]
async fn within_selects_by_internal_date_age() {
    let stack = TestStack::start().await;
    let id = stack.add_account("wit@example.org", "pw").await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // Two days old, then an hour old, then just now.
    for (n, age) in [2 * 86_400, 3_600, 0].into_iter().enumerate() {
        let body = format!("Subject: w{n}\r\n\r\nx\r\n");
        crate::store::append(&stack, id, "INBOX", &[], Some(now - age), body.as_bytes()).await.unwrap();
    }
    let steps = json!([
        ["raw", "a1 LOGIN wit@example.org pw"],
        ["raw", "a2 SELECT INBOX"],
        ["raw", "a3 SEARCH OLDER 86400"],
        ["raw", "a4 SEARCH YOUNGER 7200"],
        ["raw", "a5 UID SEARCH OLDER 600 YOUNGER 86400"],
        ["raw", "a6 SEARCH OR YOUNGER 600 OLDER 86400"],
        ["raw", "a7 SORT (REVERSE ARRIVAL) UTF-8 NOT OLDER 86400"],
        ["raw", "a8 SEARCH OLDER 0"],
        ["raw", "a9 CAPABILITY"],
        ["raw", "b1 LOGOUT"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let lines = |i: usize| -> Vec<String> { reply(&results[i]).1.lines().map(str::to_owned).collect() };
    assert_eq!(lines(3)[0], "* SEARCH 1");
    assert_eq!(lines(4)[0], "* SEARCH 2 3");
    assert_eq!(lines(5)[0], "* SEARCH 2");
    assert_eq!(lines(6)[0], "* SEARCH 1 3");
    assert_eq!(lines(7)[0], "* SORT 3 2");
    // The interval is a nz-number (RFC 5032 §3).
    assert!(lines(8)[0].starts_with("a8 BAD"), "{:?}", lines(8));
    assert!(lines(9)[0].contains(" WITHIN"), "{:?}", lines(9));
    stack.stop().await;
}

/// RFC 8437 UNAUTHENTICATE: the session goes back to the not-authenticated state without expunging the
/// selected mailbox, forgets what was ENABLE-d, and can log in again (as another user or the same).
#[tokio::test(flavor = "multi_thread")]
async fn unauthenticate_returns_to_the_not_authenticated_state() {
    let stack = TestStack::start().await;
    let id = stack.add_account("una@example.org", "pw").await;
    stack.add_account("other@example.org", "pw2").await;
    crate::store::append(&stack, id, "INBOX", &[], None, b"Subject: u\r\n\r\nx\r\n").await.unwrap();
    let steps = json!([
        ["raw", "a1 LOGIN una@example.org pw"],
        ["raw", "a2 ENABLE CONDSTORE"],
        ["raw", "a3 SELECT INBOX"],
        ["raw", "a4 STORE 1 +FLAGS.SILENT (\\Deleted)"],
        ["raw", "a5 CAPABILITY"],
        ["raw", "a0 FETCH 1 (FLAGS)"],
        ["raw", "a6 UNAUTHENTICATE"],
        ["raw", "a7 SELECT INBOX"],
        ["raw", "a8 CAPABILITY"],
        ["raw", "a9 UNAUTHENTICATE"],
        ["raw", "b1 LOGIN una@example.org pw"],
        ["raw", "b2 SELECT INBOX"],
        ["raw", "b0 FETCH 1 (FLAGS)"],
        ["raw", "b3 UNAUTHENTICATE"],
        ["raw", "b4 LOGIN other@example.org pw2"],
        ["raw", "b5 LOGOUT"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let lines = |i: usize| -> Vec<String> { reply(&results[i]).1.lines().map(str::to_owned).collect() };
    assert!(lines(5)[0].contains(" UNAUTHENTICATE"), "{:?}", lines(5));
    // With CONDSTORE enabled, FETCH FLAGS brings the MODSEQ (RFC 7162 §3.1.4.1).
    assert!(lines(6)[0].contains("MODSEQ"), "{:?}", lines(6));
    assert_eq!(lines(7), ["a6 OK UNAUTHENTICATE completed"]);
    assert!(lines(8)[0].starts_with("a7 BAD") || lines(8)[0].starts_with("a7 NO"), "{:?}", lines(8));
    let caps = &lines(9)[0];
    assert!(!caps.contains("UNAUTHENTICATE") && caps.contains("AUTH=PLAIN"), "{caps}");
    assert!(lines(10)[0].starts_with("a9 BAD"), "{:?}", lines(10));
    assert!(lines(11).last().unwrap().starts_with("b1 OK"), "{:?}", lines(11));
    // Not expunged, still \Deleted; CONDSTORE went with the first login.
    let select = lines(12);
    assert!(select.iter().any(|l| l == "* 1 EXISTS"), "{select:?}");
    assert!(select.last().unwrap().starts_with("b2 OK"), "{select:?}");
    assert_eq!(lines(13)[0], "* 1 FETCH (FLAGS (\\Deleted))");
    assert!(lines(15).last().unwrap().starts_with("b4 OK"), "{:?}", lines(15));
    stack.stop().await;
}

/// RFC 8970 PREVIEW: the stored preview (JMAP's Email preview) in FETCH, quoted when it is ASCII and a
/// literal when it is not; LAZY changes nothing, an unknown modifier is BAD.
#[tokio::test(flavor = "multi_thread")]
async fn fetch_preview_gives_the_stored_preview() {
    let stack = TestStack::start().await;
    let id = stack.add_account("pre@example.org", "pw").await;
    let bodies = [
        "Subject: a\r\n\r\nHello   \"preview\"\r\nworld\r\n".as_bytes(),
        "Subject: b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\u{fc}\u{df}e aus K\u{f6}ln\r\n"
            .as_bytes(),
    ];
    for body in bodies {
        crate::store::append(&stack, id, "INBOX", &[], None, body).await.unwrap();
    }
    let steps = json!([
        ["raw", "a1 LOGIN pre@example.org pw"],
        ["raw", "a2 SELECT INBOX"],
        ["raw", "a3 FETCH 1 (FLAGS PREVIEW)"],
        ["raw", "a4 UID FETCH 2 PREVIEW (LAZY)"],
        ["raw", "a5 FETCH 1 (PREVIEW (FUZZY))"],
        ["raw", "a6 CAPABILITY"],
        ["raw", "a7 LOGOUT"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let lines = |i: usize| -> Vec<String> { reply(&results[i]).1.lines().map(str::to_owned).collect() };
    assert_eq!(lines(3)[0], "* 1 FETCH (FLAGS (\\Recent) PREVIEW \"Hello \\\"preview\\\" world\")");
    // The UTF-8 octets in a literal (the session transcript reads each octet as one character).
    let text = "Gr\u{fc}\u{df}e aus K\u{f6}ln";
    let octets: String = text.bytes().map(char::from).collect();
    assert_eq!(lines(4)[..2], [format!("* 2 FETCH (UID 2 PREVIEW {{{}}}", text.len()), format!("{octets})")]);
    assert!(lines(4).last().unwrap().starts_with("a4 OK"), "{:?}", lines(4));
    assert!(lines(5)[0].starts_with("a5 BAD"), "{:?}", lines(5));
    assert!(lines(6)[0].contains(" PREVIEW"), "{:?}", lines(6));
    stack.stop().await;
}

/// RFC 6154 §3 CREATE-SPECIAL-USE: CREATE with a USE attribute makes a mailbox LIST shows with it; an
/// attribute another mailbox has, an unknown one, or more than one is NO [USEATTR] and creates nothing.
#[tokio::test(flavor = "multi_thread")]
async fn create_special_use_gives_the_new_mailbox_its_attribute() {
    let stack = TestStack::start().await;
    stack.add_account("csu@example.org", "pw").await;
    let steps = json!([
        ["raw", "a1 LOGIN csu@example.org pw"],
        ["raw", "a2 CREATE Everything (USE (\\All))"],
        ["raw", "a3 LIST \"\" Everything RETURN (SPECIAL-USE)"],
        ["raw", "a4 CREATE Drafts2 (USE (\\Drafts))"],
        ["raw", "a5 CREATE Odd (USE (\\Important))"],
        ["raw", "a6 CREATE Two (USE (\\Flagged \\Junk))"],
        ["raw", "a7 LIST \"\" (Drafts2 Odd Two)"],
        ["raw", "a8 CREATE Plain (USE ())"],
        ["raw", "a9 CAPABILITY"],
        ["raw", "b1 LOGOUT"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let lines = |i: usize| -> Vec<String> { reply(&results[i]).1.lines().map(str::to_owned).collect() };
    assert!(lines(2).last().unwrap().starts_with("a2 OK"), "{:?}", lines(2));
    assert_eq!(lines(3)[0], "* LIST (\\HasNoChildren \\All) \"/\" Everything");
    // Every account has its Drafts: the attribute is taken.
    for (i, tag) in [(4, "a4"), (5, "a5"), (6, "a6")] {
        assert!(lines(i)[0].starts_with(&format!("{tag} NO [USEATTR]")), "{:?}", lines(i));
    }
    assert_eq!(lines(7), ["a7 OK LIST completed"], "nothing was created");
    assert!(lines(8)[0].starts_with("a8 OK"), "{:?}", lines(8));
    assert!(lines(9)[0].contains(" CREATE-SPECIAL-USE"), "{:?}", lines(9));
    stack.stop().await;
}

/// A STORE that changes nothing must not take another session's change for its own: here the other
/// session flagged messages 1 and 2 at once, and this one's no-op STORE on 1 finds 1 with that MODSEQ.
/// Message 2's new flags must still be reported (with NATS stopped, from the MODSEQ the STORE found).
#[tokio::test(flavor = "multi_thread")]
async fn a_no_op_store_does_not_swallow_another_sessions_change() {
    let nats = mailbus_tests::infra::dedicated_nats("noop-store");
    let stack = TestStack::builder().nats(&nats.url()).start().await;
    let id = stack.add_account("nos@example.org", "pw").await;
    for n in 1..=2 {
        let body = format!("Subject: n{n}\r\n\r\nx\r\n");
        crate::store::append(&stack, id, "INBOX", &[], None, body.as_bytes()).await.unwrap();
    }
    let mut flagger = selected_inbox(&stack, "nos@example.org", "pw").await;
    let mut other = selected_inbox(&stack, "nos@example.org", "pw").await;
    nats.pause();
    let flagged = answer(&mut flagger, "f", "STORE 1:2 +FLAGS.SILENT (\\Flagged)").await;
    assert!(flagged.last().unwrap().starts_with("f OK"), "{flagged:?}");
    let stored = answer(&mut other, "s", "STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    nats.resume();
    // Not NOOP, which looks for changes whatever the session believes.
    let noop = answer(&mut other, "n", "UID SEARCH ALL").await;
    let told = stored.iter().chain(&noop).any(|l| l.starts_with("* 2 FETCH (FLAGS (") && l.contains("\\Flagged"));
    assert!(told, "message 2's \\Flagged was reported: {stored:?} {noop:?}");
    stack.stop().await;
}
