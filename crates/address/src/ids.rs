//! The numbers that name mail at rest: [`AccountId`], [`MailboxId`] and [`Uid`]. Each is a type of its own,
//! so that an account id cannot be passed where a mailbox id or a UID belongs.

use std::fmt;
use std::num::NonZeroU32;

/// An account, as the directory numbers it. Any `i64` is one: only the database knows which name an
/// account, and an id that names none finds nothing, as an unknown account's would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(i64);

impl AccountId {
    pub const fn new(id: i64) -> Self {
        AccountId(id)
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl From<i64> for AccountId {
    fn from(id: i64) -> Self {
        AccountId(id)
    }
}

impl From<AccountId> for i64 {
    fn from(id: AccountId) -> Self {
        id.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A mailbox's row in the store. It never leaves the mailbox role: callers name mailboxes by
/// [`MailboxName`](crate::MailboxName) within an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxId(i64);

impl MailboxId {
    pub const fn new(id: i64) -> Self {
        MailboxId(id)
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl From<i64> for MailboxId {
    fn from(id: i64) -> Self {
        MailboxId(id)
    }
}

impl From<MailboxId> for i64 {
    fn from(id: MailboxId) -> Self {
        id.0
    }
}

impl fmt::Display for MailboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A message's unique identifier within its mailbox (RFC 9051 §2.3.1.1): a 32-bit number, never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid(NonZeroU32);

/// A number that is not a UID: 0, or outside 32 bits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a UID (1 to 4294967295)")]
pub struct BadUid(pub i64);

impl Uid {
    /// `None` for 0, which names no message.
    pub const fn new(uid: u32) -> Option<Self> {
        match NonZeroU32::new(uid) {
            Some(uid) => Some(Uid(uid)),
            None => None,
        }
    }

    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

impl TryFrom<u32> for Uid {
    type Error = BadUid;

    fn try_from(uid: u32) -> Result<Self, Self::Error> {
        Uid::new(uid).ok_or(BadUid(0))
    }
}

/// The store keeps UIDs in 64-bit columns (UIDNEXT may be 2^32, one past the last UID).
impl TryFrom<i64> for Uid {
    type Error = BadUid;

    fn try_from(uid: i64) -> Result<Self, Self::Error> {
        u32::try_from(uid).ok().and_then(Uid::new).ok_or(BadUid(uid))
    }
}

impl From<Uid> for u32 {
    fn from(uid: Uid) -> Self {
        uid.get()
    }
}

impl From<Uid> for i64 {
    fn from(uid: Uid) -> Self {
        i64::from(uid.get())
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_nonzero_and_32_bit() {
        assert_eq!(Uid::new(7).map(Uid::get), Some(7));
        assert_eq!(Uid::new(0), None);
        assert_eq!(Uid::try_from(0u32), Err(BadUid(0)));
        assert_eq!(Uid::try_from(4_294_967_295i64).map(u32::from), Ok(u32::MAX));
        assert_eq!(Uid::try_from(4_294_967_296i64), Err(BadUid(4_294_967_296)));
        assert_eq!(Uid::try_from(-1i64), Err(BadUid(-1)));
        assert_eq!(i64::from(Uid::new(9).unwrap()), 9);
        assert_eq!(Uid::new(42).unwrap().to_string(), "42");
    }

    #[test]
    fn ids_keep_their_number() {
        assert_eq!(i64::from(AccountId::from(5)), 5);
        assert_eq!(MailboxId::new(-3).get(), -3);
        assert_eq!(AccountId::new(12).to_string(), "12");
    }
}
