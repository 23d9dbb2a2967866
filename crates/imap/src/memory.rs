//! An in-memory [`Store`] and [`Wire`], for the transcript tests and the fuzz target: a small model of the
//! mailbox role (one account, mailboxes with UIDs, flags, MODSEQs, expunge tombstones and `\Recent`), not
//! a second implementation of it. What it does not model (ENVELOPE, BODYSTRUCTURE, parts, most SEARCH
//! keys) it refuses with [`StoreError::Cannot`] or leaves empty. SORT and THREAD get each message's
//! size, its Subject as written (no base-subject rules), its Date field's instant and, as its thread,
//! the message alone.
//!
//! Stores made with [`MemoryStore::clone`] share one model, as two sessions share the mailbox role.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use mailbus_address::AccountId;
use mailbus_proto::v1::{self as pb, date_match::Relation, search_key::Key};

use crate::store::{LoginOutcome, Store, StoreError, Wire};

/// The one account's login.
pub const USER: &str = "alice@example.org";
pub const PASSWORD: &str = "secret";
/// The host an absolute IMAP URL names for this server.
pub const HOST: &str = "imap.example.org";
/// Its internal date for every message (2026-01-01T00:00:00Z).
pub const DATE: i64 = 1_767_225_600;

#[derive(Debug, Clone)]
struct Message {
    uid: u32,
    flags: Vec<String>,
    modseq: u64,
    octets: Vec<u8>,
    /// RFC 8514 SAVEDATE: the model's clock when it was saved here.
    saved: i64,
}

#[derive(Debug)]
struct Mailbox {
    id: i64,
    uidvalidity: u32,
    uidnext: u32,
    highest_modseq: u64,
    first_recent_uid: u32,
    special_use: String,
    messages: Vec<Message>,
    /// Expunged UIDs with the MODSEQ of their expunge, for QRESYNC.
    expunged: Vec<(u32, u64)>,
}

impl Mailbox {
    fn new(id: i64) -> Mailbox {
        Mailbox {
            id,
            uidvalidity: 1000 + id as u32,
            uidnext: 1,
            highest_modseq: 1,
            first_recent_uid: 1,
            special_use: String::new(),
            messages: Vec::new(),
            expunged: Vec::new(),
        }
    }

    fn status(&self) -> pb::MailboxStatus {
        let has = |m: &Message, flag: &str| m.flags.iter().any(|f| f.eq_ignore_ascii_case(flag));
        pb::MailboxStatus {
            messages: self.messages.len() as u32,
            uidnext: self.uidnext,
            uidvalidity: self.uidvalidity,
            unseen: self.messages.iter().filter(|m| !has(m, "\\Seen")).count() as u32,
            deleted: self.messages.iter().filter(|m| has(m, "\\Deleted")).count() as u32,
            size: self.messages.iter().map(|m| m.octets.len() as u64).sum(),
            highest_modseq: self.highest_modseq,
            mailbox_id: self.id,
            recent: self.messages.iter().filter(|m| m.uid >= self.first_recent_uid).count() as u32,
        }
    }

    fn add(&mut self, octets: Vec<u8>, flags: Vec<String>, saved: i64) -> u32 {
        let uid = self.uidnext;
        self.uidnext += 1;
        self.highest_modseq += 1;
        self.messages.push(Message { uid, flags, modseq: self.highest_modseq, octets, saved });
        uid
    }

    /// `\Recent`'s claim: where the recent messages start, moved past them when `claim`.
    fn recent_from(&mut self, claim: bool) -> u64 {
        let from = u64::from(self.first_recent_uid);
        if claim {
            self.first_recent_uid = self.uidnext;
        }
        from
    }

    fn entry(message: &Message) -> pb::EntryState {
        pb::EntryState { uid: message.uid, flags: message.flags.clone(), modseq: message.modseq }
    }
}

#[derive(Debug)]
struct Model {
    /// The account's storage quota: APPEND refuses to pass it.
    quota_bytes: u64,
    mailboxes: BTreeMap<String, Mailbox>,
    subscribed: BTreeSet<String>,
    next_id: i64,
    /// Now, for save dates: [`DATE`] until a test moves it.
    clock: i64,
}

/// The mailbox role, in memory.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    model: Arc<Mutex<Model>>,
}

