//! RFC 3502 MULTIAPPEND and RFC 4469 CATENATE through the whole stack, over a bare socket (imaplib has
//! neither): several messages are added in one transaction or not at all, an IDLE session hears of all of
//! them, and a message built from parts of another reads back byte for byte.

use mailbus_tests::TestStack;
use mailbus_tests::raw::RawClient;

/// A bare IMAP connection, logged in.
async fn logged_in(stack: &TestStack, user: &str, password: &str) -> RawClient {
    let mut client = RawClient::connect("127.0.0.1", stack.imap_addr()).await;
    client.line().await.expect("a greeting");
    client.send(format!("l LOGIN {user} \"{password}\"\r\n").as_bytes()).await;
    let login = client.line_starting("l ").await.expect("LOGIN answered");
    assert!(login.starts_with("l OK"), "{login}");
    client
}

/// Sends a command and returns its tagged answer (the untagged lines before it are dropped).
async fn answer(client: &mut RawClient, tag: &str, command: &[u8]) -> String {
    client.send(command).await;
    client.line_starting(&format!("{tag} ")).await.expect("an answer")
}

/// The MESSAGES count STATUS gives for INBOX.
async fn messages(client: &mut RawClient) -> String {
    client.send(b"st STATUS INBOX (MESSAGES)\r\n").await;
    let line = client.line_starting("* STATUS").await.expect("STATUS data");
    client.line_starting("st ").await.expect("STATUS answered");
    line
}

/// A message's octets over IMAP: INBOX selected, `UID FETCH uid BODY.PEEK[]`, its literal read exactly.
async fn body(client: &mut RawClient, uid: u32) -> Vec<u8> {
    assert!(answer(client, "s", b"s SELECT INBOX\r\n").await.starts_with("s OK"));
    client.send(format!("f UID FETCH {uid} BODY.PEEK[]\r\n").as_bytes()).await;
    let line = loop {
        let line = client.line().await.expect("FETCH data");
        if line.starts_with("* ") && line.contains(" FETCH (") {
            break line;
        }
    };
    let size: usize = line.rsplit_once('{').and_then(|(_, n)| n.trim_end_matches('}').parse().ok()).expect(&line);
    let octets = client.octets(size).await;
    assert!(client.line_starting("f ").await.expect("FETCH answered").starts_with("f OK"));
    octets
}

