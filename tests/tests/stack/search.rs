//! SEARCH BODY and TEXT (RFC 9051 §6.4.4) and Email/query's body and text (RFC 8621 §4.4.1) as
//! case-insensitive substrings of the decoded text, with Python's imaplib against the whole stack; and the
//! start-up backfill that gives messages stored before that text existed their text.

use mailbus::roles::Role;
use mailbus_proto::v1::{self as pb, search_key::Key};
use mailbus_tests::TestStack;
use mailbus_tests::clients::imap_session;
use serde_json::{Value, json};

use crate::PATIENCE;

const PLAIN: &str = "From: a@example.net\r\nSubject: Delivery report\r\n\r\n\
Your message was UNDELIVERABLE to the recipient.\r\nSee ticket file_name.\r\n";
const QUOTED_PRINTABLE: &str = "From: b@example.net\r\nSubject: Postcard\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Sch=C3=B6ne Gr=C3=BC=C3=9Fe vom Boden=\r\nsee\r\n";
/// "The treasure is under the old oak tree, see file-name.\r\n"
const BASE64: &str = "From: c@example.net\r\nSubject: Map\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\
Content-Transfer-Encoding: base64\r\n\r\nVGhlIHRyZWFzdXJlIGlzIHVuZGVyIHRoZSBvbGQgb2FrIHRyZWUsIHNlZSBmaWxlLW5hbWUuDQo=\r\n";
/// Latin-1 octets: the session script sends an appended message's characters as Latin-1.
const LATIN1: &str = "From: d@example.net\r\nSubject: Dessert\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nUne CR\u{c8}ME br\u{fb}l\u{e9}e.\r\n";
const HEADER_ONLY: &str = "From: e@example.net\r\nSubject: Support\r\nX-Ticket: ZX-4471-Q\r\n\r\nNothing to see.\r\n";
const BOUNCE: &str = "From: MAILER-DAEMON@example.org\r\nSubject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
Final-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\
--b1\r\nContent-Type: message/rfc822\r\n\r\nFrom: f@example.org\r\nTo: gone@example.net\r\n\
Subject: Quarterly Figures for Marketing\r\n\r\nThe numbers are attached.\r\n--b1--\r\n";

fn found(results: &[Value], index: usize) -> String {
    assert_eq!(results[index][0], "OK", "step {index}: {}", results[index]);
    results[index][1].as_array().expect("data")[0].as_str().unwrap_or_default().trim().to_owned()
}

