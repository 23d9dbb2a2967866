//! Port 25: mail from the world for local recipients, and the DATA policies.

use super::*;

#[test]
fn a_plain_transaction() {
    let mut client = Client::mx();
    let replies = client.send(
        "EHLO c.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nhi\r\n.\r\nMAIL FROM:<>\r\n",
    );
    assert_eq!(codes(&replies), ["250", "250", "250", "354", "250", "250"]);
    assert_eq!(replies[4], "250 2.0.0 Ok: queued as Q1");
    let message = &client.messages[0];
    assert_eq!(message.from.path, ReversePath::Address("a@example.net".parse().unwrap()));
    assert_eq!(message.from.body_type, BodyType::SevenBit);
    assert_eq!(message.body, b"hi\r\n");
    assert_eq!((message.tls.clone(), message.authenticated.clone()), (None, None));
    assert!(message.recipients[0].local);
}

#[test]
fn recipients_are_refused_with_the_rfc_codes() {
    let mut client = Client::mx();
    let replies = client.send(
        "HELO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<x@elsewhere.net>\r\nRCPT TO:<bad address>\r\nRCPT TO:<x@down.example>\r\nDATA\r\n",
    );
    assert_eq!(replies[2], "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown");
    assert_eq!(replies[3], "554 5.7.1 <x@elsewhere.net>: Relay access denied");
    assert!(replies[4].starts_with("501 5.1.3"), "{}", replies[4]);
    assert_eq!(replies[5], "451 4.3.0 Recipient lookup failed, try again later");
    assert_eq!(replies[6], "554 5.5.1 No valid recipients");
}

#[test]
fn a_bounce_to_an_srs_address_we_did_not_sign_or_too_old_is_refused() {
    let mut client = Client::mx();
    let replies = client.send(
        "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<SRS0=bad=AB=origin.example=alice@srs.example>\r\nRCPT TO:<SRS0=Ab3d=AB=origin.example=alice@srs.example>\r\n",
    );
    assert_eq!(
        replies[2],
        "550 5.7.1 <SRS0=bad=AB=origin.example=alice@srs.example>: Recipient address rejected: invalid SRS signature"
    );
    assert_eq!(
        replies[3],
        "550 5.1.1 <SRS0=Ab3d=AB=origin.example=alice@srs.example>: Recipient address rejected: SRS address expired"
    );
}

/// The open-relay battery of issue 3 at the protocol level: none of these tricks gets a 250 on port 25.
#[test]
fn relay_tricks_are_all_refused() {
    for rcpt in [
        "RCPT TO:<user@elsewhere.net>",
        "RCPT TO:<user%elsewhere.net@example.org>",
        "RCPT TO:<user%elsewhere.net@mx.example.org>",
        "RCPT TO:<@example.org:user@elsewhere.net>",
        "RCPT TO:<@example.org,@mx.example.org:user@elsewhere.net>",
        "RCPT TO:<\"user@elsewhere.net\"@example.org>",
        "RCPT TO:<user@[192.0.2.1]>",
        "RCPT TO:<user@elsewhere.net.>",
        "RCPT TO:<elsewhere.net!user@example.org>",
        "RCPT TO:<user@example.org@elsewhere.net>",
        "RCPT TO:<>",
    ] {
        let mut client = Client::mx();
        let replies = client.send(&format!("EHLO c\r\nMAIL FROM:<a@example.net>\r\n{rcpt}\r\nDATA\r\n"));
        assert!(replies[2].starts_with('5'), "{rcpt}: {}", replies[2]);
        assert_eq!(replies[3], "554 5.5.1 No valid recipients", "{rcpt}");
    }
}

#[test]
fn bare_postmaster_is_the_hosts_postmaster_and_is_looked_up() {
    let mut client = Client::mx();
    let replies = client.send("EHLO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<Postmaster>\r\nDATA\r\nx\r\n.\r\n");
    assert_eq!(codes(&replies), ["250", "250", "250", "354", "250"]);
    assert_eq!(client.lookups, ["postmaster@mx.example.org"]);
    assert_eq!(client.messages[0].recipients[0].address.to_string(), "postmaster@mx.example.org");
}

#[test]
fn too_many_recipients_is_452_and_duplicates_collapse_without_a_lookup() {
    let mut client = Client::mx();
    let replies = client.send(concat!(
        "EHLO c\r\nMAIL FROM:<a@example.net>\r\n",
        "RCPT TO:<alice@example.org>\r\nRCPT TO:<Alice@Example.ORG>\r\nRCPT TO:<bob@example.org>\r\n",
        "RCPT TO:<carol@example.org>\r\nRCPT TO:<jones@example.org>\r\nRCPT TO:<bob@example.org>\r\n",
        "DATA\r\nx\r\n.\r\n",
    ));
    assert_eq!(codes(&replies), ["250", "250", "250", "250", "250", "250", "452", "250", "354", "250"]);
    assert_eq!(replies[6], "452 4.5.3 Too many recipients");
    assert_eq!(client.lookups, ["alice@example.org", "bob@example.org", "carol@example.org"]);
    assert_eq!(client.messages[0].recipients.len(), 3);
}

