//! RFC 5465 NOTIFY through the whole stack: a session that asked for `personal` events hears of an SMTP
//! delivery into a mailbox other than its selected one as `* STATUS`, and of another session's CREATE,
//! SUBSCRIBE (and JMAP's isSubscribed), RENAME and DELETE as `* LIST`, with no command of its own,
//! carried by the mailbox role's events over NATS.

use mailbus_tests::TestStack;
use mailbus_tests::clients::{SmtpOutcome, smtp_send};
use mailbus_tests::raw::RawClient;
use serde_json::json;

use crate::message;

async fn logged_in(stack: &TestStack, user: &str, password: &str) -> RawClient {
    let mut client = RawClient::connect("127.0.0.1", stack.imap_addr()).await;
    client.line().await.expect("a greeting");
    client.send(format!("a LOGIN {user} \"{password}\"\r\n").as_bytes()).await;
    assert!(client.line_starting("a ").await.expect("LOGIN answered").starts_with("a OK"));
    client
}

async fn answered(client: &mut RawClient, tag: &str, command: &str) -> String {
    client.send(format!("{tag} {command}\r\n").as_bytes()).await;
    client.line_starting(&format!("{tag} ")).await.expect("an answer")
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_sends_status_for_a_delivery_elsewhere_and_list_for_another_sessions_changes() {
    let stack = TestStack::start().await;
    let account = stack.add_account("nia@example.org", "nia pw").await;
    let mut other = logged_in(&stack, "nia@example.org", "nia pw").await;
    assert!(answered(&mut other, "c1", "CREATE Work").await.starts_with("c1 OK"));

    let mut watcher = logged_in(&stack, "nia@example.org", "nia pw").await;
    assert!(answered(&mut watcher, "s", "SELECT Work").await.starts_with("s OK"));
    let set = "NOTIFY SET (selected (MessageNew MessageExpunge)) \
               (personal (MessageNew MessageExpunge MailboxName SubscriptionChange))";
    assert_eq!(answered(&mut watcher, "n", set).await, "n OK NOTIFY completed");

    // SMTP delivers into INBOX, which the watcher has not selected: a STATUS, unasked.
    let sent =
        smtp_send(stack.smtp_addr(), "sender@example.net", &["nia@example.org"], &message("nia@example.org", "notify"))
            .await;
    assert!(matches!(sent, SmtpOutcome::Accepted { code: 250, .. }), "{sent:?}");
    let status = watcher.line_starting("* STATUS INBOX ").await.expect("a STATUS for INBOX");
    assert!(status.starts_with("* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY "), "{status}");
    assert!(status.ends_with(" UNSEEN 1)"), "{status}");

    // Another session changes the hierarchy and the subscriptions.
    assert!(answered(&mut other, "c2", "CREATE Projects").await.starts_with("c2 OK"));
    // (An event for the earlier CREATE Work may still be on its way: each wait is for its own line.)
    let created = "* LIST () \"/\" Projects";
    assert_eq!(watcher.line_starting(created).await.as_deref(), Some(created));
    assert!(answered(&mut other, "c3", "SUBSCRIBE Projects").await.starts_with("c3 OK"));
    let subscribed = "* LIST (\\Subscribed) \"/\" Projects";
    assert_eq!(watcher.line_starting(subscribed).await.as_deref(), Some(subscribed));
    assert!(answered(&mut other, "c4", "RENAME Projects Done").await.starts_with("c4 OK"));
    assert_eq!(watcher.line_starting("* LIST").await.as_deref(), Some("* LIST () \"/\" Done (\"OLDNAME\" (Projects))"));
    assert!(answered(&mut other, "c5", "DELETE Done").await.starts_with("c5 OK"));
    assert_eq!(watcher.line_starting("* LIST").await.as_deref(), Some("* LIST (\\NonExistent) \"/\" Done"));
    // IMAP's DELETE also unsubscribes the name, which is a subscription change too.
    assert_eq!(watcher.line_starting("* LIST").await.as_deref(), Some("* LIST () \"/\" Done"));

    // JMAP's isSubscribed is a subscription change too.
    let got = stack.jmap_call(account, "Mailbox/get", json!({"accountId": "a", "ids": null})).await;
    let list = got[0].1["list"].as_array().expect("a list").clone();
    let work = list.iter().find(|m| m["name"] == "Work").expect("Work")["id"].as_str().unwrap().to_owned();
    let set = |subscribed| json!({"accountId": "a", "update": {work.clone(): {"isSubscribed": subscribed}}});
    let updated = stack.jmap_call(account, "Mailbox/set", set(true)).await;
    assert!(updated[0].1["updated"].get(&work).is_some(), "{updated:?}");
    let subscribed = "* LIST (\\Subscribed) \"/\" Work";
    assert_eq!(watcher.line_starting("* LIST").await.as_deref(), Some(subscribed));
    stack.jmap_call(account, "Mailbox/set", set(false)).await;
    assert_eq!(watcher.line_starting("* LIST").await.as_deref(), Some("* LIST () \"/\" Work"));

    // A delivery into the selected mailbox is an EXISTS (here by APPEND from the other session).
    let append = "APPEND Work {21}\r\nSubject: w\r\n\r\nhello\r\n\r\n";
    other.send(format!("c6 {append}").as_bytes()).await;
    other.line().await.expect("the go-ahead");
    assert!(other.line_starting("c6 ").await.expect("APPEND answered").starts_with("c6 OK"));
    assert_eq!(watcher.line_starting("* 1 EXISTS").await.as_deref(), Some("* 1 EXISTS"));

    assert_eq!(answered(&mut watcher, "z", "LOGOUT").await, "z OK LOGOUT completed");
    stack.stop().await;
}
