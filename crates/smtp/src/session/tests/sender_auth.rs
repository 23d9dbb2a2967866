//! SPF at MAIL FROM on port 25 (RFC 7208), by policy, and the replies to an enforced DMARC failure.

use super::*;

fn mx(spf: Enforcement, verdict: SpfVerdict) -> Client {
    let mut client = Client::new(SessionConfig { spf, ..config(Mode::Mx) }, None);
    client.spf_verdict = Some(verdict);
    client
}

const TRANSACTION: &str = "EHLO c.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\n";

#[test]
fn mail_from_waits_for_spf_with_the_helo_name_and_the_sender() {
    let mut client = mx(Enforcement::Tag, SpfVerdict::Pass);
    assert_eq!(codes(&client.send(TRANSACTION)), ["250", "250", "250"]);
    let check = &client.spf_checks[0];
    assert_eq!(check.helo, "c.example");
    assert_eq!(check.sender, Some("a@example.net".parse().unwrap()));
}

#[test]
fn the_null_sender_is_checked_by_its_helo_identity() {
    let mut client = mx(Enforcement::Enforce, SpfVerdict::Fail);
    let replies = client.send("EHLO bounce.example\r\nMAIL FROM:<>\r\n");
    assert_eq!(client.spf_checks[0].sender, None);
    assert_eq!(
        replies[1],
        "550 5.7.23 <postmaster@bounce.example>: SPF validation failed: the domain does not designate this client"
    );
}

#[test]
fn tagging_accepts_every_result() {
    for verdict in [
        SpfVerdict::None,
        SpfVerdict::Neutral,
        SpfVerdict::Pass,
        SpfVerdict::Fail,
        SpfVerdict::SoftFail,
        SpfVerdict::TempError,
        SpfVerdict::PermError,
    ] {
        let mut client = mx(Enforcement::Tag, verdict);
        let replies = client.send(&format!("{TRANSACTION}DATA\r\nhi\r\n.\r\n"));
        assert_eq!(codes(&replies), ["250", "250", "250", "354", "250"], "{verdict}");
    }
}

#[test]
fn enforcing_refuses_fail_and_defers_temperror_only() {
    let mut client = mx(Enforcement::Enforce, SpfVerdict::Fail);
    let replies = client.send(TRANSACTION);
    assert_eq!(
        replies[1],
        "550 5.7.23 <a@example.net>: SPF validation failed: the domain does not designate this client"
    );
    assert_eq!(replies[2], "503 5.5.1 Bad sequence of commands: need MAIL command");

    let mut client = mx(Enforcement::Enforce, SpfVerdict::TempError);
    let replies = client.send(TRANSACTION);
    assert_eq!(replies[1], "451 4.7.24 <a@example.net>: SPF validation error, try again later");

    for verdict in [SpfVerdict::SoftFail, SpfVerdict::Neutral, SpfVerdict::PermError, SpfVerdict::None] {
        let mut client = mx(Enforcement::Enforce, verdict);
        assert_eq!(codes(&client.send(TRANSACTION)), ["250", "250", "250"], "{verdict}");
    }
}

#[test]
fn a_refused_sender_leaves_the_session_ready_for_another() {
    let mut client = mx(Enforcement::Enforce, SpfVerdict::Fail);
    client.send(TRANSACTION);
    client.spf_verdict = Some(SpfVerdict::Pass);
    let replies = client.send("MAIL FROM:<b@example.com>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nhi\r\n.\r\n");
    assert_eq!(codes(&replies), ["250", "250", "354", "250"]);
    assert_eq!(client.messages.len(), 1);
}

#[test]
fn off_and_submission_never_ask() {
    let mut client = mx(Enforcement::Off, SpfVerdict::Fail);
    assert_eq!(codes(&client.send(TRANSACTION)), ["250", "250", "250"]);
    assert!(client.spf_checks.is_empty());

    let mut client =
        Client::new(SessionConfig { spf: Enforcement::Enforce, ..config(Mode::Submission) }, Some(tls_info()));
    client.send("EHLO c.example\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==\r\n");
    assert_eq!(codes(&client.send("MAIL FROM:<alice@example.org>\r\n")), ["250"]);
    assert!(client.spf_checks.is_empty());
}

#[test]
fn dmarc_refusals_are_counted_errors() {
    let mut client = Client::new(SessionConfig { max_errors: 2, ..config(Mode::Mx) }, None);
    assert_eq!(
        client.session.dmarc_rejected("example.net").to_string(),
        "550 5.7.1 Email rejected per DMARC policy for example.net"
    );
    assert_eq!(
        client.session.dmarc_deferred("example.net").to_string(),
        "451 4.7.1 DMARC policy of example.net could not be evaluated, try again later"
    );
    assert_eq!(client.send("NOOP\r\n"), ["421 4.7.0 Too many errors, closing connection"]);
}

#[test]
fn policies_parse_from_settings_text() {
    assert_eq!("TAG".parse(), Ok(Enforcement::Tag));
    assert_eq!("enforce".parse(), Ok(Enforcement::Enforce));
    assert_eq!("off".parse(), Ok(Enforcement::Off));
    assert!("reject".parse::<Enforcement>().is_err());
}
