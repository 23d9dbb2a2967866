//! Messages at rest: append, select, fetch (envelope, body structure, sections), store with
//! UNCHANGEDSINCE, copy, expunge, changes since a MODSEQ, search, isolation and concurrency.

use mailbus::roles::Role;
use mailbus_proto::v1::{self as pb, SectionText, search_key::Key};
use mailbus_tests::TestStack;
use tonic::Code;

use super::{append, fetch, section};

const MIME: &[u8] = b"From: Alice Example <alice@example.org>\r\n\
To: bob@example.org\r\n\
Subject: Quarterly report\r\n\
Date: Mon, 23 Nov 2026 08:30:00 +0000\r\n\
Message-ID: <report@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"sep\"\r\n\
\r\n\
--sep\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
The numbers look excellent this quarter.\r\n\
--sep\r\n\
Content-Type: application/pdf; name=\"report.pdf\"\r\n\
Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--sep--\r\n";

fn plain(subject: &str, body: &str) -> Vec<u8> {
    format!("From: Carol <carol@example.net>\r\nTo: bob@example.org\r\nSubject: {subject}\r\nDate: Sat, 21 Nov 2026 12:00:00 +0000\r\n\r\n{body}\r\n").into_bytes()
}

async fn select(stack: &TestStack, account_id: i64, mailbox: &str) -> pb::SelectResponse {
    let request = pb::SelectRequest { account_id, mailbox: mailbox.into(), claim_recent: false };
    stack.mailbox().await.select(request).await.expect("select").into_inner()
}

async fn store(
    stack: &TestStack,
    account_id: i64,
    uids: &[u32],
    mode: pb::StoreMode,
    flags: &[&str],
    unchanged_since: Option<u64>,
) -> Result<pb::StoreResponse, tonic::Status> {
    let request = pb::StoreRequest {
        account_id,
        mailbox: "INBOX".into(),
        uids: uids.to_vec(),
        mode: mode.into(),
        flags: flags.iter().map(|f| f.to_string()).collect(),
        unchanged_since,
    };
    stack.mailbox().await.store(request).await.map(tonic::Response::into_inner)
}

async fn search(stack: &TestStack, account_id: i64, key: Key) -> Vec<u32> {
    let request = pb::SearchRequest {
        account_id,
        mailbox: "INBOX".into(),
        key: Some(pb::SearchKey { key: Some(key) }),
        threading: false,
        sorting: false,
    };
    stack.mailbox().await.search(request).await.expect("search").into_inner().uids
}

fn key(key: Key) -> pb::SearchKey {
    pb::SearchKey { key: Some(key) }
}

