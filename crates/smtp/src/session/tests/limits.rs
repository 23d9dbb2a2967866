//! The cap on errors per session (Postfix's hard error limit).

use super::*;

fn capped(max_errors: usize) -> Client {
    Client::new(SessionConfig { max_errors, ..config(Mode::Mx) }, None)
}

#[test]
fn the_error_that_reaches_the_cap_becomes_421_and_closes() {
    let mut client = capped(3);
    let replies = client.send("FOO\r\nEHLO c\r\nBAR\r\nNOOP\r\nBAZ\r\nNOOP\r\n");
    assert_eq!(
        replies,
        [
            "500 5.5.1 Command unrecognized",
            replies[1].as_str(),
            "500 5.5.1 Command unrecognized",
            "250 2.0.0 Ok",
            "421 4.7.0 Too many errors, closing connection"
        ]
    );
    assert!(client.closed);
}

#[test]
fn the_default_cap_is_20() {
    let mut client = Client::mx();
    let replies = client.send(&"FOO\r\n".repeat(25));
    assert_eq!(replies.len(), DEFAULT_MAX_ERRORS);
    assert!(replies[..19].iter().all(|r| r.starts_with("500")));
    assert_eq!(replies[19], "421 4.7.0 Too many errors, closing connection");
}

/// Replies from the directory's verdicts, the body and the spool count as well; the next command then
/// meets the 421.
#[test]
fn errors_from_every_step_count() {
    let mut client = capped(3);
    client.spool_down = true;
    let replies = client.send(concat!(
        "EHLO c\r\nMAIL FROM:<a@example.net>\r\n",
        "RCPT TO:<nobody@example.org>\r\n",
        "RCPT TO:<x@elsewhere.net>\r\n",
        "RCPT TO:<alice@example.org>\r\n",
        "DATA\r\nx\r\n.\r\n",
        "RSET\r\n",
    ));
    assert_eq!(codes(&replies), ["250", "250", "550", "554", "250", "354", "451", "421"]);
    assert!(client.closed);
}

#[test]
fn auth_failures_count_towards_the_error_cap_too() {
    let mut client = Client::new(SessionConfig { max_errors: 2, ..config(Mode::Submission) }, Some(tls_info()));
    let replies = client.send("EHLO c\r\nFOO\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHdyb25n\r\n");
    assert_eq!(replies[2], "421 4.7.0 Too many errors, closing connection");
}

#[test]
fn errors_inside_a_sasl_exchange_count() {
    let mut client = Client::new(SessionConfig { max_errors: 2, ..config(Mode::Submission) }, Some(tls_info()));
    let replies = client.send("EHLO c\r\nAUTH LOGIN\r\n*\r\nAUTH LOGIN\r\n!!\r\n");
    assert_eq!(replies[4], "421 4.7.0 Too many errors, closing connection");
}