#[test]
fn size_limits() {
    let mut client = Client::mx();
    let replies = client.send(
        "EHLO c\r\nMAIL FROM:<a@example.net> SIZE=1001\r\nMAIL FROM:<a@example.net> SIZE=1000\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n",
    );
    assert_eq!(replies[1], "552 5.3.4 Message size exceeds fixed maximum message size");
    assert_eq!(replies[2], "250 2.1.0 Ok");
    let mut body = vec![b'x'; 1200];
    body.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
    assert_eq!(client.send_bytes(&body), ["552 5.3.4 Message size exceeds fixed maximum message size", "250 2.0.0 Ok"]);
    assert!(client.messages.is_empty());
}

#[test]
fn an_enqueue_failure_is_451_never_250() {
    let mut client = Client::mx();
    client.spool_down = true;
    let replies =
        client.send("EHLO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nx\r\n.\r\n");
    assert_eq!(replies[4], "451 4.3.0 Queue unavailable, try again later");
}

fn with_policies(long_lines: LongLines, bare_lf: BareLf) -> Client {
    let mut client =
        Client::new(SessionConfig { long_lines, bare_lf, max_message_size: 10_000, ..config(Mode::Mx) }, None);
    client.send("EHLO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n");
    client
}

#[test]
fn long_lines_are_refused_with_500_5_5_2_or_accepted_by_policy() {
    let mut body = vec![b'x'; 999];
    body.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
    let mut client = with_policies(LongLines::Reject, BareLf::Normalise);
    assert_eq!(client.send_bytes(&body), ["500 5.5.2 Message has a line longer than 1000 octets", "250 2.0.0 Ok"]);
    assert!(client.messages.is_empty());
    // The transaction is over; the session is not.
    assert_eq!(client.send("MAIL FROM:<a@example.net>\r\n"), ["250 2.1.0 Ok"]);

    let mut client = with_policies(LongLines::Accept, BareLf::Normalise);
    assert_eq!(codes(&client.send_bytes(&body)), ["250", "250"]);
    assert_eq!(client.messages[0].body.len(), 1001);
}

#[test]
fn bare_lf_and_bare_cr_are_refused_with_554_5_5_2_or_normalised_by_policy() {
    for (body, stored) in [
        (&b"Subject: x\n\nhello\n.\r\n.\r\nNOOP\r\n"[..], &b"Subject: x\r\n\r\nhello\r\n.\r\n"[..]),
        (b"Subject: x\r\rhello\r.\r\r\n.\r\nNOOP\r\n", b"Subject: x\r\n\r\nhello\r\n.\r\n\r\n"),
    ] {
        let mut client = with_policies(LongLines::Accept, BareLf::Reject);
        assert_eq!(client.send_bytes(body), ["554 5.5.2 Bare CR or LF line endings are not allowed", "250 2.0.0 Ok"]);
        assert!(client.messages.is_empty());

        let mut client = with_policies(LongLines::Accept, BareLf::Normalise);
        assert_eq!(codes(&client.send_bytes(body)), ["250", "250"]);
        assert_eq!(client.messages[0].body, stored);
    }
}

/// SMTP smuggling: a second transaction hidden behind a bare-LF or bare-CR end mark is never seen as
/// commands, under either policy, and what is stored has neither, so it cannot be smuggled on either.
#[test]
fn smuggled_commands_stay_in_the_body() {
    for payload in ["\n.\n", "\r.\r", "\r\n.\r", "\n.\r\n", "\r.\r\n", "\r\n.\n", "\n.\r"] {
        for bare_lf in [BareLf::Reject, BareLf::Normalise] {
            let mut client = with_policies(LongLines::Reject, bare_lf);
            let replies = client.send(&format!(
                "Subject: s\r\n\r\nbefore{payload}MAIL FROM:<evil@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nevil\r\n.\r\nQUIT\r\n"
            ));
            assert_eq!(replies.len(), 2, "{payload:?} {bare_lf:?}: {replies:?}");
            assert_eq!(replies[1], "221 2.0.0 Bye");
            assert!(client.messages.len() <= 1);
            if let Some(message) = client.messages.first() {
                assert!(message.body.windows(9).any(|w| w == b"MAIL FROM"), "{payload:?}");
                assert_eq!(bare_line_endings(&message.body), 0, "{payload:?}: stored with a bare CR or LF");
                assert_eq!(message.recipients.len(), 1);
            }
        }
    }
}