#[tokio::test(flavor = "multi_thread")]
async fn append_then_fetch_gives_envelope_body_structure_and_sections_from_the_stored_octets() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let id = stack.add_account("bob@example.org", "pw").await;
    let appended = append(&stack, id, "INBOX", &["\\Flagged", "$Report"], Some(1_700_000_000), MIME).await.unwrap();
    assert_eq!(appended.uid, 1);
    let selected = select(&stack, id, "inbox").await;
    assert_eq!(selected.uids, [1]);
    assert_eq!(selected.keywords, ["$Report"]);
    assert_eq!(selected.first_unseen_uid, 1);
    assert_eq!(selected.status.as_ref().unwrap().uidvalidity, appended.uidvalidity);

    let request = pb::FetchRequest {
        account_id: id,
        mailbox: "INBOX".into(),
        uids: vec![1, 99],
        envelope: true,
        body_structure: true,
        sections: vec![
            section(&[], SectionText::Full),
            pb::Section { fields: vec!["subject".into(), "from".into()], ..section(&[], SectionText::HeaderFields) },
            section(&[1], SectionText::Full),
            section(&[2], SectionText::Mime),
            pb::Section { offset: Some(4), length: Some(7), ..section(&[1], SectionText::Full) },
            section(&[3], SectionText::Full),
        ],
        ..Default::default()
    };
    let fetched = fetch(&stack, request).await.unwrap();
    assert_eq!(fetched.len(), 1, "UIDs that do not exist are left out");
    let one = &fetched[0];
    assert_eq!(one.message.uid, 1);
    assert_eq!(one.message.flags, ["\\Flagged", "$Report"]);
    assert_eq!(one.message.internal_date_unix, 1_700_000_000);
    assert_eq!(one.message.size, MIME.len() as u64);
    let envelope = one.message.envelope.as_ref().unwrap();
    assert_eq!(envelope.subject.as_deref(), Some("Quarterly report"));
    assert_eq!((envelope.from[0].name.as_str(), envelope.from[0].mailbox.as_str()), ("Alice Example", "alice"));
    assert_eq!(envelope.message_id.as_deref(), Some("<report@example.org>"));
    let body = one.message.body_structure.as_ref().unwrap();
    assert_eq!((body.subtype.as_str(), body.parts.len()), ("mixed", 2));
    assert_eq!((body.parts[1].subtype.as_str(), body.parts[1].size), ("pdf", 12));
    let text = |i: usize| String::from_utf8(one.sections[i].clone().unwrap()).unwrap();
    assert_eq!(one.sections[0].as_deref(), Some(MIME));
    assert_eq!(text(1), "From: Alice Example <alice@example.org>\r\nSubject: Quarterly report\r\n\r\n");
    assert_eq!(text(2), "The numbers look excellent this quarter.");
    assert!(text(3).starts_with("Content-Type: application/pdf"));
    assert_eq!(text(4), "numbers");
    assert_eq!(one.sections[5], None, "a part that does not exist");

    // BODY[] without .PEEK sets \Seen.
    let request = pb::FetchRequest {
        account_id: id,
        mailbox: "INBOX".into(),
        uids: vec![1],
        sections: vec![section(&[], SectionText::Text)],
        set_seen: true,
        ..Default::default()
    };
    let fetched = fetch(&stack, request).await.unwrap();
    assert!(fetched[0].message.flags.contains(&"\\Seen".to_owned()));
    assert_eq!(select(&stack, id, "INBOX").await.first_unseen_uid, 0);

    let bad = append(&stack, id, "INBOX", &["\\Recent"], None, MIME).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(append(&stack, id, "Nowhere", &[], None, MIME).await.unwrap_err().code(), Code::NotFound);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_message_streams_in_chunks_and_a_header_fetch_reads_only_headers() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let id = stack.add_account("big@example.org", "pw").await;
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    let big = plain("big", &line.repeat(20_000)).to_vec();
    assert!(big.len() > 1_000_000);
    append(&stack, id, "INBOX", &[], None, &big).await.unwrap();
    append(&stack, id, "INBOX", &[], None, &plain("small", "hi")).await.unwrap();
    let request = pb::FetchRequest {
        account_id: id,
        mailbox: "INBOX".into(),
        uids: vec![1, 2],
        sections: vec![section(&[], SectionText::Full)],
        ..Default::default()
    };
    let fetched = fetch(&stack, request).await.unwrap();
    assert_eq!(fetched[0].sections[0].as_deref(), Some(big.as_slice()));
    assert!(fetched[0].chunks > 10, "{} chunks", fetched[0].chunks);
    let request = pb::FetchRequest {
        account_id: id,
        mailbox: "INBOX".into(),
        uids: vec![1, 2],
        sections: vec![section(&[], SectionText::Header)],
        ..Default::default()
    };
    let headers = fetch(&stack, request).await.unwrap();
    let header = String::from_utf8(headers[0].sections[0].clone().unwrap()).unwrap();
    assert!(header.starts_with("From: Carol") && header.ends_with("+0000\r\n\r\n"), "{header}");
    // The whole message with its header and text is about twice its size, and passes; overlapping
    // partial copies of it (one more each time) do not, before anything of the message is sent.
    let request = |sections: Vec<pb::Section>| pb::FetchRequest {
        account_id: id,
        mailbox: "INBOX".into(),
        uids: vec![1],
        sections,
        ..Default::default()
    };
    let twice =
        vec![section(&[], SectionText::Full), section(&[], SectionText::Header), section(&[], SectionText::Text)];
    assert_eq!(fetch(&stack, request(twice)).await.unwrap()[0].sections[0].as_deref(), Some(big.as_slice()));
    let copies: Vec<pb::Section> = (0..4)
        .map(|i| pb::Section { offset: Some(i), length: Some(big.len() as u64), ..section(&[], SectionText::Full) })
        .collect();
    let refused = fetch(&stack, request(copies)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("more than twice its size"), "{refused:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_changes_flags_under_one_modseq_and_unchanged_since_reports_conflicts() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let id = stack.add_account("flags@example.org", "pw").await;
    for i in 0..3 {
        append(&stack, id, "INBOX", &[], None, &plain(&format!("m{i}"), "x")).await.unwrap();
    }
    let start = select(&stack, id, "INBOX").await.status.unwrap().highest_modseq;

    let added = store(&stack, id, &[1, 2], pb::StoreMode::Add, &["\\seen", "$Label1"], None).await.unwrap();
    assert_eq!(added.highest_modseq, start + 1);
    assert!(added.updated.iter().all(|e| e.flags == ["\\Seen", "$Label1"] && e.modseq == start + 1));
    // Adding what is there changes nothing and spends no MODSEQ.
    let again = store(&stack, id, &[1], pb::StoreMode::Add, &["\\Seen"], None).await.unwrap();
    assert_eq!((again.highest_modseq, again.updated[0].modseq), (start + 1, start + 1));

    // UNCHANGEDSINCE: message 1 changed after `start`, message 3 did not.
    let conditional = store(&stack, id, &[1, 3], pb::StoreMode::Replace, &["\\Answered"], Some(start)).await.unwrap();
    assert_eq!(conditional.modified, [1]);
    assert_eq!(conditional.updated.iter().map(|e| e.uid).collect::<Vec<_>>(), [3]);
    let removed = store(&stack, id, &[1, 2], pb::StoreMode::Remove, &["$label1"], None).await.unwrap();
    assert!(removed.updated.iter().all(|e| e.flags == ["\\Seen"]));

    let changes =
        pb::ChangesRequest { account_id: id, mailbox: "INBOX".into(), since_modseq: start + 1, claim_recent: false };
    let changes = stack.mailbox().await.changes(changes).await.unwrap().into_inner();
    let changed: Vec<(u32, Vec<String>)> = changes.changed.into_iter().map(|e| (e.uid, e.flags)).collect();
    assert_eq!(
        changed,
        [(1, vec!["\\Seen".to_owned()]), (2, vec!["\\Seen".to_owned()]), (3, vec!["\\Answered".to_owned()])]
    );

    store(&stack, id, &[2, 3], pb::StoreMode::Add, &["\\Deleted"], None).await.unwrap();
    let before_expunge = select(&stack, id, "INBOX").await.status.unwrap().highest_modseq;
    let nothing = pb::ExpungeRequest { account_id: id, mailbox: "INBOX".into(), uids: vec![], deleted_only: true };
    let expunged = stack.mailbox().await.expunge(nothing).await.unwrap().into_inner();
    assert!(expunged.expunged.is_empty(), "no UIDs never means every \\Deleted message");
    let expunge =
        pb::ExpungeRequest { account_id: id, mailbox: "INBOX".into(), uids: vec![1, 2, 3], deleted_only: true };
    let expunged = stack.mailbox().await.expunge(expunge).await.unwrap().into_inner();
    assert_eq!(expunged.expunged, [2, 3], "message 1 has no \\Deleted");
    let changes = pb::ChangesRequest {
        account_id: id,
        mailbox: "INBOX".into(),
        since_modseq: before_expunge,
        claim_recent: false,
    };
    let changes = stack.mailbox().await.changes(changes).await.unwrap().into_inner();
    assert_eq!(changes.vanished, [2, 3]);
    assert!(changes.changed.is_empty());
    assert_eq!(select(&stack, id, "INBOX").await.uids, [1]);

    let bad = store(&stack, id, &[1], pb::StoreMode::Add, &["has space"], None).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_shares_the_octets_counts_against_the_quota_and_reports_copyuid() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let id = stack.add_account("copy@example.org", "pw").await;
    append(&stack, id, "INBOX", &["\\Flagged"], Some(1_600_000_000), MIME).await.unwrap();
    append(&stack, id, "INBOX", &[], None, &plain("second", "x")).await.unwrap();
    let copy = |uids: Vec<u32>| pb::CopyRequest {
        account_id: id,
        from_mailbox: "INBOX".into(),
        to_mailbox: "Archive".into(),
        uids,
    };
    let copied = stack.mailbox().await.copy(copy(vec![2, 1, 7])).await.unwrap().into_inner();
    assert_eq!((copied.source_uids, copied.target_uids), (vec![1, 2], vec![1, 2]));
    let archive = select(&stack, id, "Archive").await;
    assert_eq!(archive.status.as_ref().unwrap().uidvalidity, copied.target_uidvalidity);
    let request = pb::FetchRequest { account_id: id, mailbox: "Archive".into(), uids: vec![1], ..Default::default() };
    let fetched = fetch(&stack, request).await.unwrap();
    assert_eq!(
        (fetched[0].message.flags.clone(), fetched[0].message.internal_date_unix),
        (vec!["\\Flagged".into()], 1_600_000_000)
    );

    let pool = sqlx::PgPool::connect(&stack.database_url).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 2, "a copy shares its original's octets");
    let accounts =
        stack.directory().await.list_accounts(pb::ListAccountsRequest::default()).await.unwrap().into_inner();
    assert_eq!(accounts.accounts[0].message_count, 4, "the quota counts each copy");

    let limit =
        pb::UpdateAccountRequest { address: "copy@example.org".into(), quota_messages: Some(5), ..Default::default() };
    stack.directory().await.update_account(limit).await.unwrap();
    let over = stack.mailbox().await.copy(copy(vec![1, 2])).await.unwrap_err();
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
    // A move changes nothing in the count, so it is allowed when full.
    let full_move =
        pb::MoveRequest { account_id: id, from_mailbox: "INBOX".into(), to_mailbox: "Trash".into(), uids: vec![1, 2] };
    stack.mailbox().await.r#move(full_move).await.unwrap();
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn search_keys_cover_flags_headers_sizes_dates_uids_modseq_and_full_text() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let id = stack.add_account("find@example.org", "pw").await;
    append(&stack, id, "INBOX", &["\\Seen"], Some(1_795_000_000), MIME).await.unwrap(); // 1
    append(&stack, id, "INBOX", &[], Some(1_795_100_000), &plain("Lunch on Friday", "Pizza or sushi?")).await.unwrap(); // 2
    append(&stack, id, "INBOX", &["$Work"], Some(1_795_200_000), &plain("Re: report", "Excellent numbers indeed"))
        .await
        .unwrap(); // 3

    let header = |field: &str, value: &str| Key::Header(pb::HeaderMatch { field: field.into(), value: value.into() });
    assert_eq!(search(&stack, id, Key::All(true)).await, [1, 2, 3]);
    assert_eq!(search(&stack, id, Key::Flag("\\Seen".into())).await, [1]);
    assert_eq!(search(&stack, id, Key::Not(Box::new(key(Key::Flag("\\seen".into()))))).await, [2, 3]);
    assert_eq!(search(&stack, id, Key::Flag("$work".into())).await, [3]);
    assert_eq!(search(&stack, id, header("subject", "REPORT")).await, [1, 3]);
    assert_eq!(search(&stack, id, header("from", "alice@example")).await, [1]);
    assert_eq!(search(&stack, id, header("from", "Carol")).await, [2, 3]);
    assert_eq!(search(&stack, id, header("message-id", "")).await, [1], "an empty value asks for the field");
    assert_eq!(search(&stack, id, header("subject", "R%t")).await, Vec::<u32>::new(), "% is literal, not a wildcard");
    assert_eq!(search(&stack, id, header("subject", "R_: report")).await, Vec::<u32>::new(), "_ is literal too");
    assert_eq!(search(&stack, id, Key::Body("excellent".into())).await, [1, 3]);
    assert_eq!(search(&stack, id, Key::Body("numbers look excellent".into())).await, [1]);
    assert_eq!(search(&stack, id, Key::Text("lunch".into())).await, [2], "TEXT finds header words too");
    assert_eq!(search(&stack, id, Key::Larger(MIME.len() as u64 - 1)).await, [1]);
    assert_eq!(search(&stack, id, Key::Smaller(200)).await.len(), 2);
    assert_eq!(search(&stack, id, Key::Uids(pb::UidList { uids: vec![3, 2, 42] })).await, [2, 3]);
    let or = Key::Or(Box::new(pb::SearchPair {
        a: Some(Box::new(key(Key::Flag("$Work".into())))),
        b: Some(Box::new(key(Key::Flag("\\Seen".into())))),
    }));
    assert_eq!(search(&stack, id, or).await, [1, 3]);
    let and = Key::And(pb::SearchKeys { keys: vec![key(header("to", "bob")), key(Key::Body("sushi".into()))] });
    assert_eq!(search(&stack, id, and).await, [2]);
    // 1_795_100_000 is 2026-11-19 14:53 UTC, day 20776.
    let day = |relation: pb::date_match::Relation, day: i64| pb::DateMatch { relation: relation.into(), day };
    use pb::date_match::Relation::{Before, On, Since};
    assert_eq!(search(&stack, id, Key::InternalDate(day(On, 20_776))).await, [2]);
    assert_eq!(search(&stack, id, Key::InternalDate(day(Before, 20_776))).await, [1]);
    assert_eq!(search(&stack, id, Key::InternalDate(day(Since, 20_776))).await, [2, 3]);
    // Sent: the Date fields are 2026-11-23 (day 20780) and 2026-11-21 (day 20778).
    assert_eq!(search(&stack, id, Key::SentDate(day(Since, 20_779))).await, [1]);
    assert_eq!(search(&stack, id, Key::SentDate(day(On, 20_778))).await, [2, 3]);

    let modseq = store(&stack, id, &[2], pb::StoreMode::Add, &["\\Answered"], None).await.unwrap().highest_modseq;
    let request = pb::SearchRequest {
        account_id: id,
        mailbox: "INBOX".into(),
        key: Some(key(Key::Modseq(modseq))),
        threading: false,
        sorting: false,
    };
    let found = stack.mailbox().await.search(request).await.unwrap().into_inner();
    assert_eq!((found.uids, found.highest_modseq), (vec![2], modseq));

    // A message without a Date field matches no SENT* key, and so every NOT of one: NOT is the complement.
    append(&stack, id, "INBOX", &[], None, b"Subject: undated\r\n\r\nno date\r\n").await.unwrap(); // 4
    assert_eq!(search(&stack, id, Key::SentDate(day(Since, 0))).await, [1, 2, 3]);
    let not_since = Key::Not(Box::new(key(Key::SentDate(day(Since, 0)))));
    assert_eq!(search(&stack, id, not_since).await, [4]);
    stack.stop().await;
}

