//! RFC 9051 §6.4: FETCH, STORE, SEARCH, EXPUNGE (and RFC 2180 §4.1's pending expunges, which renumber
//! messages only when EXPUNGE may be sent), COPY and RFC 6851 MOVE with RFC 4315 COPYUID, APPEND.

use super::*;

#[test]
fn fetch_store_and_search() {
    let mut client = Client::new();
    client.store.deliver("INBOX", b"Subject: 1\r\n\r\nbody 1\r\n", &["\\Seen"]);
    client.store.deliver("INBOX", b"Subject: 2\r\n\r\nbody 2\r\n", &[]);
    client.select_inbox();
    assert_eq!(
        client.send("f1 FETCH 1:* (UID FLAGS RFC822.SIZE)\r\n"),
        "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) RFC822.SIZE 22)\r\n\
         * 2 FETCH (UID 2 FLAGS (\\Recent) RFC822.SIZE 22)\r\nf1 OK FETCH completed\r\n"
    );
    assert_eq!(client.send("q1 SEARCH UNSEEN\r\n"), "* SEARCH 2\r\nq1 OK SEARCH completed\r\n");
    // BODY[] sets \Seen (RFC 9051 §6.4.5), and the new flags come with it.
    assert_eq!(
        client.send("f2 FETCH 2 BODY[]\r\n"),
        "* 2 FETCH (BODY[] {22}\r\nSubject: 2\r\n\r\nbody 2\r\n FLAGS (\\Seen \\Recent))\r\nf2 OK FETCH completed\r\n"
    );
    // The store's MODSEQ moved with that \Seen, which the session does not count as its own change: the
    // next command repeats the flags (harmless, RFC 9051 §7.5.2), as the mailbox role's event would.
    assert_eq!(
        client.send("q2 SEARCH UNSEEN\r\n"),
        "* SEARCH\r\n* 2 FETCH (FLAGS (\\Seen \\Recent) UID 2)\r\nq2 OK SEARCH completed\r\n"
    );
    assert_eq!(
        client.send("t1 STORE 1 +FLAGS ($Work)\r\n"),
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n\
         * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] flags permitted\r\n\
         * 1 FETCH (FLAGS (\\Seen $Work \\Recent))\r\nt1 OK STORE completed\r\n"
    );
    assert_eq!(client.send("t2 UID STORE 2 -FLAGS.SILENT (\\Seen)\r\n"), "t2 OK STORE completed\r\n");
    assert_eq!(client.send("q3 UID SEARCH KEYWORD $Work\r\n"), "* SEARCH 1\r\nq3 OK SEARCH completed\r\n");
    assert_eq!(client.send("f3 FETCH 3 FLAGS\r\n"), "f3 BAD no such message\r\n");
}

#[test]
fn expunge_numbers_each_message_after_the_ones_before() {
    let mut client = Client::new();
    fill(&client.store, 4);
    client.select_inbox();
    client.send("a STORE 2:3 +FLAGS.SILENT (\\Deleted)\r\n");
    // RFC 9051 §7.5.1: the second EXPUNGE names the message that was 3 as 2.
    assert_eq!(client.send("b EXPUNGE\r\n"), "* 2 EXPUNGE\r\n* 2 EXPUNGE\r\nb OK EXPUNGE completed\r\n");
    assert_eq!(client.send("c FETCH 2 UID\r\n"), "* 2 FETCH (UID 4)\r\nc OK FETCH completed\r\n");
}

#[test]
fn an_expunge_elsewhere_waits_for_a_command_that_may_announce_it() {
    let mut client = Client::new();
    fill(&client.store, 3);
    client.select_inbox();
    let event = client.store.expunge_elsewhere("INBOX", 2);
    assert_eq!(client.event(&event), "");
    // RFC 9051 §7.4.1: no EXPUNGE while answering FETCH by number; message 3 is still 3.
    assert_eq!(client.send("a FETCH 3 UID\r\n"), "* 3 FETCH (UID 3)\r\na OK FETCH completed\r\n");
    // RFC 2180 §4.1.1: the gone message, fetched by number, is left out and the command says so.
    assert_eq!(client.send("b FETCH 2 UID\r\n"), "b OK [EXPUNGEISSUED] some of the messages were expunged\r\n");
    assert_eq!(client.send("c NOOP\r\n"), "* 2 EXPUNGE\r\nc OK NOOP completed\r\n");
    assert_eq!(client.send("d FETCH 2 UID\r\n"), "* 2 FETCH (UID 3)\r\nd OK FETCH completed\r\n");
}

