//! RFC 5267 §4 UPDATE contexts: a SEARCH or SORT with `RETURN (UPDATE)` stays live while its mailbox is
//! selected, and the client hears `* ESEARCH (TAG "t") UID ADDTO (pos uids)` and `REMOVEFROM` as
//! messages arrive, change flags or are expunged, until CANCELUPDATE (or UNSELECT, CLOSE, another
//! SELECT). ADDTO follows the EXISTS that announces a new message; REMOVEFROM for an expunged message
//! goes out just before its EXPUNGE, so only where RFC 9051 §7.4.1 allows EXPUNGE.
//!
//! A SEARCH context looks again only at the messages that arrived or changed (one store search over
//! those UIDs); its position is always 0 (RFC 5267 §4.3.2: the result has no order). A SORT context
//! needs every result's keys for a position, which it does not keep: it sorts again (one store search),
//! and diffs the old order with the new. The contexts live in `Selected`, behind an `Option<Box<..>>`
//! that a session which never asks for UPDATE never allocates; at most [`MAX_CONTEXTS`] at once, beyond
//! which the search is answered and the client told `* NO [NOUPDATE "tag"]`.

use std::collections::HashSet;

use super::*;

/// Live UPDATE contexts a session may have at once (each costs a store search per change).
pub(super) const MAX_CONTEXTS: usize = 8;

/// A session's live UPDATE contexts, in the order they were made.
#[derive(Default)]
pub(super) struct Contexts(Vec<UpdateContext>);

impl std::ops::Deref for Contexts {
    type Target = Vec<UpdateContext>;
    fn deref(&self) -> &Vec<UpdateContext> {
        &self.0
    }
}

impl std::ops::DerefMut for Contexts {
    fn deref_mut(&mut self) -> &mut Vec<UpdateContext> {
        &mut self.0
    }
}

/// One live UPDATE context.
pub(super) struct UpdateContext {
    /// The tag of the command that made it, which names it (RFC 5267 §4.3).
    tag: String,
    by_uid: bool,
    /// Its search keys as the store's, message numbers resolved when it was made.
    keys: Vec<pb::SearchKey>,
    /// SORT's criteria; None for SEARCH.
    sort: Option<Vec<SortCriterion>>,
    /// The result's UIDs: ascending for SEARCH, in sort order for SORT.
    results: Vec<u32>,
}

impl<S: Store, W: Wire> Session<S, W> {
    /// Keeps `tag`'s search live after its answer: `results` (UIDs, in result order) as it stands.
    pub(super) fn start_update(
        &mut self,
        tag: &Tag<'static>,
        by_uid: bool,
        keys: Vec<pb::SearchKey>,
        sort: Option<Vec<SortCriterion>>,
        results: Vec<u32>,
        options: &context::ReturnOptions,
    ) {
        let Some(selected) = self.state.selected() else { return };
        let contexts = selected.contexts.get_or_insert_with(Default::default);
        let refuse = |why: &str| {
            let code = other_code(&format!("NOUPDATE \"{}\"", tag.inner()));
            Status::no(None, Some(code), why.to_owned()).ok()
        };
        // RFC 5267 §4.2: a server that cannot keep the context says NOUPDATE; the search itself stands.
        let refusal = if contexts.len() >= MAX_CONTEXTS {
            refuse(&format!("at most {MAX_CONTEXTS} update contexts at once"))
        } else if options.partial.is_some() {
            refuse("no updates for a PARTIAL result")
        } else if contexts.iter().any(|c| c.tag == tag.inner()) {
            refuse("an update context already has this tag")
        } else {
            None
        };
        match refusal {
            Some(status) => {
                self.server.enqueue_status(status);
            }
            None => contexts.push(UpdateContext { tag: tag.inner().to_owned(), by_uid, keys, sort, results }),
        }
    }

