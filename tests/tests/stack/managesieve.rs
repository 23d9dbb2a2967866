//! ManageSieve (RFC 5804) on the access role, driven by a client we did not write: the `managesieve`
//! library from PyPI, over STARTTLS, against the mailbox role's Sieve service and PostgreSQL.

use mailbus_tests::clients::managesieve_session;
use mailbus_tests::{Infra, TestStack};
use serde_json::{Value, json};

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
