//! SELECT and EXAMINE (RFC 9051 §6.3.2), with CONDSTORE and QRESYNC's resynchronisation (RFC 7162 §3.2.5)
//! and UID FETCH's VANISHED (EARLIER).

use super::*;

impl<S: Store, W: Wire> Session<S, W> {
    pub(super) async fn select(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        mailbox: &Mailbox<'_>,
        read_only: bool,
        parameters: &[SelectParameter],
    ) -> Status<'static> {
        let condstore =
            parameters.iter().any(|p| matches!(p, SelectParameter::CondStore | SelectParameter::QResync { .. }));
        let resync = parameters.iter().find_map(|p| match p {
            SelectParameter::QResync { uid_validity, mod_sequence_value, known_uids, .. } => {
                Some((uid_validity.get(), mod_sequence_value.get(), known_uids.clone()))
            }
            _ => None,
        });
        let had_selection = matches!(self.state, State::Selected(..));
        self.state.deselect();
        let condstore = condstore || self.state.enabled().condstore;
        if condstore && let Some(login) = self.state.login_mut() {
            login.enabled.condstore = true;
        }
        if had_selection && condstore {
            let closed = Status::ok(None, Some(Code::Closed), "previous mailbox closed").expect("ASCII");
            self.server.enqueue_status(closed);
        }
        let Some(name) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
        // RFC 9051 has no \Recent: an IMAP4rev2 session takes none from IMAP4rev1 ones.
        let claim_recent = !read_only && !self.rev2();
        let request = pb::SelectRequest { account_id: account_id.get(), mailbox: name.clone(), claim_recent };
        let selected = match self.store.select(request).await {
            Ok(reply) => reply,
            Err(status) => return refusal(tag, &status),
        };
        let status = selected.status.unwrap_or_default();
        let mut flags = vec![Flag::Answered, Flag::Flagged, Flag::Deleted, Flag::Seen, Flag::Draft];
        flags.extend(
            selected.keywords.iter().filter_map(|k| Flag::try_from(k.as_str()).ok().map(IntoStatic::into_static)),
        );
        self.server.enqueue_data(Data::Flags(flags.clone()));
        self.server.enqueue_data(Data::Exists(selected.uids.len() as u32));
        let recent = if self.rev2() {
            // IMAP4rev2 has no \Recent and no RECENT response.
            recent::Recent::default()
        } else {
            let recent = recent::Recent::selected(&selected.uids, selected.recent_from);
            self.server.enqueue_data(Data::Recent(recent.count()));
            recent
        };
        if let Some(position) = selected.uids.iter().position(|&u| u == selected.first_unseen_uid) {
            let unseen = Status::ok(None, Some(Code::Unseen(nz(position as u32 + 1))), "first unseen").expect("ASCII");
            self.server.enqueue_status(unseen);
        }
        let permanent: Vec<FlagPerm> = if read_only {
            Vec::new()
        } else {
            flags.into_iter().map(FlagPerm::Flag).chain([FlagPerm::Asterisk]).collect()
        };
        let say = |code: Code<'static>, text: &str| Status::ok(None, Some(code), text.to_owned()).expect("ASCII");
        self.server.enqueue_status(say(Code::PermanentFlags(permanent), "flags permitted"));
        self.server.enqueue_status(say(Code::UidNext(nz(status.uidnext)), "predicted next UID"));
        self.server.enqueue_status(say(Code::UidValidity(nz(status.uidvalidity)), "UIDs valid"));
        // RFC 7162 §3.1.2.1: a server that offers CONDSTORE reports HIGHESTMODSEQ on every SELECT.
        {
            match NonZeroU64::new(status.highest_modseq) {
                Some(modseq) => self.server.enqueue_status(say(Code::HighestModSeq(modseq), "highest")),
                None => self.server.enqueue_status(say(Code::NoModSeq, "no MODSEQ yet")),
            };
        }
        // RFC 8474 §4.1: the mailbox's id, JMAP's Mailbox id.
        self.server.enqueue_status(say(mailbox_id_code(status.mailbox_id), "mailbox id"));
        let login = match std::mem::replace(&mut self.state, State::NotAuthenticated { failures: 0 }) {
            State::Authenticated(login) | State::Selected(login, _) => login,
            State::NotAuthenticated { .. } => unreachable!("select runs authenticated"),
        };
        self.state = State::Selected(
            login,
            Selected {
                name: if selected.name.is_empty() { name } else { selected.name },
                read_only,
                uidvalidity: status.uidvalidity,
                uids: selected.uids,
                highest_modseq: status.highest_modseq,
                dirty: false,
                vanished: Default::default(),
                saved: Vec::new(),
                own_modseqs: Default::default(),
                keywords: selected.keywords.iter().map(|k| (k.to_ascii_lowercase(), k.clone())).collect(),
                recent,
                contexts: None,
            },
        );
        if let Some((uidvalidity, since, known)) = resync
            && uidvalidity == status.uidvalidity
            && let Err(status) = self.resync(account_id, since, known.as_ref()).await
        {
            // The client would keep a MODSEQ that its cache does not match: no SELECT rather than a wrong one.
            self.state.deselect();
            return refusal(tag, &status);
        }
        let code = if read_only { Code::ReadOnly } else { Code::ReadWrite };
        ok(tag, Some(code), if read_only { "EXAMINE completed" } else { "SELECT completed" })
    }

    /// SELECT (QRESYNC (uidvalidity modseq [known-uids])), RFC 7162 §3.2.5.1: what the client's cache
    /// missed since its MODSEQ, as VANISHED (EARLIER) and FETCH (UID FLAGS MODSEQ).
    pub(super) async fn resync(
        &mut self,
        account_id: AccountId,
        since: u64,
        known: Option<&SequenceSet>,
    ) -> Result<(), StoreError> {
        let Some(selected) = self.state.selected() else { return Ok(()) };
        let request = pb::ChangesRequest {
            account_id: account_id.get(),
            mailbox: selected.name.clone(),
            since_modseq: since,
            claim_recent: false,
        };
        let changes = self.store.changes(request).await?;
        let Some(selected) = self.state.selected() else { return Ok(()) };
        let mut gone = changes.vanished;
        if let Some(known) = known {
            let largest = selected.uids.last().copied().unwrap_or(0).max(gone.last().copied().unwrap_or(0));
            gone = render::resolve_with_largest(known, &gone, largest);
        }
        if let Ok(known_uids) = SequenceSet::try_from(render::uid_set_text(&gone).as_str()) {
            self.server.enqueue_data(Data::Vanished { earlier: true, known_uids });
        }
        let mut data = Vec::new();
        for entry in changes.changed {
            let Ok(index) = selected.uids.binary_search(&entry.uid) else { continue };
            announce_new_keywords(selected, &entry.flags, &mut self.server);
            let flags = flags_of(&entry.flags, selected.recent.contains(entry.uid));
            let mut items = vec![MessageDataItem::Uid(nz(entry.uid)), MessageDataItem::Flags(flags)];
            if let Some(modseq) = NonZeroU64::new(entry.modseq) {
                items.push(MessageDataItem::ModSeq(modseq));
            }
            data.push(Data::Fetch { seq: nz(index as u32 + 1), items: Vec1::try_from(items).expect("not empty") });
        }
        for item in data {
            self.server.enqueue_data(item);
        }
        Ok(())
    }

    /// UID FETCH … (CHANGEDSINCE m VANISHED), RFC 7162 §3.2.6: the UIDs of the set expunged since m.
    pub(super) async fn vanished_earlier(
        &mut self,
        account_id: AccountId,
        set: &SequenceSet,
        since: u64,
    ) -> Result<(), StoreError> {
        let Some(selected) = self.state.selected() else { return Ok(()) };
        let request = pb::ChangesRequest {
            account_id: account_id.get(),
            mailbox: selected.name.clone(),
            since_modseq: since,
            claim_recent: false,
        };
        let changes = self.store.changes(request).await?;
        let Some(selected) = self.state.selected() else { return Ok(()) };
        // `*` is the mailbox's largest UID, not the largest expunged one.
        let largest = selected.uids.last().copied().unwrap_or(0).max(changes.vanished.last().copied().unwrap_or(0));
        let gone = render::resolve_with_largest(set, &changes.vanished, largest);
        if let Ok(known_uids) = SequenceSet::try_from(render::uid_set_text(&gone).as_str()) {
            self.server.enqueue_data(Data::Vanished { earlier: true, known_uids });
        }
        Ok(())
    }
}
