//! What a run decided: the actions in the order the script took them, for the caller to carry out.

use crate::RuntimeError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub actions: Vec<Action>,
    /// Whether the final keep came from implicit keep (RFC 5228 §2.10.2) rather than the script.
    pub implicit_keep: bool,
    /// Set when the run failed; `actions` is then a single keep into INBOX.
    pub error: Option<RuntimeError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store in INBOX with these IMAP flags (RFC 5232).
    Keep {
        flags: Vec<String>,
    },
    /// Store in `mailbox`; `create` (RFC 5490 `:create`) makes it when missing.
    FileInto {
        mailbox: String,
        flags: Vec<String>,
        create: bool,
    },
    /// Forward to `address`; with `copy` (RFC 3894) the message is also stored.
    Redirect {
        address: String,
        copy: bool,
    },
    /// Refuse the message with this text: a DSN (RFC 5429 `reject`), or the SMTP reply when
    /// `extended` (`ereject`) and the caller is still in the SMTP transaction.
    Reject {
        reason: String,
        extended: bool,
    },
    /// The script discarded the message (nothing to store).
    Discard,
    Vacation(VacationReply),
}

/// The caller remembers this after sending a vacation reply (RFC 5230 §4.2), and answers
/// [`crate::Environment::vacation_replied`] from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VacationRecord {
    /// The envelope sender the reply goes to, in lower case.
    pub sender: String,
    pub handle: String,
    pub days: u64,
}

/// An auto-reply to send through the queue, with a null envelope sender (RFC 5230 §5.1 says the
/// reply's MAIL FROM SHOULD be `<>`; RFC 3834 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacationReply {
    pub to: String,
    pub from: String,
    pub subject: String,
    /// Plain text, or a MIME entity (its own headers and body) when `mime`.
    pub body: String,
    pub mime: bool,
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
    pub record: VacationRecord,
}

impl VacationReply {
    /// The reply as an RFC 5322 message. `date` is an RFC 5322 date and `message_id` a bracketed id,
    /// both the caller's (this crate has no clock).
    pub fn to_message(&self, date: &str, message_id: &str) -> String {
        let mut out = String::new();
        // Every value is one line: a subject decoded from RFC 2047 (or a script's variable) may hold CR
        // or LF, which would start a header or the body of a reply we sign, chosen by the sender.
        let mut header = |name: &str, value: &str| {
            out.push_str(name);
            out.push_str(": ");
            out.extend(value.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }));
            out.push_str("\r\n");
        };
        header("From", &self.from);
        header("To", &self.to);
        header("Subject", &crate::vacation::encode_subject(&self.subject));
        header("Date", date);
        header("Message-ID", message_id);
        if let Some(id) = &self.in_reply_to {
            header("In-Reply-To", id);
        }
        if let Some(refs) = &self.references {
            header("References", refs);
        }
        // RFC 3834 §5: marks the reply so no other responder answers it.
        header("Auto-Submitted", "auto-replied");
        header("MIME-Version", "1.0");
        if !self.mime {
            header("Content-Type", "text/plain; charset=utf-8");
            header("Content-Transfer-Encoding", "8bit");
            out.push_str("\r\n");
        }
        out.push_str(&self.body);
        if !out.ends_with("\r\n") {
            out.push_str("\r\n");
        }
        out
    }
}