#[test]
fn move_answers_copyuid_before_the_expunges() {
    let mut client = Client::new();
    fill(&client.store, 3);
    client.store.create("Trash", "\\Trash");
    client.select_inbox();
    assert_eq!(
        client.send("m UID MOVE 2:3 Trash\r\n"),
        "* OK [COPYUID 1002 2:3 1:2] moved\r\n* 2 EXPUNGE\r\n* 2 EXPUNGE\r\nm OK MOVE completed\r\n"
    );
    assert_eq!(client.send("c COPY 1 Trash\r\n"), "c OK [COPYUID 1002 1 3] COPY completed\r\n");
    assert_eq!(client.send("d COPY 1 Nowhere\r\n"), "d NO [TRYCREATE] no such mailbox\r\n");
    assert_eq!(
        client.send("e STATUS Trash (MESSAGES UIDNEXT)\r\n"),
        "* STATUS Trash (MESSAGES 3 UIDNEXT 4)\r\ne OK STATUS completed\r\n"
    );
}

#[test]
fn append_answers_appenduid_and_the_selected_mailbox_hears_of_it() {
    let mut client = Client::new();
    client.select_inbox();
    // The new message is announced with the APPEND's answer, recent to this session (RFC 3501 §2.3.2).
    assert_eq!(
        client.send("a APPEND INBOX (\\Seen) {11+}\r\nSubject: x\r\n"),
        "* 1 EXISTS\r\n* 1 RECENT\r\na OK [APPENDUID 1001 1] APPEND completed\r\n"
    );
    assert_eq!(client.send("b FETCH 1 FLAGS\r\n"), "* 1 FETCH (FLAGS (\\Seen \\Recent))\r\nb OK FETCH completed\r\n");
    assert_eq!(client.send("c APPEND Nowhere {1+}\r\nx\r\n"), "c NO [TRYCREATE] no such mailbox\r\n");
}

#[test]
fn a_waiting_session_lets_go_of_the_buffers_a_large_command_grew() {
    let mut client = Client::on(MemoryStore::default(), Config { max_message_size: 100_000, ..config(true) });
    client.login();
    let message = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(40_000));
    let reply = client.send(&format!("a APPEND INBOX {{{}+}}\r\n{message}\r\n", message.len()));
    assert_eq!(reply, "a OK [APPENDUID 1001 1] APPEND completed\r\n");
    assert!(client.session.wire().input.capacity() <= KEPT_CAPACITY, "{}", client.session.wire().input.capacity());
    client.send("s SELECT INBOX\r\n");
    let reply = client.send("f FETCH 1 BODY.PEEK[]\r\n");
    assert!(reply.len() > message.len() && reply.ends_with("f OK FETCH completed\r\n"));
    assert!(client.session.wire().output.capacity() <= KEPT_CAPACITY, "{}", client.session.wire().output.capacity());
}

/// A FETCH that names an item twice gets it once; one of hundreds of items, or of more than 64 body
/// sections, is refused before anything is asked of the store (a 64 KiB command holds thousands of
/// `BODY[]`, each a copy of the message in the reply).
#[test]
fn fetch_answers_a_repeated_item_once_and_refuses_hundreds() {
    let mut client = Client::new();
    client.store.deliver("INBOX", b"Subject: 1\r\n\r\nbody 1\r\n", &["\\Seen"]);
    client.select_inbox();
    assert_eq!(
        client.send("f1 FETCH 1 (BODY.PEEK[] UID BODY.PEEK[] UID)\r\n"),
        "* 1 FETCH (BODY[] {22}\r\nSubject: 1\r\n\r\nbody 1\r\n UID 1)\r\nf1 OK FETCH completed\r\n"
    );
    let sections: Vec<String> = (0..65).map(|i| format!("BODY.PEEK[]<{i}.5>")).collect();
    assert_eq!(
        client.send(&format!("f2 FETCH 1 ({})\r\n", sections.join(" "))),
        "f2 BAD too many body sections in one FETCH\r\n"
    );
    let sixty_four = sections[..64].join(" ");
    assert!(client.send(&format!("f3 FETCH 1 ({sixty_four})\r\n")).ends_with("f3 OK FETCH completed\r\n"));
    let items = vec!["FLAGS"; 257].join(" ");
    assert_eq!(client.send(&format!("f4 FETCH 1 ({items})\r\n")), "f4 BAD too many items in one FETCH\r\n");
    let repeated = vec!["FLAGS"; 256].join(" ");
    assert_eq!(
        client.send(&format!("f5 FETCH 1 ({repeated})\r\n")),
        "* 1 FETCH (FLAGS (\\Seen \\Recent))\r\nf5 OK FETCH completed\r\n"
    );
}