impl Default for MemoryStore {
    /// An account with an empty INBOX.
    fn default() -> Self {
        let mut mailboxes = BTreeMap::new();
        mailboxes.insert("INBOX".to_owned(), Mailbox::new(1));
        MemoryStore {
            model: Arc::new(Mutex::new(Model {
                quota_bytes: 1024 * 1024,
                mailboxes,
                subscribed: BTreeSet::new(),
                next_id: 2,
                clock: DATE,
            })),
        }
    }
}

impl MemoryStore {
    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the clock that dates what is saved from now on (RFC 8514 SAVEDATE).
    pub fn set_clock(&self, unix: i64) {
        self.model().clock = unix;
    }

    /// Sets the account's storage quota.
    pub fn set_quota(&self, bytes: u64) {
        self.model().quota_bytes = bytes;
    }

    /// Delivers `octets` into `mailbox`, as another session or the relay would; the event it publishes.
    pub fn deliver(&self, mailbox: &str, octets: &[u8], flags: &[&str]) -> pb::MailboxEvent {
        let mut model = self.model();
        let clock = model.clock;
        let target = model.mailboxes.get_mut(mailbox).expect("an existing mailbox");
        let uid = target.add(octets.to_vec(), flags.iter().map(|f| f.to_string()).collect(), clock);
        event(mailbox, pb::MailboxEventKind::Appended, vec![uid], target.highest_modseq)
    }

    /// Sets `flags` on `uid` in `mailbox`, as another session would; the event it publishes.
    pub fn flag_elsewhere(&self, mailbox: &str, uid: u32, flags: &[&str]) -> pb::MailboxEvent {
        let mut model = self.model();
        let target = model.mailboxes.get_mut(mailbox).expect("an existing mailbox");
        target.highest_modseq += 1;
        let modseq = target.highest_modseq;
        let message = target.messages.iter_mut().find(|m| m.uid == uid).expect("an existing message");
        message.flags = flags.iter().map(|f| f.to_string()).collect();
        message.modseq = modseq;
        event(mailbox, pb::MailboxEventKind::FlagsChanged, vec![uid], modseq)
    }

    /// Expunges `uid` from `mailbox`, as another session would; the event it publishes.
    pub fn expunge_elsewhere(&self, mailbox: &str, uid: u32) -> pb::MailboxEvent {
        let mut model = self.model();
        let target = model.mailboxes.get_mut(mailbox).expect("an existing mailbox");
        target.highest_modseq += 1;
        let modseq = target.highest_modseq;
        target.messages.retain(|m| m.uid != uid);
        target.expunged.push((uid, modseq));
        event(mailbox, pb::MailboxEventKind::Expunged, vec![uid], modseq)
    }

    /// Creates a mailbox with a special use (`\Trash`), or none (`""`).
    pub fn create(&self, name: &str, special_use: &str) {
        let mut model = self.model();
        let id = model.next_id;
        model.next_id += 1;
        let mut mailbox = Mailbox::new(id);
        mailbox.special_use = special_use.to_owned();
        model.mailboxes.insert(name.to_owned(), mailbox);
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Mailbox) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut model = self.model();
        let mailbox = model.mailboxes.get_mut(name).ok_or_else(|| nonexistent(name))?;
        f(mailbox)
    }
}

fn event(mailbox: &str, kind: pb::MailboxEventKind, uids: Vec<u32>, modseq: u64) -> pb::MailboxEvent {
    pb::MailboxEvent {
        account_id: 1,
        mailbox: mailbox.to_owned(),
        kind: kind.into(),
        uids,
        modseq,
        ..Default::default()
    }
}

fn nonexistent(name: &str) -> StoreError {
    StoreError::NonExistent(format!("no mailbox {name:?}"))
}

/// A search key against one message; `None` for a key the model does not have.
fn matches(key: &pb::SearchKey, message: &Message) -> Option<bool> {
    Some(match key.key.as_ref()? {
        Key::All(_) => true,
        Key::And(all) => {
            let mut result = true;
            for key in &all.keys {
                result &= matches(key, message)?;
            }
            result
        }
        Key::Or(pair) => matches(pair.a.as_ref()?, message)? || matches(pair.b.as_ref()?, message)?,
        Key::Not(inner) => !matches(inner, message)?,
        Key::Uids(list) => list.uids.contains(&message.uid),
        Key::Flag(flag) => message.flags.iter().any(|f| f.eq_ignore_ascii_case(flag)),
        Key::Larger(n) => message.octets.len() as u64 > *n,
        Key::Smaller(n) => (message.octets.len() as u64) < *n,
        Key::Modseq(n) => message.modseq >= *n,
        Key::SavedDate(date) => {
            let day = message.saved.div_euclid(86_400);
            match date.relation() {
                Relation::Before => day < date.day,
                Relation::On => day == date.day,
                Relation::Since => day >= date.day,
                Relation::Unspecified => return None,
            }
        }
        Key::Body(text) | Key::Text(text) => {
            String::from_utf8_lossy(&message.octets).to_lowercase().contains(&text.to_lowercase())
        }
        _ => return None,
    })
}

