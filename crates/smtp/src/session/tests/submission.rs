//! Ports 587 and 465: AUTH before MAIL, the sender must be the account's, and relaying is allowed.

use super::*;

#[test]
fn mail_before_auth_is_530() {
    let mut client = Client::submission();
    assert_eq!(client.send("EHLO c\r\nMAIL FROM:<alice@example.org>\r\n")[1], "530 5.7.0 Authentication required");
    // Not even the null sender.
    assert_eq!(client.send("MAIL FROM:<>\r\n"), ["530 5.7.0 Authentication required"]);
}

#[test]
fn the_sender_must_be_an_address_of_the_account() {
    let mut client = Client::logged_in();
    let replies = client.send(concat!(
        "MAIL FROM:<bob@example.org>\r\n",
        "MAIL FROM:<x@down.example>\r\n",
        "MAIL FROM:<sales@example.org>\r\n",
        "RSET\r\n",
        "MAIL FROM:<Alice@example.org>\r\n",
    ));
    assert_eq!(replies[0], "553 5.7.1 <bob@example.org>: Sender address rejected: not owned by user alice@example.org");
    assert_eq!(replies[1], "451 4.3.0 Sender lookup failed, try again later");
    assert_eq!(replies[2], "250 2.1.0 Ok");
    assert_eq!(replies[3], "250 2.0.0 Ok");
    // The fake directory matches exactly; case folding is the directory's business.
    assert!(replies[4].starts_with("553 5.7.1"));
}

#[test]
fn a_refused_sender_leaves_no_transaction() {
    let mut client = Client::logged_in();
    let replies =
        client.send("MAIL FROM:<bob@example.org>\r\nRCPT TO:<carol@example.org>\r\nMAIL FROM:<alice@example.org>\r\n");
    assert_eq!(codes(&replies), ["553", "503", "250"]);
}

#[test]
fn the_null_sender_needs_no_check() {
    let mut client = Client::logged_in();
    assert_eq!(client.send("MAIL FROM:<>\r\n"), ["250 2.1.0 Ok"]);
}

#[test]
fn past_the_message_limit_mail_from_is_451_4_7_1_and_the_null_sender_counts_too() {
    let mut client = Client::logged_in();
    client.messages_left = Some(2);
    let replies = client.send(concat!(
        "MAIL FROM:<alice@example.org>\r\n",
        "RSET\r\n",
        "MAIL FROM:<>\r\n",
        "RSET\r\n",
        "MAIL FROM:<alice@example.org>\r\n",
        "RCPT TO:<bob@example.org>\r\n",
        "MAIL FROM:<bob@example.org>\r\n",
    ));
    assert_eq!(replies[4], "451 4.7.1 Too many messages");
    assert_eq!(replies[5], "503 5.5.1 Bad sequence of commands: need MAIL command", "no transaction was started");
    assert!(replies[6].starts_with("553 5.7.1"), "a sender not owned is still refused as such: {}", replies[6]);
    assert!(client.messages.is_empty());
}

#[test]
fn past_the_recipient_limit_rcpt_to_is_451_4_7_1_and_the_accepted_ones_are_sent() {
    let mut client = Client::logged_in();
    client.recipients_left = Some(2);
    let replies = client.send(concat!(
        "MAIL FROM:<alice@example.org>\r\n",
        "RCPT TO:<bob@example.org>\r\n",
        "RCPT TO:<nobody@example.org>\r\n",
        "RCPT TO:<friend@elsewhere.net>\r\n",
        "RCPT TO:<carol@example.org>\r\n",
        "DATA\r\nhello\r\n.\r\n",
    ));
    assert_eq!(codes(&replies), ["250", "250", "550", "250", "451", "354", "250"]);
    assert_eq!(replies[4], "451 4.7.1 Too many recipients");
    let recipients: Vec<String> = client.messages[0].recipients.iter().map(|r| r.address.to_string()).collect();
    assert_eq!(recipients, ["bob@example.org", "friend@elsewhere.net"], "an unknown user costs nothing");
}

#[test]
fn an_authenticated_client_may_relay_and_local_users_are_still_checked() {
    let mut client = Client::logged_in();
    let replies = client.send(concat!(
        "MAIL FROM:<alice@example.org> BODY=8BITMIME AUTH=<alice@example.org>\r\n",
        "RCPT TO:<friend@elsewhere.net>\r\n",
        "RCPT TO:<nobody@example.org>\r\n",
        "RCPT TO:<bob@example.org>\r\n",
        "RCPT TO:<x@down.example>\r\n",
        "DATA\r\nhello\r\n.\r\n",
    ));
    assert_eq!(codes(&replies), ["250", "250", "550", "250", "451", "354", "250"]);
    let message = &client.messages[0];
    let recipients: Vec<(String, bool)> = message.recipients.iter().map(|r| (r.address.to_string(), r.local)).collect();
    assert_eq!(recipients, [("friend@elsewhere.net".to_owned(), false), ("bob@example.org".to_owned(), true)]);
    assert_eq!(message.authenticated, Some(alice()));
    assert_eq!(message.tls, Some(tls_info()));
}

#[test]
fn a_sender_verdict_without_a_pending_mail_is_503() {
    let mut session = Session::new(config(Mode::Submission), Some(tls_info()));
    let check = SenderCheck {
        user: alice(),
        address: Some("alice@example.org".parse().unwrap()),
        from: MailFrom {
            path: ReversePath::Null,
            body_type: BodyType::SevenBit,
            smtputf8: false,
            env_id: None,
            ret: None,
        },
    };
    assert!(session.sender_checked(check, Some(true)).to_string().starts_with("503 5.5.1"));
}
