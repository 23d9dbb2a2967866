//! RFC 8514 SAVEDATE; RFC 5267 CONTEXT=SEARCH and CONTEXT=SORT (PARTIAL, with RFC 9394's ranges from the
//! end, and UPDATE with ADDTO, REMOVEFROM and CANCELUPDATE); ESORT's SAVE (RFC 5182 §2.4) and MODSEQ
//! (RFC 7162 §3.1.5); THREAD in sent-date order (RFC 5256 §2.2).

use super::*;
use crate::memory::DATE;

const DAY: i64 = 86_400;

/// A message of `size` octets or so, with a Date field.
fn dated(store: &MemoryStore, subject: &str, date: &str, padding: usize) {
    let octets = format!("Date: {date}\r\nSubject: {subject}\r\n\r\n{}\r\n", "x".repeat(padding));
    store.deliver("INBOX", octets.as_bytes(), &[]);
}

#[test]
fn capabilities_name_savedate_searchres_and_context() {
    let mut client = Client::new();
    client.login();
    let reply = client.send("c CAPABILITY\r\n");
    for name in [" SAVEDATE", " SEARCHRES", " CONTEXT=SEARCH", " CONTEXT=SORT", " ESORT"] {
        assert!(reply.contains(name), "{name}: {reply}");
    }
}

#[test]
fn savedate_is_when_the_copy_was_saved_not_the_internal_date() {
    let mut client = Client::new();
    fill(&client.store, 1);
    client.store.create("Archive", "");
    client.store.set_clock(DATE + 3 * DAY);
    client.select_inbox();
    assert_eq!(client.send("c COPY 1 Archive\r\n"), "c OK [COPYUID 1002 1 1] COPY completed\r\n");
    assert_eq!(
        client.send("f FETCH 1 (SAVEDATE)\r\n"),
        "* 1 FETCH (SAVEDATE \"01-Jan-2026 00:00:00 +0000\")\r\nf OK FETCH completed\r\n"
    );
    client.send("s SELECT Archive\r\n");
    assert_eq!(
        client.send("g UID FETCH 1 (INTERNALDATE SAVEDATE)\r\n"),
        "* 1 FETCH (UID 1 INTERNALDATE \"01-Jan-2026 00:00:00 +0000\" SAVEDATE \"04-Jan-2026 00:00:00 +0000\")\r\n\
         g OK FETCH completed\r\n"
    );
}

#[test]
fn search_by_save_date() {
    let mut client = Client::new();
    fill(&client.store, 1);
    client.store.set_clock(DATE + 3 * DAY);
    fill(&client.store, 1);
    client.select_inbox();
    assert_eq!(client.send("a SEARCH SAVEDON 4-Jan-2026\r\n"), "* SEARCH 2\r\na OK SEARCH completed\r\n");
    assert_eq!(client.send("b SEARCH SAVEDBEFORE \"4-Jan-2026\"\r\n"), "* SEARCH 1\r\nb OK SEARCH completed\r\n");
    assert_eq!(client.send("c SEARCH SAVEDSINCE 2-Jan-2026\r\n"), "* SEARCH 2\r\nc OK SEARCH completed\r\n");
    assert_eq!(
        client.send("d UID SEARCH SAVEDATESUPPORTED NOT SAVEDON 1-Jan-2026\r\n"),
        "* SEARCH 2\r\nd OK SEARCH completed\r\n"
    );
    assert_eq!(
        client.send("e SEARCH RETURN (COUNT) SAVEDSINCE 1-Jan-2026\r\n"),
        "* ESEARCH (TAG \"e\") COUNT 2\r\ne OK SEARCH completed\r\n"
    );
    // A date that is not RFC 3501's `date` is a syntax error.
    assert_eq!(client.send("f SEARCH SAVEDON 2026-01-04\r\n"), "f BAD unknown command or syntax error\r\n");
    assert_eq!(client.send("g SEARCH SAVEDBEFORE\r\n"), "g BAD unknown command or syntax error\r\n");
}