/// The lines of a raw step's answer, which must end in OK.
fn raw_found(results: &[Value], index: usize) -> String {
    let lines: Vec<&str> = results[index][1].as_array().expect("lines").iter().filter_map(Value::as_str).collect();
    assert!(lines.last().is_some_and(|l| l.contains(" OK ")), "step {index}: {lines:?}");
    lines.iter().find_map(|l| l.strip_prefix("* SEARCH")).unwrap_or_default().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn body_and_text_find_case_insensitive_substrings_of_the_decoded_text() {
    let stack = TestStack::start().await;
    let account = stack.add_account("sam@example.org", "sam pw").await;
    // Step 0 is the greeting, 1 the login, 2 to 7 the appends.
    let mut steps = vec![json!(["login", "sam@example.org", "sam pw"])];
    for message in [PLAIN, QUOTED_PRINTABLE, BASE64, LATIN1, HEADER_ONLY, BOUNCE] {
        steps.push(json!(["append", "INBOX", null, null, message]));
    }
    steps.extend([
        json!(["select", "INBOX"]),                                           // 8
        json!(["search", null, "BODY", "ndeliv"]),                            // 9
        json!(["search", null, "BODY", "bodensee"]),                          // 10
        json!(["search", null, "BODY", "\"OLD OAK\""]),                       // 11
        json!(["raw", "s1 SEARCH CHARSET UTF-8 BODY {15+}\r\ncrème brûlée"]), // 12
        json!(["raw", "s2 SEARCH CHARSET UTF-8 BODY {12+}\r\nSCHÖNE GRÜ"]),   // 13
        json!(["search", null, "BODY", "4471"]),                              // 14
        json!(["search", null, "TEXT", "zx-4471"]),                           // 15
        json!(["search", null, "BODY", "\"figures for market\""]),            // 16
        json!(["search", null, "TEXT", "\"QUARTERLY FIGURES\""]),             // 17
        json!(["search", null, "BODY", "file_name"]),                         // 18
        json!(["search", null, "NOT", "BODY", "ndeliv"]),                     // 19
        json!(["search", null, "BODY", "ak"]),                                // 20
        json!(["search", null, "BODY", "report"]),                            // 21
        json!(["logout"]),
    ]);
    let results = imap_session(stack.imap_addr(), None, json!(steps)).await;
    assert_eq!(found(&results, 9), "1", "inside a word, whatever its case (the bounce has it in its subject only)");
    assert_eq!(found(&results, 10), "2", "across a quoted-printable soft line break");
    assert_eq!(found(&results, 11), "3", "in a base64 body");
    assert_eq!(raw_found(&results, 12), "4", "in an iso-8859-1 body, non-ASCII capitals folded");
    assert_eq!(raw_found(&results, 13), "2", "in UTF-8 quoted-printable");
    assert_eq!(found(&results, 14), "", "BODY does not look at the header");
    assert_eq!(found(&results, 15), "5", "TEXT does");
    assert_eq!(found(&results, 16), "6", "the bounce, by the subject of the message it returns");
    assert_eq!(found(&results, 17), "6");
    assert_eq!(found(&results, 18), "1", "_ is literal, not LIKE's any character (message 3 has file-name)");
    assert_eq!(found(&results, 19), "2 3 4 5 6", "NOT is the complement");
    assert_eq!(found(&results, 20), "3", "a needle too short for the trigram index is still found");
    assert_eq!(found(&results, 21), "", "the subject is header, not body; delivery-status is no text part");

    // Email/query's body and text: every word a substring.
    let query = async |filter: Value| {
        let answer = stack.jmap_call(account, "Email/query", json!({"filter": filter})).await;
        answer[0].1["ids"].as_array().expect("ids").len()
    };
    assert_eq!(query(json!({"body": "ndeliv recip"})).await, 1);
    assert_eq!(query(json!({"body": "recip ndeliv"})).await, 1, "words, in any order");
    assert_eq!(query(json!({"body": "ndeliv nowhere"})).await, 0);
    assert_eq!(query(json!({"text": "quarterly marketing"})).await, 1);
    stack.stop().await;
}

async fn search_body(stack: &TestStack, account_id: i64, needle: &str) -> Vec<u32> {
    let request = pb::SearchRequest {
        account_id,
        mailbox: "INBOX".into(),
        key: Some(pb::SearchKey { key: Some(Key::Body(needle.into())) }),
        threading: false,
        sorting: false,
    };
    stack.mailbox().await.search(request).await.expect("search").into_inner().uids
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_stored_before_the_searchable_text_get_it_at_start_up() {
    let mut stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let account = stack.add_account("old@example.org", "pw").await;
    stack.deliver("q1", "old@example.org", BOUNCE.as_bytes()).await.unwrap();
    assert_eq!(search_body(&stack, account, "figures for market").await, [1]);
    // As a row of a release before migration 0015 stands: parsed, without searchable text.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url).await.unwrap();
    sqlx::query("UPDATE messages SET search_header = NULL, search_body = NULL").execute(&mut db).await.unwrap();
    assert_eq!(search_body(&stack, account, "figures for market").await, Vec::<u32>::new());
    assert_eq!(search_body(&stack, account, "").await, Vec::<u32>::new(), "not yet text: matches nothing");
    // A mailbox role starting makes it.
    stack.start_roles(&[Role::Mailbox]).await;
    mailbus_tests::wait_until(PATIENCE, "the backfilled message found", async || {
        search_body(&stack, account, "figures for market").await == [1]
    })
    .await;
    stack.stop().await;
}