/// The value of a message's first `name` field (no folding), or empty.
fn field(octets: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(octets);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n")
        .find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
        .unwrap_or_default()
}

/// The Date field's instant, or the internal date ([`DATE`]) when there is none or it cannot be read.
fn sent(octets: &[u8]) -> i64 {
    chrono::DateTime::parse_from_rfc2822(&field(octets, "date")).map_or(DATE, |d| d.timestamp())
}

/// What SORT compares of a message, as far as the model goes.
fn sorting(message: &Message) -> pb::Sorting {
    pb::Sorting {
        internal_date_unix: DATE,
        sent_unix: sent(&message.octets),
        size: message.octets.len() as u64,
        base_subject: field(&message.octets, "subject"),
        ..Default::default()
    }
}

/// What THREAD needs of a message: each is a thread of its own (REFERENCES is not modelled).
fn threading(message: &Message) -> pb::Threading {
    pb::Threading {
        thread_id: i64::from(message.uid),
        base_subject: field(&message.octets, "subject"),
        internal_date_unix: DATE,
        sent_unix: sent(&message.octets),
        ..Default::default()
    }
}

/// A FETCH section of a whole message: all of it, its header or its text.
fn section(octets: &[u8], section: &pb::Section) -> Option<Vec<u8>> {
    if !section.part.is_empty() || section.decode {
        return None;
    }
    let split = octets.windows(4).position(|w| w == b"\r\n\r\n").map_or(octets.len(), |i| i + 4);
    let whole = match section.text() {
        pb::SectionText::Full => octets,
        pb::SectionText::Header => &octets[..split],
        pb::SectionText::Text => &octets[split..],
        _ => return None,
    };
    let start = (section.offset.unwrap_or(0) as usize).min(whole.len());
    let end = section.length.map_or(whole.len(), |n| (start + n as usize).min(whole.len()));
    Some(whole[start..end].to_vec())
}

fn set_flags(flags: &mut Vec<String>, mode: pb::StoreMode, given: &[String]) {
    let has = |flags: &[String], flag: &str| flags.iter().any(|f| f.eq_ignore_ascii_case(flag));
    match mode {
        pb::StoreMode::Replace | pb::StoreMode::Unspecified => *flags = given.to_vec(),
        pb::StoreMode::Add => {
            for flag in given {
                if !has(flags, flag) {
                    flags.push(flag.clone());
                }
            }
        }
        pb::StoreMode::Remove => flags.retain(|f| !has(given, f)),
    }
}

impl Store for MemoryStore {
    type Lease = ();
    type Fetch = futures::stream::Iter<std::vec::IntoIter<Result<pb::FetchResponse, StoreError>>>;

    async fn log_in(&mut self, user: &str, password: &str) -> LoginOutcome<()> {
        if user.eq_ignore_ascii_case(USER) && password == PASSWORD {
            LoginOutcome::Accepted { account_id: AccountId::from(1), address: USER.to_owned(), lease: () }
        } else {
            LoginOutcome::Rejected
        }
    }

    async fn select(&mut self, request: pb::SelectRequest) -> Result<pb::SelectResponse, StoreError> {
        self.with(&request.mailbox, |mailbox| {
            let has_seen = |m: &&Message| m.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen"));
            let first_unseen_uid = mailbox.messages.iter().find(|m| !has_seen(m)).map_or(0, |m| m.uid);
            let mut keywords: Vec<String> =
                mailbox.messages.iter().flat_map(|m| &m.flags).filter(|f| !f.starts_with('\\')).cloned().collect();
            keywords.sort();
            keywords.dedup();
            Ok(pb::SelectResponse {
                status: Some(mailbox.status()),
                keywords,
                uids: mailbox.messages.iter().map(|m| m.uid).collect(),
                first_unseen_uid,
                name: request.mailbox.clone(),
                recent_from: mailbox.recent_from(request.claim_recent),
            })
        })
    }