#[tokio::test(flavor = "multi_thread")]
async fn multiappend_adds_all_or_none_and_idle_hears_of_all() {
    let stack = TestStack::start().await;
    stack.add_account("mia@example.org", "mia pw").await;
    let quota = mailbus_proto::v1::UpdateAccountRequest {
        address: "mia@example.org".into(),
        quota_bytes: Some(4000),
        ..Default::default()
    };
    stack.directory().await.update_account(quota).await.unwrap();
    let mut idle = logged_in(&stack, "mia@example.org", "mia pw").await;
    assert!(answer(&mut idle, "s", b"s SELECT INBOX\r\n").await.starts_with("s OK"));
    idle.send(b"i IDLE\r\n").await;
    assert!(idle.line().await.expect("IDLE accepted").starts_with("+ "));

    let mut client = logged_in(&stack, "mia@example.org", "mia pw").await;
    let message = |n: u32| format!("From: mia@example.org\r\nSubject: number {n}\r\n\r\nBody {n}.\r\n");
    // Synchronizing literals, each given its `+`, then LITERAL+.
    let (one, two, three) = (message(1), message(2), message(3));
    client.send(format!("m1 APPEND INBOX (\\Seen) {{{}}}\r\n", one.len()).as_bytes()).await;
    assert!(client.line().await.expect("a continuation").starts_with("+ "));
    client.send(format!("{one} {{{}}}\r\n", two.len()).as_bytes()).await;
    assert!(client.line().await.expect("a continuation").starts_with("+ "));
    client.send(format!("{two} {{{}+}}\r\n{three}\r\n", three.len()).as_bytes()).await;
    let appended = client.line_starting("m1 ").await.expect("APPEND answered");
    let uidvalidity = appended.split(' ').nth(3).expect(&appended).to_owned();
    assert_eq!(appended, format!("m1 OK [APPENDUID {uidvalidity} 1:3] APPEND completed"));
    // One event after the commit: the IDLE session learns of all three at once.
    assert_eq!(idle.line_starting("* 3 EXISTS").await.as_deref(), Some("* 3 EXISTS"));
    assert_eq!(body(&mut client, 2).await, two.as_bytes());

    // Over quota (4000 octets): the first would fit, both would not, so neither is added.
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(2500));
    let command = format!("m2 APPEND INBOX {{{0}+}}\r\n{big} {{{0}+}}\r\n{big}\r\n", big.len());
    let refused = answer(&mut client, "m2", command.as_bytes()).await;
    assert!(refused.starts_with("m2 NO [OVERQUOTA]"), "{refused}");
    assert_eq!(messages(&mut client).await, "* STATUS INBOX (MESSAGES 3)");
    // No such mailbox: TRYCREATE, nothing added anywhere.
    let refused = answer(&mut client, "m3", b"m3 APPEND Nowhere {3+}\r\nx\r\n {3+}\r\ny\r\n\r\n").await;
    assert_eq!(refused, "m3 NO [TRYCREATE] no such mailbox");
    // A BADURL in the second message: the first is not added either.
    let command = format!("m4 APPEND INBOX {{{}+}}\r\n{one} CATENATE (URL \"/INBOX/;UID=99\")\r\n", one.len());
    assert!(answer(&mut client, "m4", command.as_bytes()).await.starts_with("m4 NO [BADURL /INBOX/;UID=99]"));
    assert_eq!(messages(&mut client).await, "* STATUS INBOX (MESSAGES 3)");
    idle.send(b"DONE\r\n").await;
    assert!(idle.line_starting("i ").await.expect("IDLE ended").starts_with("i OK"));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_catenated_message_reads_back_byte_exact() {
    let stack = TestStack::start().await;
    stack.add_account("ned@example.org", "ned pw").await;
    stack.add_account("oz@example.org", "oz pw").await;
    let header = "From: ned@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n\
                  Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n";
    let source = format!(
        "{header}--b\r\nContent-Type: text/plain\r\n\r\npart one\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
         part two\r\n--b--\r\n"
    );
    let mut client = logged_in(&stack, "ned@example.org", "ned pw").await;
    let command = format!("a APPEND INBOX {{{}+}}\r\n{source}\r\n", source.len());
    let appended = answer(&mut client, "a", command.as_bytes()).await;
    let uidvalidity = appended.split(' ').nth(3).expect(&appended).to_owned();
    assert_eq!(appended, format!("a OK [APPENDUID {uidvalidity} 1] APPEND completed"));

    // The header of the first message, new text, and its second part's body, the last one named by an
    // absolute URL (this user, this server), with a plain message after it in the same APPEND.
    let text = "--b\r\nContent-Type: text/plain\r\n\r\nnew text\r\n--b\r\nContent-Type: text/plain\r\n\r\n";
    let url = format!("imap://ned%40example.org@mx.test/INBOX;UIDVALIDITY={uidvalidity}/;UID=1/;SECTION=2");
    let command = format!(
        "c APPEND INBOX (\\Draft) CATENATE (URL \"/INBOX;UIDVALIDITY={uidvalidity}/;UID=1/;SECTION=HEADER\" \
         TEXT {{{}+}}\r\n{text} URL \"{url}\" TEXT {{9+}}\r\n\r\n--b--\r\n) {{5+}}\r\nlast\n\r\n",
        text.len()
    );
    let catenated = answer(&mut client, "c", command.as_bytes()).await;
    assert_eq!(catenated, format!("c OK [APPENDUID {uidvalidity} 2:3] APPEND completed"));
    let expected = format!("{header}{text}part two\r\n--b--\r\n");
    assert_eq!(String::from_utf8(body(&mut client, 2).await).unwrap(), expected);
    assert_eq!(body(&mut client, 3).await, b"last\n");

    // A URL that does not resolve: the wrong UIDVALIDITY, a part that is not there, another account's
    // mailbox (oz's INBOX has a UID 1 too), another server.
    let oz = logged_in(&stack, "oz@example.org", "oz pw").await;
    let mut oz = oz;
    answer(&mut oz, "a", b"a APPEND INBOX {6+}\r\nSecret\r\n").await;
    for url in [
        format!("/INBOX;UIDVALIDITY={}/;UID=1", uidvalidity.parse::<u64>().unwrap() + 1),
        format!("/INBOX;UIDVALIDITY={uidvalidity}/;UID=1/;SECTION=7"),
        "imap://oz@example.org@mx.test/INBOX/;UID=1".to_owned(),
        "imap://ned@example.org@elsewhere.test/INBOX/;UID=1".to_owned(),
    ] {
        let command = format!("d APPEND INBOX CATENATE (TEXT {{2+}}\r\nx\n URL \"{url}\")\r\n");
        let refused = answer(&mut client, "d", command.as_bytes()).await;
        assert_eq!(refused, format!("d NO [BADURL {url}] CATENATE URL does not resolve"));
    }
    assert_eq!(messages(&mut client).await, "* STATUS INBOX (MESSAGES 3)");
    stack.stop().await;
}
