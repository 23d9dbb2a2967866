//! RFC 2177 IDLE (RFC 9051 §6.3.13): changes made elsewhere reach an idling client at once, and wait for
//! the next command otherwise.

use super::*;

#[test]
fn a_delivery_during_idle_is_announced_at_once() {
    let mut client = Client::new();
    fill(&client.store, 1);
    client.select_inbox();
    assert_eq!(client.send("i IDLE\r\n"), "+ idling\r\n");
    let event = client.store.deliver("INBOX", b"Subject: new\r\n\r\nnew\r\n", &[]);
    assert_eq!(client.event(&event), "* 2 EXISTS\r\n* 2 RECENT\r\n");
    let event = client.store.expunge_elsewhere("INBOX", 1);
    assert_eq!(client.event(&event), "* 1 EXPUNGE\r\n");
    assert_eq!(client.send("DONE\r\n"), "i OK IDLE terminated\r\n");
    assert_eq!(client.send("f FETCH 1 UID\r\n"), "* 1 FETCH (UID 2)\r\nf OK FETCH completed\r\n");
}

#[test]
fn outside_idle_an_event_waits_for_the_next_command() {
    let mut client = Client::new();
    client.select_inbox();
    let event = client.store.deliver("INBOX", b"Subject: new\r\n\r\nnew\r\n", &[]);
    assert_eq!(client.event(&event), "");
    assert_eq!(client.send("n NOOP\r\n"), "* 1 EXISTS\r\n* 1 RECENT\r\nn OK NOOP completed\r\n");
}

#[test]
fn inside_idle_anything_but_done_is_bad() {
    let mut client = Client::new();
    client.select_inbox();
    client.send("i IDLE\r\n");
    assert_eq!(client.send("x NOOP\r\n"), "* BAD expected DONE\r\n");
    assert_eq!(client.send("DONE\r\n"), "i OK IDLE terminated\r\n");
}

#[test]
fn a_rename_of_the_selected_mailbox_follows_it() {
    let mut client = Client::new();
    client.store.create("Work", "");
    client.login();
    client.send("s SELECT Work\r\n");
    let event = pb::MailboxEvent {
        mailbox: "Work".into(),
        kind: pb::MailboxEventKind::Renamed.into(),
        renamed_to: "Done".into(),
        ..Default::default()
    };
    client.event(&event);
    assert_eq!(client.session.selected_mailbox(), Some("Done"));
}
