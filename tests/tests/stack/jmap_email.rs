//! JMAP Email methods (RFC 8621 §4–5) through the mailbox role's `Jmap` gRPC service, against the whole
//! stack: what a delivery looks like to Email/get, queries, and that writes over JMAP and over IMAP each
//! reach the other.

use std::collections::HashMap;

use mailbus::roles::Role;
use mailbus_proto::v1::{self as pb, jmap_client::JmapClient};
use mailbus_tests::TestStack;
use mailbus_tests::clients::imap_session;
use serde_json::{Value, json};

use crate::PATIENCE;
use crate::store::append;

/// One method call on the account; its responses as `(name, arguments)`.
pub async fn jmap_call(stack: &TestStack, account: i64, method: &str, arguments: Value) -> Vec<(String, Value)> {
    jmap_call_created(stack, account, method, arguments, HashMap::new()).await
}

/// One method call in a request whose earlier calls created `created_ids` (creation id → id).
async fn jmap_call_created(
    stack: &TestStack,
    account: i64,
    method: &str,
    arguments: Value,
    created_ids: HashMap<String, String>,
) -> Vec<(String, Value)> {
    let mut client = JmapClient::connect(stack.mailbox_url()).await.expect("connecting to the mailbox role");
    let call =
        pb::JmapCall { account_id: account, method: method.into(), arguments: arguments.to_string(), created_ids };
    let result = client.call(call).await.expect("Jmap/Call").into_inner();
    result
        .responses
        .into_iter()
        .map(|r| (r.name, serde_json::from_str(&r.arguments).expect("a JSON response")))
        .collect()
}

/// The one response of a call, which must be named as the method.
async fn call(stack: &TestStack, account: i64, method: &str, arguments: Value) -> Value {
    let mut responses = jmap_call(stack, account, method, arguments).await;
    assert_eq!(responses.len(), 1, "{responses:?}");
    let (name, arguments) = responses.remove(0);
    assert_eq!(name, method, "{arguments}");
    arguments
}

async fn mailbox_id(stack: &TestStack, account: i64, name: &str) -> String {
    let pool = sqlx::PgPool::connect(&stack.database_url).await.unwrap();
    let id: i64 = sqlx::query_scalar("SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2")
        .bind(account)
        .bind(name)
        .fetch_one(&pool)
        .await
        .unwrap();
    format!("m{id}")
}

async fn deliver(stack: &TestStack, account: i64, queue_id: &str, to: &str, body: &[u8]) {
    let before = stack.inbox_uids(account).await.len();
    stack.deliver(queue_id, to, body).await.expect("delivered");
    stack.wait_for_inbox(account, before + 1, PATIENCE).await;
}

const MULTIPART: &str = "From: =?utf-8?q?J=C3=B6rg?= <jorg@example.net>\r\n\
To: Ann <ann@example.org>, team: bob@example.org;\r\n\
Subject: Quarterly budget\r\n\
Date: Mon, 07 Dec 2026 10:00:00 +0100\r\n\
Message-ID: <budget@example.net>\r\n\
List-Unsubscribe: <mailto:leave@example.net>\r\n\
X-Tag: one\r\n\
X-Tag: two\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
\r\n\
--alt\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Hello Ann, the budget for Q3 is =E2=82=AC 10.\r\n\
--alt\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Hello Ann, the <b>budget</b> for Q3.</p>\r\n\
--alt--\r\n\
--outer\r\n\
Content-Type: application/pdf; name=\"q3.pdf\"\r\n\
Content-Disposition: attachment; filename=\"q3.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQ=\r\n\
--outer--\r\n";

