//! The mailbox role's JMAP objects other than Email, through the `Jmap` gRPC service as the http role calls
//! it: Mailbox, Thread, Identity, EmailSubmission, blobs, and the refusal of a disabled account.

use futures::StreamExt;
use mailbus::roles::Role;
use mailbus_proto::v1::{self as pb, blob_chunk, blob_upload, prepare_submission_response::Outcome};
use mailbus_tests::TestStack;
use serde_json::{Value, json};
use tonic::Code;

use crate::store::append;

async fn stack() -> TestStack {
    TestStack::builder().roles(&[Role::Mailbox]).start().await
}

/// The single response of a call, which must be named as the method.
async fn call(stack: &TestStack, account: i64, method: &str, arguments: Value) -> Value {
    let mut responses = stack.jmap_call(account, method, arguments).await;
    assert_eq!(responses.len(), 1, "{method}: {responses:?}");
    let (name, arguments) = responses.remove(0);
    assert_eq!(name, method, "{method} answered {arguments}");
    arguments
}

async fn state(stack: &TestStack, account: i64) -> String {
    let request = pb::StateRequest { account_id: account };
    stack.jmap().await.state(request).await.expect("state").into_inner().state
}

/// The account's mailboxes by name (the last level), from Mailbox/get.
async fn mailboxes(stack: &TestStack, account: i64) -> Vec<Value> {
    call(stack, account, "Mailbox/get", json!({"accountId": "a", "ids": null})).await["list"]
        .as_array()
        .expect("a list")
        .clone()
}

fn named<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter().find(|m| m["name"] == name).unwrap_or_else(|| panic!("no mailbox {name} in {list:?}"))
}

async fn imap_names(stack: &TestStack, account_id: i64) -> Vec<String> {
    let request = pb::ListMailboxesRequest { account_id, patterns: vec!["*".into()], ..Default::default() };
    let listed = stack.mailbox().await.list_mailboxes(request).await.expect("list").into_inner().mailboxes;
    listed.into_iter().map(|l| l.name).collect()
}

const ORIGINAL: &[u8] = b"From: Bob <bob@example.net>\r\nTo: ann@example.org\r\nSubject: Lunch\r\n\
Message-ID: <lunch@example.net>\r\n\r\nNoon?\r\n";
const REPLY: &[u8] = b"From: Carl <carl@example.net>\r\nTo: ann@example.org\r\nSubject: Re: Lunch\r\n\
Message-ID: <reply@example.net>\r\nIn-Reply-To: <lunch@example.net>\r\n\r\nYes.\r\n";

/// The ids of the threads created since `since`, from Thread/changes.
async fn threads_since(stack: &TestStack, account: i64, since: &str) -> Vec<String> {
    let changes = call(stack, account, "Thread/changes", json!({"sinceState": since})).await;
    serde_json::from_value(changes["created"].clone()).unwrap()
}

