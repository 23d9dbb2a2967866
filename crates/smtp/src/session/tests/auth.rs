//! AUTH (RFC 4954): PLAIN and LOGIN, with and without initial responses, cancels, bad input, throttling.

use super::*;

const ALICE_PLAIN: &str = "AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==";
const ALICE_WRONG_PLAIN: &str = "AGFsaWNlQGV4YW1wbGUub3JnAHdyb25n";

fn greeted() -> Client {
    let mut client = Client::submission();
    client.send("EHLO c.example\r\n");
    client
}

#[test]
fn plain_with_an_initial_response() {
    let mut client = greeted();
    assert_eq!(client.send(&format!("AUTH PLAIN {ALICE_PLAIN}\r\n")), ["235 2.7.0 Authentication successful"]);
    assert_eq!(client.session.authenticated_user(), Some(&alice()));
    assert_eq!(client.logins[0].username, "alice@example.org");
    assert_eq!(
        format!("{:?}", client.logins[0]),
        "Credentials { username: \"alice@example.org\", password: Secret(***) }"
    );
}

#[test]
fn plain_after_an_empty_challenge() {
    let mut client = greeted();
    assert_eq!(client.send("AUTH PLAIN\r\n"), ["334"]);
    assert_eq!(client.session.expects(), Expect::SaslResponse);
    assert_eq!(client.send(&format!("{ALICE_PLAIN}\r\n")), ["235 2.7.0 Authentication successful"]);
    assert_eq!(client.session.expects(), Expect::Command);
}

#[test]
fn the_334_challenge_is_a_bare_code_and_space_on_the_wire() {
    let mut session = Session::new(config(Mode::Submission), Some(tls_info()));
    session.handle(Ok(Request::Ehlo { host: "c".into() }));
    let Action::Reply(reply) =
        session.handle(Ok(Request::Auth { mechanism: smtp_proto::AUTH_PLAIN, initial_response: String::new() }))
    else {
        panic!()
    };
    assert_eq!(reply.to_bytes(), b"334 \r\n");
}

#[test]
fn plain_initial_response_equals_sign_is_an_empty_response() {
    let mut client = greeted();
    assert_eq!(client.send("AUTH PLAIN =\r\n"), ["535 5.7.8 Authentication credentials invalid"]);
    assert!(client.logins.is_empty());
}

#[test]
fn login_with_and_without_an_initial_user_name() {
    let mut client = greeted();
    let replies = client.send("AUTH LOGIN\r\nYWxpY2VAZXhhbXBsZS5vcmc=\r\nc2VjcmV0\r\n");
    assert_eq!(replies, ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "235 2.7.0 Authentication successful"]);

    let mut client = greeted();
    let replies = client.send("AUTH LOGIN YWxpY2VAZXhhbXBsZS5vcmc=\r\nc2VjcmV0\r\n");
    assert_eq!(replies, ["334 UGFzc3dvcmQ6", "235 2.7.0 Authentication successful"]);
    assert_eq!(client.logins[0].password.expose(), "secret");
}

#[test]
fn the_exchange_may_arrive_split_anywhere() {
    let input = "AUTH LOGIN\r\nYWxpY2VAZXhhbXBsZS5vcmc=\r\nc2VjcmV0\r\nNOOP\r\n";
    for split in 0..=input.len() {
        let mut client = greeted();
        let mut replies = client.send(&input[..split]);
        replies.extend(client.send(&input[split..]));
        assert_eq!(
            replies,
            ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "235 2.7.0 Authentication successful", "250 2.0.0 Ok"],
            "split {split}"
        );
    }
}

#[test]
fn a_star_cancels_with_501() {
    let mut client = greeted();
    assert_eq!(client.send("AUTH LOGIN\r\n*\r\n"), ["334 VXNlcm5hbWU6", "501 5.0.0 Authentication cancelled"]);
    assert_eq!(client.session.expects(), Expect::Command);
    assert_eq!(
        client.send("AUTH PLAIN\r\n*\r\nNOOP\r\n"),
        ["334", "501 5.0.0 Authentication cancelled", "250 2.0.0 Ok"]
    );
    assert!(client.logins.is_empty());
}

#[test]
fn bad_base64_is_501_5_5_2() {
    let mut client = greeted();
    assert_eq!(client.send("AUTH PLAIN %%%\r\n"), ["501 5.5.2 Invalid base64 data"]);
    assert_eq!(client.send("AUTH LOGIN\r\nnot base64!\r\n"), ["334 VXNlcm5hbWU6", "501 5.5.2 Invalid base64 data"]);
    assert!(client.logins.is_empty());
    // Neither counts as a failed login.
    assert_eq!(client.send(&format!("AUTH PLAIN {ALICE_PLAIN}\r\n")), ["235 2.7.0 Authentication successful"]);
}

#[test]
fn an_over_long_sasl_line_is_500_5_5_6_and_its_tail_is_skipped() {
    let mut client = greeted();
    client.send("AUTH PLAIN\r\n");
    let mut line = vec![b'A'; crate::command::MAX_SASL_LINE + 10];
    line.extend_from_slice(b"\r\nNOOP\r\n");
    assert_eq!(client.send_bytes(&line), ["500 5.5.6 Authentication Exchange line is too long", "250 2.0.0 Ok"]);
}