    async fn changes(&mut self, request: pb::ChangesRequest) -> Result<pb::ChangesResponse, StoreError> {
        self.with(&request.mailbox, |mailbox| {
            let since = request.since_modseq;
            Ok(pb::ChangesResponse {
                uidvalidity: mailbox.uidvalidity,
                highest_modseq: mailbox.highest_modseq,
                changed: mailbox.messages.iter().filter(|m| m.modseq > since).map(Mailbox::entry).collect(),
                vanished: mailbox.expunged.iter().filter(|(_, m)| *m > since).map(|(uid, _)| *uid).collect(),
                recent_from: mailbox.recent_from(request.claim_recent),
            })
        })
    }

    async fn status(&mut self, request: pb::StatusRequest) -> Result<pb::MailboxStatus, StoreError> {
        self.with(&request.mailbox, |mailbox| Ok(mailbox.status()))
    }

    async fn get_quota(&mut self, _: pb::GetQuotaRequest) -> Result<pb::QuotaUsage, StoreError> {
        let model = self.model();
        let messages = model.mailboxes.values().flat_map(|m| &m.messages);
        let used_bytes = messages.clone().map(|m| m.octets.len() as u64).sum();
        let used_messages = messages.count() as u64;
        Ok(pb::QuotaUsage { used_bytes, used_messages, limit_bytes: Some(model.quota_bytes), limit_messages: None })
    }

    async fn list_mailboxes(
        &mut self,
        request: pb::ListMailboxesRequest,
    ) -> Result<pb::ListMailboxesResponse, StoreError> {
        // Patterns: `*` lists everything, any other pattern names one mailbox.
        let model = self.model();
        let wanted = |name: &str| request.patterns.iter().any(|p| p == "*" || p == name);
        let mailboxes = model
            .mailboxes
            .iter()
            .filter(|(name, _)| wanted(name))
            .filter(|(name, _)| !request.subscribed_only || model.subscribed.contains(*name))
            .filter(|(_, m)| !request.special_use_only || !m.special_use.is_empty())
            .map(|(name, mailbox)| pb::MailboxListing {
                name: name.clone(),
                exists: true,
                subscribed: model.subscribed.contains(name),
                has_children: model.mailboxes.keys().any(|n| n.starts_with(&format!("{name}/"))),
                special_use: mailbox.special_use.clone(),
                status: request.with_status.then(|| mailbox.status()),
                child_subscribed: false,
            })
            .collect();
        Ok(pb::ListMailboxesResponse { mailboxes })
    }

    async fn create_mailbox(
        &mut self,
        request: pb::CreateMailboxRequest,
    ) -> Result<pb::CreateMailboxResponse, StoreError> {
        let model = self.model();
        if model.mailboxes.contains_key(&request.name) {
            return Err(StoreError::AlreadyExists(format!("mailbox {:?} already exists", request.name)));
        }
        let taken = |m: &Mailbox| !m.special_use.is_empty() && m.special_use.eq_ignore_ascii_case(&request.special_use);
        if model.mailboxes.values().any(taken) {
            return Err(StoreError::SpecialUseTaken(format!("another mailbox is {}", request.special_use)));
        }
        drop(model);
        self.create(&request.name, &request.special_use);
        self.with(&request.name, |m| Ok(pb::CreateMailboxResponse { uidvalidity: m.uidvalidity, mailbox_id: m.id }))
    }

    async fn delete_mailbox(&mut self, request: pb::DeleteMailboxRequest) -> Result<(), StoreError> {
        let mut model = self.model();
        if model.mailboxes.keys().any(|n| n.starts_with(&format!("{}/", request.name))) {
            return Err(StoreError::HasChildren(format!("mailbox {:?} has children", request.name)));
        }
        model.mailboxes.remove(&request.name).map(drop).ok_or_else(|| nonexistent(&request.name))
    }

    async fn rename_mailbox(&mut self, request: pb::RenameMailboxRequest) -> Result<(), StoreError> {
        let mut model = self.model();
        let mailbox = model.mailboxes.remove(&request.from).ok_or_else(|| nonexistent(&request.from))?;
        model.mailboxes.insert(request.to, mailbox);
        Ok(())
    }

    async fn subscribe(&mut self, request: pb::SubscribeRequest) -> Result<(), StoreError> {
        let mut model = self.model();
        if request.subscribed {
            model.subscribed.insert(request.name);
        } else {
            model.subscribed.remove(&request.name);
        }
        Ok(())
    }

    async fn append(&mut self, header: pb::AppendHeader, message: Vec<u8>) -> Result<pb::AppendResponse, StoreError> {
        self.append_all(vec![(header, message)]).await
    }

