//! JMAP end to end over HTTP (curl), on the whole stack: mail that arrives over SMTP is read, searched,
//! moved and destroyed with JMAP; changes made over IMAP show in Email/changes and the reverse; a reply is
//! threaded with its original; EmailSubmission sends to a local account and, through the transport map,
//! to a remote server; another account's ids are refused; and jmapc, a client we did not write, reads,
//! searches and sends.

use std::net::SocketAddr;
use std::time::Duration;

use mailbus_tests::clients::{SmtpOutcome, SubmitMode, imap_session, run_program, smtp_send, smtp_submit};
use mailbus_tests::fake_smtp::{FakeSmtp, Script};
use mailbus_tests::http::{api, basic, curl};
use mailbus_tests::{TestStack, wait_until};
use serde_json::{Value, json};

const USING: [&str; 3] = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:submission"];

/// A JMAP user of one stack: address, account id and credentials.
struct User {
    addr: SocketAddr,
    auth: String,
    account: String,
}

impl User {
    async fn new(stack: &TestStack, address: &str) -> User {
        let id = stack.add_account(address, "secret").await;
        User { addr: stack.http_addr(), auth: basic(address, "secret"), account: format!("a{id}") }
    }

    /// Sends `calls` (`[name, arguments, callId]`, accountId filled in) and returns the method responses.
    async fn request(&self, calls: Value) -> Vec<Value> {
        self.request_from("127.0.0.1", calls).await
    }

    /// [`User::request`] from the loopback address `source`.
    async fn request_from(&self, source: &str, calls: Value) -> Vec<Value> {
        let calls: Vec<Value> = calls
            .as_array()
            .expect("a list of calls")
            .iter()
            .map(|call| {
                let mut call = call.clone();
                if call[1].get("accountId").is_none() {
                    call[1]["accountId"] = json!(self.account);
                }
                call
            })
            .collect();
        let body = json!({"using": USING, "methodCalls": calls}).to_string();
        let args =
            ["--interface", source, "-H", &self.auth, "-H", "Content-Type: application/json", "--data-binary", &body];
        let reply = curl(self.addr, "/jmap/api", &args).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["methodResponses"].as_array().expect("methodResponses").clone()
    }

    /// One call; panics on a method error.
    async fn call(&self, method: &str, arguments: Value) -> Value {
        let responses = self.request(json!([[method, arguments, "0"]])).await;
        assert_eq!(responses[0][0], method, "{:#}", responses[0]);
        responses[0][1].clone()
    }

