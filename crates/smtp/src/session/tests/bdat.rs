//! CHUNKING (RFC 3030).

use super::*;

fn in_transaction() -> Client {
    let mut client = Client::mx();
    client.send("EHLO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\n");
    client
}

#[test]
fn chunks_are_joined_as_sent_with_bare_lf_stored_as_crlf() {
    let mut client = in_transaction();
    // A lone dot line and a "\r\n.\r\n" are just octets in a chunk; a bare LF becomes CRLF, as in DATA.
    let replies = client.send("BDAT 9\r\nSubject: BDAT 11\r\nbody\n.\r\n.\r\nBDAT 0 LAST\r\nNOOP\r\n");
    assert_eq!(
        replies,
        ["250 2.0.0 9 octets received", "250 2.0.0 11 octets received", "250 2.0.0 Ok: queued as Q1", "250 2.0.0 Ok"]
    );
    assert_eq!(client.messages[0].body, b"Subject: body\r\n.\r\n.\r\n");
}

#[test]
fn a_single_last_chunk_and_a_pipelined_second_transaction() {
    let mut client = in_transaction();
    let replies =
        client.send("BDAT 5 LAST\r\nhelloMAIL FROM:<b@example.net>\r\nRCPT TO:<bob@example.org>\r\nBDAT 3 LAST\r\nbye");
    assert_eq!(codes(&replies), ["250", "250", "250", "250"]);
    assert_eq!(client.messages[0].body, b"hello");
    assert_eq!(client.messages[1].body, b"bye");
    assert_eq!(client.messages[1].recipients[0].address.to_string(), "bob@example.org");
}

#[test]
fn data_after_bdat_is_503_and_rcpt_too() {
    let mut client = in_transaction();
    let replies = client.send("BDAT 2\r\nabDATA\r\nRCPT TO:<bob@example.org>\r\nBDAT 1 LAST\r\nc");
    assert_eq!(replies[1], "503 5.5.1 Bad sequence of commands: DATA is not allowed after BDAT");
    assert_eq!(replies[2], "503 5.5.1 Bad sequence of commands: RCPT after BDAT");
    assert_eq!(replies[3], "250 2.0.0 Ok: queued as Q1");
    assert_eq!(client.messages[0].body, b"abc");
}

#[test]
fn over_size_chunks_are_read_and_dropped_then_552() {
    let mut client = in_transaction();
    let chunk = "x".repeat(600);
    let replies = client.send(&format!("BDAT 600\r\n{chunk}BDAT 600\r\n{chunk}BDAT 600 LAST\r\n{chunk}NOOP\r\n"));
    assert_eq!(
        replies,
        [
            "250 2.0.0 600 octets received",
            "552 5.3.4 Message size exceeds fixed maximum message size",
            "552 5.3.4 Message size exceeds fixed maximum message size",
            "250 2.0.0 Ok"
        ]
    );
    assert!(client.messages.is_empty());
    // The transaction is over and the stream is still in step.
    assert_eq!(codes(&client.send("MAIL FROM:<a@example.net>\r\n")), ["250"]);
}

#[test]
fn exactly_the_limit_is_accepted() {
    let mut client = in_transaction();
    let replies = client.send(&format!("BDAT 400\r\n{}BDAT 600 LAST\r\n{}", "a".repeat(400), "b".repeat(600)));
    assert_eq!(codes(&replies), ["250", "250"]);
    assert_eq!(client.messages[0].body.len(), 1000);
}

#[test]
fn rset_after_an_over_size_chunk_ends_the_transaction() {
    let mut client = in_transaction();
    let replies = client.send(&format!("BDAT 1001\r\n{}RSET\r\nMAIL FROM:<a@example.net>\r\n", "x".repeat(1001)));
    assert_eq!(codes(&replies), ["552", "250", "250"]);
}

