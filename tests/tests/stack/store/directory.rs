//! Aliases, catch-alls, quotas, disabled accounts and password changes.

use mailbus::roles::Role;
use mailbus_proto::v1::{self as pb, RecipientKind};
use mailbus_tests::TestStack;
use mailbus_tests::clients::{SmtpOutcome, smtp_send};
use tonic::Code;

use crate::{PATIENCE, message};

async fn resolve(stack: &TestStack, address: &str) -> (RecipientKind, Vec<i64>) {
    let request = pb::ResolveRecipientRequest { address: address.into() };
    let reply = stack.directory().await.resolve_recipient(request).await.expect("resolve").into_inner();
    (reply.kind(), reply.account_ids)
}

async fn add_alias(stack: &TestStack, address: &str, targets: &[&str]) -> Result<pb::Alias, tonic::Status> {
    let request =
        pb::AddAliasRequest { address: address.into(), targets: targets.iter().map(|t| t.to_string()).collect() };
    stack.directory().await.add_alias(request).await.map(tonic::Response::into_inner)
}

async fn update(stack: &TestStack, request: pb::UpdateAccountRequest) -> pb::Account {
    stack.directory().await.update_account(request).await.expect("update account").into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn aliases_lead_to_accounts_and_the_catch_all_takes_only_what_nothing_else_does() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let alice = stack.add_account("alice@example.org", "pw").await;
    let bob = stack.add_account("bob@example.org", "pw").await;
    let carol = stack.add_account("carol@example.org", "pw").await;

    let team = add_alias(&stack, "Team@Example.org", &["bob@example.org", "ALICE@example.org"]).await.unwrap();
    assert_eq!(team.address, "team@example.org");
    assert_eq!(team.targets, ["alice@example.org", "bob@example.org"]);
    add_alias(&stack, "@example.org", &["carol@example.org"]).await.unwrap();

    assert_eq!(resolve(&stack, "alice@example.org").await, (RecipientKind::Local, vec![alice]));
    assert_eq!(resolve(&stack, "team@example.org").await, (RecipientKind::Local, vec![alice, bob]));
    assert_eq!(resolve(&stack, "whoever@example.org").await, (RecipientKind::Local, vec![carol]));
    assert_eq!(resolve(&stack, "alice@elsewhere.test").await.0, RecipientKind::NotLocal);

    // An address is an account's or an alias's, never both; targets must exist.
    assert_eq!(
        add_alias(&stack, "alice@example.org", &["bob@example.org"]).await.unwrap_err().code(),
        Code::AlreadyExists
    );
    let taken = pb::AddAccountRequest { address: "team@example.org".into(), password: "pw".into() };
    assert_eq!(stack.directory().await.add_account(taken).await.unwrap_err().code(), Code::AlreadyExists);
    assert_eq!(add_alias(&stack, "x@example.org", &["nobody@example.org"]).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        add_alias(&stack, "x@unhosted.test", &["bob@example.org"]).await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    // One delivery to the alias gives each account its own copy; a repeat gives nobody a second.
    let body = message("team@example.org", "to-the-team");
    let first = stack.deliver("q-team", "team@example.org", &body).await.unwrap();
    assert!(!first.duplicate);
    let placed: Vec<(i64, u32)> = first.placements.iter().map(|p| (p.account_id, p.uid)).collect();
    assert_eq!(placed, [(alice, 1), (bob, 1)]);
    let again = stack.deliver("q-team", "team@example.org", &body).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.placements, first.placements);
    assert_eq!(stack.inbox_uids(alice).await, [1]);
    assert_eq!(stack.inbox_uids(bob).await, [1]);

    // Aliases count as the account's own sender addresses; the catch-all does not.
    let may_send = |account_id: i64, address: &str| {
        let request = pb::CheckSenderRequest { account_id, address: address.into() };
        let stack = &stack;
        async move { stack.directory().await.check_sender(request).await.unwrap().into_inner().allowed }
    };
    assert!(may_send(alice, "team@example.org").await);
    assert!(!may_send(carol, "team@example.org").await);
    assert!(!may_send(carol, "whoever@example.org").await);

    // A disabled account receives nothing, and its address does not fall through to the catch-all.
    update(
        &stack,
        pb::UpdateAccountRequest { address: "alice@example.org".into(), disabled: Some(true), ..Default::default() },
    )
    .await;
    assert_eq!(resolve(&stack, "alice@example.org").await.0, RecipientKind::UnknownUser);
    assert_eq!(resolve(&stack, "team@example.org").await, (RecipientKind::Local, vec![bob]));
    update(
        &stack,
        pb::UpdateAccountRequest { address: "carol@example.org".into(), disabled: Some(true), ..Default::default() },
    )
    .await;
    assert_eq!(resolve(&stack, "whoever@example.org").await.0, RecipientKind::UnknownUser);

    // Removing targets one by one removes the alias with the last.
    let remove = |targets: &[&str]| pb::RemoveAliasRequest {
        address: "team@example.org".into(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
    };
    stack.directory().await.remove_alias(remove(&["bob@example.org"])).await.unwrap();
    let listed = stack.directory().await.list_aliases(pb::ListAliasesRequest::default()).await.unwrap().into_inner();
    let listed: Vec<(String, Vec<String>)> = listed.aliases.into_iter().map(|a| (a.address, a.targets)).collect();
    assert_eq!(
        listed,
        [
            ("@example.org".to_owned(), vec!["carol@example.org".to_owned()]),
            ("team@example.org".into(), vec!["alice@example.org".into()])
        ]
    );
    let missing = stack.directory().await.remove_alias(remove(&["bob@example.org"])).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    stack.directory().await.remove_alias(remove(&["alice@example.org"])).await.unwrap();
    assert_eq!(stack.directory().await.remove_alias(remove(&[])).await.unwrap_err().code(), Code::NotFound);

    // Removing an account takes its mail and its place in aliases with it.
    let remove_carol = pb::RemoveAccountRequest { address: "carol@example.org".into() };
    stack.directory().await.remove_account(remove_carol.clone()).await.unwrap();
    assert_eq!(stack.directory().await.remove_account(remove_carol).await.unwrap_err().code(), Code::NotFound);
    let left = stack.directory().await.list_aliases(pb::ListAliasesRequest::default()).await.unwrap().into_inner();
    assert!(left.aliases.is_empty(), "{left:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn password_changes_and_disabling_take_effect_at_once() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    stack.add_account("dora@example.org", "old secret").await;
    assert!(stack.authenticates("dora@example.org", "old secret").await);
    let new_password = pb::UpdateAccountRequest {
        address: "dora@example.org".into(),
        password: Some("new secret".into()),
        ..Default::default()
    };
    update(&stack, new_password).await;
    assert!(!stack.authenticates("dora@example.org", "old secret").await);
    assert!(stack.authenticates("Dora@example.org", "new secret").await);
    let off =
        pb::UpdateAccountRequest { address: "dora@example.org".into(), disabled: Some(true), ..Default::default() };
    assert!(update(&stack, off).await.disabled);
    assert!(!stack.authenticates("dora@example.org", "new secret").await);
    let on =
        pb::UpdateAccountRequest { address: "dora@example.org".into(), disabled: Some(false), ..Default::default() };
    assert!(!update(&stack, on).await.disabled);
    assert!(stack.authenticates("dora@example.org", "new secret").await);
    let empty = pb::UpdateAccountRequest {
        address: "dora@example.org".into(),
        password: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(stack.directory().await.update_account(empty).await.unwrap_err().code(), Code::InvalidArgument);
    let nobody =
        pb::UpdateAccountRequest { address: "nobody@example.org".into(), disabled: Some(true), ..Default::default() };
    assert_eq!(stack.directory().await.update_account(nobody).await.unwrap_err().code(), Code::NotFound);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_mailbox_refuses_with_5_2_2_and_takes_mail_again_once_there_is_room() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let erin = stack.add_account("erin@example.org", "pw").await;
    let fred = stack.add_account("fred@example.org", "pw").await;
    add_alias(&stack, "both@example.org", &["erin@example.org", "fred@example.org"]).await.unwrap();
    let body = message("erin@example.org", "quota");
    let size = body.len() as u64;
    let limits = pb::UpdateAccountRequest {
        address: "erin@example.org".into(),
        quota_messages: Some(2),
        quota_bytes: Some(10 * size),
        ..Default::default()
    };
    let account = update(&stack, limits).await;
    assert_eq!((account.quota_messages, account.quota_bytes), (Some(2), Some(10 * size)));

    stack.deliver("q1", "erin@example.org", &body).await.unwrap();
    stack.deliver("q2", "erin@example.org", &body).await.unwrap();
    let full = stack.deliver("q3", "erin@example.org", &body).await.unwrap_err();
    assert_eq!(full.code(), Code::FailedPrecondition, "{full:?}");
    assert_eq!(refused_as(&full), (pb::Reason::OverQuotaPermanent, "5.2.2".to_owned()), "{full:?}");
    assert!(full.message().starts_with("mailbox full: message quota exceeded (2 of 2 messages)"), "{full:?}");

    // Through an alias, the account with room gets its copy; the retry later fills in only the other.
    let partly = stack.deliver("q4", "both@example.org", &body).await.unwrap_err();
    assert_eq!(refused_as(&partly), (pb::Reason::OverQuotaPermanent, "5.2.2".to_owned()), "{partly:?}");
    assert_eq!(stack.inbox_uids(fred).await, [1]);

    // The usage is what the account holds; expunging makes room.
    let listed = stack.directory().await.list_accounts(pb::ListAccountsRequest::default()).await.unwrap().into_inner();
    let erin_row = listed.accounts.iter().find(|a| a.id == erin).unwrap();
    assert_eq!((erin_row.message_count, erin_row.storage_bytes), (2, 2 * size));
    let expunge = pb::ExpungeRequest { account_id: erin, mailbox: "INBOX".into(), uids: vec![1], deleted_only: false };
    stack.mailbox().await.expunge(expunge).await.unwrap();
    let retried = stack.deliver("q4", "both@example.org", &body).await.unwrap();
    assert!(!retried.duplicate);
    let placed: Vec<(i64, u32)> = retried.placements.iter().map(|p| (p.account_id, p.uid)).collect();
    assert_eq!(placed, [(erin, 3), (fred, 1)], "fred's copy is the first attempt's, not a second one");
    assert_eq!(stack.inbox_uids(fred).await, [1]);

    // The storage limit counts octets.
    let bytes_only = pb::UpdateAccountRequest {
        address: "erin@example.org".into(),
        quota_messages: Some(0),
        quota_bytes: Some(2 * size + 1),
        ..Default::default()
    };
    let account = update(&stack, bytes_only).await;
    assert_eq!((account.quota_messages, account.message_count), (None, 2));
    let full = stack.deliver("q5", "erin@example.org", &body).await.unwrap_err();
    assert_eq!(refused_as(&full), (pb::Reason::OverQuotaPermanent, "5.2.2".to_owned()), "{full:?}");
    assert!(full.message().starts_with("mailbox full: storage quota exceeded"), "{full:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_quota_full_defer_a_full_mailbox_is_a_temporary_4_2_2() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).set("MAILBUS_QUOTA_FULL", "defer").start().await;
    stack.add_account("gus@example.org", "pw").await;
    let limit =
        pb::UpdateAccountRequest { address: "gus@example.org".into(), quota_messages: Some(1), ..Default::default() };
    update(&stack, limit).await;
    let body = message("gus@example.org", "defer");
    stack.deliver("q1", "gus@example.org", &body).await.unwrap();
    let full = stack.deliver("q2", "gus@example.org", &body).await.unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted, "{full:?}");
    assert_eq!(refused_as(&full), (pb::Reason::OverQuotaTemporary, "4.2.2".to_owned()), "{full:?}");
    assert!(full.message().starts_with("mailbox full"), "{full:?}");
    stack.stop().await;
}

/// Through the whole stack: SMTP to an alias reaches every target, and mail to a full mailbox comes back to
/// a local sender as a DSN that names 5.2.2.
#[tokio::test(flavor = "multi_thread")]
async fn over_smtp_an_alias_fans_out_and_a_full_mailbox_bounces_to_the_sender() {
    let stack = TestStack::start().await;
    let hal = stack.add_account("hal@example.org", "pw").await;
    let ida = stack.add_account("ida@example.org", "pw").await;
    add_alias(&stack, "desk@example.org", &["hal@example.org", "ida@example.org"]).await.unwrap();
    let sent =
        smtp_send(stack.smtp_addr(), "someone@example.net", &["desk@example.org"], &message("desk", "fan-out")).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { code: 250, .. }), "{sent:?}");
    stack.wait_for_inbox(hal, 1, PATIENCE).await;
    stack.wait_for_inbox(ida, 1, PATIENCE).await;

    let limit =
        pb::UpdateAccountRequest { address: "ida@example.org".into(), quota_messages: Some(1), ..Default::default() };
    update(&stack, limit).await;
    let sent = smtp_send(stack.smtp_addr(), "hal@example.org", &["ida@example.org"], &message("ida", "too-much")).await;
    assert!(matches!(sent, SmtpOutcome::Accepted { code: 250, .. }), "{sent:?}");
    let uids = stack.wait_for_inbox(hal, 2, PATIENCE).await;
    let request = pb::FetchMessageRequest { account_id: hal, mailbox: "INBOX".into(), uid: uids[1] };
    let mut chunks = stack.mailbox().await.fetch_message(request).await.unwrap().into_inner();
    let mut dsn = Vec::new();
    while let Some(chunk) = chunks.message().await.unwrap() {
        dsn.extend_from_slice(&chunk.data);
    }
    let dsn = String::from_utf8_lossy(&dsn);
    assert!(dsn.contains("Status: 5.2.2"), "{dsn}");
    assert!(dsn.contains("Final-Recipient: rfc822; ida@example.org"), "{dsn}");
    assert_eq!(stack.inbox_uids(ida).await.len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alias_target_in_another_domain_is_a_forward_kept_as_written() {
    let stack = TestStack::builder().roles(&[Role::Mailbox]).start().await;
    let alice = stack.add_account("alice@example.org", "pw").await;
    stack.add_account("bob@example.org", "pw").await;
    let mixed = add_alias(&stack, "Team@example.org", &["alice@example.org", "Dave@Remote.test"]).await.unwrap();
    assert_eq!(mixed.targets, ["Dave@remote.test", "alice@example.org"]);
    let request = pb::ResolveRecipientRequest { address: "team@example.org".into() };
    let reply = stack.directory().await.resolve_recipient(request).await.unwrap().into_inner();
    assert_eq!(
        (reply.kind(), reply.account_ids, reply.forwards),
        (RecipientKind::Local, vec![alice], vec!["Dave@remote.test".to_owned()])
    );
    // Forwards only: still a recipient here, with no account.
    add_alias(&stack, "out@example.org", &["erin@remote.test", "frank@other.test"]).await.unwrap();
    let request = pb::ResolveRecipientRequest { address: "out@example.org".into() };
    let reply = stack.directory().await.resolve_recipient(request).await.unwrap().into_inner();
    assert_eq!(reply.kind(), RecipientKind::Local);
    assert!(reply.account_ids.is_empty());
    assert_eq!(reply.forwards, ["erin@remote.test", "frank@other.test"]);
    // The same target twice, in any case, is one target, kept as first written; removing it leaves alice.
    let again = add_alias(&stack, "team@example.org", &["dave@REMOTE.test", "DAVE@remote.test"]).await.unwrap();
    assert_eq!(again.targets, ["Dave@remote.test", "alice@example.org"]);
    let request =
        pb::RemoveAliasRequest { address: "team@example.org".into(), targets: vec!["dave@remote.test".into()] };
    stack.directory().await.remove_alias(request).await.unwrap();
    assert_eq!(resolve(&stack, "team@example.org").await, (RecipientKind::Local, vec![alice]));
    // A forward-only alias whose last target goes is gone.
    let request = pb::RemoveAliasRequest {
        address: "out@example.org".into(),
        targets: vec!["erin@remote.test".into(), "frank@other.test".into()],
    };
    stack.directory().await.remove_alias(request).await.unwrap();
    assert_eq!(resolve(&stack, "out@example.org").await.0, RecipientKind::UnknownUser);
    stack.stop().await;
}

/// The typed refusal a status carries: its reason and the RFC 3463 code it names.
fn refused_as(status: &tonic::Status) -> (pb::Reason, String) {
    let refusal = mailbus_proto::refusal::of(status).expect("a typed refusal in the status details");
    (refusal.reason(), refusal.enhanced_code)
}
