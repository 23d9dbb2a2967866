//! The mailbox role's errors, and their one mapping to gRPC status codes.

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
    /// The account's quota has no room; the text says which limit.
    #[error("{0}")]
    OverQuota(String),
    #[error("password hashing: {0}")]
    Hashing(String),
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
        MailboxError::Database(error)
    }
}

impl From<MailboxError> for tonic::Status {
    fn from(error: MailboxError) -> Self {
        use tonic::Status;
        match error {
            MailboxError::AlreadyExists(what) => Status::already_exists(format!("{what} already exists")),
            MailboxError::NotFound(what) => Status::not_found(what),
            MailboxError::InvalidArgument(what) => Status::invalid_argument(what),
            MailboxError::FailedPrecondition(what) => Status::failed_precondition(what),
            MailboxError::HasChildren(name) => {
                Status::failed_precondition(format!("[HASCHILDREN] mailbox {name:?} has children"))
            }
            // RFC 3463 4.2.2: a mailbox may have room again later. Deliver may turn this permanent by policy.
            MailboxError::OverQuota(what) => Status::resource_exhausted(format!("4.2.2 {what}")),
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
