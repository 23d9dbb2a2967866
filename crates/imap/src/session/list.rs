//! LIST and LSUB, with LIST-EXTENDED's selection and return options (RFC 5258) and LIST-STATUS (RFC 5819).

use super::*;

impl<S: Store, W: Wire> Session<S, W> {
    pub(super) async fn list(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        reference: &Mailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
    ) -> Status<'static> {
        let pattern = match pattern {
            ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
            ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).into_owned(),
        };
        let reference = match reference {
            Mailbox::Inbox => "INBOX".to_owned(),
            Mailbox::Other(other) => String::from_utf8_lossy(other.inner().as_ref()).into_owned(),
        };
        let delimiter = Some(QuotedChar::try_from(DELIMITER).expect("a valid delimiter"));
        // RFC 5258 selection options and RFC 5258/5819 return options, and a pattern list, when the command
        // had them.
        let (selection, returns, status_items, pattern_list) = match self.extended.take() {
            Some(render::Extended::List { selection, returns, status, patterns }) => {
                (selection, returns, status, patterns)
            }
            _ => Default::default(),
        };
        if pattern.is_empty() && pattern_list.is_empty() {
            // RFC 9051 §6.3.9: LIST "" "" asks for the delimiter and the root.
            let root = Mailbox::try_from(String::new()).unwrap_or(Mailbox::Inbox);
            let items = vec![FlagNameAttribute::Noselect];
            self.server.enqueue_data(if lsub {
                Data::Lsub { items, delimiter, mailbox: root }
            } else {
                Data::List { items, delimiter, mailbox: root }
            });
            return ok(tag, None, "LIST completed");
        }
        let decode = |text: &str| if self.utf8() { Some(text.to_owned()) } else { render::from_utf7(text) };
        let Some(reference) = decode(&reference) else { return ok(tag, None, "LIST completed") };
        // RFC 5258 §3: each pattern of a list matches on its own; one that is not valid matches nothing.
        let patterns: Vec<String> = if pattern_list.is_empty() { vec![pattern] } else { pattern_list };
        let patterns: Vec<String> = patterns.iter().filter_map(|p| decode(p)).collect();
        if patterns.is_empty() {
            return ok(tag, None, "LIST completed");
        }
        let extended = !selection.is_empty() || !returns.is_empty();
        let has = |list: &[String], word: &str| list.iter().any(|w| w == word);
        let subscribed_only = lsub || has(&selection, "SUBSCRIBED");
        let mark_subscribed = has(&selection, "SUBSCRIBED") || has(&returns, "SUBSCRIBED");
        let request = pb::ListMailboxesRequest {
            account_id: account_id.get(),
            reference,
            patterns,
            subscribed_only,
            special_use_only: has(&selection, "SPECIAL-USE"),
            with_status: !status_items.is_empty(),
            lsub_parents: lsub,
            // RFC 5258 §3.5: parents of subscribed names, with CHILDINFO ("SUBSCRIBED").
            recursive_match: has(&selection, "RECURSIVEMATCH") && has(&selection, "SUBSCRIBED"),
        };
        let listed = match self.store.list_mailboxes(request).await {
            Ok(reply) => reply.mailboxes,
            Err(status) => return refusal(tag, &status),
        };
        for mailbox in listed {
            let attribute = |name: &str| FlagNameAttribute::from(atom(name));
            let mut items = Vec::new();
            if !mailbox.exists {
                // RFC 5258 §3: \NonExistent (which implies \Noselect) for a subscribed name with no mailbox.
                items.push(if extended { attribute("NonExistent") } else { FlagNameAttribute::Noselect });
            } else if lsub && !mailbox.subscribed {
                // RFC 3501 §6.3.9: an unsubscribed parent that `%` stopped at, listed for its children.
                items.push(FlagNameAttribute::Noselect);
            }
            if mark_subscribed && mailbox.subscribed {
                items.push(attribute("Subscribed"));
            }
            items.push(attribute(if mailbox.has_children { "HasChildren" } else { "HasNoChildren" }));
            if let Some(special) = mailbox.special_use.strip_prefix('\\') {
                items.push(attribute(special));
            }
            let name = wire_mailbox_in(&mailbox.name, self.utf8());
            let data = if lsub {
                Data::Lsub { items, delimiter, mailbox: name.clone() }
            } else {
                Data::List { items, delimiter, mailbox: name.clone() }
            };
            if mailbox.child_subscribed {
                let line = ResponseCodec::default().encode(&Response::Data(data)).dump();
                let line = list_extended::with_child_info(line);
                self.raw_untagged(String::from_utf8_lossy(&line).into_owned()).await;
            } else {
                self.server.enqueue_data(data);
            }
            // RFC 5819: the STATUS of each selectable mailbox, right after its LIST.
            if let Some(status) = mailbox.status.filter(|_| mailbox.exists) {
                let items: Vec<StatusDataItem> =
                    status_items.iter().filter_map(|item| mailbox::status_item(item, &status)).collect();
                self.server.enqueue_data(Data::Status { mailbox: name, items: items.into() });
            }
        }
        ok(tag, None, if lsub { "LSUB completed" } else { "LIST completed" })
    }
}
