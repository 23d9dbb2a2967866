//! SEARCH (with ESEARCH, RFC 4731, SEARCHRES, RFC 5182, and RFC 5267's PARTIAL and UPDATE), SORT (with
//! ESORT's RETURN options, RFC 5267) and THREAD (RFC 5256).

use super::*;

impl<S: Store, W: Wire> Session<S, W> {
    pub(super) async fn search(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        charset: Option<&Charset<'_>>,
        criteria: &[SearchKey<'_>],
        by_uid: bool,
    ) -> Status<'static> {
        let rev2 = self.rev2();
        if let Some(charset) = charset
            && !searchable_charset(charset)
        {
            return bad_charset(tag);
        }
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        if too_many_sets(criteria, selected.uids.len()) {
            return too_many_sets_refusal(tag);
        }
        let recent = selected.recent.uids();
        let keys: Vec<pb::SearchKey> =
            criteria.iter().map(|k| render::search_key(k, &selected.uids, &recent)).collect();
        let wants_modseq = criteria.iter().any(has_modseq);
        if wants_modseq {
            self.enable_condstore();
        }
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        let mailbox = selected.name.clone();
        // RFC 5267 UPDATE keeps the keys for looking again.
        let update_keys = self.wants_update().then(|| keys.clone());
        let found = match self.search_rpc(account_id, mailbox, keys, false).await {
            Ok(found) => found,
            Err(status) => return refusal(tag, &status),
        };
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        selected.saw_modseq(found.mailbox_modseq);
        // Only messages this session has announced: a UID the client has not heard of yet is left out.
        // Each keeps its MODSEQ: the one reported is the highest of the messages returned (RFC 7162
        // §3.1.5, RFC 4731 §3.2).
        let modseq_of = |i: usize| found.modseqs.get(i).copied().unwrap_or(found.highest_modseq);
        let announced: Vec<(NonZeroU32, u64)> = found
            .uids
            .iter()
            .enumerate()
            .filter_map(|(i, uid)| {
                let number = selected.uids.binary_search(uid).ok()?;
                Some((if by_uid { nz(*uid) } else { nz(number as u32 + 1) }, modseq_of(i)))
            })
            .collect();
        let numbers: Vec<NonZeroU32> = announced.iter().map(|&(number, _)| number).collect();
        let highest_of = |returned: &[&(NonZeroU32, u64)]| {
            returned.iter().map(|&&(_, modseq)| modseq).max().filter(|_| wants_modseq).and_then(NonZeroU64::new)
        };
        let modseq = highest_of(&announced.iter().collect::<Vec<_>>());
        let extended = match self.extended.take().filter(|e| matches!(e, render::Extended::Search { .. })) {
            // IMAP4rev2 answers every SEARCH with ESEARCH (RFC 9051 §6.4.4).
            None if rev2 => Some(render::Extended::Search { options: Default::default() }),
            other => other,
        };
        if let Some(render::Extended::Search { options }) = extended {
            let returned = options.returned(announced.len());
            if options.has("SAVE") {
                // RFC 5182 SEARCHRES: remember what is returned for `$` (every match, unless MIN, MAX or
                // PARTIAL alone narrowed it, §2.1).
                let saved: Vec<u32> =
                    returned.iter().map(|&i| found_uid(&announced, i, by_uid, &selected.uids)).collect();
                selected.saved = saved;
            }
            if options.words.iter().all(|w| w == "SAVE") && options.partial.is_none() && !options.words.is_empty() {
                // Alone, SAVE asks for no ESEARCH line.
                return ok(tag, None, "SEARCH completed, result saved");
            }
            // RFC 4731: one ESEARCH line with what RETURN asked for (ALL when it asked for nothing).
            let values: Vec<u32> = numbers.iter().map(|n| n.get()).collect();
            let mut line = format!("* ESEARCH (TAG \"{}\")", tag.inner());
            if by_uid {
                line.push_str(" UID");
            }
            if options.has("MIN")
                && let Some(min) = values.first()
            {
                line.push_str(&format!(" MIN {min}"));
            }
            if options.has("MAX")
                && let Some(max) = values.last()
            {
                line.push_str(&format!(" MAX {max}"));
            }
            if options.all() && !values.is_empty() {
                line.push_str(&format!(" ALL {}", render::uid_set_text(&values)));
            }
            if options.has("COUNT") {
                line.push_str(&format!(" COUNT {}", values.len()));
            }
            if let Some(partial) = &options.partial {
                let picked: Vec<u32> = values[partial.indexes(values.len())].to_vec();
                line.push_str(&context::partial_data(partial, &render::uid_set_text(&picked)));
            }
            // MODSEQ is the highest of the messages returned: MIN, MAX or PARTIAL alone narrow them.
            if let Some(modseq) = highest_of(&returned.iter().map(|&i| &announced[i]).collect::<Vec<_>>()) {
                line.push_str(&format!(" MODSEQ {modseq}"));
            }
            line.push_str("\r\n");
            let matched: Vec<u32> =
                (0..announced.len()).map(|i| found_uid(&announced, i, by_uid, &selected.uids)).collect();
            self.raw_untagged(line).await;
            if let Some(keys) = update_keys {
                self.start_update(&tag, by_uid, keys, None, matched, &options);
            }
            return ok(tag, None, "SEARCH completed");
        }
        self.server.enqueue_data(Data::Search(numbers, modseq));
        ok(tag, None, "SEARCH completed")
    }

