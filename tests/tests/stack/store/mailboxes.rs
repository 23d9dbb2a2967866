//! The mailbox hierarchy: create, rename (INBOX too), delete, subscriptions, LIST patterns, STATUS.

use mailbus::roles::Role;
use mailbus_proto::v1 as pb;
use mailbus_tests::TestStack;
use tonic::Code;

use super::append;
use crate::message;

async fn list(stack: &TestStack, account_id: i64, patterns: &[&str]) -> Vec<pb::MailboxListing> {
    let request = pb::ListMailboxesRequest {
        account_id,
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    };
    stack.mailbox().await.list_mailboxes(request).await.expect("list").into_inner().mailboxes
}

fn names(listed: &[pb::MailboxListing]) -> Vec<&str> {
    listed.iter().map(|l| l.name.as_str()).collect()
}

async fn create(stack: &TestStack, account_id: i64, name: &str) -> Result<u32, tonic::Status> {
    let request = pb::CreateMailboxRequest { account_id, name: name.into(), special_use: String::new() };
    stack.mailbox().await.create_mailbox(request).await.map(|r| r.into_inner().uidvalidity)
}

async fn rename(stack: &TestStack, account_id: i64, from: &str, to: &str) -> Result<(), tonic::Status> {
    let request = pb::RenameMailboxRequest { account_id, from: from.into(), to: to.into() };
    stack.mailbox().await.rename_mailbox(request).await.map(drop)
}

async fn delete(stack: &TestStack, account_id: i64, name: &str) -> Result<(), tonic::Status> {
    let request = pb::DeleteMailboxRequest { account_id, name: name.into() };
    stack.mailbox().await.delete_mailbox(request).await.map(drop)
}

async fn account(stack: &TestStack) -> pb::Account {
    let request = pb::ListAccountsRequest { domain: "example.org".into() };
    stack.directory().await.list_accounts(request).await.unwrap().into_inner().accounts.remove(0)
}

