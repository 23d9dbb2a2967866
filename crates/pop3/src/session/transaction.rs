//! The TRANSACTION state's data (RFC 1939 §5): the maildrop as it was at login, with the messages the
//! client has marked deleted, and the responses that read it.

use std::mem;

use super::{Action, Maildrop, MessageInfo};
use crate::response::Response;

#[derive(Debug)]
pub(super) struct Transaction {
    maildrop: Maildrop,
    /// `deleted[n - 1]` says whether message number `n` is marked deleted. Nothing is removed until
    /// UPDATE (RFC 1939 §6), so RSET can take every mark back.
    deleted: Vec<bool>,
}

impl Transaction {
    pub(super) fn new(maildrop: Maildrop) -> Self {
        let deleted = vec![false; maildrop.messages.len()];
        Transaction { maildrop, deleted }
    }

    /// "maildrop has N messages (M octets)", counting only messages not marked deleted.
    pub(super) fn summary(&self) -> String {
        let (count, octets) = self.totals();
        format!("maildrop has {count} messages ({octets} octets)")
    }

    /// RFC 1939 §5 STAT: "+OK nn mm", deleted messages left out.
    pub(super) fn stat(&self) -> Response {
        let (count, octets) = self.totals();
        Response::ok(format!("{count} {octets}"))
    }

    /// RFC 1939 §5 LIST: one message's size, or a scan listing of every message not marked deleted.
    pub(super) fn list(&self, msg: Option<u32>) -> Response {
        if let Some(msg) = msg {
            return self.live(msg).map_or_else(no_such_message, |info| Response::ok(format!("{msg} {}", info.size)));
        }
        let (count, octets) = self.totals();
        Response::MultiLine {
            first: format!("{count} messages ({octets} octets)"),
            lines: self.numbered().map(|(n, info)| format!("{n} {}", info.size)).collect(),
        }
    }

    /// RFC 1939 §7 UIDL: one message's unique id, or a listing of every message not marked deleted.
    pub(super) fn uidl(&self, msg: Option<u32>) -> Response {
        if let Some(msg) = msg {
            return self
                .live(msg)
                .map_or_else(no_such_message, |info| Response::ok(format!("{msg} {}", self.unique_id(info))));
        }
        Response::MultiLine {
            first: "unique-id listing follows".into(),
            lines: self.numbered().map(|(n, info)| format!("{n} {}", self.unique_id(info))).collect(),
        }
    }

    /// RETR and TOP: the connection task streams the message.
    pub(super) fn retrieve(&self, msg: u32, top_lines: Option<u32>) -> Action {
        match self.live(msg) {
            Some(info) => Action::Retrieve { uid: info.uid, size: info.size, top_lines },
            None => Action::Reply(no_such_message()),
        }
    }

    /// RFC 1939 §5 DELE: marks the message; it is removed only in UPDATE.
    pub(super) fn dele(&mut self, msg: u32) -> Response {
        let Some(index) = self.index(msg) else {
            return no_such_message();
        };
        if mem::replace(&mut self.deleted[index], true) {
            return Response::err(format!("message {msg} already deleted"));
        }
        Response::ok(format!("message {msg} deleted"))
    }

    /// RFC 1939 §5 RSET: unmarks every message.
    pub(super) fn rset(&mut self) -> Response {
        self.deleted.fill(false);
        Response::ok(self.summary())
    }

    /// The uids to expunge in UPDATE, in message-number order.
    pub(super) fn deleted_uids(&self) -> Vec<u32> {
        let messages = self.maildrop.messages.iter().zip(&self.deleted);
        messages.filter(|(_, deleted)| **deleted).map(|(info, _)| info.uid).collect()
    }

    /// RFC 1939 §7 UIDL: a unique id must never change for a message and never be given to another one.
    /// A uid is unique within one uidvalidity, so the pair is unique for the mailbox's whole life.
    fn unique_id(&self, info: &MessageInfo) -> String {
        format!("{}.{}", self.maildrop.uidvalidity, info.uid)
    }

    /// Messages not marked deleted, with their message numbers.
    fn numbered(&self) -> impl Iterator<Item = (usize, &MessageInfo)> {
        let messages = self.maildrop.messages.iter().zip(&self.deleted).enumerate();
        messages.filter(|(_, (_, deleted))| !**deleted).map(|(index, (info, _))| (index + 1, info))
    }

    fn totals(&self) -> (usize, u64) {
        // Saturating: sizes come from the store, and a sum must not panic in a debug build.
        self.numbered().fold((0, 0), |(count, octets), (_, info)| (count + 1, octets.saturating_add(info.size)))
    }

    /// The index of message number `msg`, if it exists, deleted or not.
    fn index(&self, msg: u32) -> Option<usize> {
        let index = usize::try_from(msg).ok()?.checked_sub(1)?;
        (index < self.maildrop.messages.len()).then_some(index)
    }

    /// RFC 1939 §5: a message marked deleted may not be referred to, so it counts as absent.
    fn live(&self, msg: u32) -> Option<&MessageInfo> {
        let index = self.index(msg).filter(|&index| !self.deleted[index])?;
        Some(&self.maildrop.messages[index])
    }
}

fn no_such_message() -> Response {
    Response::err("no such message")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transaction() -> Transaction {
        Transaction::new(Maildrop {
            uidvalidity: 9,
            messages: vec![
                MessageInfo { uid: 3, size: 100 },
                MessageInfo { uid: 8, size: 20 },
                MessageInfo { uid: 12, size: 5 },
            ],
        })
    }

    #[test]
    fn message_numbers_outside_the_maildrop_are_absent() {
        let mut t = transaction();
        for msg in [0, 4, u32::MAX] {
            assert_eq!(t.list(Some(msg)), no_such_message());
            assert_eq!(t.uidl(Some(msg)), no_such_message());
            assert_eq!(t.retrieve(msg, None), Action::Reply(no_such_message()));
            assert_eq!(t.dele(msg), no_such_message());
        }
        assert_eq!(t.deleted_uids(), Vec::<u32>::new());
    }

    #[test]
    fn deleted_uids_follow_message_numbers_not_deletion_order() {
        let mut t = transaction();
        assert_eq!(t.dele(3), Response::ok("message 3 deleted"));
        assert_eq!(t.dele(1), Response::ok("message 1 deleted"));
        assert_eq!(t.deleted_uids(), vec![3, 12]);
        assert_eq!(t.summary(), "maildrop has 1 messages (20 octets)");
        assert_eq!(t.rset(), Response::ok("maildrop has 3 messages (125 octets)"));
        assert_eq!(t.deleted_uids(), Vec::<u32>::new());
    }

    #[test]
    fn octet_totals_saturate_instead_of_overflowing() {
        let t = Transaction::new(Maildrop {
            uidvalidity: 1,
            messages: vec![MessageInfo { uid: 1, size: u64::MAX }, MessageInfo { uid: 2, size: u64::MAX }],
        });
        assert_eq!(t.stat(), Response::ok(format!("2 {}", u64::MAX)));
    }
}
