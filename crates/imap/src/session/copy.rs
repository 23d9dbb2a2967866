//! COPY, MOVE (RFC 6851) with COPYUID (RFC 4315), and EXPUNGE and UID EXPUNGE.

use super::*;

impl<S: Store, W: Wire> Session<S, W> {
    pub(super) async fn expunge(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        set: Option<&SequenceSet>,
    ) -> Status<'static> {
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        if selected.read_only {
            return no(tag, Some(Code::ReadOnly), "the mailbox is read-only");
        }
        let uids = match set {
            Some(set) => render::resolve(set, &selected.uids, true),
            None => selected.uids.clone(),
        };
        if uids.is_empty() {
            return ok(tag, None, "EXPUNGE completed");
        }
        let request = pb::ExpungeRequest {
            account_id: account_id.get(),
            mailbox: selected.name.clone(),
            uids,
            deleted_only: true,
        };
        match self.store.expunge(request).await {
            Ok(reply) => {
                if let Some(selected) = self.state.selected() {
                    if !reply.expunged.is_empty() {
                        selected.own_modseqs.insert(reply.highest_modseq);
                    }
                    selected.saw_modseq(reply.highest_modseq);
                    selected.vanished.extend(reply.expunged);
                }
                ok(tag, None, "EXPUNGE completed")
            }
            Err(status) => refusal(tag, &status),
        }
    }

    pub(super) async fn copy(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        set: &SequenceSet,
        mailbox: &Mailbox<'_>,
        by_uid: bool,
        moving: bool,
    ) -> Status<'static> {
        let Some(target) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        if moving && selected.read_only {
            return no(tag, Some(Code::ReadOnly), "the mailbox is read-only");
        }
        if !by_uid && render::out_of_range(set, selected.uids.len()) {
            return bad(Some(tag), "no such message");
        }
        let uids = render::resolve(set, &selected.uids, by_uid);
        if !by_uid && uids.iter().any(|u| selected.vanished.contains(u)) {
            return no(tag, Some(other_code("EXPUNGEISSUED")), "some of the messages were expunged");
        }
        if uids.is_empty() {
            return ok(tag, None, "no messages");
        }
        let source = selected.name.clone();
        let reply = if moving {
            let request =
                pb::MoveRequest { account_id: account_id.get(), from_mailbox: source, to_mailbox: target, uids };
            self.store.move_messages(request).await.map(|r| (r.source_uids, r.target_uidvalidity, r.target_uids))
        } else {
            let request =
                pb::CopyRequest { account_id: account_id.get(), from_mailbox: source, to_mailbox: target, uids };
            self.store.copy(request).await.map(|r| (r.source_uids, r.target_uidvalidity, r.target_uids))
        };
        let (source_uids, uidvalidity, target_uids) = match reply {
            Ok(reply) => reply,
            Err(StoreError::NonExistent(_)) => {
                return no(tag, Some(Code::TryCreate), "no such mailbox");
            }
            Err(status) => return refusal(tag, &status),
        };
        let code = copy_uid(uidvalidity, &source_uids, &target_uids);
        if moving {
            // RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs.
            if let Some(code) = code {
                self.server.enqueue_status(Status::ok(None, Some(code), "moved").expect("ASCII"));
            }
            if let Some(selected) = self.state.selected() {
                selected.vanished.extend(source_uids);
            }
            return ok(tag, None, "MOVE completed");
        }
        ok(tag, code, "COPY completed")
    }
}

/// RFC 4315 COPYUID: the target's UIDVALIDITY, then source and target UIDs in corresponding order.
fn copy_uid(uidvalidity: u32, source: &[u32], target: &[u32]) -> Option<Code<'static>> {
    use imap_types::extensions::uidplus::{UidElement, UidSet};
    // Both lists ascend together, so runs compress alike and the correspondence holds.
    let set = |uids: &[u32]| -> Option<UidSet> {
        let mut elements: Vec<UidElement> = Vec::new();
        let mut i = 0;
        while i < uids.len() {
            let start = i;
            while i + 1 < uids.len() && uids[i].checked_add(1) == Some(uids[i + 1]) {
                i += 1;
            }
            elements.push(if start == i {
                UidElement::Single(nz(uids[i]))
            } else {
                UidElement::Range(nz(uids[start]), nz(uids[i]))
            });
            i += 1;
        }
        Some(UidSet(Vec1::try_from(elements).ok()?))
    };
    Some(Code::CopyUid { uid_validity: nz(uidvalidity), source: set(source)?, destination: set(target)? })
}
