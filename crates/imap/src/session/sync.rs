//! IDLE and the untagged updates: a mailbox event marks the view out of date, and `sync` asks the store
//! what changed and tells the client with EXISTS, FETCH FLAGS and EXPUNGE when RFC 9051 §7.4.1 allows
//! (at once during IDLE).

use super::*;

impl<S: Store, W: Wire> Session<S, W> {
    /// A change to one of the account's mailboxes (what the mailbox role publishes): the selected mailbox
    /// is out of date unless the change was this session's own; during IDLE, the client hears at once.
    /// A RENAME of the selected mailbox (or a parent) renames the view.
    pub async fn mailbox_event(&mut self, event: &pb::MailboxEvent) -> Step {
        let kind = event.kind();
        if let Some(selected) = self.state.selected() {
            let own = matches!(kind, pb::MailboxEventKind::FlagsChanged | pb::MailboxEventKind::Expunged)
                && selected.own_modseqs.contains(&event.modseq);
            let subscription = matches!(kind, pb::MailboxEventKind::Subscribed | pb::MailboxEventKind::Unsubscribed);
            if kind == pb::MailboxEventKind::Renamed {
                selected.follow_rename(&event.mailbox, &event.renamed_to);
            } else if event.mailbox == selected.name && !own && !subscription {
                selected.dirty = true;
            }
        }
        // RFC 5465 §5: with NOTIFY set, what it asks for goes out now, no command being in progress.
        let notifying = self.state.login().is_some_and(|l| l.notify.is_some());
        if notifying && let Flow::Close = Box::pin(self.notify_event(event)).await {
            let _ = self.wire.flush().await;
            return Step::Close;
        }
        if !matches!(self.mode, Mode::Idling(_)) {
            return if notifying { self.advance().await } else { Step::NeedInput };
        }
        match Box::pin(self.sync(Sync::Full, false)).await {
            Flow::Close => {
                let _ = self.wire.flush().await;
                Step::Close
            }
            _ => self.advance().await,
        }
    }

    /// Brings the selected mailbox up to date with the store and tells the client: EXPUNGE (when `mode`
    /// allows), EXISTS for new messages, FETCH FLAGS for changed ones. `force` looks even without an event.
    pub(super) async fn sync(&mut self, mode: Sync, force: bool) -> Flow {
        let Some(account_id) = self.state.login().map(|l| l.account_id) else { return Flow::Continue };
        let condstore = self.state.enabled().condstore;
        let rev2 = self.rev2();
        let Some(selected) = self.state.selected() else { return Flow::Continue };
        if selected.dirty || force {
            let request = pb::ChangesRequest {
                account_id: account_id.get(),
                mailbox: selected.name.clone(),
                since_modseq: selected.highest_modseq,
                claim_recent: !selected.read_only && !rev2,
            };
            let changes = match self.store.changes(request).await {
                Ok(changes) => changes,
                Err(StoreError::NonExistent(_)) => {
                    self.server.enqueue_status(Status::bye(None, "the selected mailbox was deleted").expect("ASCII"));
                    self.drain().await;
                    return Flow::Close;
                }
                Err(status) => {
                    tracing::warn!(%status, "cannot read mailbox changes");
                    return Flow::Continue;
                }
            };
            let Some(selected) = self.state.selected() else { return Flow::Continue };
            if changes.uidvalidity != selected.uidvalidity {
                self.server.enqueue_status(Status::bye(None, "the selected mailbox was replaced").expect("ASCII"));
                self.drain().await;
                return Flow::Close;
            }
            selected.dirty = false;
            selected.own_modseqs.clear();
            selected.highest_modseq = selected.highest_modseq.max(changes.highest_modseq);
            let known = selected.uids.last().copied().unwrap_or(0);
            for uid in changes.vanished {
                if selected.uids.binary_search(&uid).is_ok() {
                    selected.vanished.insert(uid);
                }
            }
            let mut data = Vec::new();
            let mut flags_changed = Vec::new();
            let mut arrived = false;
            // For RFC 5267 UPDATE contexts: what arrived or changed, looked at again after EXISTS.
            let mut touched = Vec::new();
            for entry in changes.changed {
                if selected.contexts.is_some() {
                    touched.push(entry.uid);
                }
                if entry.uid > known {
                    selected.uids.push(entry.uid);
                    if !rev2 {
                        selected.recent.arrived(entry.uid, changes.recent_from);
                    }
                    arrived = true;
                } else if let Ok(index) = selected.uids.binary_search(&entry.uid) {
                    flags_changed.push((index, entry));
                }
            }
            if arrived {
                selected.uids.sort_unstable();
                selected.uids.dedup();
            }
            for (index, entry) in flags_changed {
                announce_new_keywords(selected, &entry.flags, &mut self.server);
                let recent = selected.recent.contains(entry.uid);
                let mut items =
                    vec![MessageDataItem::Flags(flags_of(&entry.flags, recent)), MessageDataItem::Uid(nz(entry.uid))];
                if condstore && let Some(modseq) = NonZeroU64::new(entry.modseq) {
                    items.push(MessageDataItem::ModSeq(modseq));
                }
                data.push(Data::Fetch { seq: nz(index as u32 + 1), items: Vec1::try_from(items).expect("not empty") });
            }
            for item in data {
                self.server.enqueue_data(item);
            }
            if arrived && let Some(selected) = self.state.selected() {
                // Messages expunged but not yet announced still count: their numbers are still in use.
                self.server.enqueue_data(Data::Exists(selected.uids.len() as u32));
                if !rev2 {
                    // RFC 3501 §7.3.2: the number of recent messages, with the new EXISTS.
                    self.server.enqueue_data(Data::Recent(selected.recent.count()));
                }
            }
            if !touched.is_empty() {
                touched.sort_unstable();
                touched.dedup();
                self.contexts_changed(touched).await;
            }
        }
        let qresync = self.state.enabled().qresync;
        if mode == Sync::Full
            && let Some(selected) = self.state.selected()
            && !selected.vanished.is_empty()
        {
            if selected.contexts.is_some() {
                // REMOVEFROM before the EXPUNGEs, while the messages' numbers still hold.
                let gone = selected.vanished.clone();
                self.contexts_expunged(&gone).await;
            }
            let Some(selected) = self.state.selected() else { return Flow::Continue };
            let gone = std::mem::take(&mut selected.vanished);
            // Each EXPUNGE numbers the message as it is after the ones before it (RFC 9051 §7.5.1); one
            // pass over the map rather than a removal per UID.
            let mut expunges = Vec::new();
            let mut vanished = Vec::new();
            let mut kept = Vec::with_capacity(selected.uids.len().saturating_sub(gone.len()));
            for &uid in &selected.uids {
                if gone.contains(&uid) {
                    expunges.push(Data::Expunge(nz(kept.len() as u32 + 1)));
                    vanished.push(uid);
                    selected.recent.expunged(uid);
                } else {
                    kept.push(uid);
                }
            }
            selected.uids = kept;
            if qresync {
                // RFC 7162 §3.2.10: with QRESYNC, one VANISHED instead of an EXPUNGE per message.
                if let Ok(known_uids) = SequenceSet::try_from(render::uid_set_text(&vanished).as_str()) {
                    self.server.enqueue_data(Data::Vanished { earlier: false, known_uids });
                }
            } else {
                for expunge in expunges {
                    self.server.enqueue_data(expunge);
                }
            }
        }
        Flow::Continue
    }
}
