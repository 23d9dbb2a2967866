//! The commands on mailboxes as a whole: CREATE, DELETE, RENAME, SUBSCRIBE, STATUS, APPEND and the
//! quota (RFC 9051 §6.3, RFC 9208).

use super::*;

impl<S: Store, W: Wire> Session<S, W> {
    /// RFC 9208: one quota root, "", for the whole account, with STORAGE (in KiB) and MESSAGE limits.
    pub(super) async fn quota(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        mailbox: Option<Mailbox<'static>>,
    ) -> Status<'static> {
        use imap_types::core::AString;
        use imap_types::extensions::quota::{QuotaGet, Resource};
        if let Some(mailbox) = &mailbox {
            // RFC 9208 §4.3: GETQUOTAROOT of a mailbox that does not exist is NO.
            let Some(name) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
            if let Err(status) =
                self.store.status(pb::StatusRequest { account_id: account_id.get(), mailbox: name }).await
            {
                return refusal(tag, &status);
            }
        }
        let usage = match self.store.get_quota(pb::GetQuotaRequest { account_id: account_id.get() }).await {
            Ok(reply) => reply,
            Err(status) => return refusal(tag, &status),
        };
        let mut quotas = Vec::new();
        if let Some(limit) = usage.limit_bytes {
            quotas.push(QuotaGet::new(Resource::Storage, usage.used_bytes.div_ceil(1024), limit / 1024));
        }
        if let Some(limit) = usage.limit_messages {
            quotas.push(QuotaGet::new(Resource::Message, usage.used_messages, limit));
        }
        let root = AString::try_from("").expect("the empty string is a valid astring");
        if let Some(mailbox) = mailbox {
            let roots = if quotas.is_empty() { Vec::new() } else { vec![root.clone()] };
            self.server.enqueue_data(Data::QuotaRoot { mailbox, roots });
        }
        if let Ok(quotas) = Vec1::try_from(quotas) {
            self.server.enqueue_data(Data::Quota { root, quotas });
        }
        ok(tag, None, "GETQUOTA completed")
    }

    pub(super) async fn create(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        mailbox: &Mailbox<'_>,
    ) -> Status<'static> {
        let Some(name) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
        // RFC 9051 §6.3.4: a trailing separator only says the client means to create children.
        let name = name.trim_end_matches(DELIMITER).to_owned();
        // RFC 6154 §3: the one attribute the mailbox is to have, or NO [USEATTR] before anything is made.
        let special_use = match self.extended.take() {
            Some(render::Extended::Create { uses }) if !uses.is_empty() => {
                let Some(attribute) = create_special_use::attribute(&uses) else {
                    return no(
                        tag,
                        Some(other_code("USEATTR")),
                        "one of \\Drafts \\Sent \\Trash \\Junk \\Archive \\All \\Flagged",
                    );
                };
                // One the account's other mailbox has, the store refuses (`StoreError::SpecialUseTaken`).
                attribute.to_owned()
            }
            _ => String::new(),
        };
        let request = pb::CreateMailboxRequest { account_id: account_id.get(), name, special_use };
        match self.store.create_mailbox(request).await {
            // RFC 8474 §4.1: the new mailbox's id.
            Ok(reply) => ok(tag, Some(mailbox_id_code(reply.mailbox_id)), "CREATE completed"),
            Err(status) => refusal(tag, &status),
        }
    }

    pub(super) async fn delete(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        mailbox: &Mailbox<'_>,
    ) -> Status<'static> {
        let Some(name) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
        let request = pb::DeleteMailboxRequest { account_id: account_id.get(), name: name.clone() };
        match self.store.delete_mailbox(request).await {
            Ok(_) => {
                let _ = self
                    .store
                    .subscribe(pb::SubscribeRequest { account_id: account_id.get(), name, subscribed: false })
                    .await;
                ok(tag, None, "DELETE completed")
            }
            Err(status) => refusal(tag, &status),
        }
    }

    pub(super) async fn rename(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        from: &Mailbox<'_>,
        to: &Mailbox<'_>,
    ) -> Status<'static> {
        let (Some(from), Some(to)) = (self.name_of(from), self.name_of(to)) else {
            return no(tag, None, "mailbox name is not modified UTF-7");
        };
        let request = pb::RenameMailboxRequest { account_id: account_id.get(), from: from.clone(), to: to.clone() };
        match self.store.rename_mailbox(request).await {
            Ok(_) => {
                if from != "INBOX"
                    && let Some(selected) = self.state.selected()
                {
                    selected.follow_rename(&from, &to);
                }
                ok(tag, None, "RENAME completed")
            }
            Err(status) => refusal(tag, &status),
        }
    }

    pub(super) async fn subscribe(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        mailbox: &Mailbox<'_>,
        subscribed: bool,
    ) -> Status<'static> {
        let Some(name) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
        match self.store.subscribe(pb::SubscribeRequest { account_id: account_id.get(), name, subscribed }).await {
            Ok(_) => ok(tag, None, if subscribed { "SUBSCRIBE completed" } else { "UNSUBSCRIBE completed" }),
            Err(status) => refusal(tag, &status),
        }
    }

    pub(super) async fn status(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        mailbox: &Mailbox<'static>,
        names: &[StatusDataItemName],
    ) -> Status<'static> {
        let ids = self.object_ids();
        let Some(name) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
        let status = match self.store.status(pb::StatusRequest { account_id: account_id.get(), mailbox: name }).await {
            Ok(reply) => reply,
            Err(status) => return refusal(tag, &status),
        };
        let items: Vec<StatusDataItem> = names
            .iter()
            .filter_map(|item| match item {
                StatusDataItemName::Messages if ids.filler => None,
                StatusDataItemName::Messages => Some(StatusDataItem::Messages(status.messages)),
                StatusDataItemName::Recent => Some(StatusDataItem::Recent(status.recent)),
                StatusDataItemName::UidNext => Some(StatusDataItem::UidNext(nz(status.uidnext))),
                StatusDataItemName::UidValidity => Some(StatusDataItem::UidValidity(nz(status.uidvalidity))),
                StatusDataItemName::Unseen => Some(StatusDataItem::Unseen(status.unseen)),
                StatusDataItemName::Deleted => Some(StatusDataItem::Deleted(status.deleted)),
                StatusDataItemName::Size => Some(StatusDataItem::Size(status.size)),
                StatusDataItemName::HighestModSeq => Some(StatusDataItem::HighestModSeq(status.highest_modseq)),
                _ => None,
            })
            .collect();
        let data = Data::Status { mailbox: mailbox.clone(), items: items.into() };
        if ids.mailbox {
            let line = ResponseCodec::default().encode(&Response::Data(data)).dump();
            let line = object_id::splice(line, &format!("MAILBOXID (m{})", status.mailbox_id));
            self.raw_untagged(String::from_utf8_lossy(&line).into_owned()).await;
        } else {
            self.server.enqueue_data(data);
        }
        ok(tag, None, "STATUS completed")
    }

    pub(super) async fn append(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        mailbox: &Mailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<i64>,
        data: Vec<u8>,
    ) -> Status<'static> {
        let Some(name) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
        if data.len() as u64 > self.config.max_message_size {
            return no(tag, Some(Code::TooBig), "message exceeds APPENDLIMIT");
        }
        let header = pb::AppendHeader {
            account_id: account_id.get(),
            mailbox: name,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            internal_date_unix: date,
            size: data.len() as u64,
            import_digest: None,
        };
        match self.store.append(header, data).await {
            Ok(reply) => {
                let code = Code::AppendUid { uid_validity: nz(reply.uidvalidity), uid: nz(reply.uid) };
                if let Some(selected) = self.state.selected() {
                    selected.dirty = true;
                }
                ok(tag, Some(code), "APPEND completed")
            }
            Err(StoreError::NonExistent(_)) => no(tag, Some(Code::TryCreate), "no such mailbox"),
            Err(status) => refusal(tag, &status),
        }
    }
}

/// One STATUS item, by name, of a mailbox's status (RFC 9051 §6.3.11, RFC 8438 SIZE, RFC 7162).
pub(super) fn status_item(name: &str, status: &pb::MailboxStatus) -> Option<StatusDataItem> {
    Some(match name {
        "MESSAGES" => StatusDataItem::Messages(status.messages),
        "RECENT" => StatusDataItem::Recent(status.recent),
        "UIDNEXT" => StatusDataItem::UidNext(nz(status.uidnext)),
        "UIDVALIDITY" => StatusDataItem::UidValidity(nz(status.uidvalidity)),
        "UNSEEN" => StatusDataItem::Unseen(status.unseen),
        "DELETED" => StatusDataItem::Deleted(status.deleted),
        "SIZE" => StatusDataItem::Size(status.size),
        "HIGHESTMODSEQ" => StatusDataItem::HighestModSeq(status.highest_modseq),
        _ => return None,
    })
}
