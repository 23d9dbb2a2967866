//! The mailbox role's errors and their one mapping to gRPC status codes: PostgreSQL's error codes become
//! ours here, ours become gRPC's here, and so does the policy for a delivery into a full mailbox.

use mailbus_address::MailboxNameError;
use mailbus_proto::refusal;
use mailbus_proto::v1::Reason;
use tonic::{Code, Status};

/// What a delivery into a full mailbox gets: Dovecot's `quota_full_tempfail` as a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuotaFull {
    /// 5.2.2: the sender gets a bounce now (Dovecot's default).
    #[default]
    Bounce,
    /// 4.2.2: the relay keeps trying until the message expires, in case the owner makes room.
    Defer,
}

impl QuotaFull {
    /// Deliver's answer for an account whose quota has no room, `why` saying which limit.
    pub(crate) fn refusal(self, why: &str) -> Status {
        match self {
            QuotaFull::Bounce => refusal::status(
                Code::FailedPrecondition,
                format!("mailbox full: {why}"),
                Reason::OverQuotaPermanent,
                "5.2.2",
            ),
            QuotaFull::Defer => refusal::status(
                Code::ResourceExhausted,
                format!("mailbox full: {why}"),
                Reason::OverQuotaTemporary,
                "4.2.2",
            ),
        }
    }
}

impl std::str::FromStr for QuotaFull {
    type Err = String;

    /// `bounce` or `defer`, as `MAILBUS_QUOTA_FULL` spells them.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "bounce" => Ok(QuotaFull::Bounce),
            "defer" => Ok(QuotaFull::Defer),
            _ => Err("must be bounce or defer".to_owned()),
        }
    }
}

/// A request the gRPC edge refuses before it reaches the store (a missing field, a malformed stream).
pub(crate) fn invalid(what: impl std::fmt::Display) -> Status {
    refusal::status(Code::InvalidArgument, what.to_string(), Reason::Invalid, "")
}

#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// RFC 9051 HASCHILDREN: a mailbox with children cannot be deleted.
    #[error("mailbox {0:?} has children")]
    HasChildren(String),
    /// RFC 5804 ACTIVE: the active Sieve script cannot be deleted.
    #[error("script {0:?} is active")]
    ActiveScript(String),
    /// RFC 6154 USEATTR: another mailbox of the account has this special-use attribute.
    #[error("another mailbox is {0}")]
    SpecialUseTaken(String),
    /// The account's quota has no room; the text says which limit.
    #[error("{0}")]
    OverQuota(String),
    #[error("password hashing: {0}")]
    Hashing(String),
}

impl MailboxError {
    /// A mailbox name the store refuses, quoted as the caller gave it.
    pub(crate) fn bad_mailbox_name(name: &str, error: MailboxNameError) -> Self {
        MailboxError::InvalidArgument(format!("mailbox name {name:?}: {error}"))
    }
}

impl From<sqlx::Error> for MailboxError {
    /// The one place where PostgreSQL's error codes become ours.
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error
            && db.code().as_deref() == Some("23505")
        {
            return MailboxError::AlreadyExists(db.constraint().unwrap_or("row").to_owned());
        }
        // A CHECK constraint caught a value the code let through: the caller's fault, not an outage.
        if let sqlx::Error::Database(db) = &error
            && db.code().as_deref() == Some("23514")
        {
            return MailboxError::InvalidArgument(format!("value refused by {}", db.constraint().unwrap_or("a check")));
        }
        // query_canceled: a statement ran past the `statement_timeout` its caller set (a search does).
        if let sqlx::Error::Database(db) = &error
            && db.code().as_deref() == Some("57014")
        {
            return MailboxError::FailedPrecondition("it took longer than it may; ask for less".into());
        }
        MailboxError::Database(error)
    }
}

impl From<MailboxError> for Status {
    fn from(error: MailboxError) -> Self {
        match error {
            MailboxError::AlreadyExists(what) => {
                refusal::status(Code::AlreadyExists, format!("{what} already exists"), Reason::AlreadyExists, "")
            }
            MailboxError::NotFound(what) => refusal::status(Code::NotFound, what, Reason::Nonexistent, ""),
            MailboxError::InvalidArgument(what) => refusal::status(Code::InvalidArgument, what, Reason::Invalid, ""),
            MailboxError::FailedPrecondition(what) => {
                refusal::status(Code::FailedPrecondition, what, Reason::Cannot, "")
            }
            error @ MailboxError::HasChildren(_) => {
                refusal::status(Code::FailedPrecondition, error.to_string(), Reason::HasChildren, "")
            }
            error @ MailboxError::SpecialUseTaken(_) => {
                refusal::status(Code::AlreadyExists, error.to_string(), Reason::SpecialUseTaken, "")
            }
            error @ MailboxError::ActiveScript(_) => {
                refusal::status(Code::FailedPrecondition, error.to_string(), Reason::ActiveScript, "")
            }
            // RFC 3463 4.2.2: a mailbox may have room again later. Deliver may turn this permanent by policy.
            MailboxError::OverQuota(what) => {
                refusal::status(Code::ResourceExhausted, what, Reason::OverQuotaTemporary, "4.2.2")
            }
            // Callers retry UNAVAILABLE later: right for a database that is down or restarting.
            MailboxError::Database(e) => {
                tracing::error!(error = %e, "database error");
                Status::unavailable("database unavailable")
            }
            other => {
                tracing::error!(error = %other, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