    /// The command being answered asked for RFC 5267 UPDATE.
    fn wants_update(&self) -> bool {
        matches!(
            &self.extended,
            Some(render::Extended::Search { options } | render::Extended::Sort { options }) if options.has("UPDATE")
        )
    }

    /// The messages of `mailbox` that match every one of `keys`, from the mailbox role; with `threading`,
    /// what THREAD needs of each too.
    pub(super) async fn search_rpc(
        &mut self,
        account_id: AccountId,
        mailbox: String,
        keys: Vec<pb::SearchKey>,
        threading: bool,
    ) -> Result<pb::SearchResponse, StoreError> {
        self.search_for(account_id, mailbox, keys, threading, false).await
    }

    /// A search that also brings THREAD's (`threading`) or SORT's (`sorting`) facts of each match.
    pub(super) async fn search_for(
        &mut self,
        account_id: AccountId,
        mailbox: String,
        keys: Vec<pb::SearchKey>,
        threading: bool,
        sorting: bool,
    ) -> Result<pb::SearchResponse, StoreError> {
        let key = pb::SearchKey { key: Some(pb::search_key::Key::And(pb::SearchKeys { keys })) };
        let request = pb::SearchRequest { account_id: account_id.get(), mailbox, key: Some(key), threading, sorting };
        self.store.search(request).await
    }

    /// SORT's and THREAD's common first half: the charset checked, `criteria` turned into store keys
    /// against the selected mailbox, the search asked with THREAD's (`threading`) or SORT's (`sorting`)
    /// facts of each match, and the selected view told of the mailbox's modseq; with the keys when the
    /// command asked for UPDATE. `Err` is the tagged answer.
    pub(super) async fn search_selected(
        &mut self,
        tag: &Tag<'static>,
        account_id: AccountId,
        charset: &Charset<'_>,
        criteria: &[SearchKey<'_>],
        threading: bool,
        sorting: bool,
    ) -> Result<(pb::SearchResponse, Vec<pb::SearchKey>), Status<'static>> {
        if !searchable_charset(charset) {
            return Err(bad_charset(tag.clone()));
        }
        let Some(selected) = self.state.selected() else {
            return Err(bad(Some(tag.clone()), "select a mailbox first"));
        };
        if too_many_sets(criteria, selected.uids.len()) {
            return Err(too_many_sets_refusal(tag.clone()));
        }
        let recent = selected.recent.uids();
        let keys: Vec<pb::SearchKey> =
            criteria.iter().map(|k| render::search_key(k, &selected.uids, &recent)).collect();
        let mailbox = selected.name.clone();
        // RFC 5267 UPDATE keeps the keys for looking again.
        let kept = if self.wants_update() { keys.clone() } else { Vec::new() };
        let found = match self.search_for(account_id, mailbox, keys, threading, sorting).await {
            Ok(found) => found,
            Err(status) => return Err(refusal(tag.clone(), &status)),
        };
        if let Some(selected) = self.state.selected() {
            selected.saw_modseq(found.mailbox_modseq);
        }
        Ok((found, kept))
    }

