//! RFC 3502 MULTIAPPEND (several messages in one APPEND, all or none, RFC 4315 APPENDUID with a uid-set)
//! and RFC 4469 CATENATE (a message built from literal text and IMAP URLs, `BADURL`, `TOOBIG`).

use super::*;
use crate::memory::HOST;

/// Logged in, with the message the CATENATE tests read parts of (`Subject: 1\r\n\r\nbody 1\r\n`) at
/// INBOX UID 1, UIDVALIDITY 1001.
fn with_source() -> Client {
    let mut client = Client::new();
    fill(&client.store, 1);
    client.login();
    client
}

fn status(client: &mut Client) -> String {
    client.send("st STATUS INBOX (MESSAGES UIDNEXT)\r\n")
}

#[test]
fn multiappend_with_synchronizing_literals_gets_a_continuation_for_each() {
    // RFC 3502 §6.3.11's example, shortened.
    let mut client = Client::new();
    client.login();
    assert_eq!(client.send("A003 APPEND INBOX (\\Seen) {12}\r\n"), "+ ...\r\n");
    assert_eq!(client.send("Subject: a\r\n {12}\r\n"), "+ ...\r\n");
    assert_eq!(client.send("Subject: b\r\n\r\n"), "A003 OK [APPENDUID 1001 1:2] APPEND completed\r\n");
    assert!(client.send("s SELECT INBOX\r\n").contains("\r\n* 2 EXISTS\r\n"));
    assert_eq!(
        client.send("f FETCH 1:2 (FLAGS BODY.PEEK[])\r\n"),
        "* 1 FETCH (FLAGS (\\Seen \\Recent) BODY[] {12}\r\nSubject: a\r\n)\r\n\
         * 2 FETCH (FLAGS (\\Recent) BODY[] {12}\r\nSubject: b\r\n)\r\nf OK FETCH completed\r\n"
    );
}

#[test]
fn multiappend_with_literal_plus_flags_dates_and_a_binary_literal() {
    let mut client = Client::new();
    client.select_inbox();
    let reply = client
        .send("a APPEND INBOX {3+}\r\nabc (\\Flagged) \" 7-Feb-1994 21:52:25 -0800\" {2+}\r\nde () ~{1+}\r\nf\r\n");
    // The selected mailbox hears of all three with the answer.
    assert_eq!(reply, "* 3 EXISTS\r\n* 3 RECENT\r\na OK [APPENDUID 1001 1:3] APPEND completed\r\n");
    assert_eq!(
        client.send("f UID FETCH 1:3 FLAGS\r\n"),
        "* 1 FETCH (UID 1 FLAGS (\\Recent))\r\n* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))\r\n\
         * 3 FETCH (UID 3 FLAGS (\\Recent))\r\nf OK FETCH completed\r\n"
    );
    // One message the RFC 3502 way is APPENDUID with one UID, as a plain APPEND's.
    assert_eq!(
        client.send("b APPEND INBOX CATENATE (TEXT {1+}\r\ng)\r\n").lines().last(),
        Some("b OK [APPENDUID 1001 4] APPEND completed")
    );
}

