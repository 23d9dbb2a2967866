//! RFC 5465 NOTIFY: which mailbox events a client hears of, and how, while no command is in progress.
//! The command's syntax is `crate::notify`'s; this is what the session does with it: NOTIFY SET keeps a
//! [`Watch`] with the login (boxed, so a session that never asks carries one pointer), and each mailbox
//! event that reaches the session ([`Session::mailbox_event`]) is matched against it:
//! - the selected mailbox (`selected`, `selected-delayed`): EXISTS, EXPUNGE (not with
//!   `selected-delayed`) and FETCH FLAGS at once, and MessageNew's FETCH items for new messages;
//! - another mailbox: `* STATUS` for MessageNew/MessageExpunge (and FlagChange), `* LIST` for
//!   MailboxName (created, deleted as `\NonExistent`, renamed with OLDNAME) and for SubscriptionChange
//!   (with `\Subscribed` or without).

use super::*;
use crate::notify::{self as syntax, Command as NotifyCommand, Events, Filter, Refusal};

/// An active NOTIFY SET, with the filters' names in the store's form.
pub(super) struct Watch {
    groups: Vec<(Scope, Events)>,
}

enum Scope {
    Selected { delayed: bool },
    Inboxes,
    Personal,
    Subscribed,
    Subtree(Vec<String>),
    Mailboxes(Vec<String>),
}

impl Scope {
    /// Whether a mailbox other than the selected one is in this scope.
    fn holds(&self, name: &str, subscribed: &[String]) -> bool {
        let same = |watched: &String| {
            watched == name || (watched.eq_ignore_ascii_case("INBOX") && name.eq_ignore_ascii_case("INBOX"))
        };
        match self {
            Scope::Selected { .. } => false,
            Scope::Inboxes => name.eq_ignore_ascii_case("INBOX"),
            Scope::Personal => true,
            Scope::Subscribed => subscribed.iter().any(same),
            Scope::Mailboxes(names) => names.iter().any(same),
            Scope::Subtree(names) => names.iter().any(|root| {
                let root = inbox_spelt(root);
                same(&root) || name.strip_prefix(root.as_str()).is_some_and(|rest| rest.starts_with(DELIMITER))
            }),
        }
    }
}

/// A name with its first level spelt "INBOX" when it is INBOX in any case, as the store spells it.
fn inbox_spelt(name: &str) -> String {
    match name.get(..5) {
        Some(first) if first.eq_ignore_ascii_case("INBOX") && (name.len() == 5 || name[5..].starts_with(DELIMITER)) => {
            format!("INBOX{}", &name[5..])
        }
        _ => name.to_owned(),
    }
}

impl Watch {
    /// The events asked for the selected mailbox, and whether expunges wait (`selected-delayed`).
    fn selected(&self) -> Option<(&Events, bool)> {
        self.groups.iter().find_map(|(scope, events)| match scope {
            Scope::Selected { delayed } => Some((events, *delayed)),
            _ => None,
        })
    }

    /// The events asked for another mailbox: the first group whose filter holds it (RFC 5465 §6).
    fn other(&self, name: &str, subscribed: &[String]) -> Option<&Events> {
        self.groups.iter().find(|(scope, _)| scope.holds(name, subscribed)).map(|(_, events)| events)
    }

    fn needs_subscriptions(&self) -> bool {
        self.groups.iter().any(|(scope, _)| matches!(scope, Scope::Subscribed))
    }
}

impl<S: Store, W: Wire> Session<S, W> {
    /// NOTIFY, as `crate::notify` read it from the line imap-codec rejected.
    pub(super) async fn notify(&mut self, tag: Tag<'static>, command: Result<NotifyCommand, Refusal>) {
        let Some(account_id) = self.state.login().map(|l| l.account_id) else {
            self.server.enqueue_status(bad(Some(tag), "log in first"));
            return;
        };
        let status = match command {
            Err(Refusal::Syntax(why)) => bad(Some(tag), why),
            Err(Refusal::BadEvent) => {
                no(tag, Some(other_code(&format!("BADEVENT ({})", syntax::SUPPORTED))), "event not supported")
            }
            Ok(NotifyCommand::None) => {
                if let Some(login) = self.state.login_mut() {
                    login.notify = None;
                }
                ok(tag, None, "NOTIFY completed")
            }
            Ok(NotifyCommand::Set { status, groups }) => match self.watch(groups) {
                None => no(tag, None, "a mailbox name is not modified UTF-7"),
                Some(watch) => {
                    let watch = Box::new(watch);
                    if status {
                        self.status_of_watched(account_id, &watch).await;
                    }
                    if let Some(login) = self.state.login_mut() {
                        login.notify = Some(watch);
                    }
                    ok(tag, None, "NOTIFY completed")
                }
            },
        };
        self.server.enqueue_status(status);
    }