/// One account can never reach another's mail: every call is scoped by the account the caller names, and
/// mailbox names are looked up within it.
#[tokio::test(flavor = "multi_thread")]
async fn one_account_never_reaches_another_accounts_messages() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let owner = stack.add_account("owner@example.org", "pw").await;
    let other = stack.add_account("other@example.org", "pw").await;
    append(&stack, owner, "INBOX", &[], None, MIME).await.unwrap();
    let everything = || vec![1, 2, 3];
    let request = pb::FetchRequest {
        account_id: other,
        mailbox: "INBOX".into(),
        uids: everything(),
        sections: vec![section(&[], SectionText::Full)],
        ..Default::default()
    };
    assert!(fetch(&stack, request).await.unwrap().is_empty());
    assert!(search(&stack, other, Key::All(true)).await.is_empty());
    assert!(
        store(&stack, other, &everything(), pb::StoreMode::Add, &["\\Deleted"], None).await.unwrap().updated.is_empty()
    );
    let copy = pb::CopyRequest {
        account_id: other,
        from_mailbox: "INBOX".into(),
        to_mailbox: "Archive".into(),
        uids: everything(),
    };
    assert!(stack.mailbox().await.copy(copy).await.unwrap().into_inner().target_uids.is_empty());
    let expunge =
        pb::ExpungeRequest { account_id: other, mailbox: "INBOX".into(), uids: everything(), deleted_only: false };
    assert!(stack.mailbox().await.expunge(expunge).await.unwrap().into_inner().expunged.is_empty());
    let message = pb::FetchMessageRequest { account_id: other, mailbox: "INBOX".into(), uid: 1 };
    assert_eq!(stack.mailbox().await.fetch_message(message).await.unwrap_err().code(), Code::NotFound);
    let status = pb::StatusRequest { account_id: 999_999, mailbox: "INBOX".into() };
    assert_eq!(stack.mailbox().await.status(status).await.unwrap_err().code(), Code::NotFound);
    // The owner's message is untouched.
    let request = pb::FetchRequest { account_id: owner, mailbox: "INBOX".into(), uids: vec![1], ..Default::default() };
    assert!(fetch(&stack, request).await.unwrap()[0].message.flags.is_empty());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_appends_copies_and_flag_changes_lose_nothing() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let id = stack.add_account("busy@example.org", "pw").await;
    append(&stack, id, "Drafts", &[], None, &plain("seed", "x")).await.unwrap();
    let appends = (0..20).map(|i| {
        let stack = &stack;
        async move { append(stack, id, "INBOX", &[], None, &plain(&format!("p{i}"), "x")).await.unwrap().uid }
    });
    let copies = (0..10).map(|_| {
        let stack = &stack;
        async move {
            let request = pb::CopyRequest {
                account_id: id,
                from_mailbox: "Drafts".into(),
                to_mailbox: "INBOX".into(),
                uids: vec![1],
            };
            stack.mailbox().await.copy(request).await.unwrap().into_inner().target_uids[0]
        }
    });
    let (mut uids, copied) =
        futures::future::join(futures::future::join_all(appends), futures::future::join_all(copies)).await;
    uids.extend(copied);
    uids.sort_unstable();
    assert_eq!(uids, (1..=30).collect::<Vec<u32>>(), "every append and copy got its own UID, with no gap");

    // Twenty sessions each add their own keyword to the same message at once: all twenty stick.
    let stores = (0..20).map(|i| {
        let stack = &stack;
        async move { store(stack, id, &[1], pb::StoreMode::Add, &[&format!("$k{i}")], None).await.unwrap() }
    });
    futures::future::join_all(stores).await;
    let request = pb::FetchRequest { account_id: id, mailbox: "INBOX".into(), uids: vec![1], ..Default::default() };
    let flags = fetch(&stack, request).await.unwrap().remove(0).message.flags;
    assert_eq!(flags.len(), 20, "{flags:?}");
    stack.stop().await;
}

