//! RFC 5465 NOTIFY: the events a client asked for reach it as soon as they happen, with no command in
//! progress: `* STATUS` for other mailboxes, `* LIST` for the hierarchy and subscriptions, and the
//! selected mailbox's updates at once (with MessageNew's FETCH items). Events are injected as the access
//! role's NATS feed would deliver them.

use super::*;

fn hierarchy(kind: pb::MailboxEventKind, mailbox: &str, renamed_to: &str) -> pb::MailboxEvent {
    pb::MailboxEvent {
        account_id: 1,
        mailbox: mailbox.into(),
        kind: kind.into(),
        renamed_to: renamed_to.into(),
        ..Default::default()
    }
}

#[test]
fn notify_is_advertised_after_login_and_needs_one() {
    let mut client = Client::new();
    assert_eq!(client.send("n1 NOTIFY NONE\r\n"), "n1 BAD log in first\r\n");
    client.login();
    let caps = client.send("c CAPABILITY\r\n");
    assert!(caps.split([' ', '\r']).any(|c| c == "NOTIFY"), "{caps}");
    assert_eq!(client.send("n2 NOTIFY NONE\r\n"), "n2 OK NOTIFY completed\r\n");
}

#[test]
fn personal_message_new_brings_status_of_another_mailbox_at_once() {
    let mut client = Client::new();
    client.store.create("Work", "");
    client.select_inbox();
    assert_eq!(
        client.send("n NOTIFY SET (selected (MessageNew MessageExpunge)) (personal (MessageNew MessageExpunge))\r\n"),
        "n OK NOTIFY completed\r\n"
    );
    let event = client.store.deliver("Work", b"Subject: w\r\n\r\nw\r\n", &[]);
    assert_eq!(client.event(&event), "* STATUS Work (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 1002 UNSEEN 1)\r\n");
    let event = client.store.expunge_elsewhere("Work", 1);
    assert_eq!(client.event(&event), "* STATUS Work (MESSAGES 0 UIDNEXT 2 UIDVALIDITY 1002 UNSEEN 0)\r\n");
    // The selected mailbox: EXISTS at once, not STATUS, and no command needed.
    let event = client.store.deliver("INBOX", b"Subject: i\r\n\r\ni\r\n", &[]);
    assert_eq!(client.event(&event), "* 1 EXISTS\r\n* 1 RECENT\r\n");
    // NOTIFY NONE: back to waiting for a command.
    assert_eq!(client.send("n2 NOTIFY NONE\r\n"), "n2 OK NOTIFY completed\r\n");
    let event = client.store.deliver("Work", b"Subject: w\r\n\r\nw\r\n", &[]);
    assert_eq!(client.event(&event), "");
}

#[test]
fn message_new_with_fetch_items_sends_them_for_the_new_message() {
    let mut client = Client::new();
    client.select_inbox();
    assert_eq!(
        client.send("n NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange))\r\n"),
        "n OK NOTIFY completed\r\n"
    );
    let event = client.store.deliver("INBOX", b"Subject: new\r\n\r\nnew\r\n", &["\\Flagged"]);
    assert_eq!(client.event(&event), "* 1 EXISTS\r\n* 1 RECENT\r\n* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))\r\n");
    // An expunge elsewhere is an EXPUNGE at once with `selected`.
    let event = client.store.expunge_elsewhere("INBOX", 1);
    assert_eq!(client.event(&event), "* 1 EXPUNGE\r\n");
}

#[test]
fn selected_delayed_keeps_expunges_for_a_command_that_allows_them() {
    let mut client = Client::new();
    fill(&client.store, 1);
    client.select_inbox();
    client.send("n NOTIFY SET (selected-delayed (MessageNew MessageExpunge))\r\n");
    let event = client.store.expunge_elsewhere("INBOX", 1);
    assert_eq!(client.event(&event), "");
    assert_eq!(client.send("x NOOP\r\n"), "* 1 EXPUNGE\r\nx OK NOOP completed\r\n");
}

#[test]
fn mailbox_name_and_subscription_change_bring_list_responses() {
    let mut client = Client::new();
    client.login();
    assert_eq!(
        client.send("n NOTIFY SET (personal (MailboxName SubscriptionChange))\r\n"),
        "n OK NOTIFY completed\r\n"
    );
    let created = hierarchy(pb::MailboxEventKind::Created, "Projects", "");
    assert_eq!(client.event(&created), "* LIST () \"/\" Projects\r\n");
    let renamed = hierarchy(pb::MailboxEventKind::Renamed, "Projects", "Archive/Projects");
    assert_eq!(client.event(&renamed), "* LIST () \"/\" Archive/Projects (\"OLDNAME\" (Projects))\r\n");
    let deleted = hierarchy(pb::MailboxEventKind::Deleted, "Archive/Projects", "");
    assert_eq!(client.event(&deleted), "* LIST (\\NonExistent) \"/\" Archive/Projects\r\n");
    let subscribed = hierarchy(pb::MailboxEventKind::Subscribed, "Lists", "");
    assert_eq!(client.event(&subscribed), "* LIST (\\Subscribed) \"/\" Lists\r\n");
    let unsubscribed = hierarchy(pb::MailboxEventKind::Unsubscribed, "Lists", "");
    assert_eq!(client.event(&unsubscribed), "* LIST () \"/\" Lists\r\n");
    // A message event was not asked for.
    let event = client.store.deliver("INBOX", b"Subject: i\r\n\r\ni\r\n", &[]);
    assert_eq!(client.event(&event), "");
}