    async fn append_all(
        &mut self,
        messages: Vec<(pb::AppendHeader, Vec<u8>)>,
    ) -> Result<pb::AppendResponse, StoreError> {
        if messages.is_empty() {
            return Err(StoreError::Cannot("nothing to append".into()));
        }
        let mut model = self.model();
        let clock = model.clock;
        let quota = model.quota_bytes;
        let used: u64 = model.mailboxes.values().flat_map(|m| &m.messages).map(|m| m.octets.len() as u64).sum();
        let adding: u64 = messages.iter().map(|(_, octets)| octets.len() as u64).sum();
        let name = messages.first().map(|(header, _)| header.mailbox.clone()).unwrap_or_default();
        let mailbox = model.mailboxes.get_mut(&name).ok_or_else(|| nonexistent(&name))?;
        // As the mailbox role: the quota is checked for all of them before any is added.
        if used + adding > quota {
            return Err(StoreError::OverQuota(format!("storage quota exceeded ({used} of {quota} octets used)")));
        }
        let uids: Vec<u32> =
            messages.into_iter().map(|(header, octets)| mailbox.add(octets, header.flags, clock)).collect();
        let (uid, last_uid) = (uids[0], uids[uids.len() - 1]);
        Ok(pb::AppendResponse { uidvalidity: mailbox.uidvalidity, uid, duplicate: false, last_uid })
    }

    fn serves_host(&self, host: &str) -> bool {
        host.eq_ignore_ascii_case(HOST)
    }

    async fn expunge(&mut self, request: pb::ExpungeRequest) -> Result<pb::ExpungeResponse, StoreError> {
        self.with(&request.mailbox, |mailbox| {
            let deleted = |m: &Message| m.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Deleted"));
            let gone: Vec<u32> = mailbox
                .messages
                .iter()
                .filter(|m| request.uids.contains(&m.uid) && (!request.deleted_only || deleted(m)))
                .map(|m| m.uid)
                .collect();
            if !gone.is_empty() {
                mailbox.highest_modseq += 1;
                let modseq = mailbox.highest_modseq;
                mailbox.messages.retain(|m| !gone.contains(&m.uid));
                mailbox.expunged.extend(gone.iter().map(|&uid| (uid, modseq)));
            }
            Ok(pb::ExpungeResponse { expunged: gone, highest_modseq: mailbox.highest_modseq })
        })
    }

    async fn search(&mut self, request: pb::SearchRequest) -> Result<pb::SearchResponse, StoreError> {
        let key = request.key.unwrap_or_default();
        self.with(&request.mailbox, |mailbox| {
            let mut found = pb::SearchResponse { mailbox_modseq: mailbox.highest_modseq, ..Default::default() };
            for message in &mailbox.messages {
                let hit = matches(&key, message).ok_or_else(|| StoreError::Cannot("search key not modelled".into()))?;
                if hit {
                    found.uids.push(message.uid);
                    found.modseqs.push(message.modseq);
                    if request.threading {
                        found.threading.push(threading(message));
                    }
                    if request.sorting {
                        found.sorting.push(sorting(message));
                    }
                    found.highest_modseq = found.highest_modseq.max(message.modseq);
                }
            }
            Ok(found)
        })
    }

    async fn store(&mut self, request: pb::StoreRequest) -> Result<pb::StoreResponse, StoreError> {
        let mode = request.mode();
        self.with(&request.mailbox, |mailbox| {
            let mut reply = pb::StoreResponse::default();
            let modseq = mailbox.highest_modseq + 1;
            for message in mailbox.messages.iter_mut().filter(|m| request.uids.contains(&m.uid)) {
                if request.unchanged_since.is_some_and(|since| message.modseq > since) {
                    reply.modified.push(message.uid);
                    continue;
                }
                let before = message.flags.clone();
                set_flags(&mut message.flags, mode, &request.flags);
                if message.flags != before {
                    message.modseq = modseq;
                    reply.changed = true;
                }
                reply.updated.push(Mailbox::entry(message));
            }
            if reply.changed {
                mailbox.highest_modseq = modseq;
            }
            reply.highest_modseq = mailbox.highest_modseq;
            Ok(reply)
        })
    }

    async fn copy(&mut self, request: pb::CopyRequest) -> Result<pb::CopyResponse, StoreError> {
        let (source_uids, target_uidvalidity, target_uids) =
            copy_messages(self, &request.from_mailbox, &request.to_mailbox, &request.uids, false)?;
        Ok(pb::CopyResponse { source_uids, target_uidvalidity, target_uids })
    }