#[test]
fn a_refused_bdat_still_consumes_its_chunk() {
    // The chunk must not be read as commands, whatever the state.
    let mut client = Client::mx();
    let replies = client.send("EHLO c\r\nBDAT 6\r\nQUIT\r\nNOOP\r\n");
    assert_eq!(replies[1], "503 5.5.1 Bad sequence of commands: need RCPT command");
    assert_eq!(replies[2], "250 2.0.0 Ok");
    assert!(!client.closed);
    let mut client = Client::mx();
    let replies = client
        .send("EHLO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<nobody@example.org>\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n");
    assert_eq!(replies[3], "554 5.5.1 No valid recipients");
    assert_eq!(replies[4], "250 2.0.0 Ok");
}

#[test]
fn bdat_messages_carry_smtputf8_and_the_session_facts() {
    let mut client = Client::logged_in();
    client.send("MAIL FROM:<alice@example.org> SMTPUTF8\r\nRCPT TO:<jörg@example.org>\r\n");
    assert_eq!(codes(&client.send("BDAT 2 LAST\r\nhi")), ["250"]);
    let message = &client.messages[0];
    assert!(message.from.smtputf8);
    assert_eq!(message.authenticated, Some(alice()));
}

#[test]
fn an_enqueue_failure_at_last_is_451() {
    let mut client = in_transaction();
    client.spool_down = true;
    assert_eq!(client.send("BDAT 2 LAST\r\nhi"), ["451 4.3.0 Queue unavailable, try again later"]);
}

#[test]
fn the_session_counts_the_announced_size_not_the_octets_handed_over() {
    let mut session = Session::new(config(Mode::Mx), None);
    for command in [
        Request::Ehlo { host: "c".into() },
        Request::Mail { from: smtp_proto::MailFrom { address: "a@example.net".into(), ..Default::default() } },
    ] {
        session.handle(Ok(command));
    }
    let to = smtp_proto::RcptTo { address: "alice@example.org".into(), orcpt: None, rrvs: 0, flags: 0 };
    let Action::CheckRecipient(check) = session.handle(Ok(Request::Rcpt { to })) else { panic!() };
    session.recipient_checked(check, Verdict::Local);
    assert_eq!(
        session.handle(Ok(Request::Bdat { chunk_size: 5000, is_last: true })),
        Action::ReceiveChunk { size: 5000, last: true }
    );
    // A chunk announced over the limit is read and dropped, whatever it holds, and gets 552.
    let mut reader = session.chunk_reader();
    assert!(!reader.keeps());
    let mut body = Vec::new();
    assert_eq!(reader.feed(&[b'x'; 5000], &mut body), (5000, true));
    assert!(body.is_empty());
    let outcome = session.chunk_received(reader);
    assert!(matches!(outcome, DataOutcome::Reply(reply) if reply.code == 552));
}

#[test]
fn bare_cr_and_bare_lf_are_stored_as_crlf_across_chunks() {
    let mut client = in_transaction();
    // The first chunk ends in a CR whose LF starts the second; the CR before "c" and the CR at the very end
    // are bare, and so is the smuggler's "\r.\r".
    let replies = client.send("BDAT 9\r\nSubject:\rBDAT 17 LAST\r\n\nx\r.\rMAIL FROM\rc\r");
    assert_eq!(codes(&replies), ["250", "250"]);
    let body = &client.messages[0].body;
    assert_eq!(body, b"Subject:\r\nx\r\n.\r\nMAIL FROM\r\nc\r\n");
    assert_eq!(bare_line_endings(body), 0);
}

#[test]
fn bare_cr_or_lf_policy_reject_refuses_a_bdat_body_at_last() {
    for body in ["a\rb", "a\nb", "a\r", "\r.\r"] {
        let mut client = Client::new(SessionConfig { bare_lf: BareLf::Reject, ..config(Mode::Mx) }, None);
        client.send("EHLO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\n");
        let replies = client.send(&format!("BDAT 3\r\nx\r\nBDAT {} LAST\r\n{body}NOOP\r\n", body.len()));
        assert_eq!(
            replies,
            ["250 2.0.0 3 octets received", "554 5.5.2 Bare CR or LF line endings are not allowed", "250 2.0.0 Ok"],
            "{body:?}"
        );
        assert!(client.messages.is_empty());
    }
}
