//! Plus-addressing (`MAILBUS_RECIPIENT_DELIMITER`): `alice+lists@` reaches alice through every door, an
//! alias keeps its meaning under a detail, and nothing becomes an address of its own.

use mailbus_proto::v1 as pb;
use mailbus_tests::clients::{SmtpOutcome, SubmitMode, imap_session, smtp_send, smtp_submit};
use mailbus_tests::{Infra, TestStack};
use serde_json::{Value, json};

use crate::{PATIENCE, message};

async fn add_alias(stack: &TestStack, address: &str, targets: &[&str]) {
    let request =
        pb::AddAliasRequest { address: address.into(), targets: targets.iter().map(|t| t.to_string()).collect() };
    stack.directory().await.add_alias(request).await.expect("adding an alias");
}

fn accepted(outcome: &SmtpOutcome) {
    assert!(matches!(outcome, SmtpOutcome::Accepted { code: 250, .. }), "{outcome:?}");
}

/// The subjects in `user`'s INBOX, as imaplib sees them.
async fn inbox_subjects(stack: &TestStack, user: &str, password: &str) -> String {
    let steps = json!([
        ["login", user, password],
        ["select", "INBOX"],
        ["fetch", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"],
        ["logout"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    let fetched = &results[3];
    assert_eq!(fetched[0], "OK", "{results:?}");
    let mut text = String::new();
    flatten(&fetched[1], &mut text);
    text
}

fn flatten(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_to_a_detail_reaches_the_base_through_its_aliases_and_keeps_the_address_as_given() {
    let stack = TestStack::start().await;
    let alice = stack.add_account("alice@example.org", "alice pw").await;
    let bob = stack.add_account("bob@example.org", "bob pw").await;
    let news = stack.add_account("carol+news@example.org", "news pw").await;
    let carol = stack.add_account("carol@example.org", "carol pw").await;
    add_alias(&stack, "team@example.org", &["bob@example.org"]).await;

    // Port 25: the detail goes to alice's INBOX.
    accepted(
        &smtp_send(stack.smtp_addr(), "list@example.net", &["Alice+Lists@example.org"], &message("a", "plus-mx")).await,
    );
    // Submission, to a local recipient with a detail.
    let submitted = smtp_submit(
        stack.submission.expect("submission listener"),
        SubmitMode::StartTls,
        &Infra::get().tls_cert,
        ("bob@example.org", "bob pw"),
        "bob@example.org",
        &["alice+shop@example.org"],
        &message("alice+shop@example.org", "plus-submission"),
    )
    .await;
    assert_eq!(submitted.outcome, "ok", "{submitted:?}");
    stack.wait_for_inbox(alice, 2, PATIENCE).await;
    let subjects = inbox_subjects(&stack, "alice@example.org", "alice pw").await;
    assert!(subjects.contains("Subject: plus-mx") && subjects.contains("Subject: plus-submission"), "{subjects}");

    // An alias under a detail is the alias: bob gets it.
    accepted(
        &smtp_send(stack.smtp_addr(), "x@example.net", &["team+standup@example.org"], &message("t", "plus-alias"))
            .await,
    );
    stack.wait_for_inbox(bob, 1, PATIENCE).await;
    assert!(inbox_subjects(&stack, "bob@example.org", "bob pw").await.contains("Subject: plus-alias"));

    // An address that exists whole wins over its base (Postfix's order).
    accepted(&smtp_send(stack.smtp_addr(), "x@example.net", &["carol+news@example.org"], &message("c", "whole")).await);
    stack.wait_for_inbox(news, 1, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    assert!(stack.inbox_uids(carol).await.is_empty(), "carol+news is an account of its own");

    // An account may send as its address with a detail (Postfix looks sender logins up without the
    // extension), but not as another account's, nor as an address that exists whole and is not its own.
    let submit_as = async |user: (&str, &str), from: &str| {
        smtp_submit(
            stack.submission.expect("submission listener"),
            SubmitMode::StartTls,
            &Infra::get().tls_cert,
            user,
            from,
            &["bob@example.org"],
            &message(from, "as-detail"),
        )
        .await
    };
    let own = submit_as(("alice@example.org", "alice pw"), "alice+shop@example.org").await;
    assert_eq!(own.outcome, "ok", "{own:?}");
    for (user, from) in [
        (("alice@example.org", "alice pw"), "bob+x@example.org"),
        (("carol@example.org", "carol pw"), "carol+news@example.org"),
    ] {
        let refused = submit_as(user, from).await;
        assert_eq!(refused.code, 553, "{} sending as {from}: {refused:?}", user.0);
    }
    stack.wait_for_inbox(bob, 2, PATIENCE).await;

    // A detail on a base that does not exist is refused as the base would be.
    let unknown = smtp_send(stack.smtp_addr(), "x@example.net", &["nobody+x@example.org"], &message("n", "no")).await;
    assert_eq!(unknown, SmtpOutcome::RecipientsRefused(vec![("nobody+x@example.org".into(), 550)]));

    // The delivery record keeps the address as it was given, detail and all, for filtering.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url).await.unwrap();
    let recipients: Vec<String> =
        sqlx::query_scalar("SELECT recipient FROM deliveries d JOIN mailboxes m ON m.id = d.mailbox_id WHERE m.account_id = $1 ORDER BY recipient")
            .bind(alice)
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert_eq!(recipients, ["alice+lists@example.org", "alice+shop@example.org"]);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_delimiter_turns_plus_addressing_off() {
    let stack = TestStack::builder().set("MAILBUS_RECIPIENT_DELIMITER", "").start().await;
    let dan = stack.add_account("dan@example.org", "pw").await;
    let refused = smtp_send(stack.smtp_addr(), "x@example.net", &["dan+lists@example.org"], &message("d", "off")).await;
    assert_eq!(refused, SmtpOutcome::RecipientsRefused(vec![("dan+lists@example.org".into(), 550)]));
    accepted(&smtp_send(stack.smtp_addr(), "x@example.net", &["dan@example.org"], &message("d", "on")).await);
    stack.wait_for_inbox(dan, 1, PATIENCE).await;
    stack.stop().await;
}