    async fn move_messages(&mut self, request: pb::MoveRequest) -> Result<pb::MoveResponse, StoreError> {
        let (source_uids, target_uidvalidity, target_uids) =
            copy_messages(self, &request.from_mailbox, &request.to_mailbox, &request.uids, true)?;
        Ok(pb::MoveResponse { source_uids, target_uidvalidity, target_uids })
    }

    async fn fetch(&mut self, request: pb::FetchRequest) -> Result<Self::Fetch, StoreError> {
        let items = self.with(&request.mailbox, |mailbox| {
            // As the mailbox role: the mailbox's MODSEQ before this call's own \Seen, first.
            let mut items = vec![pb::fetch_response::Item::MailboxModseq(mailbox.highest_modseq)];
            let modseq = mailbox.highest_modseq + 1;
            let mut seen_set = false;
            for message in mailbox.messages.iter_mut().filter(|m| request.uids.contains(&m.uid)) {
                if request.changed_since.is_some_and(|since| message.modseq <= since) {
                    continue;
                }
                if request.set_seen && !message.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen")) {
                    message.flags.push("\\Seen".into());
                    message.modseq = modseq;
                    seen_set = true;
                }
                let sections: Vec<Vec<u8>> = request
                    .sections
                    .iter()
                    .map(|s| {
                        section(&message.octets, s).ok_or_else(|| StoreError::Cannot("section not modelled".into()))
                    })
                    .collect::<Result<_, _>>()?;
                let fetched = pb::FetchedMessage {
                    uid: message.uid,
                    flags: message.flags.clone(),
                    modseq: message.modseq,
                    internal_date_unix: DATE,
                    saved_unix: message.saved,
                    size: message.octets.len() as u64,
                    section_sizes: sections.iter().map(|s| s.len() as i64).collect(),
                    ..Default::default()
                };
                items.push(pb::fetch_response::Item::Message(fetched));
                for (index, data) in sections.into_iter().enumerate() {
                    let chunk = pb::SectionChunk { section: index as u32, data };
                    items.push(pb::fetch_response::Item::Chunk(chunk));
                }
            }
            if seen_set {
                mailbox.highest_modseq = modseq;
            }
            Ok(items)
        })?;
        let items: Vec<_> = items.into_iter().map(|item| Ok(pb::FetchResponse { item: Some(item) })).collect();
        Ok(futures::stream::iter(items))
    }
}

/// COPY and MOVE: the messages of `uids` that exist, added to `to` in order.
fn copy_messages(
    store: &MemoryStore,
    from: &str,
    to: &str,
    uids: &[u32],
    moving: bool,
) -> Result<(Vec<u32>, u32, Vec<u32>), StoreError> {
    let mut model = store.model();
    if !model.mailboxes.contains_key(to) {
        return Err(nonexistent(to));
    }
    let source = model.mailboxes.get_mut(from).ok_or_else(|| nonexistent(from))?;
    let copied: Vec<Message> = source.messages.iter().filter(|m| uids.contains(&m.uid)).cloned().collect();
    if moving && !copied.is_empty() {
        source.highest_modseq += 1;
        let modseq = source.highest_modseq;
        source.messages.retain(|m| !uids.contains(&m.uid));
        source.expunged.extend(copied.iter().map(|m| (m.uid, modseq)));
    }
    // A copy is saved now, whenever its original was (RFC 8514 §3).
    let clock = model.clock;
    let target = model.mailboxes.get_mut(to).expect("checked above");
    let target_uids = copied.iter().map(|m| target.add(m.octets.clone(), m.flags.clone(), clock)).collect();
    Ok((copied.iter().map(|m| m.uid).collect(), target.uidvalidity, target_uids))
}

/// A connection in memory: the client's bytes in `input`, everything the session sent in `sent`.
#[derive(Debug, Default)]
pub struct MemoryWire {
    pub input: Vec<u8>,
    pub output: Vec<u8>,
    pub sent: Vec<u8>,
}

impl MemoryWire {
    /// What was sent since the last call, as text.
    pub fn take_sent(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.sent)).into_owned()
    }
}

impl Wire for MemoryWire {
    fn input(&mut self) -> &mut Vec<u8> {
        &mut self.input
    }

    fn output(&mut self) -> &mut Vec<u8> {
        &mut self.output
    }

    async fn flush_if_large(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.sent.append(&mut self.output);
        Ok(())
    }

    async fn last_words(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
        self.sent.append(&mut self.output);
    }
}