/// Every committed change is followed by one event on `mail.events.<account>` naming the mailbox, the
/// kind, the UIDs and the MODSEQ: what IMAP sessions on any replica listen to.
#[tokio::test(flavor = "multi_thread")]
async fn each_change_publishes_its_event_after_the_commit() {
    use futures::StreamExt as _;
    use pb::MailboxEventKind as Kind;
    use prost::Message as _;
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let id = stack.add_account("events@example.org", "pw").await;
    let mut events = stack.mailbox_events(id).await;
    let mut next = async || {
        let message = tokio::time::timeout(crate::PATIENCE, events.next()).await.expect("an event").unwrap();
        let event = pb::MailboxEvent::decode(message.payload).unwrap();
        (event.kind(), event.mailbox, event.uids, event.modseq, event.renamed_to)
    };

    let appended = append(&stack, id, "INBOX", &[], None, &plain("e", "x")).await.unwrap();
    let (kind, mailbox, uids, modseq, _) = next().await;
    assert_eq!((kind, mailbox.as_str(), uids), (Kind::Appended, "INBOX", vec![appended.uid]));
    let stored = store(&stack, id, &[1], pb::StoreMode::Add, &["\\Seen"], None).await.unwrap();
    assert_eq!(next().await, (Kind::FlagsChanged, "INBOX".into(), vec![1], stored.highest_modseq, String::new()));
    assert!(stored.highest_modseq > modseq);
    let copy =
        pb::CopyRequest { account_id: id, from_mailbox: "inbox".into(), to_mailbox: "Archive".into(), uids: vec![1] };
    stack.mailbox().await.copy(copy).await.unwrap();
    let (kind, mailbox, ..) = next().await;
    assert_eq!((kind, mailbox.as_str()), (Kind::Appended, "Archive"));
    let expunge = pb::ExpungeRequest { account_id: id, mailbox: "INBOX".into(), uids: vec![1], deleted_only: false };
    let expunged = stack.mailbox().await.expunge(expunge).await.unwrap().into_inner();
    assert_eq!(next().await, (Kind::Expunged, "INBOX".into(), vec![1], expunged.highest_modseq, String::new()));
    let create = pb::CreateMailboxRequest { account_id: id, name: "Lists".into(), special_use: String::new() };
    stack.mailbox().await.create_mailbox(create).await.unwrap();
    assert_eq!(next().await.0, Kind::Created);
    let rename = pb::RenameMailboxRequest { account_id: id, from: "Lists".into(), to: "Groups".into() };
    stack.mailbox().await.rename_mailbox(rename).await.unwrap();
    assert_eq!(next().await, (Kind::Renamed, "Lists".into(), vec![], 0, "Groups".into()));
    let delete = pb::DeleteMailboxRequest { account_id: id, name: "Groups".into() };
    stack.mailbox().await.delete_mailbox(delete).await.unwrap();
    assert_eq!(next().await.0, Kind::Deleted);
    // A change that changes nothing says nothing: the next event is the append below, not a STORE.
    store(&stack, id, &[7], pb::StoreMode::Add, &["\\Seen"], None).await.unwrap();
    append(&stack, id, "INBOX", &[], None, &plain("last", "x")).await.unwrap();
    assert_eq!(next().await.0, Kind::Appended);
    stack.stop().await;
}

