//! MAIL (RFC 5321 §4.1.1.2) with its parameters, and in submission the check that the authenticated
//! account may use the sender address.

use std::mem;

use mailbus_address::EmailAddress;
use smtp_proto::{
    MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME, MAIL_BY_NOTIFY, MAIL_BY_RETURN, MAIL_BY_TRACE, MAIL_CONPERM,
    MAIL_REQUIRETLS, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8,
};

use super::{
    Action, BodyType, DsnReturn, Helo, MailFrom, Mode, ReversePath, SenderCheck, Session, State, bad_sequence,
    too_large, unsupported_parameter,
};
use crate::reply::{Enhanced, Reply};

/// Parameters smtp-proto parses but we do not advertise.
const UNADVERTISED_FLAGS: &[(u64, &str)] = &[
    (MAIL_BODY_BINARYMIME, "BODY=BINARYMIME"),
    (MAIL_REQUIRETLS, "REQUIRETLS"),
    (MAIL_CONPERM, "CONPERM"),
    (MAIL_BY_NOTIFY | MAIL_BY_RETURN | MAIL_BY_TRACE, "BY"),
];

impl Session {
    pub(super) fn mail(&mut self, from: smtp_proto::MailFrom<String>) -> Action {
        let helo = match mem::take(&mut self.state) {
            State::Greeted { helo } => helo,
            other => {
                let reply = match other {
                    State::Connected => bad_sequence("send HELO or EHLO first"),
                    _ => bad_sequence("nested MAIL command"),
                };
                self.state = other;
                return Action::Reply(reply);
            }
        };
        let user = match (self.config.mode, &self.user) {
            (Mode::Submission, None) => {
                self.state = State::Greeted { helo };
                // RFC 4954 §6.
                return Action::Reply(Reply::new(530, Enhanced(5, 7, 0), "Authentication required"));
            }
            (_, user) => user.clone(),
        };
        let parsed = match self.parse_mail_from(&from, &helo) {
            Ok(parsed) => parsed,
            Err(reply) => {
                self.state = State::Greeted { helo };
                return Action::Reply(reply);
            }
        };
        match user {
            // The null sender claims no address, but its message still counts against the limits.
            Some(user) if self.config.mode == Mode::Submission => {
                let address = match &parsed.path {
                    ReversePath::Address(address) => Some(address.clone()),
                    ReversePath::Null => None,
                };
                self.state = State::Greeted { helo };
                Action::CheckSender(SenderCheck { user, address, from: parsed })
            }
            _ => match self.spf_check(&helo.name, &parsed) {
                Some(check) => {
                    self.state = State::Greeted { helo };
                    Action::VerifySpf(check)
                }
                None => {
                    self.state = State::Mail { helo, from: parsed };
                    Action::Reply(sender_ok())
                }
            },
        }
    }

