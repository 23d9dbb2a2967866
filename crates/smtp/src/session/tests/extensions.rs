//! EHLO keywords and the MAIL/RCPT parameters: SIZE, 8BITMIME, SMTPUTF8, DSN.

use super::*;

fn keywords(client: &mut Client) -> Vec<String> {
    let replies = client.send("EHLO c.example\r\n");
    replies[0].split("\r\n").skip(1).map(|line| line[4..].to_owned()).collect()
}

#[test]
fn ehlo_keywords_depend_on_mode_tls_and_the_development_flag() {
    let base = ["PIPELINING", "SIZE 1000", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"];
    let with = |extra: &[&str]| -> Vec<String> {
        base[..2].iter().chain(extra).chain(&base[2..]).map(|s| s.to_string()).collect()
    };
    assert_eq!(keywords(&mut Client::mx()), with(&["STARTTLS"]));
    assert_eq!(keywords(&mut Client::new(config(Mode::Mx), Some(tls_info()))), with(&[]));
    let no_cert = SessionConfig { starttls_available: false, ..config(Mode::Mx) };
    assert_eq!(keywords(&mut Client::new(no_cert, None)), with(&[]));
    // Port 587 before STARTTLS: no AUTH; port 465, or 587 after STARTTLS: AUTH and no STARTTLS.
    assert_eq!(keywords(&mut Client::new(config(Mode::Submission), None)), with(&["STARTTLS"]));
    assert_eq!(keywords(&mut Client::submission()), with(&["AUTH PLAIN LOGIN"]));
    let dev = SessionConfig { plaintext_auth: true, ..config(Mode::Submission) };
    assert_eq!(keywords(&mut Client::new(dev, None)), with(&["STARTTLS", "AUTH PLAIN LOGIN"]));
    // The development flag never makes port 25 offer AUTH.
    let dev_mx = SessionConfig { plaintext_auth: true, ..config(Mode::Mx) };
    assert_eq!(keywords(&mut Client::new(dev_mx, Some(tls_info()))), with(&[]));
}

#[test]
fn mail_parameters_need_ehlo() {
    let mut client = Client::mx();
    let replies = client.send(
        "HELO c\r\nMAIL FROM:<a@example.net> BODY=8BITMIME\r\nMAIL FROM:<a@example.net> SIZE=10\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org> NOTIFY=NEVER\r\nRCPT TO:<alice@example.org>\r\n",
    );
    assert_eq!(replies[1], "555 5.5.4 MAIL parameters need EHLO");
    assert_eq!(replies[2], "555 5.5.4 MAIL parameters need EHLO");
    assert_eq!(replies[3], "250 2.1.0 Ok");
    assert_eq!(replies[4], "555 5.5.4 RCPT parameters need EHLO");
    assert_eq!(replies[5], "250 2.1.5 Ok");
}

#[test]
fn parameters_we_do_not_advertise_are_555() {
    for parameter in [
        "BODY=BINARYMIME",
        "REQUIRETLS",
        "MT-PRIORITY=3",
        "HOLDFOR=60",
        "TRANSID=<x@y>",
        "BY=120;R",
        "AUTH=<>",
        "XFOO=1",
    ] {
        let mut client = Client::mx();
        let replies = client.send(&format!("EHLO c\r\nMAIL FROM:<a@example.net> {parameter}\r\n"));
        assert!(
            replies[1].starts_with("555 5.5.4") || replies[1].starts_with("501 5.5.4"),
            "{parameter}: {}",
            replies[1]
        );
    }
    let mut client = Client::mx();
    let replies = client.send("EHLO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org> CONNEG\r\n");
    assert_eq!(replies[2], "555 5.5.4 RCPT parameter not supported");
}

#[test]
fn body_8bitmime_is_carried() {
    let mut client = Client::mx();
    client.send("EHLO c\r\nMAIL FROM:<a@example.net> BODY=8BITMIME\r\nRCPT TO:<alice@example.org>\r\n");
    client.send_bytes("DATA\r\nGrüße\r\n.\r\n".as_bytes());
    assert_eq!(client.messages[0].from.body_type, BodyType::EightBitMime);
    assert_eq!(client.messages[0].body, "Grüße\r\n".as_bytes());
}

#[test]
fn utf8_addresses_need_smtputf8_on_mail() {
    let mut client = Client::mx();
    let replies = client.send(concat!(
        "EHLO c\r\n",
        "MAIL FROM:<jürgen@bücher.example>\r\n",
        "MAIL FROM:<a@example.net>\r\n",
        "RCPT TO:<jörg@example.org>\r\n",
        "RSET\r\n",
        "MAIL FROM:<jürgen@bücher.example> SMTPUTF8\r\n",
        "RCPT TO:<jörg@example.org>\r\n",
        "RCPT TO:<alice@example.org>\r\n",
        "DATA\r\nx\r\n.\r\n",
    ));
    assert_eq!(replies[1], "553 5.6.7 Non-ASCII addresses need the SMTPUTF8 parameter");
    assert_eq!(replies[2], "250 2.1.0 Ok");
    assert_eq!(replies[3], "553 5.6.7 Non-ASCII addresses need the SMTPUTF8 parameter");
    assert_eq!(codes(&replies[4..]), ["250", "250", "250", "250", "354", "250"]);
    let message = &client.messages[0];
    assert!(message.from.smtputf8);
    assert_eq!(message.from.path, ReversePath::Address("jürgen@bücher.example".parse().unwrap()));
    assert_eq!(message.recipients[0].address.local_part(), "jörg");
}

#[test]
fn smtputf8_is_off_unless_asked_for() {
    let mut client = Client::mx();
    client.send("EHLO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nx\r\n.\r\n");
    assert!(!client.messages[0].from.smtputf8);
}

#[test]
fn dsn_parameters_are_carried_into_the_message() {
    let mut client = Client::mx();
    let replies = client.send(concat!(
        "EHLO c\r\n",
        "MAIL FROM:<a@example.net> RET=HDRS ENVID=QQ314159\r\n",
        "RCPT TO:<alice@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Alice+2B1@example.org\r\n",
        "RCPT TO:<bob@example.org> NOTIFY=NEVER\r\n",
        "RCPT TO:<carol@example.org>\r\n",
        "DATA\r\nx\r\n.\r\n",
    ));
    assert_eq!(codes(&replies), ["250", "250", "250", "250", "250", "354", "250"]);
    let message = &client.messages[0];
    assert_eq!(message.from.ret, Some(DsnReturn::Headers));
    assert_eq!(message.from.env_id.as_deref(), Some("QQ314159"));
    let [alice, bob, carol] = &message.recipients[..] else { panic!("{:?}", message.recipients) };
    assert_eq!(alice.notify, smtp_proto::RCPT_NOTIFY_SUCCESS | smtp_proto::RCPT_NOTIFY_FAILURE);
    assert_eq!(alice.orcpt.as_deref(), Some("Alice+1@example.org"));
    assert_eq!(bob.notify, smtp_proto::RCPT_NOTIFY_NEVER);
    assert_eq!((carol.notify, carol.orcpt.as_deref()), (0, None));

    let mut client = Client::mx();
    let replies = client
        .send("EHLO c\r\nMAIL FROM:<a@example.net> RET=FULL\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nx\r\n.\r\n");
    assert_eq!(codes(&replies), ["250", "250", "250", "354", "250"]);
    assert_eq!(client.messages[0].from.ret, Some(DsnReturn::Full));
}

#[test]
fn notify_never_stands_alone() {
    for notify in ["NEVER,SUCCESS", "SUCCESS,NEVER", "NEVER,DELAY", "FAILURE,NEVER"] {
        let mut client = Client::mx();
        let replies = client
            .send(&format!("EHLO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org> NOTIFY={notify}\r\n"));
        assert!(replies[2].starts_with("501 5.5.4"), "{notify}: {}", replies[2]);
    }
}
