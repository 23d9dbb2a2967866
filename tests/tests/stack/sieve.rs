//! Sieve at delivery (RFC 5228 and its extensions) through the whole stack: scripts put in place through
//! the mailbox role's `Sieve` service, mail sent over SMTP, results read over IMAP or at the relay's
//! remote sink. Filing, flags, vacation, redirects and their loops, reject, a broken script, and the
//! follow-ups a repeated Deliver returns until the relay has queued them.

use mailbus_proto::v1 as pb;
use mailbus_tests::TestStack;
use mailbus_tests::clients::{SmtpOutcome, imap_session, smtp_send};
use mailbus_tests::fake_smtp::{FakeSmtp, Script};
use mailbus_tests::processes::http_get;
use serde_json::{Value, json};

use crate::{PATIENCE, message};

/// Stores `source` as the account's script and makes it the active one.
pub(crate) async fn activate(stack: &TestStack, account_id: i64, source: &str) {
    let mut sieve = stack.sieve().await;
    let script = pb::SieveScript { account_id, name: "main".into(), content: source.into() };
    sieve.put_script(script).await.expect("storing the script");
    let active = pb::SieveScriptRef { account_id, name: "main".into() };
    sieve.set_active(active).await.expect("activating the script");
}

fn accepted(outcome: &SmtpOutcome) {
    assert!(matches!(outcome, SmtpOutcome::Accepted { code: 250, .. }), "{outcome:?}");
}

fn flatten(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        _ => {}
    }
}

