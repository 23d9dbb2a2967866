//! What a run sees: the message, its envelope, the time of delivery, and the two questions only the
//! caller can answer (whether vacation already replied, whether a mailbox exists).

use chrono::{DateTime, FixedOffset};

use crate::VacationRecord;

pub struct Input<'a> {
    /// The message as delivered, headers and body, CRLF or LF line ends.
    pub message: &'a [u8],
    pub envelope: Envelope<'a>,
    /// The delivery time in the user's zone: `currentdate` reads it, and it is `date`'s local zone.
    pub now: DateTime<FixedOffset>,
    pub environment: &'a dyn Environment,
}

/// The SMTP envelope of this delivery (RFC 5228 §5.4).
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// MAIL FROM; `None` for the null reverse-path `<>`.
    pub from: Option<&'a str>,
    /// RCPT TO as the sender wrote it (the original recipient), `+detail` included: the envelope
    /// test's "to", which subaddress (RFC 5233) splits.
    pub to: &'a str,
    /// The account's own address, after aliases and without a detail: vacation's default From and,
    /// with its `:addresses`, what counts as "ours" (RFC 5230 §4.5).
    pub account: &'a str,
}

/// The caller's answers to what a pure interpreter cannot know.
pub trait Environment {
    /// RFC 5230 §4.2: has a vacation reply with this handle gone to this sender within `days`?
    fn vacation_replied(&self, record: &VacationRecord) -> bool;
    /// RFC 5490 §3.1 `mailboxexists`.
    fn mailbox_exists(&self, name: &str) -> bool;
}