#[test]
fn partial_returns_a_window_of_the_result() {
    let mut client = Client::new();
    fill(&client.store, 5);
    client.select_inbox();
    assert_eq!(
        client.send("p UID SEARCH RETURN (PARTIAL 2:3) ALL\r\n"),
        "* ESEARCH (TAG \"p\") UID PARTIAL (2:3 2:3)\r\np OK SEARCH completed\r\n"
    );
    // RFC 9394: counted back from the last.
    assert_eq!(
        client.send("q SEARCH RETURN (PARTIAL -1:-2 COUNT) ALL\r\n"),
        "* ESEARCH (TAG \"q\") COUNT 5 PARTIAL (-1:-2 4:5)\r\nq OK SEARCH completed\r\n"
    );
    assert_eq!(
        client.send("r SEARCH RETURN (PARTIAL 6:9) ALL\r\n"),
        "* ESEARCH (TAG \"r\") PARTIAL (6:9 NIL)\r\nr OK SEARCH completed\r\n"
    );
    assert_eq!(
        client.send("s SORT RETURN (PARTIAL 1:2) (REVERSE SUBJECT) UTF-8 ALL\r\n"),
        "* ESEARCH (TAG \"s\") PARTIAL (1:2 5,4)\r\ns OK SORT completed\r\n"
    );
    // RFC 5267 §4.1's CONTEXT is a hint: taken, changing nothing.
    assert_eq!(
        client.send("u SEARCH RETURN (CONTEXT COUNT) ALL\r\n"),
        "* ESEARCH (TAG \"u\") COUNT 5\r\nu OK SEARCH completed\r\n"
    );
    assert_eq!(client.send("t SEARCH RETURN (PARTIAL 0:2) ALL\r\n"), "t BAD unknown command or syntax error\r\n");
}

#[test]
fn sort_reports_the_modseq_of_what_it_returns() {
    let mut client = Client::new();
    dated(&client.store, "a", "Mon, 2 Feb 2026 10:00:00 +0000", 30);
    dated(&client.store, "b", "Mon, 2 Feb 2026 10:00:00 +0000", 10);
    dated(&client.store, "c", "Mon, 2 Feb 2026 10:00:00 +0000", 20);
    client.select_inbox();
    // MODSEQs 2, 3 and 4, in delivery order; the first MODSEQ key turns CONDSTORE on (RFC 7162 §3.1).
    assert_eq!(
        client.send("a SORT (SIZE) UTF-8 MODSEQ 3\r\n"),
        "* OK [HIGHESTMODSEQ 4] highest\r\n* SORT 2 3 (MODSEQ 4)\r\na OK SORT completed\r\n"
    );
    assert_eq!(client.send("b SORT (SIZE) UTF-8 MODSEQ 9\r\n"), "* SORT\r\nb OK SORT completed\r\n");
    // MIN alone returns one message: the MODSEQ is its own.
    assert_eq!(
        client.send("c UID SORT RETURN (MIN) (SIZE) UTF-8 MODSEQ 1\r\n"),
        "* ESEARCH (TAG \"c\") UID MIN 2 MODSEQ 3\r\nc OK SORT completed\r\n"
    );
    assert_eq!(
        client.send("d SORT RETURN (ALL) (SIZE) UTF-8 MODSEQ 1\r\n"),
        "* ESEARCH (TAG \"d\") ALL 2:3,1 MODSEQ 4\r\nd OK SORT completed\r\n"
    );
    // Without a MODSEQ key, no MODSEQ.
    assert_eq!(client.send("e SORT (SIZE) UTF-8 ALL\r\n"), "* SORT 2 3 1\r\ne OK SORT completed\r\n");
}

#[test]
fn sort_return_save_keeps_the_result_for_dollar() {
    let mut client = Client::new();
    dated(&client.store, "a", "Mon, 2 Feb 2026 10:00:00 +0000", 30);
    dated(&client.store, "b", "Mon, 2 Feb 2026 10:00:00 +0000", 10);
    dated(&client.store, "c", "Mon, 2 Feb 2026 10:00:00 +0000", 20);
    client.select_inbox();
    assert_eq!(client.send("a SORT RETURN (SAVE) (SIZE) UTF-8 NOT UID 3\r\n"), "a OK SORT completed, result saved\r\n");
    assert_eq!(
        client.send("b FETCH $ (UID)\r\n"),
        "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\nb OK FETCH completed\r\n"
    );
    // With MIN alone, `$` is the message MIN returns (RFC 5182 §2.1): the smallest.
    assert_eq!(
        client.send("c SORT RETURN (SAVE MIN) (SIZE) UTF-8 ALL\r\n"),
        "* ESEARCH (TAG \"c\") MIN 2\r\nc OK SORT completed\r\n"
    );
    assert_eq!(client.send("d UID SEARCH UID $\r\n"), "* SEARCH 2\r\nd OK SEARCH completed\r\n");
}

