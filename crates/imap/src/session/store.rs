//! The STORE command: flags, .SILENT, and CONDSTORE's UNCHANGEDSINCE (RFC 7162 §3.1.3).

use super::*;

impl<S: Store, W: Wire> Session<S, W> {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn store(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        set: &SequenceSet,
        kind: &StoreType,
        response: &StoreResponse,
        flags: &[Flag<'_>],
        by_uid: bool,
        unchanged_since: Option<u64>,
    ) -> Status<'static> {
        let condstore = unchanged_since.is_some() || self.state.enabled().condstore;
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        if selected.read_only {
            return no(tag, Some(Code::ReadOnly), "the mailbox is read-only");
        }
        if !by_uid && render::out_of_range(set, selected.uids.len()) {
            return bad(Some(tag), "no such message");
        }
        // RFC 2180 §4.2.1, as Dovecot: a message another session expunged, not yet announced here, is
        // skipped and the STORE goes on for the rest (the EXPUNGE follows when it may be sent).
        let mut uids = render::resolve(set, &selected.uids, by_uid);
        uids.retain(|u| !selected.vanished.contains(u));
        let mode = match kind {
            StoreType::Replace => pb::StoreMode::Replace,
            StoreType::Add => pb::StoreMode::Add,
            StoreType::Remove => pb::StoreMode::Remove,
        };
        let request = pb::StoreRequest {
            account_id: account_id.get(),
            mailbox: selected.name.clone(),
            uids,
            mode: mode.into(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            unchanged_since,
        };
        let stored = match self.store.store(request).await {
            Ok(reply) => reply,
            Err(status) => return refusal(tag, &status),
        };
        if let Some(selected) = self.state.selected() {
            if stored.changed {
                // This session's own change, already answered with FETCH: its event needs no `Changes` call.
                // (An entry left alone may carry the mailbox's last MODSEQ too, but that change was
                // another session's, and may have touched entries this STORE did not.)
                selected.own_modseqs.insert(stored.highest_modseq);
            }
            // Its own MODSEQ when it changed something, else the mailbox's as the STORE found it.
            selected.saw_modseq(stored.highest_modseq);
        }
        if condstore {
            self.enable_condstore();
        }
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        let silent = matches!(response, StoreResponse::Silent);
        for entry in &stored.updated {
            let Ok(index) = selected.uids.binary_search(&entry.uid) else { continue };
            // .SILENT leaves out the FLAGS the client set itself, but with CONDSTORE the new MODSEQ still goes out.
            announce_new_keywords(selected, &entry.flags, &mut self.server);
            let mut items = Vec::new();
            if !silent {
                items.push(MessageDataItem::Flags(flags_of(&entry.flags, selected.recent.contains(entry.uid))));
            }
            if condstore && let Some(modseq) = NonZeroU64::new(entry.modseq) {
                items.push(MessageDataItem::ModSeq(modseq));
            }
            if by_uid && !items.is_empty() {
                items.push(MessageDataItem::Uid(nz(entry.uid)));
            }
            if let Ok(items) = Vec1::try_from(items) {
                self.server.enqueue_data(Data::Fetch { seq: nz(index as u32 + 1), items });
            }
        }
        // RFC 5267 UPDATE contexts hear of the session's own changes too.
        if stored.changed && selected.contexts.is_some() {
            let touched: Vec<u32> = stored.updated.iter().map(|e| e.uid).collect();
            self.contexts_changed(touched).await;
        }
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        // The session's MODSEQ moves only in `sync`: changes made elsewhere before this STORE have not been
        // reported yet, and the next sync will repeat this one's FETCH, which is harmless.
        if stored.modified.is_empty() {
            return ok(tag, None, "STORE completed");
        }
        let modified: Vec<u32> = if by_uid {
            stored.modified
        } else {
            stored.modified.iter().filter_map(|u| selected.uids.binary_search(u).ok()).map(|i| i as u32 + 1).collect()
        };
        match SequenceSet::try_from(render::uid_set_text(&modified).as_str()) {
            Ok(set) => ok(tag, Some(Code::Modified(set)), "conditional STORE failed for some messages"),
            Err(_) => ok(tag, None, "STORE completed"),
        }
    }
}
