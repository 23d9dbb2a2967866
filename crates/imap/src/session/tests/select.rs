//! RFC 9051 §6.3.2–§6.3.3 SELECT and EXAMINE (with RFC 3501 §2.3.2's `\Recent` and RECENT, RFC 7162
//! §3.1.2.1's HIGHESTMODSEQ and RFC 8474's MAILBOXID), CLOSE and UNSELECT.

use super::*;

const FLAGS: &str = "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)";

#[test]
fn select_reports_the_mailbox_and_claims_its_recent_messages() {
    let mut client = Client::new();
    client.store.deliver("INBOX", b"Subject: a\r\n\r\na\r\n", &["\\Seen"]);
    client.store.deliver("INBOX", b"Subject: b\r\n\r\nb\r\n", &[]);
    assert_eq!(
        lines(&client.select_inbox()),
        [
            FLAGS,
            "* 2 EXISTS",
            "* 2 RECENT",
            "* OK [UNSEEN 2] first unseen",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] flags permitted",
            "* OK [UIDNEXT 3] predicted next UID",
            "* OK [UIDVALIDITY 1001] UIDs valid",
            "* OK [HIGHESTMODSEQ 3] highest",
            "* OK [MAILBOXID (m1)] mailbox id",
            "s1 OK [READ-WRITE] SELECT completed",
        ]
    );
    // Another session finds none recent (RFC 3501 §2.3.2: one session is told of each), and EXAMINE
    // is read-only, with no permanent flags.
    let mut other = client.another();
    assert_eq!(
        lines(&other.send("e1 EXAMINE INBOX\r\n")),
        [
            FLAGS,
            "* 2 EXISTS",
            "* 0 RECENT",
            "* OK [UNSEEN 2] first unseen",
            "* OK [PERMANENTFLAGS ()] flags permitted",
            "* OK [UIDNEXT 3] predicted next UID",
            "* OK [UIDVALIDITY 1001] UIDs valid",
            "* OK [HIGHESTMODSEQ 3] highest",
            "* OK [MAILBOXID (m1)] mailbox id",
            "e1 OK [READ-ONLY] EXAMINE completed",
        ]
    );
    assert_eq!(other.send("e2 STORE 1 +FLAGS (\\Flagged)\r\n"), "e2 NO [READ-ONLY] the mailbox is read-only\r\n");
}

#[test]
fn an_imap4rev2_session_has_no_recent() {
    let mut client = Client::new();
    fill(&client.store, 1);
    client.login();
    assert_eq!(client.send("a ENABLE IMAP4rev2\r\n"), "* ENABLED IMAP4rev2\r\na OK ENABLE completed\r\n");
    let reply = client.send("b SELECT INBOX\r\n");
    assert!(!reply.contains("RECENT"), "{reply}");
    assert!(reply.contains("* 1 EXISTS\r\n") && reply.ends_with("b OK [READ-WRITE] SELECT completed\r\n"), "{reply}");
    assert_eq!(client.send("c FETCH 1 FLAGS\r\n"), "* 1 FETCH (FLAGS ())\r\nc OK FETCH completed\r\n");
}

#[test]
fn close_expunges_deleted_messages_silently_and_unselect_does_not() {
    let mut client = Client::new();
    fill(&client.store, 2);
    client.select_inbox();
    client.send("a STORE 1:2 +FLAGS.SILENT (\\Deleted)\r\n");
    assert_eq!(client.send("b UNSELECT\r\n"), "b OK UNSELECT completed\r\n");
    assert_eq!(client.send("c FETCH 1 FLAGS\r\n"), "c BAD select a mailbox first\r\n");
    assert!(client.send("d SELECT INBOX\r\n").contains("* 2 EXISTS\r\n"));
    assert_eq!(client.send("e CLOSE\r\n"), "e OK CLOSE completed\r\n");
    assert!(client.send("f SELECT INBOX\r\n").contains("* 0 EXISTS\r\n"));
}