    /// RFC 5267 §4.3.5 CANCELUPDATE "tag" ...: those contexts end. An unknown tag is BAD.
    pub(super) fn cancel_update(&mut self, tag: Tag<'static>, tags: &[String]) -> Status<'static> {
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        let contexts = selected.contexts.get_or_insert_with(Default::default);
        if let Some(unknown) = tags.iter().find(|t| !contexts.iter().any(|c| &c.tag == *t)) {
            return bad(Some(tag), &format!("no update context {unknown:?}"));
        }
        contexts.retain(|c| !tags.contains(&c.tag));
        if contexts.is_empty() {
            selected.contexts = None;
        }
        ok(tag, None, "CANCELUPDATE completed")
    }

    /// Messages arrived or changed (`uids`, announced already): each context looks at them again and
    /// the client hears what joined or left its result.
    pub(super) async fn contexts_changed(&mut self, uids: Vec<u32>) {
        let Some(account_id) = self.state.login().map(|l| l.account_id) else { return };
        let Some(selected) = self.state.selected() else { return };
        let Some(contexts) = selected.contexts.take() else { return };
        if uids.is_empty() {
            selected.contexts = Some(contexts);
            return;
        }
        let mailbox = selected.name.clone();
        let mut contexts = contexts;
        let mut lines = Vec::new();
        for context in contexts.iter_mut() {
            let line = match &context.sort {
                None => self.research(account_id, &mailbox, context, &uids).await,
                Some(_) => self.resort(account_id, &mailbox, context).await,
            };
            lines.extend(line);
        }
        if let Some(selected) = self.state.selected() {
            selected.contexts = Some(contexts);
        }
        for line in lines {
            self.raw_untagged(line).await;
        }
    }

    /// A SEARCH context against the changed `uids` only.
    async fn research(
        &mut self,
        account_id: AccountId,
        mailbox: &str,
        context: &mut UpdateContext,
        uids: &[u32],
    ) -> Option<String> {
        let mut keys = context.keys.clone();
        keys.push(pb::SearchKey { key: Some(pb::search_key::Key::Uids(pb::UidList { uids: uids.to_vec() })) });
        let found = match self.search_rpc(account_id, mailbox.to_owned(), keys, false).await {
            Ok(found) => found,
            Err(status) => {
                tracing::warn!(%status, "cannot update a search context");
                return None;
            }
        };
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for &uid in uids {
            let matches = found.uids.binary_search(&uid).is_ok();
            match (context.results.binary_search(&uid).is_ok(), matches) {
                (false, true) => added.push(uid),
                (true, false) => removed.push(uid),
                _ => {}
            }
        }
        // One pass over the results for all of them, not a shift per UID: a STORE 1:* on a large
        // mailbox changes every UID at once.
        if !removed.is_empty() {
            let removed: HashSet<u32> = removed.iter().copied().collect();
            context.results.retain(|uid| !removed.contains(uid));
        }
        if !added.is_empty() {
            context.results.extend_from_slice(&added);
            context.results.sort_unstable();
        }
        let mut items = String::new();
        if !removed.is_empty() {
            let numbers = self.context_numbers(context.by_uid, &removed);
            items.push_str(&format!(" REMOVEFROM (0 {})", render::uid_set_text(&numbers)));
        }
        if !added.is_empty() {
            let numbers = self.context_numbers(context.by_uid, &added);
            items.push_str(&format!(" ADDTO (0 {})", render::uid_set_text(&numbers)));
        }
        (!items.is_empty()).then(|| esearch_update(&context.tag, context.by_uid, &items))
    }

    /// A SORT context sorted again: the messages that left it (positions in the old order, each as the
    /// ones before it left), then the ones that joined (positions in the new order, RFC 5267 §4.3.2).
    async fn resort(&mut self, account_id: AccountId, mailbox: &str, context: &mut UpdateContext) -> Option<String> {
        let found = match self.search_for(account_id, mailbox.to_owned(), context.keys.clone(), false, true).await {
            Ok(found) => found,
            Err(status) => {
                tracing::warn!(%status, "cannot update a sort context");
                return None;
            }
        };
        let selected = self.state.selected()?;
        let messages: Vec<sort::Message> = found
            .uids
            .iter()
            .zip(found.sorting)
            .filter(|(uid, _)| selected.uids.binary_search(uid).is_ok())
            .map(|(&uid, keys)| sort::Message { number: uid, keys })
            .collect();
        let mut new = sort::sort(messages, context.sort.as_deref().unwrap_or_default());
        // Membership by hashing, not by scanning: every change re-sorts the whole result.
        let mut in_new: HashSet<u32> = new.iter().copied().collect();
        // A message expunged but not yet announced keeps its place: its REMOVEFROM goes with its
        // EXPUNGE (`contexts_expunged`).
        for (at, uid) in context.results.iter().enumerate() {
            if selected.vanished.contains(uid) && in_new.insert(*uid) {
                new.insert(at.min(new.len()), *uid);
            }
        }
        let mut items = String::new();
        // Each that left is numbered as the ones before it left: its place among those that stay.
        let mut stayed = Vec::with_capacity(context.results.len());
        for uid in std::mem::take(&mut context.results) {
            if in_new.contains(&uid) {
                stayed.push(uid);
            } else {
                let number = self.context_numbers(context.by_uid, &[uid]);
                let position = stayed.len() + 1;
                items.push_str(&format!(" REMOVEFROM ({position} {})", number.first().copied().unwrap_or(uid)));
            }
        }
        let old: HashSet<u32> = stayed.into_iter().collect();
        for (position, uid) in new.iter().enumerate() {
            if !old.contains(uid) {
                let number = self.context_numbers(context.by_uid, &[*uid]);
                items.push_str(&format!(" ADDTO ({} {})", position + 1, number.first().copied().unwrap_or(*uid)));
            }
        }
        context.results = new;
        (!items.is_empty()).then(|| esearch_update(&context.tag, context.by_uid, &items))
    }

    /// Messages about to be announced as expunged (`gone`): REMOVEFROM for the contexts that had them,
    /// written before the EXPUNGEs while their numbers still hold.
    pub(super) async fn contexts_expunged(&mut self, gone: &std::collections::BTreeSet<u32>) {
        let Some(selected) = self.state.selected() else { return };
        let Some(mut contexts) = selected.contexts.take() else { return };
        let mut lines = Vec::new();
        for context in contexts.iter_mut() {
            let mut items = String::new();
            if context.sort.is_some() {
                let mut stayed = Vec::with_capacity(context.results.len());
                for uid in std::mem::take(&mut context.results) {
                    if gone.contains(&uid) {
                        let number = self.context_numbers(context.by_uid, &[uid]);
                        let position = stayed.len() + 1;
                        items.push_str(&format!(" REMOVEFROM ({position} {})", number.first().copied().unwrap_or(uid)));
                    } else {
                        stayed.push(uid);
                    }
                }
                context.results = stayed;
            } else {
                let removed: Vec<u32> = context.results.iter().copied().filter(|u| gone.contains(u)).collect();
                context.results.retain(|u| !gone.contains(u));
                if !removed.is_empty() {
                    let numbers = self.context_numbers(context.by_uid, &removed);
                    items.push_str(&format!(" REMOVEFROM (0 {})", render::uid_set_text(&numbers)));
                }
            }
            if !items.is_empty() {
                lines.push(esearch_update(&context.tag, context.by_uid, &items));
            }
        }
        if let Some(selected) = self.state.selected() {
            selected.contexts = Some(contexts);
        }
        for line in lines {
            self.raw_untagged(line).await;
        }
    }

    /// `uids` as the context names them: UIDs, or message numbers in the view as it stands.
    fn context_numbers(&mut self, by_uid: bool, uids: &[u32]) -> Vec<u32> {
        if by_uid {
            return uids.to_vec();
        }
        let Some(selected) = self.state.selected() else { return Vec::new() };
        uids.iter().filter_map(|u| selected.uids.binary_search(u).ok()).map(|i| i as u32 + 1).collect()
    }
}

/// `* ESEARCH (TAG "t") UID ADDTO (0 5)` (a tag has no quote or backslash: they are atom-specials).
fn esearch_update(tag: &str, by_uid: bool, items: &str) -> String {
    let uid = if by_uid { " UID" } else { "" };
    format!("* ESEARCH (TAG \"{tag}\"){uid}{items}\r\n")
}