#[test]
fn filters_pick_the_mailboxes_and_the_first_matching_group_wins() {
    let mut client = Client::new();
    for name in ["Lists", "Lists/rust", "Other", "Sub"] {
        client.store.create(name, "");
    }
    client.login();
    assert_eq!(client.send("s SUBSCRIBE Sub\r\n"), "s OK SUBSCRIBE completed\r\n");
    assert_eq!(
        client.send(
            "n NOTIFY SET (mailboxes Other NONE) (subtree Lists (MessageNew MessageExpunge)) \
             (subscribed (MessageNew MessageExpunge)) (personal (MailboxName))\r\n"
        ),
        "n OK NOTIFY completed\r\n"
    );
    let event = client.store.deliver("Lists/rust", b"Subject: r\r\n\r\nr\r\n", &[]);
    assert_eq!(client.event(&event), "* STATUS Lists/rust (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 1003 UNSEEN 1)\r\n");
    let event = client.store.deliver("Sub", b"Subject: s\r\n\r\ns\r\n", &[]);
    assert_eq!(client.event(&event), "* STATUS Sub (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 1005 UNSEEN 1)\r\n");
    // `Other` is in a group with no events, and that group comes first.
    let event = client.store.deliver("Other", b"Subject: o\r\n\r\no\r\n", &[]);
    assert_eq!(client.event(&event), "");
    // INBOX is only under `personal`, which asked for MailboxName alone.
    let event = client.store.deliver("INBOX", b"Subject: i\r\n\r\ni\r\n", &[]);
    assert_eq!(client.event(&event), "");
}

#[test]
fn set_status_reports_every_watched_mailbox_first() {
    let mut client = Client::new();
    client.store.create("Work", "");
    client.store.deliver("Work", b"Subject: w\r\n\r\nw\r\n", &["\\Seen"]);
    client.login();
    assert_eq!(
        client.send("n NOTIFY SET STATUS (personal (MessageNew MessageExpunge))\r\n"),
        "* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1001 UNSEEN 0)\r\n\
         * STATUS Work (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 1002 UNSEEN 0)\r\n\
         n OK NOTIFY completed\r\n"
    );
}

#[test]
fn unsupported_events_are_badevent_and_broken_syntax_bad() {
    let mut client = Client::new();
    client.login();
    assert_eq!(
        client.send("n1 NOTIFY SET (personal (MessageNew MessageExpunge AnnotationChange))\r\n"),
        "n1 NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] event not supported\r\n"
    );
    assert_eq!(
        client.send("n2 NOTIFY SET (personal (MessageNew))\r\n"),
        "n2 BAD MessageNew and MessageExpunge must be asked for together\r\n"
    );
    assert_eq!(
        client.send("n3 NOTIFY SET (inboxes (MessageNew (UID) MessageExpunge))\r\n"),
        "n3 BAD MessageNew's FETCH items are for the selected mailbox only\r\n"
    );
    assert_eq!(client.send("n4 NOTIFY SET (nowhere (MailboxName))\r\n"), "n4 BAD unknown mailbox filter\r\n");
    assert_eq!(client.send("n5 NOTIFY\r\n"), "n5 BAD NOTIFY needs SET or NONE\r\n");
    // The session goes on.
    assert_eq!(client.send("n6 NOOP\r\n"), "n6 OK NOOP completed\r\n");
}

#[test]
fn during_idle_notify_events_arrive_too() {
    let mut client = Client::new();
    client.store.create("Work", "");
    client.select_inbox();
    client.send("n NOTIFY SET (personal (MessageNew MessageExpunge))\r\n");
    assert_eq!(client.send("i IDLE\r\n"), "+ idling\r\n");
    let event = client.store.deliver("Work", b"Subject: w\r\n\r\nw\r\n", &[]);
    assert_eq!(client.event(&event), "* STATUS Work (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 1002 UNSEEN 1)\r\n");
    assert_eq!(client.send("DONE\r\n"), "i OK IDLE terminated\r\n");
}

#[test]
fn flag_change_is_sent_only_where_it_was_asked_for() {
    let mut client = Client::new();
    client.store.create("Work", "");
    client.store.deliver("Work", b"Subject: w\r\n\r\nw\r\n", &[]);
    fill(&client.store, 1);
    client.select_inbox();
    assert_eq!(
        client.send("n NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) (personal (MessageNew MessageExpunge FlagChange))\r\n"),
        "n OK NOTIFY completed\r\n"
    );
    let mut other = client.another();
    other.send("s SELECT Work\r\n");
    other.send("t STORE 1 +FLAGS (\\Seen)\r\n");
    let reflagged = |mailbox: &str| hierarchy(pb::MailboxEventKind::FlagsChanged, mailbox, "");
    assert_eq!(client.event(&reflagged("Work")), "* STATUS Work (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 1002 UNSEEN 0)\r\n");
    other.send("s2 SELECT INBOX\r\n");
    other.send("t2 STORE 1 +FLAGS (\\Flagged)\r\n");
    assert_eq!(client.event(&reflagged("INBOX")), "* 1 FETCH (FLAGS (\\Flagged \\Recent) UID 1)\r\n");

    // Without FlagChange, a flag change waits for the client's next command, and STATUS is not sent.
    client.send("n2 NOTIFY SET (selected (MessageNew MessageExpunge)) (personal (MessageNew MessageExpunge))\r\n");
    other.send("t3 STORE 1 -FLAGS (\\Flagged)\r\n");
    assert_eq!(client.event(&reflagged("INBOX")), "");
    assert_eq!(client.send("x NOOP\r\n"), "* 1 FETCH (FLAGS (\\Recent) UID 1)\r\nx OK NOOP completed\r\n");
    other.send("s3 SELECT Work\r\n");
    other.send("t4 STORE 1 -FLAGS (\\Seen)\r\n");
    assert_eq!(client.event(&reflagged("Work")), "");
}