    /// RFC 5256 SORT (and RFC 5957's DISPLAYFROM/DISPLAYTO): the matches of `criteria`, ordered by
    /// `sort_criteria` (`sort.rs`), written raw; with RFC 5267 ESORT's RETURN options an ESEARCH line,
    /// SAVE (RFC 5182 §2.4) and UPDATE; MODSEQ as SEARCH gives it (RFC 7162 §3.1.5).
    pub(super) async fn sort(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        sort_criteria: &[SortCriterion],
        charset: &Charset<'_>,
        criteria: &[SearchKey<'_>],
        by_uid: bool,
    ) -> Status<'static> {
        let (found, keys) = match self.search_selected(&tag, account_id, charset, criteria, false, true).await {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let wants_modseq = criteria.iter().any(has_modseq);
        if wants_modseq {
            self.enable_condstore();
        }
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        // Only messages this session has announced, as SEARCH answers; each number with its UID and MODSEQ.
        let mut facts: Vec<(u32, u32, u64)> = Vec::with_capacity(found.uids.len());
        let modseq_of = |i: usize| found.modseqs.get(i).copied().unwrap_or(found.highest_modseq);
        let messages: Vec<sort::Message> = found
            .uids
            .iter()
            .zip(found.sorting)
            .enumerate()
            .filter_map(|(i, (&uid, keys))| {
                let index = selected.uids.binary_search(&uid).ok()?;
                let number = if by_uid { uid } else { index as u32 + 1 };
                facts.push((number, uid, modseq_of(i)));
                Some(sort::Message { number, keys })
            })
            .collect();
        let sorted = sort::sort(messages, sort_criteria);
        let fact = |number: u32| facts.binary_search_by_key(&number, |f| f.0).map(|at| facts[at]).ok();
        let highest = |positions: &mut dyn Iterator<Item = usize>| {
            positions.filter_map(|p| fact(sorted[p])).map(|f| f.2).max().filter(|_| wants_modseq)
        };
        let options = match self.extended.take() {
            Some(render::Extended::Sort { options }) => options,
            _ => {
                let modseq = highest(&mut (0..sorted.len()));
                self.raw_untagged(sort::render(&sorted, modseq)).await;
                return ok(tag, None, "SORT completed");
            }
        };
        let returned = options.returned(sorted.len());
        if options.has("SAVE") {
            // RFC 5182 §2.4: `$` is the set of what is returned, in no order.
            let mut saved: Vec<u32> = returned.iter().filter_map(|&p| fact(sorted[p])).map(|f| f.1).collect();
            saved.sort_unstable();
            selected.saved = saved;
            if options.words.iter().all(|w| w == "SAVE") && options.partial.is_none() {
                return ok(tag, None, "SORT completed, result saved");
            }
        }
        let in_order: Vec<u32> = sorted.iter().filter_map(|&n| fact(n)).map(|f| f.1).collect();
        let modseq = highest(&mut returned.iter().copied());
        self.raw_untagged(sort::render_esearch(tag.inner(), by_uid, &options, &sorted, modseq)).await;
        if options.has("UPDATE") {
            self.start_update(&tag, by_uid, keys, Some(sort_criteria.to_vec()), in_order, &options);
        }
        ok(tag, None, "SORT completed")
    }

    /// RFC 5256 THREAD: the matches of `criteria`, threaded by `algorithm` (`thread.rs`), written raw.
    pub(super) async fn thread(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        algorithm: &ThreadingAlgorithm<'_>,
        charset: &Charset<'_>,
        criteria: &[SearchKey<'_>],
        by_uid: bool,
    ) -> Status<'static> {
        let references = match algorithm {
            ThreadingAlgorithm::References => true,
            ThreadingAlgorithm::OrderedSubject => false,
            ThreadingAlgorithm::Other(_) => return bad(Some(tag), "unsupported threading algorithm"),
        };
        let found = match self.search_selected(&tag, account_id, charset, criteria, true, false).await {
            Ok((found, _)) => found,
            Err(answer) => return answer,
        };
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        // Only messages this session has announced, as SEARCH answers.
        let messages: Vec<thread::Message> = found
            .uids
            .iter()
            .zip(found.threading)
            .filter_map(|(&uid, t)| {
                let index = selected.uids.binary_search(&uid).ok()?;
                Some(thread::Message {
                    number: if by_uid { uid } else { index as u32 + 1 },
                    thread_id: t.thread_id,
                    message_id: t.message_id,
                    parents: t.parents,
                    base_subject: t.base_subject,
                    // RFC 5256 §2.2: the sent date, which a mailbox role older than this field leaves
                    // 0 (the internal date stands in then).
                    date: if t.sent_unix != 0 { t.sent_unix } else { t.internal_date_unix },
                })
            })
            .collect();
        let threads = if references { thread::references(messages) } else { thread::ordered_subject(messages) };
        self.raw_untagged(thread::render(&threads)).await;
        ok(tag, None, "THREAD completed")
    }
}

/// The UID of the `i`th announced match (whose number is a UID or a message number, as the command asked).
fn found_uid(announced: &[(NonZeroU32, u64)], i: usize, by_uid: bool, uids: &[u32]) -> u32 {
    let number = announced[i].0.get();
    if by_uid { number } else { uids.get(number as usize - 1).copied().unwrap_or(number) }
}

/// Each message-number or UID set among the keys becomes a list of the UIDs it names, as long as the
/// mailbox at most: past this many UIDs in all (and more than one set), a SEARCH is refused rather than
/// written out. One set always passes; a 10,000-message mailbox takes 400 sets of `1:*`.
const MAX_SET_UIDS: usize = 4_000_000;

/// Whether `criteria`'s sets could name more UIDs together than a SEARCH may write out (`1:* 1:* …`
/// sixteen thousand times fits in one command line and would be sixteen thousand copies of the mailbox).
fn too_many_sets(criteria: &[SearchKey<'_>], messages: usize) -> bool {
    fn sets(key: &SearchKey<'_>) -> usize {
        match key {
            SearchKey::SequenceSet(_) | SearchKey::Uid(_) => 1,
            SearchKey::Not(inner) => sets(inner),
            SearchKey::Or(a, b) => sets(a) + sets(b),
            SearchKey::And(all) => all.as_ref().iter().map(sets).sum(),
            _ => 0,
        }
    }
    let count: usize = criteria.iter().map(sets).sum();
    count > 1 && count.saturating_mul(messages) > MAX_SET_UIDS.max(messages)
}

fn too_many_sets_refusal(tag: Tag<'static>) -> Status<'static> {
    no(tag, Some(other_code("LIMIT")), "too many message sets in one search for a mailbox this large")
}

pub(super) fn has_modseq(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::ModSequence { .. } => true,
        SearchKey::Not(inner) => has_modseq(inner),
        SearchKey::Or(a, b) => has_modseq(a) || has_modseq(b),
        SearchKey::And(all) => all.as_ref().iter().any(has_modseq),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_types::sequence::SequenceSet;

    fn all() -> SearchKey<'static> {
        SearchKey::SequenceSet(SequenceSet::try_from("1:*").unwrap())
    }

    #[test]
    fn many_sets_over_a_large_mailbox_are_refused_and_one_set_never_is() {
        assert!(!too_many_sets(&[all()], 50_000_000), "one set is the mailbox's size, whatever it is");
        assert!(!too_many_sets(&vec![all(); 400], 10_000));
        assert!(too_many_sets(&vec![all(); 401], 10_000));
        let nested = SearchKey::Not(Box::new(SearchKey::Or(Box::new(all()), Box::new(all()))));
        assert!(too_many_sets(&vec![nested; 16_000], 1_000), "sets inside NOT and OR count too");
        assert!(!too_many_sets(&vec![SearchKey::All; 16_000], 10_000_000), "keys without sets cost nothing here");
    }
}
