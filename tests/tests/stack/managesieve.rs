//! ManageSieve (RFC 5804) on the access role, driven by a client we did not write: the `managesieve`
//! library from PyPI, over STARTTLS, against the mailbox role's Sieve service and PostgreSQL.

use mailbus_proto::v1 as pb;
use mailbus_tests::clients::{SmtpOutcome, managesieve_session, smtp_send};
use mailbus_tests::{Infra, TestStack, wait_until};
use serde_json::{Value, json};

use crate::{PATIENCE, message};

fn status(step: &Value) -> (&str, &str) {
    (step["status"].as_str().unwrap_or_default(), step["code"].as_str().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_client_uploads_checks_activates_lists_gets_renames_and_deletes_scripts() {
    // Logins need TLS here, so the client's STARTTLS is what lets it in.
    let stack = TestStack::builder().set("MAILBUS_MANAGESIEVE_PLAINTEXT_AUTH", "never").start().await;
    stack.add_account("sue@example.org", "sue pw").await;
    let server = stack.managesieve.expect("this stack runs access");
    let lists = "require \"fileinto\";\r\nif header :contains \"List-Id\" \"dev\" { fileinto \"Lists\"; }\r\n";
    let steps = json!([
        ["putscript", "lists", lists],
        ["putscript", "broken", "require \"fileinto\";\r\nif true {\r\n  frob;\r\n}\r\n"],
        ["checkscript", "keep;\r\n"],
        ["checkscript", "fileinto \"x\";\r\n"],
        ["havespace", "lists", "100"],
        ["setactive", "lists"],
        ["listscripts"],
        ["getscript", "lists"],
        ["getscript", "nope"],
        ["deletescript", "lists"],
        ["putscript", "other", "keep;\r\n"],
        ["renamescript", "lists", "other"],
        ["renamescript", "lists", "filters"],
        ["listscripts"],
        ["setactive", ""],
        ["deletescript", "filters"],
        ["listscripts"],
    ]);
    let seen = managesieve_session(server, &Infra::get().tls_cert, ("sue@example.org", "sue pw"), steps).await;

    // Before TLS no mechanism is offered (plaintext is refused) and STARTTLS is; after it, PLAIN.
    assert_eq!(seen["before_tls"]["sasl"], json!([]), "{seen}");
    assert_eq!(seen["before_tls"]["tls"].as_i64(), Some(1), "{seen}");
    assert_eq!(seen["after_tls"]["sasl"], json!(["PLAIN"]), "{seen}");
    assert_eq!(seen["after_tls"]["tls"].as_i64(), Some(0), "STARTTLS is not offered twice: {seen}");
    assert!(seen["after_tls"]["capabilities"].as_array().is_some_and(|c| c.contains(&json!("vacation"))), "{seen}");
    assert_eq!(seen["login"], "OK", "{seen}");
    let steps = seen["steps"].as_array().expect("steps");
    assert_eq!(status(&steps[0]), ("OK", ""), "{seen}");
    // The broken script is refused with the parser's line and column as the NO text.
    assert_eq!(status(&steps[1]).0, "NO", "{seen}");
    let parse_error = steps[1]["text"].as_str().unwrap_or_default();
    assert!(parse_error.starts_with("line 3, column 3"), "{seen}");
    assert_eq!(status(&steps[2]), ("OK", ""), "{seen}");
    // fileinto without its require is an error too, and CHECKSCRIPT stores nothing.
    assert_eq!(status(&steps[3]).0, "NO", "{seen}");
    assert!(steps[3]["text"].as_str().unwrap_or_default().contains("line 1"), "{seen}");
    assert_eq!(status(&steps[4]), ("OK", ""), "{seen}");
    assert_eq!(status(&steps[5]), ("OK", ""), "{seen}");
    assert_eq!(steps[6]["data"], json!([["lists", true]]), "{seen}");
    assert_eq!(steps[7]["data"], json!(lists), "{seen}");
    assert_eq!(status(&steps[8]), ("NO", "NONEXISTENT"), "{seen}");
    assert_eq!(status(&steps[9]), ("NO", "ACTIVE"), "{seen}");
    assert_eq!(status(&steps[10]), ("OK", ""), "{seen}");
    assert_eq!(status(&steps[11]), ("NO", "ALREADYEXISTS"), "{seen}");
    assert_eq!(status(&steps[12]), ("OK", ""), "{seen}");
    // The rename kept the script active.
    assert_eq!(steps[13]["data"], json!([["filters", true], ["other", false]]), "{seen}");
    assert_eq!(status(&steps[14]), ("OK", ""), "{seen}");
    assert_eq!(status(&steps[15]), ("OK", ""), "{seen}");
    assert_eq!(steps[16]["data"], json!([["other", false]]), "{seen}");
    stack.stop().await;
}

/// The script a client activates over ManageSieve is the one delivery runs: a list message lands in Lists.
#[tokio::test(flavor = "multi_thread")]
async fn a_script_activated_over_managesieve_files_the_next_delivery() {
    let stack = TestStack::start().await;
    let tom = stack.add_account("tom@example.org", "tom pw").await;
    let server = stack.managesieve.expect("this stack runs access");
    let script = "require [\"fileinto\", \"mailbox\"];\r\nif exists \"List-Id\" { fileinto :create \"Lists\"; }\r\n";
    let steps = json!([["putscript", "lists", script], ["setactive", "lists"]]);
    let seen = managesieve_session(server, &Infra::get().tls_cert, ("tom@example.org", "tom pw"), steps).await;
    assert!(seen["steps"].as_array().is_some_and(|s| s.iter().all(|s| s["status"] == "OK")), "{seen}");

    let list = [b"List-Id: Dev list <dev.example.net>\r\n".as_slice(), &message("tom@example.org", "digest")].concat();
    let sent = smtp_send(stack.smtp_addr(), "list@example.net", &["tom@example.org"], &list).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { .. }), "{sent:?}");
    wait_until(PATIENCE, "the list message in Lists", async || {
        let request = pb::ListMessagesRequest { account_id: tom, mailbox: "Lists".into() };
        stack.mailbox().await.list_messages(request).await.is_ok_and(|r| r.into_inner().messages.len() == 1)
    })
    .await;
    let inbox = pb::ListMessagesRequest { account_id: tom, mailbox: "INBOX".into() };
    assert_eq!(stack.mailbox().await.list_messages(inbox).await.unwrap().into_inner().messages.len(), 0);
    stack.stop().await;
}
