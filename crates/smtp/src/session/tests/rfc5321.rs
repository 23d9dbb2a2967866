//! RFC 5321 Appendix D, with our host names (foo.com is mx.example.org, its users are at example.org) and
//! our reply texts; the codes are the RFC's.

use super::*;

const EHLO_REPLY: &str = "250-mx.example.org Hello bar.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING";

/// D.1 A Typical SMTP Transaction Scenario.
#[test]
fn d1_a_typical_transaction() {
    let mut client = Client::mx();
    assert_eq!(client.session.greeting().to_string(), "220 mx.example.org ESMTP mailbus");
    let replies = client.send(concat!(
        "EHLO bar.example\r\n",
        "MAIL FROM:<Smith@bar.example>\r\n",
        "RCPT TO:<Jones@example.org>\r\n",
        "RCPT TO:<Green@example.org>\r\n",
        "RCPT TO:<Brown@example.org>\r\n",
        "DATA\r\n",
        "Blah blah blah...\r\n",
        "...etc. etc. etc.\r\n",
        ".\r\n",
        "QUIT\r\n",
    ));
    assert_eq!(
        replies,
        [
            EHLO_REPLY,
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "550 5.1.1 <Green@example.org>: Recipient address rejected: User unknown",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: queued as Q1",
            "221 2.0.0 Bye",
        ]
    );
    let message = &client.messages[0];
    assert_eq!(message.from.path, ReversePath::Address("Smith@bar.example".parse().unwrap()));
    let recipients: Vec<String> = message.recipients.iter().map(|r| r.address.to_string()).collect();
    assert_eq!(recipients, ["Jones@example.org", "Brown@example.org"]);
    assert!(message.recipients.iter().all(|r| r.local));
    // The stuffed dot of "...etc." is removed (RFC 5321 §4.5.2).
    assert_eq!(message.body, b"Blah blah blah...\r\n..etc. etc. etc.\r\n");
    assert!(client.closed);
}

/// D.2 Aborted SMTP Transaction Scenario.
#[test]
fn d2_an_aborted_transaction() {
    let mut client = Client::mx();
    let replies = client.send(concat!(
        "EHLO bar.example\r\n",
        "MAIL FROM:<Smith@bar.example>\r\n",
        "RCPT TO:<Jones@example.org>\r\n",
        "RCPT TO:<Green@example.org>\r\n",
        "RSET\r\n",
        "QUIT\r\n",
    ));
    assert_eq!(
        replies[1..],
        [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "550 5.1.1 <Green@example.org>: Recipient address rejected: User unknown",
            "250 2.0.0 Ok",
            "221 2.0.0 Bye",
        ]
    );
    assert!(client.messages.is_empty());
}

const D3_MESSAGE: &str = concat!(
    "Date: Thu, 21 May 1998 05:33:29 -0700\r\n",
    "From: John Q. Public <JQP@bar.example>\r\n",
    "Subject: The Next Meeting of the Board\r\n",
    "To: Jones@xyz.example\r\n",
    "\r\n",
    "Bill:\r\n",
    "The next meeting of the board of directors will be\r\n",
    "on Tuesday.\r\n",
    "John.\r\n",
);

/// D.3 Relayed Mail Scenario, step 1: the source host hands the relay host mail for another domain. Only
/// an authenticated submission client may do that here.
#[test]
fn d3_step_1_relaying_needs_an_authenticated_submission_session() {
    let mut client = Client::logged_in();
    let replies = client.send(&format!(
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<Jones@xyz.example>\r\nDATA\r\n{D3_MESSAGE}.\r\nQUIT\r\n"
    ));
    assert_eq!(
        replies,
        [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: queued as Q1",
            "221 2.0.0 Bye"
        ]
    );
    let message = &client.messages[0];
    assert!(!message.recipients[0].local);
    assert_eq!(message.authenticated, Some(alice()));
    assert_eq!(message.tls, Some(tls_info()));
    assert_eq!(message.body, D3_MESSAGE.as_bytes());

    // The same from the Internet, on port 25, is refused: no open relay.
    let mut client = Client::mx();
    let replies = client.send("EHLO bar.example\r\nMAIL FROM:<JQP@bar.example>\r\nRCPT TO:<Jones@xyz.example>\r\n");
    assert_eq!(replies[2], "554 5.7.1 <Jones@xyz.example>: Relay access denied");
}

/// D.3 step 2: the relay host delivers to the destination, which is us.
#[test]
fn d3_step_2_the_destination_accepts_for_its_own_user() {
    let mut client = Client::mx();
    let replies = client.send(&format!(
        "EHLO relay.example\r\nMAIL FROM:<JQP@bar.example>\r\nRCPT TO:<Jones@example.org>\r\nDATA\r\n{D3_MESSAGE}.\r\nQUIT\r\n"
    ));
    assert_eq!(codes(&replies), ["250", "250", "250", "354", "250", "221"]);
    assert_eq!(client.messages[0].body, D3_MESSAGE.as_bytes());
    assert_eq!(client.messages[0].helo, Helo { name: "relay.example".into(), extended: true });
}

/// D.4 Verifying and Sending Scenario: we never confirm a user (RFC 5321 §3.5.3 allows 252), then the
/// mail goes through as usual.
#[test]
fn d4_verify_then_send() {
    let mut client = Client::mx();
    let replies = client.send(concat!(
        "EHLO bar.example\r\n",
        "VRFY Crispin\r\n",
        "MAIL FROM:<EAK@bar.example>\r\n",
        "RCPT TO:<alice@example.org>\r\n",
        "DATA\r\n",
        "Blah blah blah...\r\n",
        ".\r\n",
        "QUIT\r\n",
    ));
    assert_eq!(codes(&replies), ["250", "252", "250", "250", "354", "250", "221"]);
}

/// A pipelining client's whole session, DATA and BDAT included, split in two at every position: the replies
/// never change.
#[test]
fn a_pipelined_session_is_the_same_at_every_split() {
    let input = concat!(
        "EHLO bar.example\r\n",
        "MAIL FROM:<Smith@bar.example>\r\nRCPT TO:<Jones@example.org>\r\nRCPT TO:<Green@example.org>\r\nDATA\r\n",
        "Blah\r\n..dot\r\n.\r\n",
        "MAIL FROM:<Smith@bar.example>\r\nRCPT TO:<Brown@example.org>\r\nBDAT 6\r\nchunk\nBDAT 3 LAST\r\n.\r\n",
        "QUIT\r\n",
    );
    let expected = Client::mx().send(input);
    assert_eq!(codes(&expected), ["250", "250", "250", "550", "354", "250", "250", "250", "250", "250", "221"]);
    for split in 0..=input.len() {
        let mut client = Client::mx();
        let mut replies = client.send(&input[..split]);
        replies.extend(client.send(&input[split..]));
        assert_eq!(replies, expected, "split {split}");
        assert_eq!(client.messages[0].body, b"Blah\r\n.dot\r\n");
        assert_eq!(client.messages[1].body, b"chunk\r\n.\r\n");
    }
}