#[test]
fn a_failure_of_one_message_appends_none() {
    let mut client = Client::new();
    client.login();
    let before = "* STATUS INBOX (MESSAGES 0 UIDNEXT 1)\r\nst OK STATUS completed\r\n";
    // Over quota: the quota holds the first message but not both.
    client.store.set_quota(50);
    let reply = client.send(&format!("a APPEND INBOX {{30+}}\r\n{0} {{30+}}\r\n{0}\r\n", "x".repeat(30)));
    assert_eq!(reply, "a NO [OVERQUOTA] storage quota exceeded (0 of 50 octets used)\r\n");
    assert_eq!(status(&mut client), before);
    client.store.set_quota(1024 * 1024);
    // The second message is over APPENDLIMIT (10 000), sent as LITERAL+: NO [TOOBIG] once it is in.
    let reply = client.send(&format!("b APPEND INBOX {{1+}}\r\nx {{10001+}}\r\n{}\r\n", "y".repeat(10_001)));
    assert_eq!(reply, "b NO [TOOBIG] message exceeds APPENDLIMIT\r\n");
    assert_eq!(status(&mut client), before);
    // ... and as a synchronizing literal: refused before its `+`, so the client does not send it.
    assert_eq!(client.send("c APPEND INBOX {1}\r\n"), "+ ...\r\n");
    assert_eq!(client.send("x {10001}\r\n"), "c BAD literal larger than APPENDLIMIT\r\n");
    assert_eq!(status(&mut client), before);
    // No such mailbox.
    assert_eq!(client.send("d APPEND Nowhere {1+}\r\nx {1+}\r\ny\r\n"), "d NO [TRYCREATE] no such mailbox\r\n");
    // Each message within APPENDLIMIT, but together they are more than one command may bring.
    let reply = client.send(&format!("e APPEND INBOX {{6000+}}\r\n{0} {{6000+}}\r\n{0}\r\n", "z".repeat(6000)));
    assert_eq!(reply, "e NO [LIMIT] the messages of one APPEND together exceed APPENDLIMIT\r\n");
    assert_eq!(status(&mut client), before);
    // A syntax error in the third message: BAD, and nothing appended.
    assert_eq!(client.send("f APPEND INBOX {1+}\r\nx {1+}\r\ny (\\Seen\r\n"), "f BAD syntax error in APPEND\r\n");
    assert_eq!(status(&mut client), before);
}

#[test]
fn catenate_builds_a_message_from_text_and_a_url() {
    // RFC 4469 §3: the header of one message, new text, the body of the same message.
    let mut client = with_source();
    let reply = client.send(
        "a APPEND INBOX (\\Draft) CATENATE (URL \"/INBOX;UIDVALIDITY=1001/;UID=1/;SECTION=HEADER\" \
         TEXT {9+}\r\nadded\r\n\r\n URL /INBOX;UIDVALIDITY=1001/;UID=1/;SECTION=TEXT)\r\n",
    );
    assert_eq!(reply, "a OK [APPENDUID 1001 2] APPEND completed\r\n");
    client.send("s SELECT INBOX\r\n");
    assert_eq!(
        client.send("f UID FETCH 2 (FLAGS BODY.PEEK[])\r\n"),
        "* 2 FETCH (UID 2 FLAGS (\\Draft \\Recent) BODY[] {31}\r\nSubject: 1\r\n\r\nadded\r\n\r\nbody 1\r\n)\r\n\
         f OK FETCH completed\r\n"
    );
    // An absolute URL naming this user and server, and a PARTIAL range of the whole message.
    let reply = client.send(&format!(
        "b APPEND INBOX CATENATE (URL \"imap://{USER}@{HOST}/INBOX/;UID=1/;PARTIAL=0.10\" TEXT {{2+}}\r\n\r\n)\r\n"
    ));
    assert_eq!(reply, "* 3 EXISTS\r\n* 3 RECENT\r\nb OK [APPENDUID 1001 3] APPEND completed\r\n");
    assert_eq!(
        client.send("g UID FETCH 3 BODY.PEEK[]\r\n"),
        "* 3 FETCH (UID 3 BODY[] {12}\r\nSubject: 1\r\n)\r\ng OK FETCH completed\r\n"
    );
}

#[test]
fn a_url_that_does_not_resolve_is_badurl_and_nothing_is_appended() {
    let mut client = with_source();
    let before = status(&mut client);
    for url in [
        // The wrong UIDVALIDITY, no such UID, no such mailbox, a section the store cannot give.
        "/INBOX;UIDVALIDITY=999/;UID=1",
        "/INBOX;UIDVALIDITY=1001/;UID=7",
        "/Nowhere/;UID=1",
        "/INBOX/;UID=1/;SECTION=1.2",
        // Another account, another server, URLAUTH (not offered), not an IMAP URL at all.
        "imap://bob@imap.example.org/INBOX/;UID=1",
        "imap://alice@example.org@elsewhere.example.net/INBOX/;UID=1",
        "/INBOX/;UID=1/;URLAUTH=anonymous:internal:0123456789abcdef0123456789abcdef",
        "http://example.org/",
    ] {
        let reply = client.send(&format!("a APPEND INBOX {{1+}}\r\nx CATENATE (TEXT {{1+}}\r\ny URL \"{url}\")\r\n"));
        assert_eq!(reply, format!("a NO [BADURL {url}] CATENATE URL does not resolve\r\n"));
        assert_eq!(status(&mut client), before, "{url}");
    }
}