/// Every message of `mailbox` as imaplib fetches it (flags and whole message), as one text; the
/// mailbox's message count first.
async fn imap_mailbox(stack: &TestStack, user: &str, mailbox: &str) -> (usize, String) {
    let steps =
        json!([["login", user, "pw"], ["select", mailbox], ["fetch", "1:*", "(FLAGS BODY.PEEK[])"], ["logout"],]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    // Result 0 is the greeting.
    assert_eq!(results[2][0], "OK", "{user} selects {mailbox}: {results:?}");
    let count: usize = results[2][1][0].as_str().and_then(|n| n.trim().parse().ok()).expect("SELECT's count");
    let mut text = String::new();
    if count > 0 {
        flatten(&results[3][1], &mut text);
    }
    (count, text)
}

async fn mailbox_metrics(stack: &TestStack) -> String {
    http_get(stack.mailbox_metrics.expect("the mailbox role's metrics"), "/metrics").await.expect("/metrics").1
}

/// A stack whose relay sends `remote.test` to `fake` and retries every second.
async fn stack_towards(fake: &FakeSmtp) -> TestStack {
    TestStack::builder()
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("remote.test={},*=127.0.0.1:9", fake.addr()))
        .set("MAILBUS_RELAY_RETRY_SCHEDULE", "1s")
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sieve_service_checks_scripts_keeps_one_active_and_enforces_the_quota() {
    let stack = TestStack::builder()
        .set("MAILBUS_SIEVE_MAX_SCRIPTS", "2")
        .set("MAILBUS_SIEVE_MAX_SCRIPT_SIZE", "1024")
        .start()
        .await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    let mut sieve = stack.sieve().await;
    let put =
        |name: &str, content: &str| pb::SieveScript { account_id: ann, name: name.into(), content: content.into() };
    let named = |name: &str| pb::SieveScriptRef { account_id: ann, name: name.into() };

    // A script that does not parse is refused with the parser's line and column, and not stored.
    let broken = sieve.put_script(put("broken", "keep;\nfileinto \"x\";\n")).await.unwrap_err();
    assert_eq!(broken.code(), tonic::Code::InvalidArgument, "{broken:?}");
    assert!(broken.message().contains("line 2, column 1"), "{}", broken.message());
    let checked = sieve.check_script(pb::SieveCheck { account_id: ann, content: "if true {".into() }).await;
    assert_eq!(checked.unwrap_err().code(), tonic::Code::InvalidArgument);
    sieve.check_script(pb::SieveCheck { account_id: ann, content: "keep;".into() }).await.expect("a good script");

    let stored = sieve.put_script(put("one", "keep;")).await.unwrap().into_inner();
    assert_eq!((stored.name.as_str(), stored.active, stored.size), ("one", false, 5));
    sieve.put_script(put("two", "discard;")).await.unwrap();
    // A third script is over MAXSCRIPTS; replacing one of the two is not.
    let third = sieve.put_script(put("three", "keep;")).await.unwrap_err();
    assert_eq!(third.code(), tonic::Code::ResourceExhausted);
    assert_eq!(mailbus_proto::refusal::reason(&third), pb::Reason::TooManyScripts, "{third:?}");
    sieve.put_script(put("two", "stop;")).await.expect("replacing fits");
    let too_big = sieve.put_script(put("one", &format!("# {}\nkeep;", "x".repeat(1100)))).await.unwrap_err();
    assert_eq!(too_big.code(), tonic::Code::ResourceExhausted);
    assert_eq!(mailbus_proto::refusal::reason(&too_big), pb::Reason::ScriptTooLarge, "{too_big:?}");
    let space = |name: &str, size: u64| pb::SieveSpace { account_id: ann, name: name.into(), size };
    assert!(sieve.have_space(space("one", 1000)).await.unwrap().into_inner().fits);
    let answer = sieve.have_space(space("three", 10)).await.unwrap().into_inner();
    assert_eq!((answer.fits, answer.reason.as_str()), (false, "maxscripts"));
    assert_eq!(sieve.have_space(space("one", 2000)).await.unwrap().into_inner().reason, "maxsize");

    // One active script at a time; the active one cannot be deleted.
    sieve.set_active(named("one")).await.unwrap();
    let listing = sieve.set_active(named("two")).await.unwrap().into_inner();
    let active: Vec<(&str, bool)> = listing.scripts.iter().map(|s| (s.name.as_str(), s.active)).collect();
    assert_eq!(active, [("one", false), ("two", true)]);
    let refused = sieve.delete_script(named("two")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(mailbus_proto::refusal::reason(&refused), pb::Reason::ActiveScript, "{refused:?}");
    let rename = pb::SieveRename { account_id: ann, old_name: "two".into(), new_name: "one".into() };
    assert_eq!(sieve.rename_script(rename).await.unwrap_err().code(), tonic::Code::AlreadyExists);
    let rename = pb::SieveRename { account_id: ann, old_name: "two".into(), new_name: "rules".into() };
    let listing = sieve.rename_script(rename).await.unwrap().into_inner();
    assert!(listing.scripts.iter().any(|s| s.name == "rules" && s.active), "renaming keeps it active: {listing:?}");
    assert_eq!(sieve.get_script(named("rules")).await.unwrap().into_inner().content, "stop;");
    assert_eq!(sieve.get_script(named("two")).await.unwrap_err().code(), tonic::Code::NotFound);
    sieve.set_active(named("")).await.unwrap();
    let listing = sieve.delete_script(named("rules")).await.unwrap().into_inner();
    assert_eq!(listing.scripts.len(), 1, "{listing:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_message_is_filed_into_lists_and_addflag_flags_what_stays_in_inbox() {
    let stack = TestStack::start().await;
    let alice = stack.add_account("alice@example.org", "pw").await;
    activate(
        &stack,
        alice,
        r#"require ["fileinto", "mailbox", "imap4flags"];
if exists "List-Id" { fileinto :create :flags "$list" "Lists"; stop; }
if header :contains "Subject" "urgent" { addflag "\\Flagged"; }
"#,
    )
    .await;
    let list =
        [b"List-Id: Rust users <users.rust.example>\r\n".as_slice(), &message("alice@example.org", "digest")].concat();
    accepted(&smtp_send(stack.smtp_addr(), "list@example.net", &["alice@example.org"], &list).await);
    let urgent = message("alice@example.org", "urgent: call me");
    accepted(&smtp_send(stack.smtp_addr(), "boss@example.net", &["alice@example.org"], &urgent).await);
    stack.wait_for_inbox(alice, 1, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;

    let (count, lists) = imap_mailbox(&stack, "alice@example.org", "Lists").await;
    assert_eq!(count, 1, "{lists}");
    assert!(lists.contains("Subject: digest") && lists.contains("$list"), "filed with its :flags: {lists}");
    let (count, inbox) = imap_mailbox(&stack, "alice@example.org", "INBOX").await;
    assert_eq!(count, 1, "the list message is not in INBOX: {inbox}");
    assert!(inbox.contains("Subject: urgent: call me") && inbox.contains("\\Flagged"), "{inbox}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vacation_answers_a_sender_once_and_never_auto_submitted_or_null_sender_mail() {
    let fake = FakeSmtp::start(Script::default()).await;
    let stack = stack_towards(&fake).await;
    let bob = stack.add_account("bob@example.org", "pw").await;
    activate(&stack, bob, "require \"vacation\";\nvacation :days 7 :subject \"Away\" \"I am away until Monday.\";\n")
        .await;
    let to_bob = |subject: &str| message("bob@example.org", subject);
    accepted(&smtp_send(stack.smtp_addr(), "friend@remote.test", &["bob@example.org"], &to_bob("first")).await);
    accepted(&smtp_send(stack.smtp_addr(), "friend@remote.test", &["bob@example.org"], &to_bob("second")).await);
    let auto = [b"Auto-Submitted: auto-generated\r\n".as_slice(), &to_bob("notification")].concat();
    accepted(&smtp_send(stack.smtp_addr(), "robot@remote.test", &["bob@example.org"], &auto).await);
    accepted(&smtp_send(stack.smtp_addr(), "", &["bob@example.org"], &to_bob("bounce")).await);
    stack.wait_for_inbox(bob, 4, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;

    let received = fake.received();
    assert_eq!(received.len(), 1, "one reply, to the first message only: {received:?}");
    let reply = &received[0];
    assert_eq!(reply.rcpt_to, ["friend@remote.test"]);
    assert_eq!(reply.mail_from, "", "RFC 5230 §5.1: the reply's envelope sender is null");
    let text = String::from_utf8_lossy(&reply.data);
    assert!(text.contains("Subject: Away") && text.contains("Auto-Submitted: auto-replied"), "{text}");
    assert!(text.contains("In-Reply-To: <first@example.net>") && text.contains("I am away until Monday."), "{text}");
    assert_eq!(fake.attempts("robot@remote.test"), 0);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vacation_response_without_a_script_answers_through_the_same_rules() {
    let fake = FakeSmtp::start(Script::default()).await;
    let stack = stack_towards(&fake).await;
    let carol = stack.add_account("carol@example.org", "pw").await;
    // The row JMAP's VacationResponse/set writes.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url).await.unwrap();
    sqlx::query(
        "INSERT INTO vacation_responses (account_id, is_enabled, from_date, subject, text_body)
         VALUES ($1, true, now() - interval '1 hour', 'Out of office', 'Back next week.')",
    )
    .bind(carol)
    .execute(&mut db)
    .await
    .unwrap();
    let to_carol = |subject: &str| message("carol@example.org", subject);
    accepted(&smtp_send(stack.smtp_addr(), "friend@remote.test", &["carol@example.org"], &to_carol("one")).await);
    accepted(&smtp_send(stack.smtp_addr(), "friend@remote.test", &["carol@example.org"], &to_carol("two")).await);
    stack.wait_for_inbox(carol, 2, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    let received = fake.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let text = String::from_utf8_lossy(&received[0].data);
    assert!(text.contains("Subject: Out of office") && text.contains("Back next week."), "{text}");
    assert!(text.contains("From: carol@example.org") || text.contains("<carol@example.org>"), "{text}");
    let remembered: i64 = sqlx::query_scalar("SELECT count(*) FROM vacation_sent WHERE account_id = $1")
        .bind(carol)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(remembered, 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_reaches_another_account_and_a_redirect_loop_ends_kept() {
    let stack = TestStack::start().await;
    let alice = stack.add_account("alice@example.org", "pw").await;
    let bob = stack.add_account("bob@example.org", "pw").await;
    activate(&stack, alice, "redirect \"bob@example.org\";").await;
    accepted(&smtp_send(stack.smtp_addr(), "x@example.net", &["alice@example.org"], &message("alice", "fwd")).await);
    stack.wait_for_inbox(bob, 1, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    assert!(stack.inbox_uids(alice).await.is_empty(), "redirect cancels the implicit keep");
    let (_, text) = imap_mailbox(&stack, "bob@example.org", "INBOX").await;
    assert!(text.contains("X-Mailbus-Loop: alice@example.org") && text.contains("Subject: fwd"), "{text}");

    // Now bob sends everything back: alice → bob → alice, who sees her own marker and keeps it.
    activate(&stack, bob, "redirect \"alice@example.org\";").await;
    accepted(&smtp_send(stack.smtp_addr(), "x@example.net", &["alice@example.org"], &message("alice", "loop")).await);
    stack.wait_for_inbox(alice, 1, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    assert_eq!(stack.inbox_uids(alice).await.len(), 1, "kept once");
    assert_eq!(stack.inbox_uids(bob).await.len(), 1, "bob has only the first redirect");
    let (_, text) = imap_mailbox(&stack, "alice@example.org", "INBOX").await;
    assert!(text.contains("X-Mailbus-Loop: bob@example.org") && text.contains("Subject: loop"), "{text}");
    let metrics = mailbox_metrics(&stack).await;
    assert!(metrics.contains("mailbus_mailbox_sieve_errors_total{kind=\"loop\"} 1"), "{metrics}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reject_bounces_to_the_sender_with_the_reason() {
    let stack = TestStack::start().await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    let bob = stack.add_account("bob@example.org", "pw").await;
    activate(&stack, bob, "require \"reject\";\nreject \"I do not take mail from you.\";").await;
    accepted(&smtp_send(stack.smtp_addr(), "ann@example.org", &["bob@example.org"], &message("bob", "hi")).await);
    stack.wait_for_inbox(ann, 1, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    assert!(stack.inbox_uids(bob).await.is_empty());
    let (_, dsn) = imap_mailbox(&stack, "ann@example.org", "INBOX").await;
    assert!(dsn.contains("Action: failed") && dsn.contains("Status: 5.7.1"), "{dsn}");
    assert!(dsn.contains("I do not take mail from you."), "{dsn}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_script_still_delivers_to_inbox_and_is_counted() {
    let stack = TestStack::start().await;
    let dan = stack.add_account("dan@example.org", "pw").await;
    // The service would refuse it; a script stored by an older parser could still be like this.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url).await.unwrap();
    sqlx::query("INSERT INTO sieve_scripts (account_id, name, content, active) VALUES ($1, 'old', 'if true {', true)")
        .bind(dan)
        .execute(&mut db)
        .await
        .unwrap();
    accepted(&smtp_send(stack.smtp_addr(), "x@example.net", &["dan@example.org"], &message("dan", "still")).await);
    stack.wait_for_inbox(dan, 1, PATIENCE).await;
    let metrics = mailbox_metrics(&stack).await;
    assert!(metrics.contains("mailbus_mailbox_sieve_errors_total{kind=\"parse\"} 1"), "{metrics}");

    // A fileinto into a mailbox that does not exist, without :create, is kept in INBOX too.
    activate(&stack, dan, "require \"fileinto\";\nfileinto \"Nowhere\";").await;
    accepted(&smtp_send(stack.smtp_addr(), "x@example.net", &["dan@example.org"], &message("dan", "kept")).await);
    stack.wait_for_inbox(dan, 2, PATIENCE).await;
    let metrics = mailbox_metrics(&stack).await;
    assert!(metrics.contains("mailbus_mailbox_sieve_errors_total{kind=\"fileinto\"} 1"), "{metrics}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_deliver_returns_the_same_follow_ups_until_they_are_queued() {
    let stack = TestStack::start().await;
    let alice = stack.add_account("alice@example.org", "pw").await;
    stack.add_account("bob@example.org", "pw").await;
    activate(&stack, alice, "require \"copy\";\nredirect :copy \"bob@example.org\";").await;
    let (queue_id, body) = ("0190f0c1a2b34c5d8e9fa0b1c2d3e4f5", message("alice", "once"));

    // The relay's Deliver, then a crash before it queued the redirect: the repeated call finds it again.
    let first = stack.deliver(queue_id, "alice@example.org", &body).await.unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.follow_ups.len(), 1, "{first:?}");
    let redirect = &first.follow_ups[0];
    assert_eq!(redirect.kind(), pb::FollowUpKind::Redirect);
    assert_eq!((redirect.recipient.as_str(), redirect.mail_from.as_str()), ("bob@example.org", "sender@example.net"));
    assert_eq!(redirect.content, b"X-Mailbus-Loop: alice@example.org\r\n");
    let again = stack.deliver(queue_id, "alice@example.org", &body).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.follow_ups, first.follow_ups, "the same follow-ups, the same ids");
    assert_eq!(again.placements.len(), 1);
    assert_eq!(stack.inbox_uids(alice).await.len(), 1, ":copy keeps one copy, however often Deliver is called");

    // Once the relay says they are queued, a repeat (a lost ack) makes none: nothing is sent twice.
    let done = pb::FollowUpsQueuedRequest { queue_id: queue_id.into(), recipient: "alice@example.org".into() };
    stack.mailbox().await.follow_ups_queued(done).await.unwrap();
    let late = stack.deliver(queue_id, "alice@example.org", &body).await.unwrap();
    assert!(late.duplicate && late.follow_ups.is_empty(), "{late:?}");
    let bad = pb::FollowUpsQueuedRequest { queue_id: queue_id.into(), recipient: "not an address".into() };
    let refused = stack.mailbox().await.follow_ups_queued(bad).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_that_died_after_deliver_leaves_the_redirect_to_the_next_attempt_which_sends_it_once() {
    let stack = TestStack::start().await;
    let alice = stack.add_account("alice@example.org", "pw").await;
    let bob = stack.add_account("bob@example.org", "pw").await;
    activate(&stack, alice, "redirect \"bob@example.org\";").await;
    let (queue_id, body) = ("0190f0c1a2b34c5d8e9fa0b1c2d3e4f6", message("alice", "crash"));
    // The dead relay's attempt: Deliver made, the redirect never queued, the message never acked.
    let made = stack.deliver(queue_id, "alice@example.org", &body).await.unwrap();
    assert_eq!(made.follow_ups.len(), 1, "{made:?}");
    assert!(stack.inbox_uids(bob).await.is_empty());
    // JetStream hands the unacked message to the live relay.
    let envelope = pb::Envelope {
        queue_id: queue_id.into(),
        mail_from: "sender@example.net".into(),
        recipients: vec![pb::EnvelopeRecipient { address: "alice@example.org".into(), ..Default::default() }],
        size: body.len() as u64,
        arrival_unix_ms: chrono::Utc::now().timestamp_millis(),
        ..Default::default()
    };
    stack.queue().await.enqueue(&envelope, &body, queue_id).await.expect("queueing the original again");
    stack.wait_for_inbox(bob, 1, PATIENCE).await;
    stack.wait_for_empty_queue(PATIENCE).await;
    assert_eq!(stack.inbox_uids(bob).await.len(), 1, "the redirect arrives once");
    assert!(stack.inbox_uids(alice).await.is_empty(), "and the original is not kept");
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM delivery_follow_ups").fetch_one(&mut db).await.unwrap();
    assert_eq!(left, 0, "the relay confirmed it queued them");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_from_one_sender_at_once_get_one_vacation_reply() {
    let stack = TestStack::start().await;
    let erin = stack.add_account("erin@example.org", "pw").await;
    activate(&stack, erin, "require \"vacation\";\nvacation \"Away.\";").await;
    let body = message("erin@example.org", "at once");
    // Each call plans its reply before any has committed; vacation's memory, written in the delivery's
    // transaction, lets only one of them answer.
    let calls = (0..8).map(|i| {
        let (stack, body) = (&stack, &body);
        async move { stack.deliver(&format!("0190f0c1a2b34c5d8e9fa0b1c2d3e5{i:02x}"), "erin@example.org", body).await }
    });
    let replies: Vec<pb::DeliverResponse> =
        futures::future::join_all(calls).await.into_iter().map(|r| r.expect("Deliver")).collect();
    let answered: Vec<&pb::FollowUp> = replies.iter().flat_map(|r| &r.follow_ups).collect();
    assert_eq!(answered.len(), 1, "replies to {:?}", answered.iter().map(|f| &f.recipient).collect::<Vec<_>>());
    assert_eq!(answered[0].recipient, "sender@example.net");
    assert_eq!(stack.inbox_uids(erin).await.len(), 8, "every message is kept");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn discard_stores_nothing_and_a_repeated_deliver_of_it_is_a_duplicate() {
    let stack = TestStack::start().await;
    let fay = stack.add_account("fay@example.org", "pw").await;
    activate(&stack, fay, "if header :contains \"Subject\" \"spam\" { discard; }").await;
    let (queue_id, body) = ("0190f0c1a2b34c5d8e9fa0b1c2d3e6aa", message("fay", "spam offer"));
    let first = stack.deliver(queue_id, "fay@example.org", &body).await.unwrap();
    assert!(first.placements.is_empty() && !first.duplicate, "{first:?}");
    let again = stack.deliver(queue_id, "fay@example.org", &body).await.unwrap();
    assert!(again.placements.is_empty() && again.duplicate, "{again:?}");
    let kept = stack.deliver("0190f0c1a2b34c5d8e9fa0b1c2d3e6ab", "fay@example.org", &message("fay", "ham")).await;
    assert_eq!(kept.unwrap().placements.len(), 1, "the implicit keep");
    assert_eq!(stack.inbox_uids(fay).await.len(), 1);
    stack.stop().await;
}
