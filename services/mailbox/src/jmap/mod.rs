//! JMAP methods (RFC 8620 core, RFC 8621 mail) on the store. The http role hands each method call here
//! through `mailbus.v1.Jmap/Call` with the account it authenticated; this module answers it with the
//! RFC's JSON. Every object read or written is the account's: each query names `account_id`, so an id of
//! another account is simply not found.
//!
//! State strings are the account's change counter (`accounts.change_seq`), one for every type; the
//! `changes` log, written by triggers on the tables, says what each step changed. `changes::since` serves
//! every `Foo/changes` method from it.
//!
//! Ids are a letter and the row id (`ids`): accounts `a`, mailboxes `m`, emails `e`, threads `t`,
//! identities `i`, submissions `s`, uploaded blobs `u`, an email's octets `b<email>`, a part of it
//! `b<email>p<part>`.
//!
//! Each type has its file (`mailbox`, `thread`, `identity`, `submission`, `blob`), with the SQL that is
//! JMAP's alone beside the method that runs it (as `changes` and `state` do), so that a method reads as one
//! piece; whatever IMAP does too (creating, renaming, deleting a mailbox) goes through `crate::store`.
//! `get`, `set` and `query` hold what every `/get`, `/set` and `/query` share.

pub mod blob;
pub mod changes;
pub mod email;
pub mod get;
pub mod identity;
pub mod ids;
pub mod mailbox;
pub mod query;
pub mod search_snippet;
pub mod set;
pub mod submission;
pub mod thread;
pub mod vacation;

use std::collections::HashMap;

use mailbus_address::AccountId;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::error::MailboxError;
use crate::events::Events;

/// What a method needs: the store, the event publisher (a write over JMAP must reach IMAP IDLE sessions as
/// any other write does), the account, and the request's creation ids.
pub struct Ctx<'a> {
    pub pool: &'a PgPool,
    pub events: &'a Events,
    pub account: AccountId,
    pub max_message_size: u64,
    /// Creation id → server id, from earlier calls in the request; methods that create add theirs.
    pub created_ids: &'a mut HashMap<String, String>,
}

impl Ctx<'_> {
    /// An id argument, with a `#creationId` reference (RFC 8620 §5.3) replaced by the id it created.
    pub fn resolve<'s>(&'s self, id: &'s str) -> Result<&'s str, MethodError> {
        resolve(self.created_ids, id)
    }

    /// The account's id as JMAP names it.
    pub fn account_id(&self) -> String {
        ids::account(self.account)
    }
}

/// `id`, or the id that `created_ids` holds for a `#creationId` reference (RFC 8620 §5.3); for code that
/// has the creation ids but no `Ctx`, such as a filter's parser.
pub fn resolve<'s>(created_ids: &'s HashMap<String, String>, id: &'s str) -> Result<&'s str, MethodError> {
    match id.strip_prefix('#') {
        Some(creation) => created_ids
            .get(creation)
            .map(String::as_str)
            .ok_or_else(|| MethodError::InvalidArguments(format!("no object was created as {creation:?}"))),
        None => Ok(id),
    }
}

/// A method-level error (RFC 8620 §3.6.2, RFC 8621's additions); the call's response is
/// `["error", {"type": ..., "description": ...}]`.
#[derive(Debug)]
pub enum MethodError {
    InvalidArguments(String),
    UnknownMethod,
    ServerFail(String),
    CannotCalculateChanges,
    AnchorNotFound,
    UnsupportedSort(String),
    UnsupportedFilter(String),
    /// `/get` or `/set` with more objects than maxObjectsInGet / maxObjectsInSet.
    RequestTooLarge,
    /// `ifInState` did not match.
    StateMismatch,
    /// Email/copy and Email/import: the fromAccountId is not the caller's.
    FromAccountNotFound,
    /// `/queryChanges` with more changes than maxChanges (RFC 8620 §5.6).
    TooManyChanges,
}

impl MethodError {
    pub fn kind(&self) -> &'static str {
        match self {
            MethodError::InvalidArguments(_) => "invalidArguments",
            MethodError::UnknownMethod => "unknownMethod",
            MethodError::ServerFail(_) => "serverFail",
            MethodError::CannotCalculateChanges => "cannotCalculateChanges",
            MethodError::AnchorNotFound => "anchorNotFound",
            MethodError::UnsupportedSort(_) => "unsupportedSort",
            MethodError::UnsupportedFilter(_) => "unsupportedFilter",
            MethodError::RequestTooLarge => "requestTooLarge",
            MethodError::StateMismatch => "stateMismatch",
            MethodError::FromAccountNotFound => "fromAccountNotFound",
            MethodError::TooManyChanges => "tooManyChanges",
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            MethodError::InvalidArguments(d)
            | MethodError::ServerFail(d)
            | MethodError::UnsupportedSort(d)
            | MethodError::UnsupportedFilter(d) => json!({"type": self.kind(), "description": d}),
            _ => json!({"type": self.kind()}),
        }
    }
}