    fn parse_mail_from(&self, from: &smtp_proto::MailFrom<String>, helo: &Helo) -> Result<MailFrom, Reply> {
        self.check_mail_parameters(from, helo)?;
        // RFC 1870 §6.2: a declared size over the limit is refused before any data is sent.
        if from.size > self.config.max_message_size {
            return Err(too_large());
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        let path = if from.address.is_empty() {
            ReversePath::Null
        } else {
            ReversePath::Address(parse_sender(&from.address, smtputf8)?)
        };
        let ret = if from.flags & MAIL_RET_FULL != 0 {
            Some(DsnReturn::Full)
        } else if from.flags & MAIL_RET_HDRS != 0 {
            Some(DsnReturn::Headers)
        } else {
            None
        };
        Ok(MailFrom {
            path,
            body_type: if from.flags & MAIL_BODY_8BITMIME != 0 { BodyType::EightBitMime } else { BodyType::SevenBit },
            smtputf8,
            env_id: from.env_id.clone(),
            ret,
        })
    }

    fn check_mail_parameters(&self, from: &smtp_proto::MailFrom<String>, helo: &Helo) -> Result<(), Reply> {
        let has_parameters = from.flags != 0 || from.size != 0 || from.env_id.is_some() || from.auth.is_some();
        if !helo.extended && has_parameters {
            return Err(unsupported_parameter("MAIL parameters need EHLO"));
        }
        if let Some((_, name)) = UNADVERTISED_FLAGS.iter().find(|(flag, _)| from.flags & flag != 0) {
            return Err(unsupported_parameter(&format!("{name} parameter not supported")));
        }
        let unadvertised = [
            (from.trans_id.is_some(), "TRANSID"),
            (from.mtrk.is_some(), "MTRK"),
            (from.solicit.is_some(), "SOLICIT"),
            (from.hold_for != 0 || from.hold_until != 0, "FUTURERELEASE"),
            (from.mt_priority != 0, "MT-PRIORITY"),
            // RFC 4954 §5: AUTH= is part of the AUTH extension, and taken (then ignored) only where offered.
            (from.auth.is_some() && !self.auth_offered(), "AUTH"),
        ];
        match unadvertised.iter().find(|(present, _)| *present) {
            Some((_, name)) => Err(unsupported_parameter(&format!("{name} parameter not supported"))),
            None => Ok(()),
        }
    }

    /// The directory's answer to [`Action::CheckSender`]: `Some(true)` if the account may send as the
    /// address, `Some(false)` if not, `None` if the directory could not be asked.
    pub fn sender_checked(&mut self, check: SenderCheck, allowed: Option<bool>) -> Reply {
        let helo = match mem::take(&mut self.state) {
            State::Greeted { helo } => helo,
            other => {
                self.state = other;
                return self.note(bad_sequence("no MAIL command in progress"));
            }
        };
        match allowed {
            Some(true) => {
                self.state = State::Mail { helo, from: check.from };
                sender_ok()
            }
            Some(false) => {
                self.state = State::Greeted { helo };
                let address = check.address.as_ref().map(ToString::to_string).unwrap_or_default();
                let text = format!("<{address}>: Sender address rejected: not owned by user {}", check.user.address);
                self.note(Reply::new(553, Enhanced(5, 7, 1), text))
            }
            None => {
                self.state = State::Greeted { helo };
                self.note(Reply::new(451, Enhanced(4, 3, 0), "Sender lookup failed, try again later"))
            }
        }
    }
}

impl Session {
    /// The answer to [`Action::CheckSender`] when the account or its client address has sent as many
    /// messages as its window allows: `451 4.7.1` (RFC 3463: delivery not authorized, try later), as
    /// Postfix's `smtpd_client_message_rate_limit` answers at MAIL FROM.
    pub fn sender_rate_limited(&mut self, check: SenderCheck, explanation: &str) -> Reply {
        let helo = match mem::take(&mut self.state) {
            State::Greeted { helo } => helo,
            other => {
                self.state = other;
                return self.note(bad_sequence("no MAIL command in progress"));
            }
        };
        self.state = State::Greeted { helo };
        drop(check);
        self.note(rate_limited(explanation))
    }
}

/// RFC 3463 §3.8 X.7.1: not authorized, and 4xx: the same message may be sent later.
pub(super) fn rate_limited(explanation: &str) -> Reply {
    Reply::new(451, Enhanced(4, 7, 1), explanation)
}

fn parse_sender(text: &str, smtputf8: bool) -> Result<EmailAddress, Reply> {
    if !text.is_ascii() && !smtputf8 {
        return Err(needs_smtputf8());
    }
    text.parse().map_err(|error| Reply::new(553, Enhanced(5, 1, 7), format!("Bad sender address: {error}")))
}

/// RFC 6531 §3.5: a non-ASCII address in a transaction that did not ask for SMTPUTF8.
pub(super) fn needs_smtputf8() -> Reply {
    Reply::new(553, Enhanced(5, 6, 7), "Non-ASCII addresses need the SMTPUTF8 parameter")
}

fn sender_ok() -> Reply {
    Reply::new(250, Enhanced(2, 1, 0), "Ok")
}
