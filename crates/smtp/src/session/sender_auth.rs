//! Sender authentication on port 25: the session asks for SPF (RFC 7208) at MAIL FROM and turns the result
//! into a reply by policy; after the body, the connection verifies DKIM, ARC and DMARC and asks the session
//! for the reply to a DMARC failure it enforces. The DNS lookups are the connection's: this file only
//! decides what each result means to the client.

use std::fmt;
use std::mem;
use std::str::FromStr;

use mailbus_address::EmailAddress;

use super::{MailFrom, ReversePath, Session, State, bad_sequence};
use crate::reply::{Enhanced, Reply};

/// What a check does: nothing, tag the message with its result (OpenDKIM, OpenDMARC and Stalwart's
/// default), or refuse what fails it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Enforcement {
    Off,
    #[default]
    Tag,
    Enforce,
}

impl Enforcement {
    pub fn is_on(self) -> bool {
        self != Enforcement::Off
    }
}

impl FromStr for Enforcement {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "off" => Ok(Enforcement::Off),
            "tag" => Ok(Enforcement::Tag),
            "enforce" => Ok(Enforcement::Enforce),
            _ => Err(format!("expected off, tag or enforce, not {text:?}")),
        }
    }
}

/// The result of an SPF check (RFC 7208 §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfVerdict {
    None,
    Neutral,
    Pass,
    Fail,
    SoftFail,
    TempError,
    PermError,
}

impl fmt::Display for SpfVerdict {
    /// As RFC 8601 §2.7.2 and RFC 7208 §9.1 spell it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpfVerdict::None => "none",
            SpfVerdict::Neutral => "neutral",
            SpfVerdict::Pass => "pass",
            SpfVerdict::Fail => "fail",
            SpfVerdict::SoftFail => "softfail",
            SpfVerdict::TempError => "temperror",
            SpfVerdict::PermError => "permerror",
        })
    }
}

/// MAIL FROM on port 25 waits for SPF: check the HELO identity and the sender's domain (RFC 7208 §2.3,
/// §2.4; the HELO identity alone for the null sender), then send what [`Session::spf_verified`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfCheck {
    /// The name the client gave in HELO or EHLO.
    pub helo: String,
    /// `None` for the null sender.
    pub sender: Option<EmailAddress>,
    from: MailFrom,
}

impl Session {
    /// Whether MAIL FROM on this listener waits for SPF.
    pub(super) fn spf_check(&self, helo: &str, from: &MailFrom) -> Option<SpfCheck> {
        if !self.config.spf.is_on() || self.user.is_some() {
            return None;
        }
        let sender = match &from.path {
            ReversePath::Address(address) => Some(address.clone()),
            ReversePath::Null => None,
        };
        Some(SpfCheck { helo: helo.to_owned(), sender, from: from.clone() })
    }

    /// The result of [`Action::VerifySpf`]. Tagging accepts every sender; enforcing refuses a `fail`
    /// (`550 5.7.23`, RFC 7372 §3.2) and defers a `temperror` (`451 4.7.24`), as RFC 7208 §8.4 and §8.6
    /// allow. `softfail`, `neutral` and `permerror` are only tagged: RFC 7208 §8.5 and §8.7 leave them to
    /// local policy, and rejecting a broken record would punish its recipients.
    pub fn spf_verified(&mut self, check: SpfCheck, verdict: SpfVerdict) -> Reply {
        let helo = match mem::take(&mut self.state) {
            State::Greeted { helo } => helo,
            other => {
                self.state = other;
                return self.note(bad_sequence("no MAIL command in progress"));
            }
        };
        let identity = match &check.sender {
            Some(address) => address.to_string(),
            None => format!("postmaster@{}", check.helo),
        };
        let refusal = match (self.config.spf, verdict) {
            (Enforcement::Enforce, SpfVerdict::Fail) => Some(Reply::new(
                550,
                Enhanced(5, 7, 23),
                format!("<{identity}>: SPF validation failed: the domain does not designate this client"),
            )),
            (Enforcement::Enforce, SpfVerdict::TempError) => Some(Reply::new(
                451,
                Enhanced(4, 7, 24),
                format!("<{identity}>: SPF validation error, try again later"),
            )),
            _ => None,
        };
        match refusal {
            Some(reply) => {
                self.state = State::Greeted { helo };
                self.note(reply)
            }
            None => {
                self.state = State::Mail { helo, from: check.from };
                Reply::new(250, Enhanced(2, 1, 0), "Ok")
            }
        }
    }

    /// After the body: the author's domain publishes `p=reject` and the message failed DMARC (RFC 7489
    /// §6.6.3, §7.3: 550 5.7.1). Nothing was queued.
    pub fn dmarc_rejected(&mut self, domain: &str) -> Reply {
        self.note(Reply::new(550, Enhanced(5, 7, 1), format!("Email rejected per DMARC policy for {domain}")))
    }

    /// After the body: a DNS lookup the enforced policy depends on failed for now; the client keeps the
    /// message and tries again.
    pub fn dmarc_deferred(&mut self, domain: &str) -> Reply {
        self.note(Reply::new(
            451,
            Enhanced(4, 7, 1),
            format!("DMARC policy of {domain} could not be evaluated, try again later"),
        ))
    }
}