#[test]
fn a_badurl_code_never_carries_a_bracket_or_a_line_end() {
    let mut client = with_source();
    assert_eq!(
        client.send("a APPEND INBOX CATENATE (URL \"/IN]BOX%/;UID=1\")\r\n"),
        "a NO [BADURL /IN%5DBOX%25/;UID=1] CATENATE URL does not resolve\r\n"
    );
    assert_eq!(
        client.send("b APPEND INBOX CATENATE (URL {13+}\r\n/INBOX\r\n* BYE)\r\n"),
        "b NO [BADURL /INBOX%0D%0A* BYE] CATENATE URL does not resolve\r\n"
    );
}

#[test]
fn a_catenated_message_over_appendlimit_is_toobig() {
    let mut client = Client::new();
    client.store.deliver("INBOX", format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(6000)).as_bytes(), &[]);
    client.login();
    let before = status(&mut client);
    let url = "/INBOX;UIDVALIDITY=1001/;UID=1";
    let reply = client.send(&format!("a APPEND INBOX CATENATE (URL {url} URL {url})\r\n"));
    assert_eq!(reply, "a NO [TOOBIG] message exceeds APPENDLIMIT\r\n");
    assert_eq!(status(&mut client), before);
}

#[test]
fn catenate_and_multiappend_together() {
    // RFC 4469 §5: CATENATE in any of the messages of a MULTIAPPEND.
    let mut client = with_source();
    assert_eq!(client.send("a APPEND INBOX {3}\r\n"), "+ ...\r\n");
    assert_eq!(client.send("abc CATENATE (URL \"/INBOX/;UID=1/;SECTION=HEADER\" TEXT {4}\r\n"), "+ ...\r\n");
    assert_eq!(client.send("new\n) (\\Seen) {3+}\r\ndef\r\n"), "a OK [APPENDUID 1001 2:4] APPEND completed\r\n");
    client.send("s SELECT INBOX\r\n");
    assert_eq!(
        client.send("f UID FETCH 2:4 BODY.PEEK[]\r\n"),
        "* 2 FETCH (UID 2 BODY[] {3}\r\nabc)\r\n* 3 FETCH (UID 3 BODY[] {18}\r\nSubject: 1\r\n\r\nnew\n)\r\n\
         * 4 FETCH (UID 4 BODY[] {3}\r\ndef)\r\nf OK FETCH completed\r\n"
    );
}

#[test]
fn multiappend_is_for_a_logged_in_session() {
    let mut client = Client::new();
    assert_eq!(client.send("a APPEND INBOX {1+}\r\nx {1+}\r\ny\r\n"), "a BAD log in first\r\n");
}

#[test]
fn capabilities_name_both() {
    let mut client = Client::new();
    client.login();
    let reply = client.send("c CAPABILITY\r\n");
    assert!(reply.contains(" MULTIAPPEND ") && reply.contains(" CATENATE "), "{reply}");
}

#[test]
fn an_append_past_what_one_command_may_hold_is_toobig() {
    // Each literal is within APPENDLIMIT (10 000), but the command passes APPENDLIMIT and 64 KiB: the
    // framer stops keeping it, and the APPEND is refused as a whole (RFC 7889 TOOBIG), not as a bad command.
    let mut client = Client::new();
    client.login();
    let message = "x".repeat(9000);
    let mut command = "a APPEND INBOX".to_owned();
    for _ in 0..9 {
        command += &format!(" {{9000+}}\r\n{message}");
    }
    command += "\r\n";
    assert_eq!(client.send(&command), "a NO [TOOBIG] the APPEND's messages together exceed APPENDLIMIT\r\n");
    assert_eq!(status(&mut client), "* STATUS INBOX (MESSAGES 0 UIDNEXT 1)\r\nst OK STATUS completed\r\n");
    assert_eq!(client.send("n NOOP\r\n"), "n OK NOOP completed\r\n");
}
