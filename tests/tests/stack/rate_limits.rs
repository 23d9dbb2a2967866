//! Submission rate limits: shared counts (NATS KV) per account and client address, 451 4.7.1 past a
//! limit, counted in metrics, and sending again once the window has turned.

use mailbus_tests::clients::{Submission, SubmitMode, smtp_submit};
use mailbus_tests::{Infra, TestStack, wait_until};

use crate::ops::http_get;
use crate::{PATIENCE, message};

async fn submit(stack: &TestStack, user: &str, to: &[&str], subject: &str) -> Submission {
    let port = stack.submission.expect("submission listener");
    smtp_submit(port, SubmitMode::StartTls, &Infra::get().tls_cert, (user, "pw"), user, to, &message(to[0], subject))
        .await
}

/// Sleeps until the next fixed window of `secs` seconds begins.
async fn start_of_window(secs: u64) {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let into = since_epoch.as_millis() as u64 % (secs * 1000);
    tokio::time::sleep(std::time::Duration::from_millis(secs * 1000 - into)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_over_the_message_limit_gets_451_4_7_1_and_the_rest_flow_after_the_window() {
    let stack = TestStack::builder()
        .set("MAILBUS_SUBMISSION_MAX_MESSAGES_PER_ACCOUNT", "3")
        .set("MAILBUS_SUBMISSION_RATE_WINDOW_SECS", "10")
        .start()
        .await;
    stack.add_account("alice@example.org", "pw").await;
    stack.add_account("bob@example.org", "pw").await;
    let carol = stack.add_account("carol@example.org", "pw").await;

    // Windows are fixed, counted from the epoch, and this one is short: start the burst as one begins,
    // so that it sits inside it.
    start_of_window(10).await;
    for n in 0..3 {
        let sent = submit(&stack, "alice@example.org", &["carol@example.org"], &format!("burst-{n}")).await;
        assert_eq!(sent.outcome, "ok", "message {n}: {sent:?}");
    }
    let fourth = submit(&stack, "alice@example.org", &["carol@example.org"], "burst-3").await;
    assert_eq!((fourth.outcome.as_str(), fourth.code), ("send refused", 451), "{fourth:?}");
    assert_eq!(fourth.text, "4.7.1 Too many messages from this account, try again later");
    // The limit is the account's: another account from the same address still sends.
    let other = submit(&stack, "bob@example.org", &["carol@example.org"], "bob").await;
    assert_eq!(other.outcome, "ok", "{other:?}");

    // The refusal is counted by limit.
    let (_, metrics) = http_get(stack.smtp_metrics.expect("smtp metrics"), "/metrics").await;
    assert!(metrics.contains("mailbus_smtp_rate_limited_total{limit=\"account_messages\"} 1"), "{metrics}");

    // Once the window has turned, alice sends again.
    wait_until(PATIENCE, "alice sending again after the window", async || {
        submit(&stack, "alice@example.org", &["carol@example.org"], "after").await.outcome == "ok"
    })
    .await;
    stack.wait_for_inbox(carol, 5, PATIENCE).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_recipient_limit_rcpt_to_gets_451_4_7_1_across_replicas() {
    let mut stack = TestStack::builder()
        .set("MAILBUS_SUBMISSION_MAX_RECIPIENTS_PER_ACCOUNT", "3")
        // A day's window, so that the test does not straddle two.
        .set("MAILBUS_SUBMISSION_RATE_WINDOW_SECS", "86400")
        .start()
        .await;
    stack.add_account("dora@example.org", "pw").await;
    let first = stack.submission.expect("submission listener");
    let sent = submit(&stack, "dora@example.org", &["a@elsewhere.net", "b@elsewhere.net"], "two").await;
    assert_eq!(sent.outcome, "ok", "{sent:?}");
    // A second smtp-ingress replica sees the same counts.
    stack.start_roles(&[mailbus::roles::Role::SmtpIngress]).await;
    assert_ne!(stack.submission, Some(first), "a second replica listens elsewhere");
    let partly = submit(&stack, "dora@example.org", &["c@elsewhere.net", "d@elsewhere.net"], "more").await;
    assert_eq!(partly.outcome, "partly refused", "{partly:?}");
    assert_eq!(partly.text, r#"{"d@elsewhere.net": 451}"#);
    let refused = submit(&stack, "dora@example.org", &["e@elsewhere.net"], "none").await;
    assert_eq!((refused.outcome.as_str(), refused.code), ("rcpt refused", 451), "{refused:?}");
    stack.stop().await;
}