    async fn mailbox(&self, role: &str) -> String {
        let mailboxes = self.call("Mailbox/get", json!({"ids": null})).await;
        mailboxes["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == role)
            .unwrap_or_else(|| panic!("no {role} mailbox: {mailboxes:#}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn state(&self) -> String {
        self.call("Email/get", json!({"ids": []})).await["state"].as_str().unwrap().to_owned()
    }

    async fn inbox_ids(&self) -> Vec<String> {
        let inbox = self.mailbox("inbox").await;
        let found = self.call("Email/query", json!({"filter": {"inMailbox": inbox}})).await;
        found["ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect()
    }
}

async fn deliver_smtp(stack: &TestStack, to: &str, message: &str) {
    let sent = smtp_send(stack.smtp_addr(), "sender@remote.test", &[to], message.as_bytes()).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { code: 250, .. }), "{sent:?}");
}

fn message(subject: &str, id: &str, extra: &str, body: &str) -> String {
    format!(
        "From: Sender <sender@remote.test>\r\nTo: alice@example.org\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n{extra}\r\n{body}\r\n"
    )
}

async fn wait_for_inbox(user: &User, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    wait_until(Duration::from_secs(20), "mail reaches the inbox", async || {
        ids = user.inbox_ids().await;
        ids.len() >= count
    })
    .await;
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_reads_searches_moves_and_destroys_mail_that_came_over_smtp() {
    let stack = TestStack::start().await;
    let alice = User::new(&stack, "alice@example.org").await;
    deliver_smtp(
        &stack,
        "alice@example.org",
        &message("Quarterly figures", "q1@remote.test", "", "The turnover grew."),
    )
    .await;
    deliver_smtp(&stack, "alice@example.org", &message("Lunch", "l1@remote.test", "", "Pizza at noon?")).await;
    wait_for_inbox(&alice, 2).await;
    let inbox = alice.mailbox("inbox").await;
    let archive = alice.mailbox("archive").await;

    // Mailbox/get: roles and counts.
    let mailboxes = alice.call("Mailbox/get", json!({"ids": [inbox]})).await;
    assert_eq!(mailboxes["list"][0]["name"], "INBOX");
    assert_eq!(mailboxes["list"][0]["totalEmails"], 2);
    assert_eq!(mailboxes["list"][0]["unreadEmails"], 2);

    // Email/query and Email/get in one request, chained by a result reference; newest first.
    let responses = alice
        .request(json!([
            ["Email/query", {"filter": {"inMailbox": inbox}, "sort": [{"property": "receivedAt", "isAscending": false}], "limit": 50}, "q"],
            ["Email/get", {"#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                           "properties": ["subject", "from", "preview", "mailboxIds", "keywords"]}, "g"]
        ]))
        .await;
    assert_eq!(responses[1][0], "Email/get", "{:#}", responses[1]);
    let list = responses[1][1]["list"].as_array().unwrap();
    let subjects: Vec<&str> = list.iter().map(|e| e["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["Lunch", "Quarterly figures"]);
    assert_eq!(list[0]["from"][0]["email"], "sender@remote.test");
    assert_eq!(list[0]["from"][0]["name"], "Sender");
    assert!(list[1]["preview"].as_str().unwrap().contains("turnover grew"), "{:#}", list[1]);

    // Search by body text and by subject.
    let found = alice.call("Email/query", json!({"filter": {"text": "turnover"}})).await;
    assert_eq!(found["ids"].as_array().unwrap().len(), 1);
    let quarterly = found["ids"][0].as_str().unwrap().to_owned();
    let found = alice.call("Email/query", json!({"filter": {"subject": "lunch"}})).await;
    let lunch = found["ids"][0].as_str().unwrap().to_owned();
    assert_ne!(lunch, quarterly);

    // Email/set: move one to Archive (and mark it read), destroy the other.
    let before = alice.state().await;
    let set = alice
        .call(
            "Email/set",
            json!({"update": {quarterly.clone(): {"mailboxIds": {archive.clone(): true}, "keywords/$seen": true}},
                   "destroy": [lunch.clone()]}),
        )
        .await;
    assert!(set["updated"].get(&quarterly).is_some(), "{set:#}");
    assert_eq!(set["destroyed"], json!([lunch]));
    let got =
        alice.call("Email/get", json!({"ids": [quarterly, lunch], "properties": ["mailboxIds", "keywords"]})).await;
    assert_eq!(got["list"][0]["mailboxIds"], json!({archive.clone(): true}));
    assert_eq!(got["list"][0]["keywords"], json!({"$seen": true}));
    assert_eq!(got["notFound"], json!([lunch]));

    // Email/changes says the same, and so do the counts.
    let changes = alice.call("Email/changes", json!({"sinceState": before})).await;
    assert_eq!(changes["updated"], json!([quarterly]), "{changes:#}");
    assert_eq!(changes["destroyed"], json!([lunch]), "{changes:#}");
    let counts = alice.call("Mailbox/get", json!({"ids": [inbox.clone(), archive.clone()]})).await;
    assert_eq!(counts["list"][0]["totalEmails"], 0);
    assert_eq!(counts["list"][1]["totalEmails"], 1);
    assert_eq!(counts["list"][1]["unreadEmails"], 0);

    // IMAP sees the same: INBOX is empty, Archive has one \Seen message.
    let steps = json!([
        ["login", "alice@example.org", "secret"],
        ["select", "Archive"],
        ["fetch", "1:*", "(FLAGS)"],
        ["select", "INBOX"],
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    // results[0] is the greeting.
    assert!(results[3].to_string().contains("\\\\Seen"), "{results:?}");
    assert_eq!(results[4], json!(["OK", ["0"]]), "INBOX is empty over IMAP: {results:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_and_imap_see_each_others_changes_and_threads_group_replies() {
    let stack = TestStack::start().await;
    let alice = User::new(&stack, "alice@example.org").await;
    deliver_smtp(&stack, "alice@example.org", &message("Plans", "p1@remote.test", "", "Shall we meet?")).await;
    let ids = wait_for_inbox(&alice, 1).await;
    let original = ids[0].clone();

    // A delivery over SMTP shows in Email/changes as created, with its thread.
    let after_first = alice.state().await;
    let reply = message(
        "Re: Plans",
        "p2@remote.test",
        "In-Reply-To: <p1@remote.test>\r\nReferences: <p1@remote.test>\r\n",
        "Yes, Tuesday.",
    );
    deliver_smtp(&stack, "alice@example.org", &reply).await;
    let ids = wait_for_inbox(&alice, 2).await;
    let answer = ids.iter().find(|id| **id != original).unwrap().clone();
    let changes = alice.call("Email/changes", json!({"sinceState": after_first})).await;
    assert_eq!(changes["created"], json!([answer]), "{changes:#}");

    // Thread/get groups the reply with its original, oldest first.
    let got =
        alice.call("Email/get", json!({"ids": [original.clone(), answer.clone()], "properties": ["threadId"]})).await;
    let thread = got["list"][0]["threadId"].as_str().unwrap().to_owned();
    assert_eq!(got["list"][1]["threadId"], thread);
    let threads = alice.call("Thread/get", json!({"ids": [thread]})).await;
    assert_eq!(threads["list"][0]["emailIds"], json!([original, answer]));

    // A flag set over IMAP shows in Email/changes and Email/get.
    let before_imap = alice.state().await;
    let steps =
        json!(
            [["login", "alice@example.org", "secret"], ["select", "INBOX"], ["store", "1", "+FLAGS", "(\\Flagged)"],]
        );
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert_eq!(results[3][0], "OK", "{results:?}");
    let changes = alice.call("Email/changes", json!({"sinceState": before_imap})).await;
    assert_eq!(changes["updated"], json!([original]), "{changes:#}");
    assert_ne!(changes["newState"], json!(before_imap));
    let got = alice.call("Email/get", json!({"ids": [original], "properties": ["keywords"]})).await;
    assert_eq!(got["list"][0]["keywords"], json!({"$flagged": true}));

    // A keyword set over JMAP is a flag over IMAP.
    alice.call("Email/set", json!({"update": {answer.clone(): {"keywords/$seen": true}}})).await;
    let steps = json!([["login", "alice@example.org", "secret"], ["select", "INBOX"], ["fetch", "2", "(FLAGS)"]]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert!(results[3].to_string().contains("\\\\Seen"), "{results:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_submission_reaches_a_local_account_and_a_remote_server() {
    let fake = FakeSmtp::start(Script::default()).await;
    let stack = TestStack::builder()
        .set("MAILBUS_RELAY_TRANSPORTS", &format!("remote.test={},*=127.0.0.1:9", fake.addr()))
        .start()
        .await;
    let alice = User::new(&stack, "alice@example.org").await;
    let bob = User::new(&stack, "bob@example.org").await;
    let drafts = alice.mailbox("drafts").await;
    let sent = alice.mailbox("sent").await;
    let identity = alice.call("Identity/get", json!({})).await["list"][0]["id"].as_str().unwrap().to_owned();

    // From 127.0.0.2, which the Received: line must name.
    let responses = alice
        .request_from("127.0.0.2", json!([
            ["Email/set", {"create": {"d": {
                "mailboxIds": {drafts.clone(): true},
                "keywords": {"$draft": true},
                "from": [{"name": "Alice", "email": "alice@example.org"}],
                "to": [{"email": "bob@example.org"}, {"email": "carol@remote.test"}],
                "bcc": [{"email": "dave@remote.test"}],
                "subject": "Over JMAP",
                "bodyValues": {"t": {"value": "Sent with EmailSubmission/set."}},
                "textBody": [{"partId": "t", "type": "text/plain"}]
            }}}, "0"],
            ["EmailSubmission/set", {
                "create": {"s": {"identityId": identity, "emailId": "#d"}},
                "onSuccessUpdateEmail": {"#s": {format!("mailboxIds/{drafts}"): null, format!("mailboxIds/{sent}"): true,
                                                "keywords/$draft": null}}
            }, "1"]
        ]))
        .await;
    assert_eq!(responses[0][0], "Email/set", "{:#}", responses[0]);
    let draft = responses[0][1]["created"]["d"]["id"].as_str().unwrap().to_owned();
    assert_eq!(responses[1][0], "EmailSubmission/set", "{:#}", responses[1]);
    assert!(responses[1][1]["created"]["s"]["id"].is_string(), "{:#}", responses[1]);
    assert_eq!(responses[2][0], "Email/set", "the implicit Email/set of onSuccessUpdateEmail: {responses:#?}");
    let got = alice.call("Email/get", json!({"ids": [draft], "properties": ["mailboxIds", "keywords"]})).await;
    assert_eq!(got["list"][0]["mailboxIds"], json!({sent: true}));
    assert_eq!(got["list"][0]["keywords"], json!({}));

    // Bob has it, with the Received line of a submission.
    let ids = wait_for_inbox(&bob, 1).await;
    let got =
        bob.call("Email/get", json!({"ids": ids, "properties": ["subject", "from", "header:Received:asText"]})).await;
    assert_eq!(got["list"][0]["subject"], "Over JMAP");
    assert_eq!(got["list"][0]["from"][0]["email"], "alice@example.org");
    let received = got["list"][0]["header:Received:asText"].as_str().unwrap_or_default();
    assert!(received.contains("HTTP") && received.contains("127.0.0.2"), "{got:#}");

    // And so does the remote server, through the transport map.
    wait_until(Duration::from_secs(20), "the remote server receives the submission", async || {
        !fake.received().is_empty()
    })
    .await;
    let received = fake.received();
    assert_eq!(received[0].mail_from, "alice@example.org");
    let mut rcpt_to = received[0].rcpt_to.clone();
    rcpt_to.sort();
    assert_eq!(rcpt_to, ["carol@remote.test", "dave@remote.test"], "Bcc recipients are in the envelope");
    let data = String::from_utf8_lossy(&received[0].data).into_owned();
    assert!(data.contains("Subject: Over JMAP"), "{data}");
    // RFC 8621 §7.5: and in nobody's copy of the header.
    assert!(!data.to_ascii_lowercase().contains("dave@remote.test"), "Bcc left in the message: {data}");
    let header = bob.call("Email/get", json!({"ids": ids, "properties": ["bcc", "header:Bcc"]})).await;
    assert_eq!(header["list"][0]["bcc"], Value::Null, "{header:#}");
    let kept = alice.call("Email/get", json!({"ids": [draft.clone()], "properties": ["bcc"]})).await;
    assert_eq!(kept["list"][0]["bcc"][0]["email"], "dave@remote.test", "the sender's own copy keeps its Bcc");

    // Submitting as someone else's address is refused.
    let forged = alice
        .call(
            "Email/set",
            json!({"create": {"f": {"mailboxIds": {drafts: true}, "from": [{"email": "bob@example.org"}],
                                    "to": [{"email": "carol@remote.test"}], "subject": "forged",
                                    "bodyValues": {"t": {"value": "x"}}, "textBody": [{"partId": "t", "type": "text/plain"}]}}}),
        )
        .await;
    let forged = forged["created"]["f"]["id"].as_str().unwrap().to_owned();
    let refused =
        alice.call("EmailSubmission/set", json!({"create": {"s": {"identityId": identity, "emailId": forged}}})).await;
    assert_eq!(refused["notCreated"]["s"]["type"], "forbiddenFrom", "{refused:#}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_submissions_count_against_the_limits_smtp_submission_counts_in() {
    let stack = TestStack::builder()
        .set("MAILBUS_SUBMISSION_MAX_MESSAGES_PER_ACCOUNT", "2")
        // A day's window, so that the test does not straddle two.
        .set("MAILBUS_SUBMISSION_RATE_WINDOW_SECS", "86400")
        .start()
        .await;
    let alice = User::new(&stack, "alice@example.org").await;
    let bob = User::new(&stack, "bob@example.org").await;
    let over_smtp = smtp_submit(
        stack.submission.expect("submission listener"),
        SubmitMode::StartTls,
        &mailbus_tests::Infra::get().tls_cert,
        ("alice@example.org", "secret"),
        "alice@example.org",
        &["bob@example.org"],
        &crate::message("bob@example.org", "over-smtp"),
    )
    .await;
    assert_eq!(over_smtp.outcome, "ok", "{over_smtp:?}");
    let drafts = alice.mailbox("drafts").await;
    let identity = alice.call("Identity/get", json!({})).await["list"][0]["id"].as_str().unwrap().to_owned();
    let mut outcomes = Vec::new();
    for n in 0..2 {
        let created = alice
            .call(
                "Email/set",
                json!({"create": {"d": {"mailboxIds": {drafts.clone(): true}, "from": [{"email": "alice@example.org"}],
                                        "to": [{"email": "bob@example.org"}], "subject": format!("over-jmap-{n}"),
                                        "bodyValues": {"t": {"value": "x"}}, "textBody": [{"partId": "t", "type": "text/plain"}]}}}),
            )
            .await;
        let email = created["created"]["d"]["id"].as_str().unwrap().to_owned();
        let submitted = alice
            .call("EmailSubmission/set", json!({"create": {"s": {"identityId": identity, "emailId": email}}}))
            .await;
        outcomes.push(submitted);
    }
    assert!(outcomes[0]["created"]["s"]["id"].is_string(), "the second message of two: {:#}", outcomes[0]);
    let refused = &outcomes[1]["notCreated"]["s"];
    assert_eq!(refused["type"], "forbiddenToSend", "the third, after one over SMTP: {:#}", outcomes[1]);
    assert_eq!(refused["description"], "Too many messages from this account, try again later");
    wait_for_inbox(&bob, 2).await;
    stack.wait_for_empty_queue(Duration::from_secs(20)).await;
    assert_eq!(bob.inbox_ids().await.len(), 2, "the refused one was not sent");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_refuses_another_accounts_ids_blobs_and_threads() {
    let stack = TestStack::start().await;
    let alice = User::new(&stack, "alice@example.org").await;
    let mallory = User::new(&stack, "mallory@example.org").await;
    deliver_smtp(&stack, "alice@example.org", &message("Private", "x1@remote.test", "", "Secret words.")).await;
    let ids = wait_for_inbox(&alice, 1).await;
    let got = alice.call("Email/get", json!({"ids": ids, "properties": ["threadId", "blobId", "mailboxIds"]})).await;
    let email = &got["list"][0];
    let (blob, thread) = (email["blobId"].as_str().unwrap(), email["threadId"].as_str().unwrap());
    let mailbox = email["mailboxIds"].as_object().unwrap().keys().next().unwrap().clone();

    // Mallory names Alice's objects in her own account: not found, never shown.
    let got = mallory.call("Email/get", json!({"ids": ids})).await;
    assert_eq!(got["notFound"], json!(ids));
    assert_eq!(got["list"], json!([]));
    let got = mallory.call("Thread/get", json!({"ids": [thread]})).await;
    assert_eq!(got["notFound"], json!([thread]));
    let got = mallory.call("Mailbox/get", json!({"ids": [mailbox]})).await;
    assert_eq!(got["notFound"], json!([mailbox]));
    let set = mallory.call("Email/set", json!({"destroy": ids})).await;
    assert_eq!(set["notDestroyed"][&ids[0]]["type"], "notFound", "{set:#}");
    let found = mallory.call("Email/query", json!({"filter": {"text": "secret"}})).await;
    assert_eq!(found["ids"], json!([]));

    // Alice's blob through Mallory's account, and through Alice's account id with Mallory's credentials.
    let path = format!("/jmap/download/{}/{blob}/m.eml?type=message/rfc822", mallory.account);
    assert_eq!(curl(mallory.addr, &path, &["-H", &mallory.auth]).await.status, 404);
    let path = format!("/jmap/download/{}/{blob}/m.eml?type=message/rfc822", alice.account);
    let reply = curl(mallory.addr, &path, &["-H", &mallory.auth]).await;
    assert!(matches!(reply.status, 403 | 404), "{}", reply.status);
    let reply = curl(alice.addr, &path, &["-H", &alice.auth]).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("Secret words."));

    // A method naming Alice's account with Mallory's credentials.
    let responses = mallory.request(json!([["Email/get", {"accountId": alice.account, "ids": ids}, "0"]])).await;
    assert_eq!(responses[0][0], "error");
    assert_eq!(responses[0][1]["type"], "accountNotFound");

    // Alice still has it all.
    let got = alice.call("Email/get", json!({"ids": ids, "properties": ["subject"]})).await;
    assert_eq!(got["list"][0]["subject"], "Private");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_pushes_a_state_change_after_an_smtp_delivery() {
    let stack = TestStack::start().await;
    let alice = User::new(&stack, "alice@example.org").await;
    let before = alice.state().await;
    let url = format!("http://{}/jmap/eventsource?types=*&closeafter=state&ping=0", alice.addr);
    let auth = alice.auth.clone();
    let events = tokio::spawn(async move {
        let args = ["-s", "-N", "--max-time", "20", "-H", &auth, &url].map(String::from);
        run_program("curl", &args, b"").await
    });
    // The stream is open once the role counts it.
    wait_until(Duration::from_secs(10), "the EventSource connection is open", async || {
        let metrics = curl(stack.http_metrics.unwrap(), "/metrics", &[]).await;
        metrics.body.lines().any(|l| l.starts_with("mailbus_http_eventsource_open ") && !l.ends_with(" 0"))
    })
    .await;
    deliver_smtp(&stack, "alice@example.org", &message("Push", "push@remote.test", "", "Ping.")).await;
    let (ok, output) = events.await.unwrap();
    assert!(ok, "{output}");
    let data = output.lines().find_map(|l| l.strip_prefix("data:")).unwrap_or_else(|| panic!("no event: {output}"));
    let change: Value = serde_json::from_str(data.trim()).unwrap();
    assert_eq!(change["@type"], "StateChange");
    let state = change["changed"][&alice.account]["Email"].as_str().unwrap().to_owned();
    assert_ne!(state, before);
    let changes = alice.call("Email/changes", json!({"sinceState": before})).await;
    assert_eq!(changes["created"].as_array().unwrap().len(), 1, "{changes:#}");
    assert_eq!(changes["newState"], json!(state));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jmapc_an_independent_client_reads_searches_and_sends() {
    let stack = TestStack::start().await;
    let alice = User::new(&stack, "alice@example.org").await;
    let bob = User::new(&stack, "bob@example.org").await;
    deliver_smtp(&stack, "alice@example.org", &message("Harbour report", "h1@remote.test", "", "Boats and tides."))
        .await;
    deliver_smtp(&stack, "alice@example.org", &message("Second note", "h2@remote.test", "", "Nothing else.")).await;
    wait_for_inbox(&alice, 2).await;

    let https = stack.https.expect("the http role serves HTTPS");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/jmapc_session.py");
    let cafile = mailbus_tests::Infra::get().tls_cert.display().to_string();
    let host = format!("localhost:{}", https.port());
    let args = [script, &host, "alice@example.org", "secret", "bob@example.org", "tides", &cafile].map(String::from);
    let (ok, output) = run_program("python3", &args, b"").await;
    assert!(ok, "jmapc failed: {output}");
    let out: Value =
        serde_json::from_str(output.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {output}"));
    assert_eq!(out["account"], json!(alice.account));
    assert_eq!(out["inbox"]["total"], 2);
    assert_eq!(out["newest"], json!(["Second note", "Harbour report"]));
    assert_eq!(out["search"].as_array().unwrap().len(), 1, "{out:#}");
    assert!(out["submission"].is_string(), "{out:#}");
    assert_eq!(out["sent_mailboxes"], json!([out["sent_mailbox"]]));

    let ids = wait_for_inbox(&bob, 1).await;
    let got = bob.call("Email/get", json!({"ids": ids, "properties": ["subject", "from"]})).await;
    assert_eq!(got["list"][0]["subject"], "Sent by jmapc");
    assert_eq!(got["list"][0]["from"][0]["email"], "alice@example.org");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_result_references_cannot_grow_a_request_without_bound() {
    let stack = TestStack::start().await;
    let alice = User::new(&stack, "alice@example.org").await;
    // Each echo repeats the one before twice: 2 KB doubled fifteen times would be 64 MB.
    let mut calls = vec![json!(["Core/echo", {"x": "a".repeat(2000)}, "c0"])];
    for i in 1..16 {
        let reference = json!({"resultOf": format!("c{}", i - 1), "name": "Core/echo", "path": ""});
        calls.push(json!(["Core/echo", {"#a": reference, "#b": reference}, format!("c{i}")]));
    }
    let reply = api(alice.addr, &alice.auth, &json!({"using": USING, "methodCalls": calls})).await;
    assert_eq!(reply.status, 200, "{}", &reply.body[..reply.body.len().min(300)]);
    assert!(reply.body.len() < 30_000_000, "the answer stayed bounded: {} octets", reply.body.len());
    let responses = reply.json()["methodResponses"].as_array().unwrap().clone();
    assert_eq!(responses[1][0], "Core/echo");
    let refused = responses.iter().find(|r| r[0] == "error").expect("a call past the budget is refused");
    assert_eq!(refused[1]["type"], "requestTooLarge", "{refused}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_state_moves_one_step_per_transaction_and_changes_page_by_steps() {
    let stack = TestStack::start().await;
    let alice = User::new(&stack, "alice@example.org").await;
    for n in 0..3 {
        deliver_smtp(
            &stack,
            "alice@example.org",
            &message(&format!("Step {n}"), &format!("s{n}@remote.test"), "", "x"),
        )
        .await;
    }
    let ids = wait_for_inbox(&alice, 3).await;
    let before = alice.state().await;
    // One IMAP STORE on three messages: one transaction, one step of the account's state.
    let steps = json!([
        ["login", "alice@example.org", "secret"],
        ["select", "INBOX"],
        ["store", "1:3", "+FLAGS", "(\\Flagged)"]
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert_eq!(results[3][0], "OK", "{results:?}");
    let after = alice.state().await;
    assert_eq!(after.parse::<u64>().unwrap(), before.parse::<u64>().unwrap() + 1, "one step: {before} -> {after}");
    let changes = alice.call("Email/changes", json!({"sinceState": before})).await;
    let mut updated: Vec<String> = serde_json::from_value(changes["updated"].clone()).unwrap();
    updated.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(updated, expected);
    assert_eq!(changes["newState"], json!(after));
    // A step is never split: with room for two objects, three changed at once cannot be paged.
    let responses = alice.request(json!([["Email/changes", {"sinceState": before, "maxChanges": 2}, "0"]])).await;
    assert_eq!(responses[0][0], "error");
    assert_eq!(responses[0][1]["type"], "cannotCalculateChanges");
    // Two deliveries are two steps, paged one at a time.
    deliver_smtp(&stack, "alice@example.org", &message("Step 3", "s3@remote.test", "", "x")).await;
    deliver_smtp(&stack, "alice@example.org", &message("Step 4", "s4@remote.test", "", "x")).await;
    wait_for_inbox(&alice, 5).await;
    let first = alice.call("Email/changes", json!({"sinceState": after, "maxChanges": 1})).await;
    assert_eq!(first["created"].as_array().unwrap().len(), 1, "{first:#}");
    assert_eq!(first["hasMoreChanges"], true);
    let second = alice.call("Email/changes", json!({"sinceState": first["newState"], "maxChanges": 1})).await;
    assert_eq!(second["created"].as_array().unwrap().len(), 1, "{second:#}");
    assert_ne!(first["created"], second["created"]);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_collapsed_threads_page_past_a_long_thread() {
    let stack = TestStack::start().await;
    let alice = User::new(&stack, "alice@example.org").await;
    // The oldest: a thread of its own. Then a thread of 300 replies, newer than it: collapsing must read
    // past all of them to find the second thread.
    let lone = message("Lone", "lone@remote.test", "", "x");
    stack.deliver("lone", "alice@example.org", lone.as_bytes()).await.unwrap();
    let root = message("Long", "root@remote.test", "", "x");
    stack.deliver("root", "alice@example.org", root.as_bytes()).await.unwrap();
    for n in 0..300 {
        let reply = message("Re: Long", &format!("r{n}@remote.test"), "References: <root@remote.test>\r\n", "x");
        stack.deliver(&format!("r{n}"), "alice@example.org", reply.as_bytes()).await.unwrap();
    }
    let inbox = alice.mailbox("inbox").await;
    let found = alice
        .call(
            "Email/query",
            json!({"filter": {"inMailbox": inbox}, "sort": [{"property": "receivedAt", "isAscending": false}],
                   "collapseThreads": true, "calculateTotal": true, "limit": 5}),
        )
        .await;
    assert_eq!(found["total"], 2, "{found:#}");
    let ids = found["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 2, "{found:#}");
    let got = alice.call("Email/get", json!({"ids": ids, "properties": ["subject"]})).await;
    assert_eq!(got["list"][1]["subject"], "Lone", "{got:#}");
    let second = alice
        .call(
            "Email/query",
            json!({"filter": {"inMailbox": inbox}, "collapseThreads": true, "position": 1, "limit": 5}),
        )
        .await;
    assert_eq!(second["ids"], json!([ids[1]]));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_stored_before_ids_kept_their_brackets_are_threaded_by_their_ids() {
    let stack = TestStack::start().await;
    let id = stack.add_account("alice@example.org", "secret").await;
    // Header values as the parser of earlier releases stored them: ids without angle brackets. The
    // threading trigger (which the migration's backfill runs for every such row) must still find them.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url).await.unwrap();
    let insert = "INSERT INTO messages (account_id, content, size, header_names, header_values)
                  VALUES ($1, 'x', 1, $2, $3) RETURNING thread_id";
    let names = vec!["message-id".to_owned(), "subject".to_owned()];
    let root: i64 = sqlx::query_scalar(insert)
        .bind(id)
        .bind(&names)
        .bind(vec!["old-root@example.net".to_owned(), "Budget".to_owned()])
        .fetch_one(&mut db)
        .await
        .unwrap();
    let names = vec!["message-id".to_owned(), "in-reply-to".to_owned(), "references".to_owned(), "subject".to_owned()];
    let values = vec![
        "old-reply@example.net".to_owned(),
        "old-root@example.net".to_owned(),
        "old-root@example.net".to_owned(),
        "About the numbers".to_owned(),
    ];
    let reply: i64 = sqlx::query_scalar(insert).bind(id).bind(&names).bind(values).fetch_one(&mut db).await.unwrap();
    assert_eq!(reply, root, "a reply with a different subject joins its parent's thread by id");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_change_log_and_delivery_records_keep_their_retention_and_older_states_start_over() {
    let mut stack = TestStack::start().await;
    let alice = User::new(&stack, "alice@example.org").await;
    deliver_smtp(&stack, "alice@example.org", &message("Old", "old@remote.test", "", "x")).await;
    wait_for_inbox(&alice, 1).await;
    let old = alice.state().await;
    // Everything so far falls out of the retention window.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&stack.database_url).await.unwrap();
    sqlx::query("UPDATE changes SET at = now() - interval '31 days'").execute(&mut db).await.unwrap();
    // So do the first delivery's idempotency records.
    for table in ["delivery_runs", "deliveries"] {
        let backdate = format!("UPDATE {table} SET delivered_at = now() - interval '31 days'");
        sqlx::query(sqlx::AssertSqlSafe(backdate)).execute(&mut db).await.unwrap();
    }
    deliver_smtp(&stack, "alice@example.org", &message("New", "new@remote.test", "", "x")).await;
    let ids = wait_for_inbox(&alice, 2).await;
    // A mailbox role prunes the log when it starts (and every hour).
    stack.start_roles(&[mailbus::roles::Role::Mailbox]).await;
    wait_until(Duration::from_secs(20), "the log is pruned", async || {
        let floor: i64 = sqlx::query_scalar("SELECT changes_floor FROM accounts WHERE address = 'alice@example.org'")
            .fetch_one(&mut db)
            .await
            .unwrap();
        floor > 0
    })
    .await;
    // The old delivery's records go (there were two of each), the new one's stay.
    wait_until(Duration::from_secs(20), "the delivery records are pruned", async || {
        let counts = "SELECT (SELECT count(*) FROM delivery_runs), (SELECT count(*) FROM deliveries)";
        let (runs, placed): (i64, i64) = sqlx::query_as(counts).fetch_one(&mut db).await.unwrap();
        (runs, placed) == (1, 1)
    })
    .await;
    for method in ["Email/changes", "Mailbox/changes", "Thread/changes"] {
        let responses = alice.request(json!([[method, {"sinceState": "0"}, "0"]])).await;
        assert_eq!(responses[0][1]["type"], "cannotCalculateChanges", "{method}: {responses:?}");
    }
    let responses = alice.request(json!([["Email/queryChanges", {"sinceQueryState": "0"}, "0"]])).await;
    assert_eq!(responses[0][1]["type"], "cannotCalculateChanges", "{responses:?}");
    // The state a client had when the old steps were the last is still good: what came after is there.
    let changes = alice.call("Email/changes", json!({"sinceState": old})).await;
    let created = changes["created"].as_array().unwrap();
    assert_eq!(created.len(), 1, "{changes:#}");
    assert!(ids.contains(&created[0].as_str().unwrap().to_owned()));
    stack.stop().await;
}