#[test]
fn thread_orders_by_the_date_field_not_arrival() {
    let mut client = Client::new();
    dated(&client.store, "same", "Tue, 3 Feb 2026 10:00:00 +0000", 1);
    dated(&client.store, "same", "Mon, 2 Feb 2026 10:00:00 +0000", 1);
    dated(&client.store, "other", "Sun, 1 Feb 2026 10:00:00 +0000", 1);
    client.select_inbox();
    assert_eq!(client.send("t THREAD ORDEREDSUBJECT UTF-8 ALL\r\n"), "* THREAD (3)(2 1)\r\nt OK THREAD completed\r\n");
}

#[test]
fn search_update_follows_arrivals_flag_changes_and_expunges() {
    let mut client = Client::new();
    fill(&client.store, 2);
    client.select_inbox();
    assert_eq!(
        client.send("u UID SEARCH RETURN (UPDATE) UNSEEN\r\n"),
        "* ESEARCH (TAG \"u\") UID ALL 1:2\r\nu OK SEARCH completed\r\n"
    );
    // A delivery: ADDTO after the EXISTS that announces it (position 0: a SEARCH result has no order).
    let event = client.store.deliver("INBOX", b"Subject: 3\r\n\r\nbody 3\r\n", &[]);
    client.event(&event);
    assert_eq!(
        client.send("n NOOP\r\n"),
        "* 3 EXISTS\r\n* 3 RECENT\r\n* ESEARCH (TAG \"u\") UID ADDTO (0 3)\r\nn OK NOOP completed\r\n"
    );
    // Another session's flag change, and the session's own.
    let event = client.store.flag_elsewhere("INBOX", 1, &["\\Seen"]);
    client.event(&event);
    assert_eq!(
        client.send("m NOOP\r\n"),
        "* 1 FETCH (FLAGS (\\Seen \\Recent) UID 1)\r\n* ESEARCH (TAG \"u\") UID REMOVEFROM (0 1)\r\nm OK NOOP completed\r\n"
    );
    assert_eq!(
        client.send("s STORE 2 +FLAGS (\\Seen)\r\n"),
        "* 2 FETCH (FLAGS (\\Seen \\Recent))\r\n* ESEARCH (TAG \"u\") UID REMOVEFROM (0 2)\r\ns OK STORE completed\r\n"
    );
    // An expunge elsewhere: REMOVEFROM before the EXPUNGE, and only where EXPUNGE may go.
    let event = client.store.expunge_elsewhere("INBOX", 3);
    client.event(&event);
    // (FETCH repeats the STORE's flags as the store's changes list it; the context has nothing new.)
    assert_eq!(
        client.send("f FETCH 1 (UID)\r\n"),
        "* 1 FETCH (UID 1)\r\n* 2 FETCH (FLAGS (\\Seen \\Recent) UID 2)\r\nf OK FETCH completed\r\n"
    );
    assert_eq!(
        client.send("o NOOP\r\n"),
        "* ESEARCH (TAG \"u\") UID REMOVEFROM (0 3)\r\n* 3 EXPUNGE\r\no OK NOOP completed\r\n"
    );
    assert_eq!(client.send("c CANCELUPDATE \"u\"\r\n"), "c OK CANCELUPDATE completed\r\n");
    let event = client.store.deliver("INBOX", b"Subject: 4\r\n\r\nbody 4\r\n", &[]);
    client.event(&event);
    assert_eq!(client.send("p NOOP\r\n"), "* 3 EXISTS\r\n* 3 RECENT\r\np OK NOOP completed\r\n");
    assert_eq!(client.send("d CANCELUPDATE \"u\"\r\n"), "d BAD no update context \"u\"\r\n");
    assert_eq!(client.send("e CANCELUPDATE u\r\n"), "e BAD CANCELUPDATE takes one or more quoted tags\r\n");
}