#[tokio::test]
async fn jmap_mailbox_counts_roles_changes_and_threads_after_delivery() {
    let stack = stack().await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    let before = state(&stack, ann).await;
    stack.deliver("q1", "ann@example.org", ORIGINAL).await.expect("deliver");
    stack.deliver("q2", "ann@example.org", REPLY).await.expect("deliver");

    let list = mailboxes(&stack, ann).await;
    let inbox = named(&list, "INBOX");
    assert_eq!(inbox["role"], "inbox");
    assert_eq!(inbox["sortOrder"], 1);
    assert_eq!((&inbox["totalEmails"], &inbox["unreadEmails"]), (&json!(2), &json!(2)));
    assert_eq!((&inbox["totalThreads"], &inbox["unreadThreads"]), (&json!(1), &json!(1)));
    assert_eq!(inbox["myRights"]["mayDelete"], false);
    assert_eq!(inbox["parentId"], Value::Null);
    let sent = named(&list, "Sent");
    assert_eq!((&sent["role"], &sent["totalEmails"]), (&json!("sent"), &json!(0)));
    assert_eq!(sent["myRights"]["mayDelete"], true);
    assert!(sent["sortOrder"].as_u64().unwrap() > 1);

    let changes = call(&stack, ann, "Mailbox/changes", json!({"sinceState": before})).await;
    assert_eq!(changes["updated"], json!([inbox["id"]]), "{changes}");
    assert_eq!(changes["updatedProperties"], json!(["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]));
    assert_eq!(changes["newState"], json!(state(&stack, ann).await));

    let threads = threads_since(&stack, ann, &before).await;
    assert_eq!(threads.len(), 1, "the reply joined the original's thread");
    let got = call(&stack, ann, "Thread/get", json!({"ids": [threads[0], "t999999"]})).await;
    let emails = got["list"][0]["emailIds"].as_array().unwrap();
    assert_eq!(emails.len(), 2);
    assert!(
        emails[0].as_str().unwrap()[1..].parse::<i64>().unwrap() < emails[1].as_str().unwrap()[1..].parse().unwrap()
    );
    assert_eq!(got["notFound"], json!(["t999999"]));

    let only = call(&stack, ann, "Mailbox/get", json!({"ids": [inbox["id"], "m0"], "properties": ["role"]})).await;
    assert_eq!(only["list"], json!([{"id": inbox["id"], "role": "inbox"}]));
    assert_eq!(only["notFound"], json!(["m0"]));
}

#[tokio::test]
async fn jmap_mailbox_sort_order_is_the_clients_to_set() {
    let stack = stack().await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    let created = call(
        &stack,
        ann,
        "Mailbox/set",
        json!({"create": {
            "first": {"name": "Alpha", "sortOrder": 0},
            "plain": {"name": "Plain"},
            "negative": {"name": "Negative", "sortOrder": -1},
            "huge": {"name": "Huge", "sortOrder": 2_147_483_648u64},
        }}),
    )
    .await;
    let alpha = created["created"]["first"]["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
    assert_eq!(created["created"]["first"]["sortOrder"], 0);
    assert_eq!(created["created"]["plain"]["sortOrder"], 100, "the default for a mailbox without a role");
    for refused in ["negative", "huge"] {
        assert_eq!(created["notCreated"][refused]["properties"], json!(["sortOrder"]), "{created}");
    }
    let list = mailboxes(&stack, ann).await;
    assert_eq!(
        (named(&list, "Alpha")["sortOrder"].clone(), named(&list, "INBOX")["sortOrder"].clone()),
        (json!(0), json!(1))
    );
    let sorted = async || -> Vec<String> {
        let query = call(&stack, ann, "Mailbox/query", json!({"sort": [{"property": "sortOrder"}]})).await;
        serde_json::from_value(query["ids"].clone()).unwrap()
    };
    assert_eq!(sorted().await.first(), Some(&alpha), "0 sorts before INBOX's 1");

    let before = state(&stack, ann).await;
    let updated = call(&stack, ann, "Mailbox/set", json!({"update": {alpha.clone(): {"sortOrder": 500}}})).await;
    assert!(updated["updated"].as_object().is_some_and(|u| u.contains_key(&alpha)), "{updated}");
    let changes = call(&stack, ann, "Mailbox/changes", json!({"sinceState": before})).await;
    assert_eq!(changes["updated"], json!([alpha]), "a new sortOrder is a Mailbox change: {changes}");
    assert_eq!(changes["updatedProperties"], Value::Null);
    assert_eq!(named(&mailboxes(&stack, ann).await, "Alpha")["sortOrder"], 500);
    assert_eq!(sorted().await.last(), Some(&alpha));
    let bad = call(&stack, ann, "Mailbox/set", json!({"update": {alpha.clone(): {"sortOrder": "1"}}})).await;
    assert_eq!(bad["notUpdated"][&alpha]["properties"], json!(["sortOrder"]));
}

#[tokio::test]
async fn jmap_mailbox_set_creates_renames_and_destroys_as_imap_sees_it() {
    let stack = stack().await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    let before = state(&stack, ann).await;
    let created = call(
        &stack,
        ann,
        "Mailbox/set",
        json!({"create": {
            "child": {"name": "Q3", "parentId": "#top"},
            "top": {"name": "Projects", "isSubscribed": true},
            "slash": {"name": "a/b"},
            "dup": {"name": "Sent"},
        }}),
    )
    .await;
    let top = created["created"]["top"]["id"].as_str().expect("top created").to_owned();
    let child = created["created"]["child"]["id"].as_str().expect("child created").to_owned();
    assert_eq!(created["notCreated"]["slash"]["type"], "invalidProperties");
    assert_eq!(created["notCreated"]["dup"]["type"], "invalidProperties");
    assert_eq!(created["oldState"], json!(before));
    assert!(imap_names(&stack, ann).await.contains(&"Projects/Q3".to_owned()));
    let list = mailboxes(&stack, ann).await;
    assert_eq!(named(&list, "Q3")["parentId"], json!(top));
    assert_eq!(named(&list, "Projects")["isSubscribed"], true);
    assert_eq!(named(&list, "Q3")["isSubscribed"], false);

    let changes = call(&stack, ann, "Mailbox/changes", json!({"sinceState": before})).await;
    let mut made: Vec<String> = serde_json::from_value(changes["created"].clone()).unwrap();
    made.sort();
    let mut expected = vec![top.clone(), child.clone()];
    expected.sort();
    assert_eq!(made, expected);
    assert_eq!(changes["updatedProperties"], Value::Null);

    // Top-level mailboxes, as a tree: Projects is followed by its child.
    let tree = call(&stack, ann, "Mailbox/query", json!({"sortAsTree": true, "sort": [{"property": "name"}]})).await;
    let ids: Vec<String> = serde_json::from_value(tree["ids"].clone()).unwrap();
    let at = ids.iter().position(|i| *i == top).unwrap();
    assert_eq!(ids[at + 1], child, "{ids:?}");
    let children = call(&stack, ann, "Mailbox/query", json!({"filter": {"parentId": top}})).await;
    assert_eq!(children["ids"], json!([child]));
    let roles =
        call(&stack, ann, "Mailbox/query", json!({"filter": {"hasAnyRole": true}, "calculateTotal": true})).await;
    assert_eq!(roles["total"], 6, "INBOX and the five special-use mailboxes: {roles}");

    let query_state = tree["queryState"].clone();
    let renamed = call(&stack, ann, "Mailbox/set", json!({"update": {top.clone(): {"name": "Work"}}})).await;
    let moved = call(
        &stack,
        ann,
        "Mailbox/queryChanges",
        json!({"sinceQueryState": query_state, "sortAsTree": true, "sort": [{"property": "name"}]}),
    )
    .await;
    // The child's name changed with its parent's.
    assert_eq!(moved["removed"], json!([top, child]), "{moved}");
    let index = moved["added"][0]["index"].as_u64().unwrap() as usize;
    assert_eq!(moved["added"], json!([{"id": top, "index": index}, {"id": child, "index": index + 1}]));
    assert_ne!(index, at, "Work sorts elsewhere than Projects did");
    let unknown = stack.jmap_call(ann, "Mailbox/queryChanges", json!({"sinceQueryState": "x"})).await;
    assert_eq!(unknown[0].1["type"], "cannotCalculateChanges");
    assert!(renamed["updated"].as_object().unwrap().contains_key(&top), "{renamed}");
    let names = imap_names(&stack, ann).await;
    assert!(names.contains(&"Work/Q3".to_owned()) && !names.contains(&"Projects".to_owned()), "{names:?}");

    append(&stack, ann, "Work/Q3", &[], None, ORIGINAL).await.expect("append");
    let inbox = named(&mailboxes(&stack, ann).await, "INBOX")["id"].clone();
    let refused = call(
        &stack,
        ann,
        "Mailbox/set",
        json!({"destroy": [top, child, inbox], "ifInState": state(&stack, ann).await}),
    )
    .await;
    assert_eq!(refused["notDestroyed"][&top]["type"], "mailboxHasChild", "{refused}");
    assert_eq!(refused["notDestroyed"][&child]["type"], "mailboxHasEmail");
    assert_eq!(refused["notDestroyed"][inbox.as_str().unwrap()]["type"], "forbidden");

    let stale = stack.jmap_call(ann, "Mailbox/set", json!({"destroy": [child], "ifInState": before})).await;
    assert_eq!(stale, vec![("error".to_owned(), json!({"type": "stateMismatch"}))]);

    let destroyed =
        call(&stack, ann, "Mailbox/set", json!({"destroy": [top, child], "onDestroyRemoveEmails": true})).await;
    assert_eq!(destroyed["destroyed"], json!([child, top]), "the child goes first: {destroyed}");
    assert!(!imap_names(&stack, ann).await.iter().any(|n| n.starts_with("Work")));
    let usage = stack.mailbox().await.get_quota(pb::GetQuotaRequest { account_id: ann }).await.unwrap().into_inner();
    assert_eq!(usage.used_messages, 0, "the email that was only there is gone");
}

#[tokio::test]
async fn jmap_identities_default_to_the_account_and_refuse_foreign_addresses() {
    let stack = stack().await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    let alias = pb::AddAliasRequest { address: "sales@example.org".into(), targets: vec!["ann@example.org".into()] };
    stack.directory().await.add_alias(alias).await.expect("alias");

    let got = call(&stack, ann, "Identity/get", json!({})).await;
    let list = got["list"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{got}");
    assert_eq!(
        (&list[0]["email"], &list[0]["name"], &list[0]["mayDelete"]),
        (&json!("ann@example.org"), &json!(""), &json!(true))
    );
    let again = call(&stack, ann, "Identity/get", json!({})).await;
    assert_eq!(again["list"].as_array().unwrap().len(), 1, "a second read makes no second default");
    assert_eq!(again["state"], got["state"]);

    let set = call(
        &stack,
        ann,
        "Identity/set",
        json!({"create": {
            "other": {"email": "boss@example.org"},
            "alias": {"email": "sales@example.org", "name": "Sales", "replyTo": [{"name": null, "email": "help@example.org"}]},
        }}),
    )
    .await;
    assert_eq!(set["notCreated"]["other"]["type"], "forbiddenFrom", "{set}");
    let sales = set["created"]["alias"]["id"].as_str().expect("alias identity").to_owned();
    let changes = call(&stack, ann, "Identity/changes", json!({"sinceState": got["state"]})).await;
    assert_eq!(changes["created"], json!([sales]));

    let update = call(
        &stack,
        ann,
        "Identity/set",
        json!({"update": {sales.clone(): {"email": "ann@example.org"}, "i999999": {"name": "x"}}}),
    )
    .await;
    assert_eq!(update["notUpdated"][&sales]["type"], "invalidProperties");
    assert_eq!(update["notUpdated"]["i999999"]["type"], "notFound");
    let renamed =
        call(&stack, ann, "Identity/set", json!({"update": {sales.clone(): {"textSignature": "-- Sales"}}})).await;
    assert!(renamed["updated"].as_object().unwrap().contains_key(&sales));
    let read = call(&stack, ann, "Identity/get", json!({"ids": [sales]})).await;
    assert_eq!(read["list"][0]["textSignature"], "-- Sales");
    assert_eq!(read["list"][0]["replyTo"], json!([{"name": null, "email": "help@example.org"}]));
}

const MULTIPART: &[u8] = b"From: Bob <bob@example.net>\r\nTo: ann@example.org\r\nSubject: Report\r\n\
Message-ID: <report@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n\
--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--b--\r\n";

async fn upload(
    stack: &TestStack,
    account_id: i64,
    media_type: &str,
    content: &[u8],
) -> Result<pb::BlobUploaded, tonic::Status> {
    let header = pb::BlobUpload {
        part: Some(blob_upload::Part::Header(pb::UploadHeader { account_id, media_type: media_type.into() })),
    };
    let chunks = content.chunks(3).map(|c| pb::BlobUpload { part: Some(blob_upload::Part::Chunk(c.to_vec())) });
    let parts: Vec<pb::BlobUpload> = std::iter::once(header).chain(chunks).collect();
    stack.jmap().await.upload(futures::stream::iter(parts)).await.map(tonic::Response::into_inner)
}

async fn download(stack: &TestStack, account_id: i64, blob_id: &str) -> Result<(pb::BlobInfo, Vec<u8>), tonic::Status> {
    let request = pb::BlobDownload { account_id, blob_id: blob_id.into() };
    let mut stream = stack.jmap().await.download(request).await?.into_inner();
    let Some(Ok(pb::BlobChunk { part: Some(blob_chunk::Part::Info(info)) })) = stream.next().await else {
        panic!("a download starts with its BlobInfo");
    };
    let mut octets = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk?.part {
            Some(blob_chunk::Part::Chunk(data)) => octets.extend(data),
            other => panic!("only chunks follow the info: {other:?}"),
        }
    }
    assert_eq!(info.size, octets.len() as u64);
    Ok((info, octets))
}

#[tokio::test]
async fn jmap_blobs_round_trip_decode_parts_and_stay_with_their_account() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).set("MAILBUS_MAX_MESSAGE_SIZE", "2048").start().await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    let bob = stack.add_account("bob@example.org", "pw").await;

    let uploaded = upload(&stack, ann, "Text/Plain; charset=utf-8", b"hello, blob").await.expect("upload");
    assert_eq!((uploaded.media_type.as_str(), uploaded.size), ("text/plain", 11));
    assert!(uploaded.blob_id.starts_with('u'));
    let (info, octets) = download(&stack, ann, &uploaded.blob_id).await.expect("download");
    assert_eq!((info.media_type.as_str(), octets.as_slice()), ("text/plain", &b"hello, blob"[..]));

    let before = state(&stack, ann).await;
    stack.deliver("q1", "ann@example.org", MULTIPART).await.expect("deliver");
    let thread = threads_since(&stack, ann, &before).await.remove(0);
    let got = call(&stack, ann, "Thread/get", json!({"ids": [thread]})).await;
    let email = got["list"][0]["emailIds"][0].as_str().unwrap()[1..].to_owned();

    let (whole, octets) = download(&stack, ann, &format!("b{email}")).await.expect("the email");
    assert_eq!((whole.media_type.as_str(), octets.as_slice()), ("message/rfc822", MULTIPART));
    let (text, octets) = download(&stack, ann, &format!("b{email}p1")).await.expect("part 1");
    assert_eq!((text.media_type.as_str(), octets.as_slice()), ("text/plain", "café".as_bytes()));
    let (pdf, octets) = download(&stack, ann, &format!("b{email}p2")).await.expect("part 2");
    assert_eq!(
        (pdf.media_type.as_str(), pdf.name.as_str(), octets.as_slice()),
        ("application/pdf", "report.pdf", &b"%PDF-1.4"[..])
    );
    assert_eq!(download(&stack, ann, &format!("b{email}p3")).await.unwrap_err().code(), Code::NotFound);

    for other in [format!("b{email}"), format!("b{email}p2"), uploaded.blob_id.clone()] {
        assert_eq!(download(&stack, bob, &other).await.unwrap_err().code(), Code::NotFound, "{other}");
    }

    let big = vec![b'x'; 2049];
    assert_eq!(upload(&stack, ann, "text/plain", &big).await.unwrap_err().code(), Code::OutOfRange);

    let limits =
        pb::UpdateAccountRequest { address: "bob@example.org".into(), quota_bytes: Some(10), ..Default::default() };
    stack.directory().await.update_account(limits).await.expect("quota");
    assert!(upload(&stack, bob, "text/plain", b"0123456789").await.is_ok(), "exactly the quota fits");
    let refused = upload(&stack, bob, "text/plain", b"x").await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "waiting uploads count: {refused}");
}

const DRAFT: &[u8] = b"From: Ann <ann@example.org>\r\nTo: Bob <bob@example.net>, ann@example.org\r\n\
Cc: carl@example.net, BOB@example.net\r\nBcc: dora@example.net\r\nSubject: Plans\r\n\
Message-ID: <plans@example.org>\r\n\r\nSee you.\r\n";
const FORGED: &[u8] = b"From: Boss <boss@example.org>\r\nTo: bob@example.net\r\nSubject: Raise\r\n\r\nYes.\r\n";

#[tokio::test]
async fn jmap_submissions_derive_their_envelope_and_refuse_foreign_senders() {
    let stack = stack().await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    let identity = call(&stack, ann, "Identity/get", json!({})).await["list"][0]["id"].as_str().unwrap().to_owned();
    let before = state(&stack, ann).await;
    append(&stack, ann, "Drafts", &["\\Draft"], None, DRAFT).await.expect("append");
    let thread = threads_since(&stack, ann, &before).await.remove(0);
    let email = call(&stack, ann, "Thread/get", json!({"ids": [thread]})).await["list"][0]["emailIds"][0]
        .as_str()
        .unwrap()
        .to_owned();

    let prepare = |email: &str, envelope: &str| pb::PrepareSubmissionRequest {
        account_id: ann,
        identity_id: identity.clone(),
        email_id: email.into(),
        envelope: envelope.into(),
    };
    let outcome = |r: pb::PrepareSubmissionResponse| r.outcome.expect("an outcome");
    let derived = outcome(stack.jmap().await.prepare_submission(prepare(&email, "")).await.unwrap().into_inner());
    let Outcome::Prepared(prepared) = derived else { panic!("prepared: {derived:?}") };
    assert_eq!(prepared.mail_from, "ann@example.org");
    assert_eq!(prepared.rcpt_to, ["bob@example.net", "ann@example.org", "carl@example.net", "dora@example.net"]);
    assert_eq!((prepared.size, prepared.thread_id.as_str()), (DRAFT.len() as u64, thread.as_str()));
    assert_eq!(prepared.blob_id, format!("b{}", &email[1..]));

    let foreign_envelope = r#"{"mailFrom": {"email": "boss@example.org"}, "rcptTo": [{"email": "bob@example.net"}]}"#;
    let refused =
        outcome(stack.jmap().await.prepare_submission(prepare(&email, foreign_envelope)).await.unwrap().into_inner());
    let Outcome::SetError(error) = refused else { panic!("refused: {refused:?}") };
    assert_eq!(serde_json::from_str::<Value>(&error).unwrap()["type"], "forbiddenMailFrom");
    let empty = r#"{"mailFrom": {"email": "ann@example.org"}, "rcptTo": []}"#;
    let Outcome::SetError(error) =
        outcome(stack.jmap().await.prepare_submission(prepare(&email, empty)).await.unwrap().into_inner())
    else {
        panic!("no recipients is refused");
    };
    assert_eq!(serde_json::from_str::<Value>(&error).unwrap()["type"], "noRecipients");
    let Outcome::SetError(error) =
        outcome(stack.jmap().await.prepare_submission(prepare("e999999", "")).await.unwrap().into_inner())
    else {
        panic!("an unknown email is refused");
    };
    assert_eq!(serde_json::from_str::<Value>(&error).unwrap()["properties"], json!(["emailId"]));

    let before = state(&stack, ann).await;
    append(&stack, ann, "Drafts", &[], None, FORGED).await.expect("append");
    let forged_thread = threads_since(&stack, ann, &before).await.remove(0);
    let forged = call(&stack, ann, "Thread/get", json!({"ids": [forged_thread]})).await["list"][0]["emailIds"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let Outcome::SetError(error) =
        outcome(stack.jmap().await.prepare_submission(prepare(&forged, "")).await.unwrap().into_inner())
    else {
        panic!("a From the account may not use is refused");
    };
    assert_eq!(serde_json::from_str::<Value>(&error).unwrap()["type"], "forbiddenFrom");

    let record = pb::RecordSubmissionRequest {
        account_id: ann,
        identity_id: identity.clone(),
        email_id: email.clone(),
        queue_id: "Q123".into(),
        mail_from: prepared.mail_from.clone(),
        rcpt_to: prepared.rcpt_to.clone(),
    };
    let id = stack.jmap().await.record_submission(record).await.expect("record").into_inner().id;
    let got = call(&stack, ann, "EmailSubmission/get", json!({"ids": [id]})).await;
    let submission = &got["list"][0];
    assert_eq!(
        (&submission["emailId"], &submission["threadId"], &submission["undoStatus"]),
        (&json!(email), &json!(thread), &json!("final"))
    );
    assert_eq!(submission["envelope"]["mailFrom"]["email"], "ann@example.org");
    assert_eq!(submission["envelope"]["rcptTo"].as_array().unwrap().len(), 4);
    let found = call(&stack, ann, "EmailSubmission/query", json!({"filter": {"emailIds": [email]}})).await;
    assert_eq!(found["ids"], json!([id]));
    let none = call(&stack, ann, "EmailSubmission/query", json!({"filter": {"before": "2000-01-01T00:00:00Z"}})).await;
    assert_eq!(none["ids"], json!([]));
    let cancel =
        call(&stack, ann, "EmailSubmission/set", json!({"update": {id.clone(): {"undoStatus": "canceled"}}})).await;
    assert_eq!(cancel["notUpdated"][&id]["type"], "cannotUnsend");
    let gone = call(&stack, ann, "EmailSubmission/set", json!({"destroy": [id]})).await;
    assert_eq!(gone["destroyed"], json!([id]));
}

#[tokio::test]
async fn jmap_refuses_a_disabled_or_missing_account() {
    let stack = stack().await;
    let ann = stack.add_account("ann@example.org", "pw").await;
    assert!(!state(&stack, ann).await.is_empty());
    let disable =
        pb::UpdateAccountRequest { address: "ann@example.org".into(), disabled: Some(true), ..Default::default() };
    stack.directory().await.update_account(disable).await.expect("disable");
    for account_id in [ann, ann + 1000] {
        let call =
            pb::JmapCall { account_id, method: "Mailbox/get".into(), arguments: "{}".into(), ..Default::default() };
        assert_eq!(stack.jmap().await.call(call).await.unwrap_err().code(), Code::PermissionDenied);
        let state = stack.jmap().await.state(pb::StateRequest { account_id }).await;
        assert_eq!(state.unwrap_err().code(), Code::PermissionDenied);
        assert_eq!(upload(&stack, account_id, "text/plain", b"x").await.unwrap_err().code(), Code::PermissionDenied);
        assert_eq!(download(&stack, account_id, "u1").await.unwrap_err().code(), Code::PermissionDenied);
        let prepare = pb::PrepareSubmissionRequest { account_id, ..Default::default() };
        assert_eq!(stack.jmap().await.prepare_submission(prepare).await.unwrap_err().code(), Code::PermissionDenied);
        let record = pb::RecordSubmissionRequest { account_id, ..Default::default() };
        assert_eq!(stack.jmap().await.record_submission(record).await.unwrap_err().code(), Code::PermissionDenied);
    }
}
