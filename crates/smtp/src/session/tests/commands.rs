//! Every command in every state, and the commands that are the same everywhere.

use super::*;

/// How to reach each state of an MX session, and its name for failure messages.
const STATES: [(&str, &str); 5] = [
    ("connected", ""),
    ("greeted", "EHLO c.example\r\n"),
    ("mail", "EHLO c.example\r\nMAIL FROM:<a@example.net>\r\n"),
    ("rcpt", "EHLO c.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\n"),
    ("chunking", "EHLO c.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nBDAT 3\r\nabc"),
];

/// Each command, and the code it draws in each of [`STATES`].
const MATRIX: &[(&str, [&str; 5])] = &[
    ("EHLO x.example\r\n", ["250", "250", "250", "250", "250"]),
    ("HELO x.example\r\n", ["250", "250", "250", "250", "250"]),
    ("MAIL FROM:<b@example.net>\r\n", ["503", "250", "503", "503", "503"]),
    ("RCPT TO:<bob@example.org>\r\n", ["503", "503", "250", "250", "503"]),
    ("DATA\r\n", ["503", "503", "554", "354", "503"]),
    ("BDAT 2 LAST\r\nxy", ["503", "503", "554", "250", "250"]),
    ("RSET\r\n", ["250", "250", "250", "250", "250"]),
    ("NOOP\r\n", ["250", "250", "250", "250", "250"]),
    ("VRFY alice\r\n", ["252", "252", "252", "252", "252"]),
    ("HELP\r\n", ["214", "214", "214", "214", "214"]),
    ("EXPN staff\r\n", ["502", "502", "502", "502", "502"]),
    ("ETRN example.org\r\n", ["502", "502", "502", "502", "502"]),
    ("LHLO x.example\r\n", ["502", "502", "502", "502", "502"]),
    ("FOO bar\r\n", ["500", "500", "500", "500", "500"]),
    ("MAIL FROM:nonsense\r\n", ["501", "501", "501", "501", "501"]),
    ("STARTTLS\r\n", ["503", "220", "503", "503", "503"]),
    ("AUTH PLAIN\r\n", ["503", "503", "503", "503", "503"]),
    ("QUIT\r\n", ["221", "221", "221", "221", "221"]),
];

#[test]
fn every_command_in_every_state_of_an_mx_session() {
    for (command, expected) in MATRIX {
        for ((state, prefix), code) in STATES.iter().zip(expected) {
            let mut client = Client::mx();
            let before = client.send(prefix);
            assert!(before.iter().all(|r| r.starts_with('2')), "reaching {state}: {before:?}");
            let replies = client.send(command);
            assert_eq!(codes(&replies), [*code], "{command:?} in state {state}: {replies:?}");
        }
    }
}

/// After each command the session is where the RFC says: a follow-up shows it.
#[test]
fn state_after_reset_commands() {
    for reset in ["RSET\r\n", "EHLO again.example\r\n", "HELO again.example\r\n"] {
        for (state, prefix) in &STATES[1..] {
            let mut client = Client::mx();
            client.send(prefix);
            client.send(reset);
            // A new transaction may start at once, and nothing of the old one is left.
            let replies = client.send("MAIL FROM:<b@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nx\r\n.\r\n");
            assert_eq!(codes(&replies), ["250", "250", "354", "250"], "{reset:?} in {state}");
            assert_eq!(client.messages.len(), 1);
            assert_eq!(client.messages[0].recipients.len(), 1, "{reset:?} in {state}");
        }
    }
}

#[test]
fn misc_commands_have_their_fixed_replies() {
    let mut client = Client::mx();
    let replies = client.send("NOOP\r\nVRFY alice\r\nHELP\r\nEXPN list\r\nFOO\r\nQUIT\r\n");
    assert_eq!(replies[0], "250 2.0.0 Ok");
    assert_eq!(replies[1], "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
    assert_eq!(replies[2], "214 2.0.0 See RFC 5321");
    assert_eq!(replies[3], "502 5.5.1 EXPN command not implemented");
    assert_eq!(replies[4], "500 5.5.1 Command unrecognized");
    assert_eq!(replies[5], "221 2.0.0 Bye");
    assert!(client.closed);
}

#[test]
fn out_of_order_commands_are_503_and_the_session_goes_on() {
    let mut client = Client::mx();
    let replies = client.send(
        "MAIL FROM:<a@example.net>\r\nEHLO c\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nMAIL FROM:<a@example.net>\r\nMAIL FROM:<a@example.net>\r\nRSET\r\nRCPT TO:<alice@example.org>\r\n",
    );
    assert_eq!(replies[0], "503 5.5.1 Bad sequence of commands: send HELO or EHLO first");
    assert!(replies[2].starts_with("503 5.5.1"));
    assert!(replies[3].starts_with("503 5.5.1"));
    assert_eq!(replies[4], "250 2.1.0 Ok");
    assert_eq!(replies[5], "503 5.5.1 Bad sequence of commands: nested MAIL command");
    assert_eq!(replies[6], "250 2.0.0 Ok");
    assert_eq!(replies[7], "503 5.5.1 Bad sequence of commands: need MAIL command");
}

#[test]
fn an_over_long_command_line_is_500_5_5_2_and_the_next_line_is_read() {
    let mut client = Client::mx();
    let mut line = b"EHLO ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 600));
    line.extend_from_slice(b"\r\nNOOP\r\n");
    assert_eq!(client.send_bytes(&line), ["500 5.5.2 Line too long", "250 2.0.0 Ok"]);
}

#[test]
fn the_greeting_and_helo_carry_no_enhanced_code() {
    let mut client = Client::mx();
    assert_eq!(client.session.greeting().to_string(), "220 mx.example.org ESMTP mailbus");
    assert_eq!(client.send("HELO c.example\r\n"), ["250 mx.example.org Hello c.example"]);
}

#[test]
fn a_verdict_for_a_transaction_that_is_gone_is_503() {
    let mut session = Session::new(config(Mode::Mx), None);
    session.handle(Ok(Request::Ehlo { host: "c".into() }));
    let check = RecipientCheck {
        recipient: Recipient { address: "alice@example.org".parse().unwrap(), notify: 0, orcpt: None, local: true },
    };
    assert!(session.recipient_checked(check, Verdict::Local).to_string().starts_with("503 5.5.1"));
    assert!(
        matches!(session.data_received(crate::data::DataProgress::Complete), DataOutcome::Reply(r) if r.code == 503)
    );
    assert!(matches!(session.chunk_received(session.chunk_reader()), DataOutcome::Reply(r) if r.code == 503));
    assert!(matches!(session.handle_sasl_response(Ok(b"*\r\n".to_vec())), Action::Reply(r) if r.code == 503));
    assert!(matches!(session.authenticated(Some(alice())), Action::Reply(r) if r.code == 503));
    assert_eq!(session.authenticated_user(), None);
}