/// RFC 3502 MULTIAPPEND at the role: one Append stream with several messages (each a header and its
/// chunks) is one transaction, consecutive UIDs and one Appended event; a stream the role refuses
/// (two mailboxes, a body shorter than its header said) adds nothing.
#[tokio::test(flavor = "multi_thread")]
async fn an_append_stream_of_several_messages_is_all_or_none() {
    use futures::StreamExt as _;
    use prost::Message as _;

    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let id = stack.add_account("multi@example.org", "pw").await;
    let mut events = stack.mailbox_events(id).await;
    let header = |mailbox: &str, size: usize| pb::AppendHeader {
        account_id: id,
        mailbox: mailbox.into(),
        flags: vec!["\\Seen".into()],
        size: size as u64,
        ..Default::default()
    };
    let stream = |messages: &[(&str, &[u8])]| {
        let parts: Vec<_> = messages
            .iter()
            .flat_map(|(mailbox, body)| mailbus_proto::upload::append(header(mailbox, body.len()), body, 100))
            .collect();
        futures::stream::iter(parts)
    };
    let reply = stack.mailbox().await.append(stream(&[("INBOX", MIME), ("INBOX", b"Subject: two\r\n\r\n2\r\n")])).await;
    let reply = reply.expect("appended").into_inner();
    assert_eq!((reply.uid, reply.last_uid, reply.duplicate), (1, 2, false));
    let next = tokio::time::timeout(crate::PATIENCE, events.next()).await.expect("an event").expect("subscribed");
    let event = pb::MailboxEvent::decode(next.payload).unwrap();
    assert_eq!((event.kind(), event.uids), (pb::MailboxEventKind::Appended, vec![1, 2]));

    let refused = stack.mailbox().await.append(stream(&[("INBOX", b"a\r\n"), ("Drafts", b"b\r\n")])).await;
    assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument);
    let mut short = mailbus_proto::upload::append(header("INBOX", 10), b"12345", 100);
    short.extend(mailbus_proto::upload::append(header("INBOX", 3), b"abc", 100));
    let refused = stack.mailbox().await.append(futures::stream::iter(short)).await;
    assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(stack.inbox_uids(id).await, [1, 2], "nothing more was added");
    stack.stop().await;
}
