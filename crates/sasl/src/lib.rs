//! The SASL pieces that SMTP AUTH (RFC 4954), POP3 AUTH (RFC 5034) and IMAP AUTHENTICATE (RFC 9051) share:
//! a [`Secret`] that never prints, the lenient base64 clients send, and the PLAIN mechanism (RFC 4616).
//! Sans-I/O; the protocol crates decide the exchange and the replies.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

/// When a password may cross a connection without TLS, for every protocol that takes one (SMTP AUTH,
/// IMAP LOGIN and AUTHENTICATE, POP3 USER/PASS and AUTH, ManageSieve AUTHENTICATE). The connection
/// decides, per peer, and gives its session only the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PlaintextAuth {
    /// RFC 2595 §4, RFC 8314: passwords travel only inside TLS.
    #[default]
    Never,
    /// Only from the machine itself, where nothing travels over a network.
    Loopback,
    /// Development only.
    Always,
}

impl PlaintextAuth {
    /// Whether a client at `peer` may log in without TLS. An IPv4-mapped IPv6 address counts as its IPv4
    /// address, so `::ffff:127.0.0.1` is loopback.
    pub fn allows(self, peer: IpAddr) -> bool {
        match self {
            PlaintextAuth::Never => false,
            PlaintextAuth::Loopback => peer.to_canonical().is_loopback(),
            PlaintextAuth::Always => true,
        }
    }
}

impl std::str::FromStr for PlaintextAuth {
    type Err = String;

    /// `never`, `loopback` or `always`, as the `*_PLAINTEXT_AUTH` settings spell them. The yes-or-no
    /// spellings (`false`/`no`/`0`, `true`/`yes`/`1`) are read as `never` and `always`:
    /// `MAILBUS_SMTP_PLAINTEXT_AUTH` used to be a yes-or-no setting.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "never" | "false" | "no" | "0" => Ok(PlaintextAuth::Never),
            "loopback" => Ok(PlaintextAuth::Loopback),
            "always" | "true" | "yes" | "1" => Ok(PlaintextAuth::Always),
            _ => Err("must be never, loopback or always".to_owned()),
        }
    }
}

/// A password. Its `Debug` form hides it, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// RFC 4648 base64; padding optional, as some clients leave it out.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidBase64;

pub fn decode_base64(text: impl AsRef<[u8]>) -> Result<Vec<u8>, InvalidBase64> {
    BASE64.decode(text).map_err(|_| InvalidBase64)
}

/// What a PLAIN response proves: the authentication identity and its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plain {
    pub username: String,
    pub password: Secret,
}

/// Why a PLAIN response was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainError {
    /// Not `[authzid] NUL authcid NUL passwd` in UTF-8, or no authcid.
    Malformed,
    /// An authzid other than the authcid: acting for another user, which nobody may (IMAP answers
    /// `NO [AUTHORIZATIONFAILED]`, RFC 5530).
    ActsForAnother,
}

/// RFC 4616 §2: `[authzid] NUL authcid NUL passwd`, UTF-8. We let nobody act for another, so the authzid
/// must be empty or the authcid itself.
pub fn parse_plain(response: &[u8]) -> Option<Plain> {
    parse_plain_checked(response).ok()
}

/// [`parse_plain`], saying why a response is refused.
pub fn parse_plain_checked(response: &[u8]) -> Result<Plain, PlainError> {
    let text = std::str::from_utf8(response).map_err(|_| PlainError::Malformed)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(PlainError::Malformed);
    };
    if authcid.is_empty() {
        return Err(PlainError::Malformed);
    }
    if !(authzid.is_empty() || authzid == authcid) {
        return Err(PlainError::ActsForAnother);
    }
    Ok(Plain { username: authcid.to_owned(), password: Secret::new(password) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_responses_parse_and_refuse_acting_for_another() {
        let ok = parse_plain(b"\0alice\0pass word").unwrap();
        assert_eq!((ok.username.as_str(), ok.password.expose()), ("alice", "pass word"));
        assert!(parse_plain(b"alice\0alice\0pw").is_some());
        for bad in [&b"bob\0alice\0pw"[..], b"\0\0pw", b"\0alice", b"\0alice\0pw\0x", b"\0al\xffice\0pw"] {
            assert!(parse_plain(bad).is_none(), "{bad:?}");
        }
        assert_eq!(format!("{:?}", ok.password), "Secret(***)");
        assert_eq!(parse_plain_checked(b"bob\0alice\0pw"), Err(PlainError::ActsForAnother));
        assert_eq!(parse_plain_checked(b"\0alice"), Err(PlainError::Malformed));
    }

    #[test]
    fn plaintext_policy_by_peer() {
        let peers: [(&str, [bool; 3]); 6] = [
            ("127.0.0.1", [false, true, true]),
            ("127.8.9.10", [false, true, true]),
            ("::1", [false, true, true]),
            ("::ffff:127.0.0.1", [false, true, true]),
            ("192.0.2.1", [false, false, true]),
            ("2001:db8::1", [false, false, true]),
        ];
        for (peer, allowed) in peers {
            let peer: IpAddr = peer.parse().unwrap();
            let policies = [PlaintextAuth::Never, PlaintextAuth::Loopback, PlaintextAuth::Always];
            assert_eq!(policies.map(|policy| policy.allows(peer)), allowed, "{peer}");
        }
        assert_eq!(PlaintextAuth::default(), PlaintextAuth::Never);
    }

    #[test]
    fn plaintext_policy_reads_the_old_yes_or_no_spelling() {
        for (text, policy) in [
            ("never", PlaintextAuth::Never),
            ("false", PlaintextAuth::Never),
            ("loopback", PlaintextAuth::Loopback),
            ("always", PlaintextAuth::Always),
            ("true", PlaintextAuth::Always),
            ("Yes", PlaintextAuth::Always),
            ("1", PlaintextAuth::Always),
            ("NO", PlaintextAuth::Never),
            ("0", PlaintextAuth::Never),
        ] {
            assert_eq!(text.parse::<PlaintextAuth>(), Ok(policy), "{text}");
        }
        assert!("maybe".parse::<PlaintextAuth>().is_err());
    }

    #[test]
    fn base64_padding_is_optional() {
        assert_eq!(decode_base64(b"YQ==").unwrap(), b"a");
        assert_eq!(decode_base64(b"YQ").unwrap(), b"a");
        assert!(decode_base64(b"!!").is_err());
    }
}