#[test]
fn sort_update_gives_positions_in_sort_order() {
    let mut client = Client::new();
    dated(&client.store, "a", "Mon, 2 Feb 2026 10:00:00 +0000", 30);
    dated(&client.store, "b", "Mon, 2 Feb 2026 10:00:00 +0000", 10);
    client.select_inbox();
    assert_eq!(
        client.send("u UID SORT RETURN (UPDATE) (SIZE) UTF-8 UNSEEN\r\n"),
        "* ESEARCH (TAG \"u\") UID ALL 2,1\r\nu OK SORT completed\r\n"
    );
    dated(&client.store, "c", "Mon, 2 Feb 2026 10:00:00 +0000", 20);
    let event = client.store.expunge_elsewhere("INBOX", 2);
    client.event(&event);
    // UID 3 sorts between 2 and 1: second; then UID 2 leaves from the first place.
    assert_eq!(
        client.send("n NOOP\r\n"),
        "* 3 EXISTS\r\n* 3 RECENT\r\n* ESEARCH (TAG \"u\") UID ADDTO (2 3)\r\n\
         * ESEARCH (TAG \"u\") UID REMOVEFROM (1 2)\r\n* 2 EXPUNGE\r\nn OK NOOP completed\r\n"
    );
    client.send("s UID STORE 1 +FLAGS (\\Seen)\r\n");
    assert_eq!(client.send("f UID SEARCH UID 1:*\r\n"), "* SEARCH 1 3\r\nf OK SEARCH completed\r\n");
}

#[test]
fn update_contexts_are_bounded_and_refused_with_noupdate() {
    let mut client = Client::new();
    fill(&client.store, 1);
    client.select_inbox();
    for i in 0..8 {
        client.send(&format!("u{i} SEARCH RETURN (UPDATE) ALL\r\n"));
    }
    assert_eq!(
        client.send("u8 SEARCH RETURN (UPDATE) ALL\r\n"),
        "* ESEARCH (TAG \"u8\") ALL 1\r\n* NO [NOUPDATE \"u8\"] at most 8 update contexts at once\r\nu8 OK SEARCH completed\r\n"
    );
    // A PARTIAL result is not kept up to date.
    client.send("c CANCELUPDATE \"u0\"\r\n");
    assert_eq!(
        client.send("p SEARCH RETURN (UPDATE PARTIAL 1:5) ALL\r\n"),
        "* ESEARCH (TAG \"p\") PARTIAL (1:5 1)\r\n* NO [NOUPDATE \"p\"] no updates for a PARTIAL result\r\np OK SEARCH completed\r\n"
    );
    // Contexts end with the mailbox.
    client.send("x UNSELECT\r\n");
    client.send("s SELECT INBOX\r\n");
    assert_eq!(client.send("c CANCELUPDATE \"u1\"\r\n"), "c BAD no update context \"u1\"\r\n");
}

#[test]
fn an_update_reaches_an_idling_client_at_once() {
    let mut client = Client::new();
    fill(&client.store, 1);
    client.select_inbox();
    client.send("u SEARCH RETURN (UPDATE) UNSEEN\r\n");
    assert_eq!(client.send("i IDLE\r\n"), "+ idling\r\n");
    let event = client.store.deliver("INBOX", b"Subject: new\r\n\r\nnew\r\n", &[]);
    // Not a UID context: the new message is named by its number.
    assert_eq!(client.event(&event), "* 2 EXISTS\r\n* 2 RECENT\r\n* ESEARCH (TAG \"u\") ADDTO (0 2)\r\n");
    let event = client.store.expunge_elsewhere("INBOX", 1);
    assert_eq!(client.event(&event), "* ESEARCH (TAG \"u\") REMOVEFROM (0 1)\r\n* 1 EXPUNGE\r\n");
    assert_eq!(client.send("DONE\r\n"), "i OK IDLE terminated\r\n");
}

#[test]
fn search_save_with_min_alone_saves_only_the_minimum() {
    let mut client = Client::new();
    fill(&client.store, 3);
    client.select_inbox();
    // RFC 5182 §2.1: with MIN (or MAX) and neither ALL nor COUNT, `$` is what MIN returns.
    assert_eq!(
        client.send("a SEARCH RETURN (SAVE MIN) ALL\r\n"),
        "* ESEARCH (TAG \"a\") MIN 1\r\na OK SEARCH completed\r\n"
    );
    assert_eq!(client.send("b UID SEARCH UID $\r\n"), "* SEARCH 1\r\nb OK SEARCH completed\r\n");
    assert_eq!(
        client.send("c SEARCH RETURN (SAVE MAX COUNT) ALL\r\n"),
        "* ESEARCH (TAG \"c\") MAX 3 COUNT 3\r\nc OK SEARCH completed\r\n"
    );
    assert_eq!(client.send("d UID SEARCH UID $\r\n"), "* SEARCH 1 2 3\r\nd OK SEARCH completed\r\n");
}