fn simple(from: &str, subject: &str, message_id: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: ann@example.org\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n{extra}\r\n{body}\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_email_get_reads_a_delivered_multipart_message() {
    let stack = TestStack::start().await;
    let ann = stack.add_account("ann@example.org", "ann pw").await;
    let eve = stack.add_account("eve@example.org", "eve pw").await;
    deliver(&stack, ann, "q1", "ann@example.org", MULTIPART.as_bytes()).await;
    let inbox = mailbox_id(&stack, ann, "INBOX").await;

    let query = call(&stack, ann, "Email/query", json!({"filter": {"inMailbox": inbox}})).await;
    let id = query["ids"][0].as_str().expect("the delivered email").to_owned();
    let get = call(
        &stack,
        ann,
        "Email/get",
        json!({
            "ids": [id, "e999999", "bogus"],
            "properties": ["id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId",
                "from", "to", "subject", "sentAt", "hasAttachment", "preview", "textBody", "htmlBody", "attachments",
                "bodyValues", "bodyStructure", "header:X-Tag:asText:all", "header:To:asGroupedAddresses",
                "header:List-Unsubscribe:asURLs", "header:Subject"],
            "fetchTextBodyValues": true,
            "fetchHTMLBodyValues": true,
            "maxBodyValueBytes": 20,
        }),
    )
    .await;
    assert_eq!(get["notFound"], json!(["e999999", "bogus"]), "{get}");
    let email = &get["list"][0];
    let number = id.trim_start_matches('e');
    assert_eq!(email["blobId"], json!(format!("b{number}")));
    assert!(email["threadId"].as_str().unwrap().starts_with('t'));
    assert_eq!(email["mailboxIds"], json!({inbox.clone(): true}));
    assert_eq!(email["keywords"], json!({}));
    assert_eq!(email["size"], json!(MULTIPART.len()));
    assert!(email["receivedAt"].as_str().unwrap().ends_with('Z'), "{email}");
    assert_eq!(email["messageId"], json!(["budget@example.net"]));
    assert_eq!(email["from"], json!([{"name": "Jörg", "email": "jorg@example.net"}]));
    assert_eq!(
        email["to"],
        json!([{"name": "Ann", "email": "ann@example.org"}, {"name": null, "email": "bob@example.org"}])
    );
    assert_eq!(email["subject"], json!("Quarterly budget"));
    assert_eq!(email["sentAt"], json!("2026-12-07T10:00:00+01:00"));
    assert_eq!(email["hasAttachment"], json!(true));
    assert_eq!(email["preview"], json!("Hello Ann, the budget for Q3 is € 10."));
    assert_eq!(email["textBody"][0]["partId"], json!("1.1"));
    assert_eq!(email["textBody"][0]["blobId"], json!(format!("b{number}p1x1")));
    assert_eq!(email["textBody"][0]["charset"], json!("utf-8"));
    assert_eq!(email["htmlBody"][0]["partId"], json!("1.2"));
    assert_eq!(email["attachments"][0]["partId"], json!("2"));
    assert_eq!(email["attachments"][0]["name"], json!("q3.pdf"));
    assert_eq!(email["attachments"][0]["type"], json!("application/pdf"));
    assert_eq!(email["attachments"][0]["size"], json!(8), "the decoded size");
    assert_eq!(email["bodyValues"]["1.1"]["value"], json!("Hello Ann, the budge"));
    assert_eq!(email["bodyValues"]["1.1"]["isTruncated"], json!(true));
    assert_eq!(email["bodyValues"]["1.2"]["value"], json!("<p>Hello Ann, the <b"));
    assert_eq!(email["bodyStructure"]["type"], json!("multipart/mixed"));
    assert_eq!(email["bodyStructure"]["subParts"][0]["subParts"][1]["type"], json!("text/html"));
    assert_eq!(email["header:X-Tag:asText:all"], json!(["one", "two"]));
    assert_eq!(email["header:To:asGroupedAddresses"][1]["name"], json!("team"));
    assert_eq!(email["header:List-Unsubscribe:asURLs"], json!(["mailto:leave@example.net"]));
    assert_eq!(email["header:Subject"], json!(" Quarterly budget"));

    // Another account's email does not exist for this one, by id or in a query.
    let theirs = call(&stack, eve, "Email/get", json!({"ids": [id], "properties": ["subject"]})).await;
    assert_eq!((theirs["list"].clone(), theirs["notFound"].clone()), (json!([]), json!([id])));
    let none = call(&stack, eve, "Email/query", json!({"calculateTotal": true})).await;
    assert_eq!((none["ids"].clone(), none["total"].clone()), (json!([]), json!(0)));
    let bad = jmap_call(&stack, ann, "Email/get", json!({"ids": [id], "properties": ["nonsense"]})).await;
    assert_eq!((bad[0].0.as_str(), bad[0].1["type"].as_str()), ("error", Some("invalidArguments")));
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_email_query_filters_sorts_collapses_and_pages() {
    let stack = TestStack::start().await;
    let ann = stack.add_account("ann@example.org", "ann pw").await;
    deliver(&stack, ann, "q1", "ann@example.org", MULTIPART.as_bytes()).await;
    let notes = simple("Bob <bob@example.net>", "Meeting notes", "notes@x", "", "the agenda, and lunch");
    deliver(&stack, ann, "q2", "ann@example.org", &notes).await;
    let reply =
        simple("Carl <carl@example.net>", "Re: Meeting notes", "reply@x", "In-Reply-To: <notes@x>\r\n", "agreed");
    deliver(&stack, ann, "q3", "ann@example.org", &reply).await;
    let inbox = mailbox_id(&stack, ann, "INBOX").await;
    let all = call(&stack, ann, "Email/query", json!({"calculateTotal": true})).await;
    let ids: Vec<String> = serde_json::from_value(all["ids"].clone()).unwrap();
    assert_eq!((ids.len(), all["total"].clone(), all["position"].clone()), (3, json!(3), json!(0)));
    assert_eq!(all["canCalculateChanges"], json!(true));
    // Newest first by default: the reply, the notes, the budget.
    let (reply_id, notes_id, budget_id) = (ids[0].clone(), ids[1].clone(), ids[2].clone());

    let found = async |filter: Value| -> Vec<String> {
        let result = call(&stack, ann, "Email/query", json!({"filter": filter})).await;
        serde_json::from_value(result["ids"].clone()).unwrap_or_else(|_| panic!("{result}"))
    };
    assert_eq!(found(json!({"inMailbox": inbox})).await.len(), 3);
    assert_eq!(found(json!({"inMailbox": "m999999"})).await, Vec::<String>::new());
    assert_eq!(found(json!({"from": "carl"})).await, vec![reply_id.clone()]);
    assert_eq!(found(json!({"subject": "meeting"})).await, [reply_id.clone(), notes_id.clone()]);
    assert_eq!(found(json!({"text": "agenda"})).await, vec![notes_id.clone()]);
    assert_eq!(found(json!({"body": "budget"})).await, vec![budget_id.clone()]);
    assert_eq!(found(json!({"hasAttachment": true})).await, vec![budget_id.clone()]);
    assert_eq!(found(json!({"header": ["In-Reply-To"]})).await, vec![reply_id.clone()]);
    assert_eq!(found(json!({"before": "2000-01-01T00:00:00Z"})).await, Vec::<String>::new());
    assert_eq!(found(json!({"after": "2000-01-01T00:00:00Z"})).await.len(), 3);
    let not = json!({"operator": "NOT", "conditions": [{"hasAttachment": true}, {"from": "carl"}]});
    assert_eq!(found(not).await, vec![notes_id.clone()]);

    let seen = call(&stack, ann, "Email/set", json!({"update": {notes_id.clone(): {"keywords/$seen": true}}})).await;
    assert_eq!(seen["updated"], json!({notes_id.clone(): null}), "{seen}");
    assert_eq!(found(json!({"hasKeyword": "$seen"})).await, vec![notes_id.clone()]);
    assert_eq!(found(json!({"notKeyword": "$seen"})).await, [reply_id.clone(), budget_id.clone()]);
    assert_eq!(found(json!({"someInThreadHaveKeyword": "$seen"})).await, [reply_id.clone(), notes_id.clone()]);
    assert_eq!(found(json!({"allInThreadHaveKeyword": "$seen"})).await, Vec::<String>::new());

    let sorted = async |sort: Value, extra: Value| -> Value {
        let mut arguments = json!({"sort": sort});
        arguments.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        call(&stack, ann, "Email/query", arguments).await
    };
    let by_subject = sorted(json!([{"property": "subject", "isAscending": true}]), json!({})).await;
    assert_eq!(by_subject["ids"][0], json!(notes_id), "base subjects: meeting notes ×2 before quarterly budget");
    assert_eq!(by_subject["ids"][2], json!(budget_id));
    let by_size = sorted(json!([{"property": "size", "isAscending": false}]), json!({})).await;
    assert_eq!(by_size["ids"][0], json!(budget_id));
    let collapsed = sorted(json!([]), json!({"collapseThreads": true, "calculateTotal": true})).await;
    assert_eq!(collapsed["ids"], json!([reply_id, budget_id]), "{collapsed}");
    assert_eq!(collapsed["total"], json!(2));
    let paged = sorted(json!([]), json!({"position": -1, "limit": 5})).await;
    assert_eq!((paged["ids"].clone(), paged["position"].clone()), (json!([budget_id]), json!(2)));
    let anchored = sorted(json!([]), json!({"anchor": notes_id, "anchorOffset": -1, "limit": 2})).await;
    assert_eq!(anchored["ids"], json!([reply_id, notes_id]), "{anchored}");
    let lost = jmap_call(&stack, ann, "Email/query", json!({"anchor": "e999999"})).await;
    assert_eq!(lost[0].1["type"], json!("anchorNotFound"));
    let bad = jmap_call(&stack, ann, "Email/query", json!({"filter": {"color": "red"}})).await;
    assert_eq!(bad[0].1["type"], json!("unsupportedFilter"));

    // A delivery after a query state: removed and added at its place.
    let state = all["queryState"].as_str().unwrap().to_owned();
    let later = simple("Dora <dora@example.net>", "Later", "later@x", "", "news");
    deliver(&stack, ann, "q4", "ann@example.org", &later).await;
    let changes =
        call(&stack, ann, "Email/queryChanges", json!({"sinceQueryState": state, "calculateTotal": true})).await;
    let newest = call(&stack, ann, "Email/query", json!({"limit": 1})).await["ids"][0].clone();
    assert_eq!(changes["added"][0], json!({"id": newest, "index": 0}), "{changes}");
    assert!(changes["removed"].as_array().unwrap().contains(&newest), "{changes}");
    assert_eq!(changes["total"], json!(4));
    let email_changes = call(&stack, ann, "Email/changes", json!({"sinceState": state})).await;
    assert_eq!(email_changes["created"], json!([newest]), "{email_changes}");

    // Snippets: the words of the filter marked, the rest escaped; none where nothing matches.
    let snippets = call(
        &stack,
        ann,
        "SearchSnippet/get",
        json!({"filter": {"text": "budget"}, "emailIds": [budget_id, notes_id, "e999999"]}),
    )
    .await;
    assert_eq!(snippets["list"][0]["subject"], json!("Quarterly <mark>budget</mark>"), "{snippets}");
    let preview = snippets["list"][0]["preview"].as_str().unwrap();
    assert!(preview.contains("the <mark>budget</mark> for Q3"), "{preview}");
    assert_eq!(snippets["list"][1]["subject"], Value::Null);
    assert_eq!(snippets["notFound"], json!(["e999999"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_email_set_and_imap_see_each_others_changes() {
    let stack = TestStack::start().await;
    let ann = stack.add_account("ann@example.org", "ann pw").await;
    deliver(&stack, ann, "q1", "ann@example.org", &simple("bob@example.net", "first", "first@x", "", "one")).await;
    deliver(&stack, ann, "q2", "ann@example.org", &simple("bob@example.net", "second", "second@x", "", "two")).await;
    let (inbox, archive, drafts) = (
        mailbox_id(&stack, ann, "INBOX").await,
        mailbox_id(&stack, ann, "Archive").await,
        mailbox_id(&stack, ann, "Drafts").await,
    );
    let ids: Vec<String> =
        serde_json::from_value(
            call(&stack, ann, "Email/query", json!({"sort": [{"property": "receivedAt", "isAscending": true}]})).await
                ["ids"]
                .clone(),
        )
        .unwrap();
    let (first, second) = (ids[0].clone(), ids[1].clone());

    // JMAP keywords are IMAP flags, and a session in IDLE hears of the change.
    let mut idle = mailbus_tests::raw::RawClient::connect("127.0.0.1", stack.imap_addr()).await;
    idle.line().await.expect("a greeting");
    idle.send(b"a LOGIN ann@example.org \"ann pw\"\r\nb SELECT INBOX\r\n").await;
    assert!(idle.line_starting("b ").await.expect("SELECT answered").starts_with("b OK"));
    idle.send(b"i IDLE\r\n").await;
    assert!(idle.line_starting("+").await.is_some(), "IDLE accepted");
    let set = call(
        &stack,
        ann,
        "Email/set",
        json!({"update": {first.clone(): {"keywords": {"$seen": true, "$flagged": true, "project": true}}}}),
    )
    .await;
    assert_eq!(set["updated"], json!({first.clone(): null}), "{set}");
    let pushed = idle.line_starting("* 1 FETCH").await.expect("the change pushed in IDLE");
    assert!(pushed.contains("\\Seen") && pushed.contains("project"), "{pushed}");
    let steps = json!([
        ["login", "ann@example.org", "ann pw"],
        ["select", "INBOX"],
        ["fetch", "1", "(FLAGS)"],
        ["store", "2", "+FLAGS", "(\\Answered)"],
        ["logout"]
    ]);
    let results = imap_session(stack.imap_addr(), None, steps.clone()).await;
    let flags = results[3].to_string();
    assert!(flags.contains("\\\\Seen") && flags.contains("\\\\Flagged") && flags.contains("project"), "{flags}");

    // An IMAP STORE is an Email change.
    let state = set["newState"].as_str().unwrap().to_owned();
    let _ = &steps;
    let after = call(&stack, ann, "Email/changes", json!({"sinceState": state})).await;
    assert_eq!(after["updated"], json!([second.clone()]), "{after}");
    let got = call(&stack, ann, "Email/get", json!({"ids": [second.clone()], "properties": ["keywords"]})).await;
    assert_eq!(got["list"][0]["keywords"], json!({"$answered": true}));

    // mailboxIds: a move, seen by IMAP; an email cannot be left in no mailbox; other properties are immutable.
    let moved = call(
        &stack,
        ann,
        "Email/set",
        json!({"update": {
            first.clone(): {format!("mailboxIds/{inbox}"): null, format!("mailboxIds/{archive}"): true},
            second.clone(): {"mailboxIds": {}},
        }}),
    )
    .await;
    assert_eq!(moved["updated"], json!({first.clone(): null}), "{moved}");
    assert_eq!(moved["notUpdated"][&second]["type"], json!("invalidProperties"));
    let immutable = call(&stack, ann, "Email/set", json!({"update": {second.clone(): {"subject": "x"}}})).await;
    assert_eq!(immutable["notUpdated"][&second]["properties"], json!(["subject"]));
    let got =
        call(&stack, ann, "Email/get", json!({"ids": [first.clone()], "properties": ["mailboxIds", "keywords"]})).await;
    assert_eq!(got["list"][0]["mailboxIds"], json!({archive.clone(): true}));
    assert_eq!(got["list"][0]["keywords"], json!({"$seen": true, "$flagged": true, "project": true}), "flags travel");
    let steps = json!([
        ["login", "ann@example.org", "ann pw"],
        ["select", "Archive"],
        ["fetch", "1:*", "(FLAGS)"],
        ["select", "INBOX"],
        ["search", null, "ALL"],
        ["logout"]
    ]);
    let results = imap_session(stack.imap_addr(), None, steps).await;
    assert!(results[3].to_string().contains("\\\\Seen"), "{}", results[3]);
    assert!(!results[5].to_string().contains("2"), "one message left in INBOX: {}", results[5]);

    // destroy: expunged from every mailbox.
    let destroyed = call(&stack, ann, "Email/set", json!({"destroy": [first.clone(), "e999999"]})).await;
    assert_eq!(destroyed["destroyed"], json!([first.clone()]));
    assert_eq!(destroyed["notDestroyed"]["e999999"]["type"], json!("notFound"));
    let gone = call(&stack, ann, "Email/get", json!({"ids": [first], "properties": ["id"]})).await;
    assert_eq!(gone["list"], json!([]));

    // create: a draft, composed, stored and readable.
    let created = call(
        &stack,
        ann,
        "Email/set",
        json!({"create": {"d1": {
        "mailboxIds": {drafts.clone(): true},
        "keywords": {"$draft": true},
        "from": [{"name": "Ann", "email": "ann@example.org"}],
        "to": [{"email": "bob@example.net"}],
        "subject": "Grüße",
        "header:X-Mailer:asText": "mailbus test",
        "textBody": [{"partId": "t", "type": "text/plain"}],
        "bodyValues": {"t": {"value": "Hallo Bob"}},
        // Another email's body part as an attachment, by its part blob id.
        "attachments": [{"blobId": format!("b{}p1", second.trim_start_matches('e')), "type": "text/plain",
                         "name": "two.txt", "disposition": "attachment"}],
    }, "bad": {"mailboxIds": {}}}}),
    )
    .await;
    let draft = created["created"]["d1"]["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
    assert_eq!(created["notCreated"]["bad"]["properties"], json!(["mailboxIds"]));
    let got = call(
        &stack,
        ann,
        "Email/get",
        json!({"ids": [draft.clone()], "properties": ["subject", "keywords",
        "mailboxIds", "to", "header:X-Mailer:asText", "bodyValues", "attachments", "hasAttachment"],
        "fetchTextBodyValues": true}),
    )
    .await;
    let email = &got["list"][0];
    assert_eq!(email["subject"], json!("Grüße"));
    assert_eq!(email["keywords"], json!({"$draft": true}));
    assert_eq!(email["mailboxIds"], json!({drafts.clone(): true}));
    assert_eq!(email["header:X-Mailer:asText"], json!("mailbus test"));
    assert_eq!(email["bodyValues"]["1"]["value"], json!("Hallo Bob"));
    assert_eq!(email["attachments"][0]["name"], json!("two.txt"));
    assert_eq!(email["attachments"][0]["partId"], json!("2"));
    assert_eq!(email["attachments"][0]["size"], json!(5), "the other email's body, two\\r\\n");
    assert_eq!(email["hasAttachment"], json!(true));

    // import: an uploaded blob (inserted directly: Upload is the mailbox-objects helper's RPC).
    let pool = sqlx::PgPool::connect(&stack.database_url).await.unwrap();
    let raw = simple("carl@example.net", "imported", "imported@x", "", "from a blob");
    let upload: i64 = sqlx::query_scalar(
        "INSERT INTO blobs (account_id, media_type, content, size) VALUES ($1, 'message/rfc822', $2, $3) RETURNING id",
    )
    .bind(ann)
    .bind(&raw)
    .bind(raw.len() as i64)
    .fetch_one(&pool)
    .await
    .unwrap();
    let imported = call(
        &stack,
        ann,
        "Email/import",
        json!({"emails": {
            "i1": {"blobId": format!("u{upload}"), "mailboxIds": {inbox.clone(): true}, "keywords": {"$seen": true},
                   "receivedAt": "2026-12-01T08:00:00Z"},
            "i2": {"blobId": "u999999", "mailboxIds": {inbox.clone(): true}},
        }}),
    )
    .await;
    let id = imported["created"]["i1"]["id"].as_str().unwrap_or_else(|| panic!("{imported}")).to_owned();
    assert_eq!(imported["created"]["i1"]["size"], json!(raw.len()));
    assert_eq!(imported["notCreated"]["i2"]["type"], json!("blobNotFound"));
    let got =
        call(&stack, ann, "Email/get", json!({"ids": [id], "properties": ["subject", "receivedAt", "keywords"]})).await;
    assert_eq!(got["list"][0]["subject"], json!("imported"));
    assert_eq!(got["list"][0]["receivedAt"], json!("2026-12-01T08:00:00Z"));
    assert_eq!(got["list"][0]["keywords"], json!({"$seen": true}));

    // Email/copy: only the caller's account exists here.
    let copy = jmap_call(&stack, ann, "Email/copy", json!({"fromAccountId": "a999999", "create": {}})).await;
    assert_eq!(copy[0].1["type"], json!("fromAccountNotFound"));
    let stale = jmap_call(&stack, ann, "Email/set", json!({"ifInState": "0", "destroy": []})).await;
    assert_eq!(stale[0].1["type"], json!("stateMismatch"));
}

#[tokio::test]
async fn jmap_email_methods_hold_at_the_edges_of_their_arguments() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let ann = stack.add_account("ann@example.org", "ann pw").await;
    let inbox = mailbox_id(&stack, ann, "INBOX").await;
    let drafts = mailbox_id(&stack, ann, "Drafts").await;
    let before = call(&stack, ann, "Email/query", json!({})).await["queryState"].as_str().unwrap().to_owned();
    for (i, subject) in ["one", "two"].iter().enumerate() {
        let message = simple("bob@example.net", subject, &format!("{subject}@x"), "", subject);
        append(&stack, ann, "INBOX", &[], Some(1_800_000_000 + i as i64), &message).await.expect("appended");
    }
    let ids: Vec<String> =
        serde_json::from_value(call(&stack, ann, "Email/query", json!({})).await["ids"].clone()).unwrap();
    assert_eq!(ids.len(), 2);

    // RFC 8620 §5.1: an id asked for twice is answered once, in list or in notFound.
    let got = call(
        &stack,
        ann,
        "Email/get",
        json!({"ids": [ids[0], ids[0], "e999999", "e999999"], "properties": ["threadId", "subject", "subject"]}),
    )
    .await;
    assert_eq!(got["list"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got["notFound"], json!(["e999999"]));
    assert_eq!(got["list"][0]["subject"], json!("two"));
    let thread = got["list"][0]["threadId"].clone();
    let threads = call(&stack, ann, "Thread/get", json!({"ids": [thread, thread, "t999999", "t999999"]})).await;
    assert_eq!(threads["list"].as_array().unwrap().len(), 1, "{threads}");
    assert_eq!(threads["notFound"], json!(["t999999"]));

    // A huge anchorOffset saturates: the window starts after the last result.
    let far = call(&stack, ann, "Email/query", json!({"anchor": ids[0], "anchorOffset": i64::MAX})).await;
    assert_eq!((far["ids"].clone(), far["position"].clone()), (json!([]), json!(2)), "{far}");
    let back = call(&stack, ann, "Email/query", json!({"anchor": ids[1], "anchorOffset": i64::MIN})).await;
    assert_eq!(back["ids"], json!(ids), "{back}");

    // RFC 8620 §5.6: more changes than maxChanges is tooManyChanges.
    let many = jmap_call(&stack, ann, "Email/queryChanges", json!({"sinceQueryState": before, "maxChanges": 1})).await;
    assert_eq!(many[0].1["type"], json!("tooManyChanges"), "{many:?}");

    // A filter of 255 conditions runs; one of 300 is refused before it reaches the database.
    let wide = |n: usize| json!({"filter": {"operator": "OR", "conditions": vec![json!({"body": "zq"}); n]}});
    let narrow_enough = jmap_call(&stack, ann, "Email/query", wide(255)).await;
    assert_eq!(narrow_enough[0].1["ids"], json!([]), "{narrow_enough:?}");
    let too_wide = jmap_call(&stack, ann, "Email/query", wide(300)).await;
    assert_eq!(too_wide[0].1["type"], json!("unsupportedFilter"), "{too_wide:?}");

    // Mailbox conditions name mailboxes created earlier in the request.
    let created = HashMap::from([("box".to_owned(), inbox.clone())]);
    let within =
        jmap_call_created(&stack, ann, "Email/query", json!({"filter": {"inMailbox": "#box"}}), created.clone()).await;
    assert_eq!(within[0].1["ids"], json!(ids), "{within:?}");
    let elsewhere = json!({"filter": {"inMailboxOtherThan": ["#box"]}});
    let elsewhere = jmap_call_created(&stack, ann, "Email/query", elsewhere, created).await;
    assert_eq!(elsewhere[0].1["ids"], json!([]), "{elsewhere:?}");

    // An unknown creation id in update or destroy is that object's notFound; the create stands.
    let set = call(
        &stack,
        ann,
        "Email/set",
        json!({
            "create": {"d1": {"mailboxIds": {drafts.clone(): true}, "subject": "draft",
                              "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "hi"}}}},
            "update": {"#nothing": {"keywords/$seen": true}},
            "destroy": ["#nothing"],
        }),
    )
    .await;
    assert!(set["created"]["d1"]["id"].is_string(), "{set}");
    assert_eq!(set["notUpdated"]["#nothing"]["type"], json!("notFound"), "{set}");
    assert_eq!(set["notDestroyed"]["#nothing"]["type"], json!("notFound"), "{set}");

    // A client string that would end a header field is refused, not written.
    let injected = call(
        &stack,
        ann,
        "Email/set",
        json!({"create": {"d2": {"mailboxIds": {drafts: true}, "subject": "draft",
            "textBody": [{"partId": "t", "disposition": "inline\r\nBcc: eve@example.net"}],
            "bodyValues": {"t": {"value": "hi"}}}}}),
    )
    .await;
    assert_eq!(injected["notCreated"]["d2"]["type"], json!("invalidProperties"), "{injected}");
}