    fn watch(&self, groups: Vec<syntax::Group>) -> Option<Watch> {
        let names = |list: &[Mailbox<'static>]| list.iter().map(|m| self.name_of(m)).collect::<Option<Vec<_>>>();
        let mut watched = Vec::with_capacity(groups.len());
        for group in groups {
            let scope = match &group.filter {
                Filter::Selected => Scope::Selected { delayed: false },
                Filter::SelectedDelayed => Scope::Selected { delayed: true },
                Filter::Inboxes => Scope::Inboxes,
                Filter::Personal => Scope::Personal,
                Filter::Subscribed => Scope::Subscribed,
                Filter::Subtree(list) => Scope::Subtree(names(list)?),
                Filter::Mailboxes(list) => Scope::Mailboxes(names(list)?),
            };
            watched.push((scope, group.events));
        }
        Some(Watch { groups: watched })
    }

    /// NOTIFY SET STATUS (RFC 5465 §3.1): the STATUS of every mailbox watched for MessageNew, other than
    /// the selected one, before the OK.
    async fn status_of_watched(&mut self, account_id: AccountId, watch: &Watch) {
        let request =
            pb::ListMailboxesRequest { account_id: account_id.get(), patterns: vec!["*".into()], ..Default::default() };
        let Ok(list) = self.store.list_mailboxes(request).await else { return };
        let subscribed: Vec<String> = list.mailboxes.iter().filter(|m| m.subscribed).map(|m| m.name.clone()).collect();
        let selected = self.selected_mailbox().map(str::to_owned);
        for mailbox in list.mailboxes.iter().filter(|m| m.exists) {
            if selected.as_deref() == Some(mailbox.name.as_str()) {
                continue;
            }
            if watch.other(&mailbox.name, &subscribed).is_some_and(|e| e.messages) {
                self.status_line(account_id, &mailbox.name).await;
            }
        }
    }

    /// `* STATUS` for a mailbox other than the selected one: what a client showing a count needs.
    async fn status_line(&mut self, account_id: AccountId, name: &str) {
        let request = pb::StatusRequest { account_id: account_id.get(), mailbox: name.to_owned() };
        let Ok(status) = self.store.status(request).await else { return };
        let mut items = vec![
            StatusDataItem::Messages(status.messages),
            StatusDataItem::UidNext(nz(status.uidnext)),
            StatusDataItem::UidValidity(nz(status.uidvalidity)),
            StatusDataItem::Unseen(status.unseen),
        ];
        if self.state.enabled().condstore {
            items.push(StatusDataItem::HighestModSeq(status.highest_modseq));
        }
        self.server.enqueue_data(Data::Status { mailbox: wire_mailbox_in(name, self.utf8()), items: items.into() });
    }

    /// `* LIST` for MailboxName and SubscriptionChange; `old` is a renamed mailbox's former name.
    async fn list_line(&mut self, name: &str, attributes: &[&str], old: Option<&str>) {
        let items = attributes.iter().map(|a| FlagNameAttribute::from(atom(a))).collect();
        let delimiter = Some(QuotedChar::try_from(DELIMITER).expect("a valid delimiter"));
        let data = Data::List { items, delimiter, mailbox: wire_mailbox_in(name, self.utf8()) };
        let Some(old) = old else {
            self.server.enqueue_data(data);
            return;
        };
        // RFC 5465 §5.4 (RFC 5258's OLDNAME): imap-types has no extended data, so it is spliced in.
        let line = ResponseCodec::default().encode(&Response::Data(data)).dump();
        let line = String::from_utf8_lossy(&line);
        let old = ResponseCodec::default()
            .encode(&Response::Data(Data::List {
                items: Vec::new(),
                delimiter: None,
                mailbox: wire_mailbox_in(old, self.utf8()),
            }))
            .dump();
        let old = String::from_utf8_lossy(&old);
        let old = old.trim_end().trim_start_matches("* LIST () NIL ");
        let line = format!("{} (\"OLDNAME\" ({old}))\r\n", line.trim_end());
        self.raw_untagged(line).await;
    }

    /// What NOTIFY asks to be told of `event`, queued; `Flow::Close` when the selected mailbox went away.
    pub(super) async fn notify_event(&mut self, event: &pb::MailboxEvent) -> Flow {
        let Some(login) = self.state.login() else { return Flow::Continue };
        let Some(watch) = login.notify.as_deref() else { return Flow::Continue };
        let account_id = login.account_id;
        let needs_subscriptions = watch.needs_subscriptions();
        let kind = event.kind();
        let selected = self.selected_mailbox() == Some(event.mailbox.as_str());
        type Kind = pb::MailboxEventKind;
        if selected && matches!(kind, Kind::Appended | Kind::Expunged | Kind::FlagsChanged) {
            return self.notify_selected(account_id, kind).await;
        }
        let subscribed = if needs_subscriptions { self.subscriptions(account_id).await } else { Vec::new() };
        let Some(watch) = self.state.login().and_then(|l| l.notify.as_deref()) else { return Flow::Continue };
        let mut events = watch.other(&event.mailbox, &subscribed).cloned().unwrap_or_default();
        if kind == Kind::Renamed
            && let Some(new) = watch.other(&event.renamed_to, &subscribed)
        {
            events.mailbox_name |= new.mailbox_name;
        }
        match kind {
            Kind::Appended | Kind::Expunged if events.messages => self.status_line(account_id, &event.mailbox).await,
            Kind::FlagsChanged if events.flag_change => self.status_line(account_id, &event.mailbox).await,
            Kind::Created if events.mailbox_name => self.list_line(&event.mailbox, &[], None).await,
            Kind::Deleted if events.mailbox_name => self.list_line(&event.mailbox, &["NonExistent"], None).await,
            Kind::Renamed if events.mailbox_name => {
                self.list_line(&event.renamed_to, &[], Some(&event.mailbox)).await;
            }
            Kind::Subscribed if events.subscription_change => {
                self.list_line(&event.mailbox, &["Subscribed"], None).await;
            }
            Kind::Unsubscribed if events.subscription_change => self.list_line(&event.mailbox, &[], None).await,
            _ => {}
        }
        Flow::Continue
    }

    /// A change to the selected mailbox, with `selected` or `selected-delayed` watched: the updates at
    /// once, and MessageNew's FETCH items for what arrived.
    async fn notify_selected(&mut self, account_id: AccountId, kind: pb::MailboxEventKind) -> Flow {
        let Some(watch) = self.state.login().and_then(|l| l.notify.as_deref()) else { return Flow::Continue };
        let Some((events, delayed)) = watch.selected() else { return Flow::Continue };
        if !events.messages || (kind == pb::MailboxEventKind::FlagsChanged && !events.flag_change) {
            return Flow::Continue;
        }
        let fetch = events.fetch.clone();
        let known = self.state.selected().and_then(|s| s.uids.last().copied()).unwrap_or(0);
        let mode = if delayed { Sync::NoExpunge } else { Sync::Full };
        if let Flow::Close = self.sync(mode, false).await {
            return Flow::Close;
        }
        let Some(items) = fetch else { return Flow::Continue };
        let Some(selected) = self.state.selected() else { return Flow::Continue };
        let new: Vec<u32> = selected.uids.iter().copied().filter(|&uid| uid > known).collect();
        if new.is_empty() {
            return Flow::Continue;
        }
        let Ok(set) = SequenceSet::try_from(render::uid_set_text(&new).as_str()) else { return Flow::Continue };
        let tag = Tag::try_from("notify").expect("a valid tag");
        // The FETCH lines are what is wanted; the status of this inner FETCH is nobody's answer.
        let _ = self.fetch(tag, account_id, &set, &items, true, None).await;
        Flow::Continue
    }

    async fn subscriptions(&mut self, account_id: AccountId) -> Vec<String> {
        let request = pb::ListMailboxesRequest {
            account_id: account_id.get(),
            patterns: vec!["*".into()],
            subscribed_only: true,
            ..Default::default()
        };
        match self.store.list_mailboxes(request).await {
            Ok(list) => list.mailboxes.into_iter().map(|m| m.name).collect(),
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subtree_of_inbox_in_any_case_holds_its_children() {
        let subtree = Scope::Subtree(vec!["inbox".into(), "Work".into()]);
        for name in ["INBOX", "INBOX/Lists", "INBOX/Lists/rust", "Work", "Work/a"] {
            assert!(subtree.holds(name, &[]), "{name}");
        }
        for name in ["INBOXES", "Workshop", "work/a", "Other"] {
            assert!(!subtree.holds(name, &[]), "{name}");
        }
        assert_eq!(inbox_spelt("Inbox/Ä"), "INBOX/Ä");
        assert_eq!(inbox_spelt("Inboxes"), "Inboxes");
        assert_eq!(inbox_spelt("Ä"), "Ä");
    }
}