async fn status(stack: &TestStack, account_id: i64, mailbox: &str) -> Result<pb::MailboxStatus, tonic::Status> {
    let request = pb::StatusRequest { account_id, mailbox: mailbox.into() };
    stack.mailbox().await.status(request).await.map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_account_has_inbox_and_the_special_use_set_and_list_patterns_select_from_them() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let id = stack.add_account("list@example.org", "pw").await;
    let all = list(&stack, id, &["*"]).await;
    assert_eq!(names(&all), ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]);
    let uses: Vec<&str> = all.iter().map(|l| l.special_use.as_str()).collect();
    assert_eq!(uses, ["", "\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash"]);
    assert!(all.iter().all(|l| l.exists && l.subscribed && !l.has_children));

    // CREATE makes the missing parents (RFC 9051 §6.3.4).
    create(&stack, id, "Work/2026/Q4").await.unwrap();
    assert_eq!(names(&list(&stack, id, &["Work/%"]).await), ["Work/2026"]);
    assert_eq!(names(&list(&stack, id, &["Work/*"]).await), ["Work/2026", "Work/2026/Q4"]);
    assert_eq!(names(&list(&stack, id, &["%"]).await).len(), 7);
    let work = &list(&stack, id, &["Work"]).await[0];
    assert!(work.has_children && !work.subscribed);
    assert_eq!(names(&list(&stack, id, &["inbox", "T*"]).await), ["INBOX", "Trash"]);
    let special = pb::ListMailboxesRequest {
        account_id: id,
        patterns: vec!["*".into()],
        special_use_only: true,
        ..Default::default()
    };
    let special = stack.mailbox().await.list_mailboxes(special).await.unwrap().into_inner().mailboxes;
    assert_eq!(names(&special), ["Archive", "Drafts", "Junk", "Sent", "Trash"]);
    // A LIST joins its reference to each of its patterns: 64 patterns of at most 2,048 octets with it.
    let listing = |reference: String, patterns: Vec<String>| pb::ListMailboxesRequest {
        account_id: id,
        reference,
        patterns,
        ..Default::default()
    };
    let sixty_four = listing(String::new(), vec!["%".into(); 64]);
    assert_eq!(stack.mailbox().await.list_mailboxes(sixty_four).await.unwrap().into_inner().mailboxes.len(), 7);
    for (reference, patterns) in
        [(String::new(), vec!["%".to_owned(); 65]), ("z".repeat(32 * 1024), vec!["a".to_owned(); 2])]
    {
        let refused = stack.mailbox().await.list_mailboxes(listing(reference, patterns)).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    }

    assert_eq!(create(&stack, id, "Work/2026").await.unwrap_err().code(), Code::AlreadyExists);
    assert_eq!(create(&stack, id, "inbox").await.unwrap_err().code(), Code::AlreadyExists);
    for bad in ["", "a//b", "/lead", "star*"] {
        assert_eq!(create(&stack, id, bad).await.unwrap_err().code(), Code::InvalidArgument, "{bad:?}");
    }
    let taken = pb::CreateMailboxRequest { account_id: id, name: "Sent2".into(), special_use: "\\Sent".into() };
    let refused = stack.mailbox().await.create_mailbox(taken).await.unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists);
    // Typed, so IMAP answers USEATTR (RFC 6154 §5.2) and JMAP points at the role, not at the name.
    assert_eq!(mailbus_proto::refusal::reason(&refused), pb::Reason::SpecialUseTaken, "{refused:?}");
    assert_eq!(refused.message(), "another mailbox is \\Sent");
    let used = pb::CreateMailboxRequest { account_id: id, name: "Everything".into(), special_use: "\\All".into() };
    stack.mailbox().await.create_mailbox(used).await.unwrap();
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_moves_children_and_subscriptions_and_renaming_inbox_moves_its_messages() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let id = stack.add_account("ren@example.org", "pw").await;
    create(&stack, id, "Work/2026").await.unwrap();
    let subscribe = pb::SubscribeRequest { account_id: id, name: "Work/2026".into(), subscribed: true };
    stack.mailbox().await.subscribe(subscribe).await.unwrap();
    let before = status(&stack, id, "Work/2026").await.unwrap();

    rename(&stack, id, "Work", "Projects/Old Work").await.unwrap();
    let all = list(&stack, id, &["*"]).await;
    assert_eq!(
        names(&all),
        [
            "INBOX",
            "Archive",
            "Drafts",
            "Junk",
            "Projects",
            "Projects/Old Work",
            "Projects/Old Work/2026",
            "Sent",
            "Trash"
        ]
    );
    let moved = all.iter().find(|l| l.name == "Projects/Old Work/2026").unwrap();
    assert!(moved.subscribed, "the subscription followed the rename");
    assert_eq!(status(&stack, id, "Projects/Old Work/2026").await.unwrap().uidvalidity, before.uidvalidity);
    assert_eq!(rename(&stack, id, "Projects", "Sent").await.unwrap_err().code(), Code::AlreadyExists);
    assert_eq!(rename(&stack, id, "Projects", "Projects/Inside").await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(rename(&stack, id, "Nothing", "Else").await.unwrap_err().code(), Code::NotFound);
    assert_eq!(rename(&stack, id, "Trash", "INBOX").await.unwrap_err().code(), Code::AlreadyExists);

    // RFC 9051 §6.3.6: renaming INBOX moves its messages; INBOX stays, empty, and keeps counting UIDs.
    for (i, subject) in ["one", "two"].iter().enumerate() {
        stack.deliver(&format!("q{i}"), "ren@example.org", &message("ren@example.org", subject)).await.unwrap();
    }
    rename(&stack, id, "INBOX", "Old Inbox").await.unwrap();
    let inbox = status(&stack, id, "INBOX").await.unwrap();
    assert_eq!((inbox.messages, inbox.uidnext), (0, 3));
    let old = status(&stack, id, "Old Inbox").await.unwrap();
    assert_eq!((old.messages, old.uidnext), (2, 3));
    let placed = stack.deliver("q9", "ren@example.org", &message("ren@example.org", "three")).await.unwrap();
    assert_eq!(placed.placements[0].uid, 3);
    // INBOX's children stay put when it is renamed, so it may be renamed below itself.
    rename(&stack, id, "INBOX", "INBOX/Older").await.unwrap();
    assert_eq!(status(&stack, id, "INBOX/Older").await.unwrap().messages, 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_refuses_inbox_and_parents_frees_the_octets_and_a_new_mailbox_of_that_name_gets_a_new_uidvalidity() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let id = stack.add_account("del@example.org", "pw").await;
    create(&stack, id, "A/B").await.unwrap();
    let refused = delete(&stack, id, "A").await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(mailbus_proto::refusal::reason(&refused), pb::Reason::HasChildren, "{refused:?}");
    assert_eq!(delete(&stack, id, "INBOX").await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(delete(&stack, id, "Nope").await.unwrap_err().code(), Code::NotFound);

    let body = message("del@example.org", "in A/B");
    append(&stack, id, "A/B", &[], None, &body).await.unwrap();
    assert_eq!(account(&stack).await.message_count, 1);
    let first = status(&stack, id, "A/B").await.unwrap().uidvalidity;
    delete(&stack, id, "A/B").await.unwrap();
    delete(&stack, id, "A").await.unwrap();
    assert_eq!((account(&stack).await.message_count, account(&stack).await.storage_bytes), (0, 0));
    let pool = sqlx::PgPool::connect(&stack.database_url).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 0, "the octets went with the mailbox");

    let again = create(&stack, id, "A/B").await.unwrap();
    assert!(again > first, "UIDVALIDITY {again} must differ from the deleted mailbox's {first}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_are_names_and_list_status_reports_each_mailbox() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let id = stack.add_account("sub@example.org", "pw").await;
    let subscribe =
        |name: &str, subscribed: bool| pb::SubscribeRequest { account_id: id, name: name.into(), subscribed };
    stack.mailbox().await.subscribe(subscribe("Later", true)).await.unwrap();
    stack.mailbox().await.subscribe(subscribe("Junk", false)).await.unwrap();
    let request = pb::ListMailboxesRequest {
        account_id: id,
        patterns: vec!["*".into()],
        subscribed_only: true,
        with_status: true,
        ..Default::default()
    };
    let listed = stack.mailbox().await.list_mailboxes(request).await.unwrap().into_inner().mailboxes;
    assert_eq!(names(&listed), ["INBOX", "Archive", "Drafts", "Later", "Sent", "Trash"]);
    let later = listed.iter().find(|l| l.name == "Later").unwrap();
    assert!(!later.exists && later.status.is_none());

    append(&stack, id, "Drafts", &["\\Seen"], None, &message("x", "seen draft")).await.unwrap();
    append(&stack, id, "Drafts", &["\\Deleted"], None, &message("x", "deleted draft")).await.unwrap();
    let request = pb::ListMailboxesRequest {
        account_id: id,
        patterns: vec!["Drafts".into()],
        with_status: true,
        ..Default::default()
    };
    let drafts = stack.mailbox().await.list_mailboxes(request).await.unwrap().into_inner().mailboxes.remove(0);
    let listed_status = drafts.status.unwrap();
    let direct = status(&stack, id, "drafts").await.unwrap_err();
    assert_eq!(direct.code(), Code::NotFound, "only INBOX is case-insensitive");
    let direct = status(&stack, id, "Drafts").await.unwrap();
    assert_eq!(listed_status, direct);
    assert_eq!((direct.messages, direct.unseen, direct.deleted, direct.uidnext), (2, 1, 1, 3));
    assert_eq!(direct.size, (message("x", "seen draft").len() + message("x", "deleted draft").len()) as u64);
    stack.stop().await;
}