#[test]
fn plain_authzid_must_be_empty_or_the_authcid() {
    // authzid bob, authcid alice: acting as another user is refused without asking the directory.
    let mut client = greeted();
    let replies = client.send("AUTH PLAIN Ym9iQGV4YW1wbGUub3JnAGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==\r\n");
    assert_eq!(replies, ["535 5.7.8 Authentication credentials invalid"]);
    assert!(client.logins.is_empty());
    let replies = client.send("AUTH PLAIN YWxpY2VAZXhhbXBsZS5vcmcAYWxpY2VAZXhhbXBsZS5vcmcAc2VjcmV0\r\n");
    assert_eq!(replies, ["235 2.7.0 Authentication successful"]);
}

#[test]
fn malformed_plain_messages_fail() {
    // No second NUL; empty authcid.
    for response in ["AGFsaWNlQGV4YW1wbGUub3Jn", "AABzZWNyZXQ="] {
        let mut client = greeted();
        assert_eq!(
            client.send(&format!("AUTH PLAIN {response}\r\n")),
            ["535 5.7.8 Authentication credentials invalid"]
        );
    }
}

#[test]
fn wrong_credentials_are_535_and_the_third_failure_closes_with_421() {
    let mut client = greeted();
    let wrong = format!("AUTH PLAIN {ALICE_WRONG_PLAIN}\r\n");
    assert_eq!(client.send(&wrong), ["535 5.7.8 Authentication credentials invalid"]);
    assert_eq!(
        client.send("AUTH LOGIN\r\nYWxpY2VAZXhhbXBsZS5vcmc=\r\nd3Jvbmc=\r\n")[2],
        "535 5.7.8 Authentication credentials invalid"
    );
    assert_eq!(client.send(&wrong), ["421 4.7.0 Too many authentication failures, closing connection"]);
    assert!(client.closed);
}

#[test]
fn an_unavailable_directory_is_454_and_no_failure() {
    let mut client = Client::new(SessionConfig { max_auth_failures: 1, ..config(Mode::Submission) }, Some(tls_info()));
    client.send("EHLO c\r\n");
    assert_eq!(
        client.send("AUTH PLAIN AGRvd25AZXhhbXBsZS5vcmcAeA==\r\n"),
        ["454 4.7.0 Temporary authentication failure"]
    );
    assert_eq!(
        client.send("AUTH LOGIN ZG93bkBleGFtcGxlLm9yZw==\r\nd3Jvbmc=\r\n")[1],
        "454 4.7.0 Temporary authentication failure"
    );
    assert_eq!(client.send(&format!("AUTH PLAIN {ALICE_PLAIN}\r\n")), ["235 2.7.0 Authentication successful"]);
}

#[test]
fn a_throttled_address_gets_454_and_the_session_limit_is_not_spent() {
    let mut client = Client::new(SessionConfig { max_auth_failures: 1, ..config(Mode::Submission) }, Some(tls_info()));
    client.send("EHLO c\r\n");
    let throttled = "454 4.7.0 Too many failed authentications from your address, try again later";
    assert_eq!(client.send("AUTH PLAIN AGd1ZXNzZWRAZXhhbXBsZS5vcmcAc2VjcmV0\r\n"), [throttled]);
    assert_eq!(client.send("AUTH PLAIN AGd1ZXNzZWRAZXhhbXBsZS5vcmcAc2VjcmV0\r\n"), [throttled]);
    assert!(!client.closed, "a refusal unchecked is not a failed AUTH");
    assert_eq!(client.send(&format!("AUTH PLAIN {ALICE_PLAIN}\r\n")), ["235 2.7.0 Authentication successful"]);
}

#[test]
fn auth_refusals() {
    let mut client = Client::submission();
    assert_eq!(client.send("AUTH PLAIN\r\n"), ["503 5.5.1 Bad sequence of commands: send EHLO first"]);
    assert_eq!(client.send("HELO c\r\nAUTH PLAIN\r\n")[1], "503 5.5.1 Bad sequence of commands: send EHLO first");
    client.send("EHLO c\r\n");
    assert_eq!(client.send("AUTH CRAM-MD5\r\n"), ["504 5.5.4 Unrecognized authentication type"]);
    assert_eq!(client.send("AUTH XYZZY\r\n"), ["504 5.5.4 Unrecognized authentication type"]);
    assert!(client.send("AUTH\r\n")[0].starts_with("501 5.5.4"));
    client.send(&format!("AUTH PLAIN {ALICE_PLAIN}\r\n"));
    assert_eq!(client.send("AUTH PLAIN\r\n"), ["503 5.5.1 Bad sequence of commands: already authenticated"]);
    // RFC 4954 §4: EHLO does not forget the authentication.
    client.send("EHLO c\r\n");
    assert_eq!(client.session.authenticated_user(), Some(&alice()));

    let mut client = Client::mx();
    client.send("EHLO c\r\n");
    assert_eq!(client.send(&format!("AUTH PLAIN {ALICE_PLAIN}\r\n")), ["503 5.5.1 Error: authentication not enabled"]);
    assert!(client.logins.is_empty());
}

#[test]
fn auth_inside_a_transaction_is_503() {
    let dev = SessionConfig { plaintext_auth: true, ..config(Mode::Submission) };
    let mut client = Client::new(dev, None);
    let replies =
        client.send(&format!("EHLO c\r\nAUTH PLAIN {ALICE_PLAIN}\r\nMAIL FROM:<alice@example.org>\r\nAUTH LOGIN\r\n"));
    assert_eq!(replies[3], "503 5.5.1 Bad sequence of commands: MAIL transaction in progress");
}
