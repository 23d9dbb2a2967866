//! RCPT (RFC 5321 §4.1.1.3) with the DSN parameters (RFC 3461 §4), and the directory's verdict.

use std::mem;

use mailbus_address::EmailAddress;
use smtp_proto::{
    RCPT_CONNEG, RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS, RCPT_RRVS_CONTINUE,
    RCPT_RRVS_REJECT,
};

use super::mail::{needs_smtputf8, rate_limited};
use super::{Action, Recipient, RecipientCheck, Session, State, Verdict, bad_sequence, unsupported_parameter};
use crate::command::POSTMASTER;
use crate::reply::{Enhanced, Reply};

impl Session {
    pub(super) fn rcpt(&mut self, to: smtp_proto::RcptTo<String>) -> Action {
        let (helo, from, recipients) = match &self.state {
            State::Mail { helo, from } => (helo, from, &[][..]),
            State::Rcpt { helo, from, recipients } => (helo, from, recipients.as_slice()),
            State::Chunking { .. } | State::ChunkingOverSize { .. } => {
                return Action::Reply(bad_sequence("RCPT after BDAT"));
            }
            _ => return Action::Reply(bad_sequence("need MAIL command")),
        };
        if !helo.extended && (to.flags != 0 || to.orcpt.is_some()) {
            return Action::Reply(unsupported_parameter("RCPT parameters need EHLO"));
        }
        let recipient = match self.parse_recipient(to, from.smtputf8) {
            Ok(recipient) => recipient,
            Err(reply) => return Action::Reply(reply),
        };
        // The same recipient twice gets one copy, and costs no second lookup.
        if recipients.iter().any(|r| r.address.lookup_key() == recipient.address.lookup_key()) {
            return Action::Reply(recipient_ok());
        }
        if recipients.len() >= self.config.max_recipients {
            // RFC 5321 §4.5.3.1.10: 452 tells the client to send the rest in a later transaction.
            return Action::Reply(Reply::new(452, Enhanced(4, 5, 3), "Too many recipients"));
        }
        Action::CheckRecipient(RecipientCheck { recipient })
    }

    fn parse_recipient(&self, to: smtp_proto::RcptTo<String>, smtputf8: bool) -> Result<Recipient, Reply> {
        if to.flags & (RCPT_CONNEG | RCPT_RRVS_REJECT | RCPT_RRVS_CONTINUE) != 0 {
            return Err(unsupported_parameter("RCPT parameter not supported"));
        }
        // RFC 3461 §4.1: NEVER stands alone. smtp-proto refuses it after another value, not before one.
        let others = RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY;
        if to.flags & RCPT_NOTIFY_NEVER != 0 && to.flags & others != 0 {
            return Err(Reply::new(501, Enhanced(5, 5, 4), "NOTIFY=NEVER cannot be combined with other values"));
        }
        if !to.address.is_ascii() && !smtputf8 {
            return Err(needs_smtputf8());
        }
        Ok(Recipient { address: self.forward_path(&to.address)?, notify: to.flags, orcpt: to.orcpt, local: true })
    }

    /// RFC 5321 §4.5.1: a bare `<postmaster>` means this host's postmaster.
    fn forward_path(&self, text: &str) -> Result<EmailAddress, Reply> {
        let parsed = if text == POSTMASTER {
            format!("{POSTMASTER}@{}", self.config.hostname).parse()
        } else {
            text.parse::<EmailAddress>()
        };
        parsed.map_err(|error| Reply::new(501, Enhanced(5, 1, 3), format!("Bad recipient address: {error}")))
    }

    /// Takes the directory's verdict on a recipient that [`Action::CheckRecipient`] asked about.
    pub fn recipient_checked(&mut self, check: RecipientCheck, verdict: Verdict) -> Reply {
        let mut recipient = check.recipient;
        let address = recipient.address.to_string();
        let refusal = match verdict {
            Verdict::Local => None,
            // Invariant 6, no open relay: only an authenticated client may send beyond our domains.
            Verdict::NotLocal if self.user.is_some() => {
                recipient.local = false;
                None
            }
            Verdict::NotLocal => Some(Reply::new(554, Enhanced(5, 7, 1), format!("<{address}>: Relay access denied"))),
            Verdict::UnknownUser => Some(Reply::new(
                550,
                Enhanced(5, 1, 1),
                format!("<{address}>: Recipient address rejected: User unknown"),
            )),
            Verdict::ForgedReturnPath => Some(Reply::new(
                550,
                Enhanced(5, 7, 1),
                format!("<{address}>: Recipient address rejected: invalid SRS signature"),
            )),
            Verdict::ExpiredReturnPath => Some(Reply::new(
                550,
                Enhanced(5, 1, 1),
                format!("<{address}>: Recipient address rejected: SRS address expired"),
            )),
            Verdict::Unavailable => {
                Some(Reply::new(451, Enhanced(4, 3, 0), "Recipient lookup failed, try again later"))
            }
        };
        let reply = match refusal {
            Some(reply) => reply,
            None => self.add_recipient(recipient),
        };
        self.note(reply)
    }

    /// The answer to [`Action::CheckRecipient`] when the authenticated account has sent to as many
    /// recipients as its window or day allows: `451 4.7.1`, for this recipient only (Postfix's
    /// `smtpd_client_recipient_rate_limit` answers at RCPT TO); the recipients already accepted stay.
    pub fn recipient_rate_limited(&mut self, check: RecipientCheck, explanation: &str) -> Reply {
        drop(check);
        self.note(rate_limited(explanation))
    }

    fn add_recipient(&mut self, recipient: Recipient) -> Reply {
        self.state = match mem::take(&mut self.state) {
            State::Mail { helo, from } => State::Rcpt { helo, from, recipients: vec![recipient] },
            State::Rcpt { helo, from, mut recipients } => {
                if !recipients.iter().any(|r| r.address.lookup_key() == recipient.address.lookup_key()) {
                    recipients.push(recipient);
                }
                State::Rcpt { helo, from, recipients }
            }
            // A verdict after RSET or a new EHLO concerns a transaction that no longer exists.
            other => {
                self.state = other;
                return bad_sequence("need MAIL command");
            }
        };
        recipient_ok()
    }
}

fn recipient_ok() -> Reply {
    Reply::new(250, Enhanced(2, 1, 5), "Ok")
}
