//! The selected-mailbox view: the UIDs the client has been told of (message number n is `uids[n - 1]`),
//! the MODSEQ reported up to, pending expunges and the keywords announced.

use super::*;

impl Selected {
    /// The mailbox's HIGHESTMODSEQ as a call this session made found it. A change the session has not
    /// caught up with makes it out of date at once, though its event may not have arrived yet (the client
    /// can know of it: another session's command completed before this one began); its own changes do
    /// not. MODSEQs are dense (each change takes the next), so every one up to `seen` is accounted for.
    pub(super) fn saw_modseq(&mut self, seen: u64) {
        if (self.highest_modseq + 1..=seen).any(|m| !self.own_modseqs.contains(&m)) {
            self.dirty = true;
        }
    }

    /// RENAME keeps UIDVALIDITY: a session with the mailbox (or one below it) selected keeps it, by its
    /// new name.
    pub(super) fn follow_rename(&mut self, from: &str, to: &str) {
        if self.name == from {
            self.name = to.to_owned();
        } else if let Some(rest) = self.name.strip_prefix(from).filter(|rest| rest.starts_with(DELIMITER)) {
            self.name = format!("{to}{rest}");
        }
    }
}

/// The selected mailbox, as this session has told the client about it.
pub(super) struct Selected {
    pub(super) name: String,
    pub(super) read_only: bool,
    pub(super) uidvalidity: u32,
    pub(super) uids: Vec<u32>,
    pub(super) highest_modseq: u64,
    /// An event said the mailbox changed since the session last looked.
    pub(super) dirty: bool,
    /// MODSEQs of flag changes and expunges this session made and already told its client about: their
    /// events do not make the session out of date. Cleared whenever it catches up.
    pub(super) own_modseqs: std::collections::BTreeSet<u64>,
    /// The last SEARCH RETURN (SAVE) result, by UID, for `$` (RFC 5182).
    pub(super) saved: Vec<u32>,
    /// Expunged elsewhere, not yet announced (EXPUNGE must wait for a command that allows it).
    pub(super) vanished: std::collections::BTreeSet<u32>,
    /// The keywords the client has been told of in FLAGS, by their lowercase spelling (keywords match
    /// case-insensitively).
    pub(super) keywords: std::collections::BTreeMap<String, String>,
    /// The messages that are `\Recent` to this session (RFC 3501 §2.3.2).
    pub(super) recent: recent::Recent,
    /// RFC 5267 UPDATE contexts (`context.rs`), allocated only once a client asks for one.
    pub(super) contexts: Option<Box<super::update::Contexts>>,
}

/// RFC 3501 §7.2.6: a keyword the client has not been told of in a FLAGS response is announced, with
/// FLAGS and PERMANENTFLAGS, before a FETCH carries it; clients that keep the mailbox's list drop a
/// keyword they were never told of.
pub(super) fn announce_new_keywords(selected: &mut Selected, flags: &[String], server: &mut Server) {
    let mut new = false;
    for keyword in flags.iter().filter(|f| !f.starts_with('\\')) {
        if let std::collections::btree_map::Entry::Vacant(entry) = selected.keywords.entry(keyword.to_ascii_lowercase())
        {
            entry.insert(keyword.clone());
            new = true;
        }
    }
    if !new {
        return;
    }
    let mut flags = vec![Flag::Answered, Flag::Flagged, Flag::Deleted, Flag::Seen, Flag::Draft];
    flags.extend(
        selected.keywords.values().filter_map(|k| Flag::try_from(k.as_str()).ok().map(IntoStatic::into_static)),
    );
    server.enqueue_data(Data::Flags(flags.clone()));
    if !selected.read_only {
        let permanent = flags.into_iter().map(FlagPerm::Flag).chain([FlagPerm::Asterisk]).collect();
        let status = Status::ok(None, Some(Code::PermanentFlags(permanent)), "flags permitted").expect("ASCII");
        server.enqueue_status(status);
    }
}

/// A message's flags as FETCH FLAGS gives them, with `\Recent` when it is recent to the session.
pub(super) fn flags_of(names: &[String], recent: bool) -> Vec<FlagFetch<'static>> {
    let flags = names.iter().filter_map(|f| Flag::try_from(f.as_str()).ok()).map(|f| FlagFetch::Flag(f.into_static()));
    flags.chain(recent.then_some(FlagFetch::Recent)).collect()
}
