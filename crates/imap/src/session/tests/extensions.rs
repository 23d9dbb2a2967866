//! ENABLE (RFC 5161) and what it turns on: CONDSTORE and QRESYNC (RFC 7162), IMAP4rev2 (RFC 9051);
//! ESEARCH (RFC 4731), LIST-EXTENDED (RFC 5258) with SPECIAL-USE (RFC 6154), NAMESPACE, ID.

use super::*;

#[test]
fn enable_condstore_adds_modseq_to_fetch_and_store() {
    let mut client = Client::new();
    fill(&client.store, 2);
    client.login();
    assert_eq!(client.send("a ENABLE CONDSTORE\r\n"), "* ENABLED CONDSTORE\r\na OK ENABLE completed\r\n");
    client.send("s SELECT INBOX\r\n");
    assert_eq!(
        client.send("f FETCH 1 (FLAGS)\r\n"),
        "* 1 FETCH (FLAGS (\\Recent) MODSEQ (2))\r\nf OK FETCH completed\r\n"
    );
    assert_eq!(
        client.send("t STORE 1 +FLAGS (\\Seen)\r\n"),
        "* 1 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (4))\r\nt OK STORE completed\r\n"
    );
    // RFC 7162 §3.1.3: a message changed since UNCHANGEDSINCE is left alone and named in MODIFIED.
    assert_eq!(
        client.send("u STORE 1:2 (UNCHANGEDSINCE 3) +FLAGS (\\Flagged)\r\n"),
        "* 2 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (5))\r\nu OK [MODIFIED 1] conditional STORE failed for some messages\r\n"
    );
    assert_eq!(client.send("q SEARCH MODSEQ 5\r\n"), "* SEARCH 2 (MODSEQ 5)\r\nq OK SEARCH completed\r\n");
}

#[test]
fn enable_is_for_the_authenticated_state() {
    let mut client = Client::new();
    client.select_inbox();
    assert_eq!(client.send("a ENABLE CONDSTORE\r\n"), "a BAD ENABLE is for the authenticated state (RFC 5161)\r\n");
}

#[test]
fn qresync_reports_what_the_cache_missed_and_vanished_instead_of_expunge() {
    let mut client = Client::new();
    fill(&client.store, 3);
    client.login();
    assert_eq!(client.send("a ENABLE QRESYNC\r\n"), "* ENABLED QRESYNC\r\na OK ENABLE completed\r\n");
    client.store.expunge_elsewhere("INBOX", 1);
    // The client's cache is at MODSEQ 4 (three deliveries after 1): the expunge at 5 is news to it.
    let reply = client.send("s SELECT INBOX (QRESYNC (1001 4))\r\n");
    assert!(reply.contains("* VANISHED (EARLIER) 1\r\n"), "{reply}");
    assert!(reply.ends_with("s OK [READ-WRITE] SELECT completed\r\n"), "{reply}");
    client.send("t STORE 1 +FLAGS.SILENT (\\Deleted)\r\n");
    assert_eq!(client.send("e EXPUNGE\r\n"), "* VANISHED 2\r\ne OK EXPUNGE completed\r\n");
}

#[test]
fn qresync_select_needs_enable_first() {
    let mut client = Client::new();
    client.login();
    assert_eq!(client.send("s SELECT INBOX (QRESYNC (1001 1))\r\n"), "s BAD ENABLE QRESYNC first\r\n");
}

#[test]
fn imap4rev2_answers_search_with_esearch() {
    let mut client = Client::new();
    fill(&client.store, 3);
    client.login();
    client.send("a ENABLE IMAP4rev2\r\n");
    client.send("s SELECT INBOX\r\n");
    assert_eq!(client.send("q SEARCH ALL\r\n"), "* ESEARCH (TAG \"q\") ALL 1:3\r\nq OK SEARCH completed\r\n");
}

#[test]
fn esearch_returns_what_was_asked() {
    let mut client = Client::new();
    fill(&client.store, 3);
    client.select_inbox();
    assert_eq!(
        client.send("q UID SEARCH RETURN (MIN MAX COUNT) ALL\r\n"),
        "* ESEARCH (TAG \"q\") UID MIN 1 MAX 3 COUNT 3\r\nq OK SEARCH completed\r\n"
    );
}

#[test]
fn list_extended_selects_special_use_and_returns_subscriptions() {
    let mut client = Client::new();
    client.store.create("Trash", "\\Trash");
    client.store.create("Work", "");
    client.login();
    assert_eq!(client.send("a SUBSCRIBE Work\r\n"), "a OK SUBSCRIBE completed\r\n");
    assert_eq!(
        client.send("b LIST (SPECIAL-USE) \"\" \"*\"\r\n"),
        "* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\nb OK LIST completed\r\n"
    );
    assert_eq!(
        client.send("c LIST \"\" \"*\" RETURN (SUBSCRIBED)\r\n"),
        "* LIST (\\HasNoChildren) \"/\" INBOX\r\n* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n\
         * LIST (\\Subscribed \\HasNoChildren) \"/\" Work\r\nc OK LIST completed\r\n"
    );
    assert_eq!(client.send("d LIST \"\" \"\"\r\n"), "* LIST (\\Noselect) \"/\" \"\"\r\nd OK LIST completed\r\n");
}

#[test]
fn namespace_and_id() {
    let mut client = Client::new();
    client.login();
    assert_eq!(client.send("n NAMESPACE\r\n"), "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\nn OK NAMESPACE completed\r\n");
    let reply = client.send("i ID NIL\r\n");
    assert!(
        reply.starts_with("* ID (\"name\" \"mailbus\" \"version\" ") && reply.ends_with("i OK ID completed\r\n"),
        "{reply}"
    );
}

#[test]
fn create_special_use_is_useattr_when_the_store_has_the_attribute_on_another_mailbox() {
    // RFC 6154 §5.2: the store refuses the second \Drafts (typed), the session answers USEATTR.
    let mut client = Client::new();
    client.login();
    assert_eq!(client.send("a CREATE Drafts (USE (\\Drafts))\r\n"), "a OK [MAILBOXID (m2)] CREATE completed\r\n");
    assert_eq!(client.send("b CREATE Drafts2 (USE (\\Drafts))\r\n"), "b NO [USEATTR] another mailbox is \\Drafts\r\n");
    assert_eq!(client.send("c LIST \"\" Drafts2\r\n"), "c OK LIST completed\r\n");
}
