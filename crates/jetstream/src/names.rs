//! Names of every NATS object mailbus uses.

/// The prefix becomes part of stream names (no `.`, `*`, `>` or spaces) and a subject token.
const MAX_PREFIX: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NATS prefix {0:?} must be 1 to 32 characters of A-Z, a-z, 0-9, '_' or '-'")]
pub struct NameError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Result<Self, NameError> {
        let valid = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX
            && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid { Ok(Names { prefix: prefix.to_owned() }) } else { Err(NameError(prefix.to_owned())) }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The work-queue stream of envelopes.
    pub fn queue_stream(&self) -> String {
        format!("{}_queue", self.prefix)
    }

    /// The subject envelopes are published on.
    pub fn queue_subject(&self) -> String {
        format!("{}.queue.envelopes", self.prefix)
    }

    /// Where envelopes that cannot be processed at all are kept for an operator to look at.
    pub fn dead_letter_stream(&self) -> String {
        format!("{}_dead", self.prefix)
    }

    pub fn dead_letter_subject(&self) -> String {
        format!("{}.queue.dead", self.prefix)
    }

    /// The object store bucket of message bodies.
    pub fn bodies_bucket(&self) -> String {
        format!("{}_bodies", self.prefix)
    }

    /// The key-value bucket of claims on queue messages, by queue id and sequence ([`crate::Claims`]).
    pub fn queue_claims_bucket(&self) -> String {
        format!("{}_queue_claims", self.prefix)
    }

    /// The stream under the body bucket (the object store's convention, `OBJ_<bucket>`), which bodies
    /// are read from with direct gets.
    pub fn bodies_stream(&self) -> String {
        format!("OBJ_{}", self.bodies_bucket())
    }

    /// The key-value bucket of POP3 maildrop locks (one key per account).
    pub fn pop3_locks_bucket(&self) -> String {
        format!("{}_pop3_locks", self.prefix)
    }

    /// The key-value bucket of failed-login counts (per client address and per account).
    pub fn auth_failures_bucket(&self) -> String {
        format!("{}_auth_failures", self.prefix)
    }

    /// The key-value bucket of submission rate counts (per account and client address, per window).
    pub fn submission_rates_bucket(&self) -> String {
        format!("{}_submission_rates", self.prefix)
    }

    /// The key-value bucket of the http role's bearer tokens (one key per token digest, expiring by itself).
    pub fn http_tokens_bucket(&self) -> String {
        format!("{}_http_tokens", self.prefix)
    }

    /// The key-value bucket of webmail sessions (one key per session-id digest, expiring by itself).
    pub fn webmail_sessions_bucket(&self) -> String {
        format!("{}_webmail_sessions", self.prefix)
    }

    /// Where the mailbox role announces changes to one account's mailboxes.
    pub fn mailbox_events(&self, account_id: i64) -> String {
        format!("{}.mail.events.{account_id}", self.prefix)
    }

    /// Every account's mailbox events.
    pub fn all_mailbox_events(&self) -> String {
        format!("{}.mail.events.*", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_validated() {
        assert!(Names::new("mailbus").is_ok());
        assert!(Names::new("t_1-a").is_ok());
        for bad in ["", "a.b", "a b", "a*", ">", &"x".repeat(33)] {
            assert!(Names::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_carry_the_prefix() {
        let names = Names::new("t1").unwrap();
        assert_eq!(names.queue_stream(), "t1_queue");
        assert_eq!(names.queue_subject(), "t1.queue.envelopes");
        assert_eq!(names.bodies_bucket(), "t1_bodies");
        assert_eq!(names.bodies_stream(), "OBJ_t1_bodies");
        assert_eq!(names.queue_claims_bucket(), "t1_queue_claims");
        assert_eq!(names.mailbox_events(42), "t1.mail.events.42");
        assert_eq!(names.http_tokens_bucket(), "t1_http_tokens");
        assert_eq!(names.webmail_sessions_bucket(), "t1_webmail_sessions");
    }
}
