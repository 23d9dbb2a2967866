//! RFC 3501 §2.3.2 `\Recent` as one session sees it: the UIDs of its selected mailbox that it was the first
//! read-write session to be told of (or, read-only, that no such session had been told of yet). The store
//! decides which those are (`recent_from` in its SELECT and Changes replies); this keeps them for the life
//! of the selection, for `* n RECENT`, FETCH FLAGS and SEARCH RECENT, NEW and OLD. An IMAP4rev2 session
//! has none (RFC 9051 removed `\Recent`), and claims none from IMAP4rev1 sessions.

use std::collections::BTreeSet;

#[derive(Debug, Default)]
pub struct Recent {
    uids: BTreeSet<u32>,
}

impl Recent {
    /// SELECT's: the snapshot's UIDs at or above `from`.
    pub fn selected(uids: &[u32], from: u64) -> Recent {
        Recent { uids: uids.iter().copied().filter(|&uid| u64::from(uid) >= from).collect() }
    }

    /// A message new to the session, recent to it when at or above `from`.
    pub fn arrived(&mut self, uid: u32, from: u64) {
        if u64::from(uid) >= from {
            self.uids.insert(uid);
        }
    }

    pub fn expunged(&mut self, uid: u32) {
        self.uids.remove(&uid);
    }

    pub fn contains(&self, uid: u32) -> bool {
        self.uids.contains(&uid)
    }

    /// The RECENT response's number.
    pub fn count(&self) -> u32 {
        self.uids.len() as u32
    }

    /// In ascending order, for SEARCH.
    pub fn uids(&self) -> Vec<u32> {
        self.uids.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_takes_the_uids_from_the_mark_and_arrivals_below_it_are_not_recent() {
        let mut recent = Recent::selected(&[1, 4, 7, 9], 5);
        assert_eq!(recent.uids(), vec![7, 9]);
        recent.arrived(10, 11);
        recent.arrived(11, 11);
        assert!(!recent.contains(10));
        assert!(recent.contains(11));
        recent.expunged(7);
        assert_eq!((recent.count(), recent.uids()), (2, vec![9, 11]));
    }

    #[test]
    fn a_mark_past_every_uid_means_none_is_recent() {
        let recent = Recent::selected(&[1, 2, 3], u64::MAX);
        assert_eq!(recent.count(), 0);
    }
}
