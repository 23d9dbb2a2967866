//! Validated identifiers shared by the roles: the mail domain's [`Domain`], [`EmailAddress`] and
//! [`QueueId`] (with plus-addressing's [`RecipientDelimiter`]), and mail at rest's [`AccountId`], [`MailboxId`], [`Uid`] and [`MailboxName`].
//!
//! A value of these types is valid by construction, so code that holds one never re-checks it. This crate
//! does no I/O and knows nothing of the wire formats that carry these values: the roles convert at their
//! edges.

mod delimiter;
mod ids;
mod mailbox_name;

use std::fmt;
use std::str::FromStr;

pub use delimiter::{BadDelimiter, RecipientDelimiter};
pub use ids::{AccountId, BadUid, MailboxId, Uid};
pub use mailbox_name::{MailboxName, MailboxNameError};

/// RFC 5321 §4.5.3.1.1: 64 octets of local part.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: 255 octets of domain.
pub const MAX_DOMAIN: usize = 255;
/// RFC 1035 §2.3.4: 63 octets per label.
const MAX_LABEL: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address has no @domain")]
    MissingDomain,
    #[error("local part is empty")]
    EmptyLocalPart,
    #[error("local part is longer than {MAX_LOCAL_PART} octets")]
    LocalPartTooLong,
    #[error("local part contains a character not allowed here")]
    BadLocalPart,
    #[error("domain is empty")]
    EmptyDomain,
    #[error("domain is longer than {MAX_DOMAIN} octets")]
    DomainTooLong,
    #[error("domain label {0:?} is not valid")]
    BadLabel(String),
}

/// A domain name, stored in lower case, without a trailing dot. Address literals (`[192.0.2.1]`) are not
/// domains: mail for them is never local.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Domain {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.is_empty() {
            return Err(AddressError::EmptyDomain);
        }
        if s.len() > MAX_DOMAIN {
            return Err(AddressError::DomainTooLong);
        }
        for label in s.split('.') {
            let ok = !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
                // Non-ASCII labels are U-labels (RFC 6531); their validity is the resolver's business.
                && label.chars().all(|c| c.is_alphanumeric() || c == '-');
            if !ok {
                return Err(AddressError::BadLabel(label.to_owned()));
            }
        }
        Ok(Domain(s.to_lowercase()))
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mailbox address `local@domain`. The local part keeps its case (RFC 5321 §2.4 says only the
/// destination host may interpret it); lookups fold it through [`EmailAddress::lookup_key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    local: String,
    domain: Domain,
}

impl EmailAddress {
    pub fn local_part(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The form under which the directory stores and finds an address: both parts in lower case, as
    /// Postfix and Dovecot match them by default.
    pub fn lookup_key(&self) -> String {
        format!("{}@{}", self.local.to_lowercase(), self.domain)
    }
}

impl FromStr for EmailAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (local, domain) = s.rsplit_once('@').ok_or(AddressError::MissingDomain)?;
        if local.is_empty() {
            return Err(AddressError::EmptyLocalPart);
        }
        if local.len() > MAX_LOCAL_PART {
            return Err(AddressError::LocalPartTooLong);
        }
        let quoted = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
        let allowed = |c: char| {
            // RFC 5322 §3.2.3 atext and the dot; non-ASCII is RFC 6531 UTF-8 atext.
            c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
        };
        let ok = if quoted {
            local[1..local.len() - 1].chars().all(|c| c != '\r' && c != '\n')
        } else {
            local.chars().all(allowed) && !local.starts_with('.') && !local.ends_with('.') && !local.contains("..")
        };
        if !ok {
            return Err(AddressError::BadLocalPart);
        }
        Ok(EmailAddress { local: local.to_owned(), domain: domain.parse()? })
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// The id smtp-ingress gives an accepted message. It names the envelope, the message's body in the
/// object store (under `<id>.<suffix>`) and its deliveries. Time-ordered (UUIDv7), 32 lower-case hex
/// digits; DSNs get ids derived from their message's instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(String);

impl QueueId {
    pub fn generate() -> Self {
        QueueId(uuid::Uuid::now_v7().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue id must be 32 lower-case hex digits")]
pub struct BadQueueId;

impl FromStr for QueueId {
    type Err = BadQueueId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(QueueId(s.to_owned()))
        } else {
            Err(BadQueueId)
        }
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_lowercased_and_validated() {
        assert_eq!("Example.ORG.".parse::<Domain>().unwrap().as_str(), "example.org");
        assert!("exa mple.org".parse::<Domain>().is_err());
        assert!("-bad.org".parse::<Domain>().is_err());
        assert!("a..b".parse::<Domain>().is_err());
        assert!("".parse::<Domain>().is_err());
        assert!(format!("{}.org", "a".repeat(64)).parse::<Domain>().is_err());
        assert!("bücher.example".parse::<Domain>().is_ok());
    }

    #[test]
    fn addresses_keep_local_case_but_fold_for_lookup() {
        let a: EmailAddress = "Alice.Smith@Example.org".parse().unwrap();
        assert_eq!(a.to_string(), "Alice.Smith@example.org");
        assert_eq!(a.lookup_key(), "alice.smith@example.org");
        assert_eq!(a.local_part(), "Alice.Smith");
    }

    #[test]
    fn bad_addresses_are_refused() {
        for bad in ["nodomain", "@example.org", "a..b@example.org", ".a@example.org", "a b@example.org", "a@"] {
            assert!(bad.parse::<EmailAddress>().is_err(), "{bad}");
        }
        assert!(format!("{}@example.org", "a".repeat(65)).parse::<EmailAddress>().is_err());
        assert!("\"a b\"@example.org".parse::<EmailAddress>().is_ok());
    }

    #[test]
    fn queue_ids_round_trip_and_sort_by_time() {
        let a = QueueId::generate();
        let b = QueueId::generate();
        assert!(a < b);
        assert_eq!(a.as_str().parse::<QueueId>().unwrap(), a);
        assert!("XYZ".parse::<QueueId>().is_err());
    }
}