impl From<sqlx::Error> for MethodError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "JMAP method failed in the store");
        MethodError::ServerFail("the store failed".into())
    }
}

impl From<MailboxError> for MethodError {
    fn from(error: MailboxError) -> Self {
        tracing::error!(%error, "JMAP method failed");
        MethodError::ServerFail(error.to_string())
    }
}

/// Limits the http role advertises in the session object and enforces on whole requests; the methods
/// enforce the per-call ones.
pub const MAX_OBJECTS_IN_GET: usize = 500;
pub const MAX_OBJECTS_IN_SET: usize = 500;

/// A method's responses: usually one `(name, arguments)`; some add an implicit second one (RFC 8621
/// Email/copy's onSuccessDestroyOriginal).
pub type Responses = Vec<(String, Value)>;

/// Runs one method call. An error is the call's `error` response; it never fails the request.
pub async fn call(ctx: &mut Ctx<'_>, method: &str, arguments: Value) -> Responses {
    let outcome: Result<Responses, MethodError> = match method {
        "Core/echo" => one(method, arguments),
        "Email/get" => email::get::get(ctx, arguments).await,
        "Email/changes" => email::changes(ctx, arguments).await,
        "Email/query" => email::query::query(ctx, arguments).await,
        "Email/queryChanges" => email::query::query_changes(ctx, arguments).await,
        "Email/set" => email::set::set(ctx, arguments).await,
        "Email/copy" => email::import::copy(ctx, arguments).await,
        "Email/import" => email::import::import(ctx, arguments).await,
        "SearchSnippet/get" => search_snippet::get(ctx, arguments).await,
        "Mailbox/get" => mailbox::get(ctx, arguments).await,
        "Mailbox/changes" => mailbox::changes(ctx, arguments).await,
        "Mailbox/query" => mailbox::query(ctx, arguments).await,
        "Mailbox/queryChanges" => mailbox::query_changes(ctx, arguments).await,
        "Mailbox/set" => mailbox::set(ctx, arguments).await,
        "Thread/get" => thread::get(ctx, arguments).await,
        "Thread/changes" => thread::changes(ctx, arguments).await,
        "Identity/get" => identity::get(ctx, arguments).await,
        "Identity/changes" => identity::changes(ctx, arguments).await,
        "Identity/set" => identity::set(ctx, arguments).await,
        "EmailSubmission/get" => submission::get(ctx, arguments).await,
        "EmailSubmission/changes" => submission::changes(ctx, arguments).await,
        "EmailSubmission/query" => submission::query(ctx, arguments).await,
        "EmailSubmission/queryChanges" => submission::query_changes(ctx, arguments).await,
        "EmailSubmission/set" => submission::set(ctx, arguments).await,
        "VacationResponse/get" => vacation::get(ctx, arguments).await,
        "VacationResponse/set" => vacation::set(ctx, arguments).await,
        _ => Err(MethodError::UnknownMethod),
    };
    outcome.unwrap_or_else(|error| vec![("error".to_owned(), error.to_json())])
}

/// One response named as the call.
pub fn one(name: &str, arguments: Value) -> Result<Responses, MethodError> {
    Ok(vec![(name.to_owned(), arguments)])
}

/// The account's current state string.
pub async fn state(pool: &PgPool, account: AccountId) -> Result<String, MethodError> {
    let seq: Option<i64> = sqlx::query_scalar("SELECT change_seq FROM accounts WHERE id = $1")
        .bind(account.get())
        .fetch_optional(pool)
        .await?;
    Ok(seq.unwrap_or(0).to_string())
}

/// Whether the account exists and is not disabled: every Jmap RPC asks first, since a token the http role
/// checked may outlive the account's right to use it.
pub async fn account_enabled(pool: &PgPool, account: AccountId) -> Result<bool, MethodError> {
    let enabled: Option<bool> = sqlx::query_scalar("SELECT NOT disabled FROM accounts WHERE id = $1")
        .bind(account.get())
        .fetch_optional(pool)
        .await?;
    Ok(enabled == Some(true))
}

/// Arguments, as a struct: a missing or mistyped argument is invalidArguments naming it.
pub fn arguments<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, MethodError> {
    serde_json::from_value(value).map_err(|e| MethodError::InvalidArguments(e.to_string()))
}
