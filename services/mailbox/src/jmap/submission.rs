//! RFC 8621 §7 EmailSubmission. Creation happens in the http role, which puts the message on the queue:
//! it asks `prepare` first (the identity and email are the account's, the envelope is one the account may
//! send, worked out from the header when the client gave none) and `record`s the object once the queue has
//! it. The methods here read, list, and destroy those records; a submission is final the moment the queue
//! holds it (mailbus has no delayed sending to undo).

use std::collections::HashSet;

use mailbus_address::{AccountId, EmailAddress, RecipientDelimiter};
use mailbus_proto::v1 as pb;
use prost::Message as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sqlx::PgPool;

use super::get::{self, GetArgs};
use super::query::{self, Comparator, Filter, Page, QueryChangesArgs};
use super::set::{OwnRows, SetArgs, SetError, SetResponse};
use super::{Ctx, MAX_OBJECTS_IN_GET, MethodError, Responses, changes, identity, ids, one};
use crate::store::directory;

#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    id: i64,
    identity_id: String,
    email_id: i64,
    thread_id: Option<i64>,
    mail_from: String,
    rcpt_to: Vec<String>,
    /// RFC 3339, UTC.
    send_at: String,
    send_unix: i64,
}

const SELECT: &str = "
    SELECT id, identity_id, email_id, thread_id, mail_from, rcpt_to,
           to_char(send_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS send_at,
           extract(epoch FROM send_at)::bigint AS send_unix
      FROM email_submissions
     WHERE account_id = $1 AND ($2::bigint[] IS NULL OR id = ANY($2))
     ORDER BY id";

async fn load(ctx: &Ctx<'_>, only: Option<&[i64]>) -> Result<Vec<Row>, MethodError> {
    Ok(sqlx::query_as(SELECT).bind(ctx.account.get()).bind(only).fetch_all(ctx.pool).await?)
}

fn id(row_id: i64) -> String {
    ids::encode(ids::SUBMISSION, row_id)
}

fn object(row: &Row) -> Map<String, Value> {
    let rcpt_to: Vec<Value> = row.rcpt_to.iter().map(|r| json!({"email": r, "parameters": null})).collect();
    let object = json!({
        "id": id(row.id),
        "identityId": row.identity_id,
        "emailId": ids::encode(ids::EMAIL, row.email_id),
        "threadId": row.thread_id.map(|t| ids::encode(ids::THREAD, t)),
        "envelope": {"mailFrom": {"email": row.mail_from, "parameters": null}, "rcptTo": rcpt_to},
        "sendAt": row.send_at,
        "undoStatus": "final",
        "deliveryStatus": null,
        "dsnBlobIds": [],
        "mdnBlobIds": [],
    });
    match object {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

pub async fn get(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args = GetArgs::parse(arguments)?;
    let state = super::state(ctx.pool, ctx.account).await?;
    let (list, not_found) = match &args.ids {
        None => {
            let rows = load(ctx, None).await?;
            if rows.len() > MAX_OBJECTS_IN_GET {
                return Err(MethodError::RequestTooLarge);
            }
            (rows.iter().map(|r| args.pick(object(r))).collect(), Vec::new())
        }
        Some(wanted) => {
            let resolved: Vec<Option<i64>> = wanted
                .iter()
                .map(|given| ctx.resolve(given).ok().and_then(|r| ids::decode(ids::SUBMISSION, r)))
                .collect();
            let rows = load(ctx, Some(&resolved.iter().flatten().copied().collect::<Vec<_>>())).await?;
            let mut list = Vec::new();
            let mut not_found = Vec::new();
            for (given, row_id) in wanted.iter().zip(resolved) {
                match rows.iter().find(|r| Some(r.id) == row_id) {
                    Some(row) => list.push(args.pick(object(row))),
                    None => not_found.push(given.clone()),
                }
            }
            (list, not_found)
        }
    };
    one("EmailSubmission/get", get::response(ctx.account_id(), state, list, not_found))
}

pub async fn changes(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let (response, _) = changes::respond(ctx, changes::SUBMISSION, arguments, id).await?;
    one("EmailSubmission/changes", response)
}

/// RFC 8621 §7.3 FilterCondition.
#[derive(Debug, Clone, PartialEq)]
enum Condition {
    IdentityIds(Vec<String>),
    EmailIds(Vec<i64>),
    ThreadIds(Vec<i64>),
    UndoStatus(String),
    /// Unix times: sendAt before, and at or after.
    Before(i64),
    After(i64),
}

fn condition(object: &Map<String, Value>) -> Result<Vec<Condition>, MethodError> {
    query::known_properties(object, &["identityIds", "emailIds", "threadIds", "undoStatus", "before", "after"])?;
    let bad = |what: &str| MethodError::InvalidArguments(format!("filter {what} has the wrong type"));
    let strings = |key: &str, value: &Value| -> Result<Vec<String>, MethodError> {
        value
            .as_array()
            .and_then(|list| list.iter().map(|v| v.as_str().map(str::to_owned)).collect())
            .ok_or_else(|| bad(key))
    };
    let date = |key: &str, value: &Value| -> Result<i64, MethodError> {
        value
            .as_str()
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
            .map(|d| d.timestamp())
            .ok_or_else(|| bad(key))
    };
    object
        .iter()
        .map(|(key, value)| {
            Ok(match key.as_str() {
                "identityIds" => Condition::IdentityIds(strings(key, value)?),
                // An id of no row matches nothing: -1 is no row's id.
                "emailIds" => Condition::EmailIds(
                    strings(key, value)?.iter().map(|e| ids::decode(ids::EMAIL, e).unwrap_or(-1)).collect(),
                ),
                "threadIds" => Condition::ThreadIds(
                    strings(key, value)?.iter().map(|t| ids::decode(ids::THREAD, t).unwrap_or(-1)).collect(),
                ),
                "undoStatus" => Condition::UndoStatus(value.as_str().ok_or_else(|| bad(key))?.to_owned()),
                "before" => Condition::Before(date(key, value)?),
                _ => Condition::After(date(key, value)?),
            })
        })
        .collect()
}

fn matches(condition: &Condition, row: &Row) -> bool {
    match condition {
        Condition::IdentityIds(identities) => identities.contains(&row.identity_id),
        Condition::EmailIds(emails) => emails.contains(&row.email_id),
        Condition::ThreadIds(threads) => row.thread_id.is_some_and(|t| threads.contains(&t)),
        Condition::UndoStatus(status) => status == "final",
        Condition::Before(before) => row.send_unix < *before,
        Condition::After(after) => row.send_unix >= *after,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Search {
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    sort: Option<Vec<Comparator>>,
}

fn search(rows: Vec<Row>, search: &Search) -> Result<Vec<String>, MethodError> {
    let filter = Filter::parse(search.filter.as_ref(), &condition)?;
    let comparators = search.sort.clone().unwrap_or_default();
    if let Some(c) = comparators.iter().find(|c| !matches!(c.property.as_str(), "emailId" | "threadId" | "sentAt")) {
        return Err(MethodError::UnsupportedSort(c.property.clone()));
    }
    let mut rows: Vec<Row> = rows
        .into_iter()
        .filter(|row| {
            filter.as_ref().is_none_or(|f| f.matches(&|all: &Vec<Condition>| all.iter().all(|c| matches(c, row))))
        })
        .collect();
    rows.sort_by(|a, b| {
        for comparator in &comparators {
            let ordering = match comparator.property.as_str() {
                "emailId" => a.email_id.cmp(&b.email_id),
                "threadId" => a.thread_id.cmp(&b.thread_id),
                _ => a.send_unix.cmp(&b.send_unix),
            };
            let ordering = if comparator.is_ascending { ordering } else { ordering.reverse() };
            if ordering.is_ne() {
                return ordering;
            }
        }
        a.id.cmp(&b.id)
    });
    Ok(rows.iter().map(|r| id(r.id)).collect())
}

#[derive(Debug, Deserialize)]
struct QueryArgs {
    #[serde(flatten)]
    search: Search,
    #[serde(flatten)]
    page: Page,
}

#[derive(Debug, Deserialize)]
struct QueryChangesAll {
    #[serde(flatten)]
    search: Search,
    #[serde(flatten)]
    changes: QueryChangesArgs,
}

pub async fn query(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: QueryArgs = super::arguments(arguments)?;
    let state = super::state(ctx.pool, ctx.account).await?;
    let found = search(load(ctx, None).await?, &args.search)?;
    one("EmailSubmission/query", args.page.respond(ctx.account_id(), state, found)?)
}

pub async fn query_changes(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: QueryChangesAll = super::arguments(arguments)?;
    let found = search(load(ctx, None).await?, &args.search)?;
    one("EmailSubmission/queryChanges", query::changes(ctx, changes::SUBMISSION, &args.changes, &found, id).await?)
}

/// Update and destroy only: creation is the http role's (through `prepare` and `record`), and a `create`
/// reaching here is refused per object.
pub async fn set(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: SetArgs = super::arguments(arguments)?;
    let old_state = args.check(ctx).await?;
    let mut response = SetResponse::default();
    for (creation_id, _) in args.create.unwrap_or_default() {
        response.not_created(&creation_id, SetError::forbidden("submissions are created by the http role"));
    }
    for (given, patch) in args.update.unwrap_or_default() {
        let row_id = ctx.resolve(&given).ok().and_then(|r| ids::decode(ids::SUBMISSION, r));
        let exists = match row_id {
            Some(row_id) => !load(ctx, Some(&[row_id])).await?.is_empty(),
            None => false,
        };
        match update(exists, &patch) {
            Ok(()) => response.updated(&given, None),
            Err(error) => response.not_updated(&given, error),
        }
    }
    response.destroy_rows(ctx, args.destroy.unwrap_or_default(), ids::SUBMISSION, OwnRows::EmailSubmissions).await?;
    let new_state = super::state(ctx.pool, ctx.account).await?;
    one("EmailSubmission/set", response.into_json(ctx.account_id(), old_state, new_state))
}

/// RFC 8621 §7.5: only undoStatus may change, and only to canceled, which a final submission cannot.
fn update(exists: bool, patch: &Value) -> Result<(), SetError> {
    if !exists {
        return Err(SetError::not_found());
    }
    let Some(patch) = patch.as_object() else { return Err(SetError::new("invalidPatch")) };
    for (key, value) in patch {
        match (key.as_str(), value.as_str()) {
            ("undoStatus", Some("final")) => {}
            ("undoStatus", Some("canceled")) => {
                return Err(SetError::new("cannotUnsend").describe("the message is already on its way"));
            }
            _ => return Err(SetError::invalid(&[key], format!("{key} cannot be changed"))),
        }
    }
    Ok(())
}

/// What the http role needs to queue a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub blob_id: String,
    pub size: u64,
    pub thread_id: String,
}

/// RFC 8621 §7 Envelope as a client gives it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    mail_from: EnvelopeAddress,
    rcpt_to: Vec<EnvelopeAddress>,
}

#[derive(Debug, Deserialize)]
struct EnvelopeAddress {
    email: String,
}

#[derive(sqlx::FromRow)]
struct Email {
    id: i64,
    size: i64,
    thread_id: Option<i64>,
    structure: Option<Vec<u8>>,
}

/// A live email of the account's.
async fn email(pool: &PgPool, account: AccountId, given: &str) -> Result<Option<Email>, MethodError> {
    let Some(row_id) = ids::decode(ids::EMAIL, given) else { return Ok(None) };
    Ok(sqlx::query_as(
        "SELECT m.id, m.size, m.thread_id, m.structure FROM messages m
          WHERE m.account_id = $1 AND m.id = $2
            AND EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.message_id = m.id)",
    )
    .bind(account.get())
    .bind(row_id)
    .fetch_optional(pool)
    .await?)
}

/// The addresses of an envelope list, groups left out; an entry that is no address is its text.
fn addresses(list: &[pb::EnvelopeAddress]) -> Vec<Result<EmailAddress, String>> {
    list.iter()
        .filter(|a| !(a.group_start || a.mailbox.is_empty() && a.host.is_empty()))
        .map(|a| {
            let text = format!("{}@{}", a.mailbox, a.host);
            text.parse::<EmailAddress>().map_err(|_| text)
        })
        .collect()
}

/// The recipients, checked: unparseable ones are invalidRecipients, none at all noRecipients.
fn recipients(given: Vec<Result<EmailAddress, String>>) -> Result<Vec<String>, SetError> {
    let invalid: Vec<String> = given.iter().filter_map(|r| r.as_ref().err().cloned()).collect();
    if !invalid.is_empty() {
        return Err(SetError {
            extra: Some(("invalidRecipients", json!(invalid))),
            ..SetError::new("invalidRecipients")
        });
    }
    let mut seen = HashSet::new();
    let unique: Vec<String> =
        given.into_iter().flatten().filter(|a| seen.insert(a.lookup_key())).map(|a| a.to_string()).collect();
    if unique.is_empty() {
        return Err(SetError::new("noRecipients").describe("the envelope has no recipient"));
    }
    Ok(unique)
}

/// Checks a submission before the http role queues it, and works out its envelope (RFC 8621 §7.5).
pub async fn prepare(
    pool: &PgPool,
    account: AccountId,
    max_message_size: u64,
    delimiter: &RecipientDelimiter,
    identity_id: &str,
    email_id: &str,
    envelope: &str,
) -> Result<Result<Prepared, SetError>, MethodError> {
    let Some(identity) = identity::find(pool, account, identity_id).await? else {
        return Ok(Err(SetError::invalid(&["identityId"], "no such identity")));
    };
    let Some(email) = email(pool, account, email_id).await? else {
        return Ok(Err(SetError::invalid(&["emailId"], "no such email")));
    };
    let size = email.size.max(0) as u64;
    if size > max_message_size {
        let error = SetError::new("tooLarge").describe(format!("the limit is {max_message_size} octets"));
        return Ok(Err(SetError { extra: Some(("maxSize", json!(max_message_size))), ..error }));
    }
    let header = match &email.structure {
        Some(encoded) => pb::MessageStructure::decode(encoded.as_slice())
            .map_err(|e| MethodError::ServerFail(format!("stored structure: {e}")))?
            .envelope
            .unwrap_or_default(),
        None => return Err(MethodError::ServerFail("the email is not parsed yet".into())),
    };
    // RFC 8621 §7.5 forbiddenFrom: every From address must be one the account may send as.
    for from in addresses(&header.from) {
        let allowed = match &from {
            Ok(address) => directory::sender_allowed(pool, account, address, delimiter).await?,
            Err(_) => false,
        };
        if !allowed {
            let text = from.map_or_else(|text| text, |a| a.to_string());
            return Ok(Err(SetError::new("forbiddenFrom").describe(format!("this account may not send as {text}"))));
        }
    }
    let (mail_from, rcpt_to) = if envelope.trim().is_empty() {
        // RFC 8621 §7.5: from Sender, else From; recipients from To, Cc and Bcc.
        let sender = addresses(&header.sender).into_iter().chain(addresses(&header.from)).next();
        let mail_from = match sender {
            Some(Ok(address)) => address,
            Some(Err(text)) => {
                return Ok(Err(SetError::new("forbiddenFrom").describe(format!("{text} is no address"))));
            }
            None => match identity.email.parse::<EmailAddress>() {
                Ok(address) => address,
                Err(_) => return Ok(Err(SetError::new("forbiddenFrom").describe("the identity has no address"))),
            },
        };
        if !directory::sender_allowed(pool, account, &mail_from, delimiter).await? {
            let why = format!("this account may not send as {mail_from}");
            return Ok(Err(SetError::new("forbiddenFrom").describe(why)));
        }
        let all = [&header.to, &header.cc, &header.bcc].into_iter().flat_map(|list| addresses(list)).collect();
        match recipients(all) {
            Ok(rcpt_to) => (mail_from.to_string(), rcpt_to),
            Err(error) => return Ok(Err(error)),
        }
    } else {
        let Ok(given) = serde_json::from_str::<Envelope>(envelope) else {
            return Ok(Err(SetError::invalid(&["envelope"], "not an Envelope")));
        };
        let mail_from = match given.mail_from.email.parse::<EmailAddress>() {
            Ok(address) if directory::sender_allowed(pool, account, &address, delimiter).await? => address,
            _ => {
                let why = format!("this account may not send as {:?}", given.mail_from.email);
                return Ok(Err(SetError::new("forbiddenMailFrom").describe(why)));
            }
        };
        let all = given.rcpt_to.into_iter().map(|r| r.email.parse::<EmailAddress>().map_err(|_| r.email)).collect();
        match recipients(all) {
            Ok(rcpt_to) => (mail_from.to_string(), rcpt_to),
            Err(error) => return Ok(Err(error)),
        }
    };
    Ok(Ok(Prepared {
        mail_from,
        rcpt_to,
        blob_id: ids::email_blob(email.id),
        size,
        thread_id: ids::encode(ids::THREAD, email.thread_id.unwrap_or(email.id)),
    }))
}

/// Records a submission the queue has accepted; `None` when the email is not the account's.
pub async fn record(
    pool: &PgPool,
    account: AccountId,
    identity_id: &str,
    email_id: &str,
    queue_id: &str,
    mail_from: &str,
    rcpt_to: &[String],
) -> Result<Option<String>, MethodError> {
    let Some(email) = email(pool, account, email_id).await? else { return Ok(None) };
    let row_id: i64 = sqlx::query_scalar(
        "INSERT INTO email_submissions (account_id, identity_id, email_id, thread_id, queue_id, mail_from, rcpt_to)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(account.get())
    .bind(identity_id)
    .bind(email.id)
    .bind(email.thread_id)
    .bind(queue_id)
    .bind(mail_from)
    .bind(rcpt_to)
    .fetch_one(pool)
    .await?;
    Ok(Some(id(row_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(mailbox: &str, host: &str) -> pb::EnvelopeAddress {
        pb::EnvelopeAddress { mailbox: mailbox.into(), host: host.into(), ..Default::default() }
    }

    #[test]
    fn recipients_are_deduplicated_and_checked() {
        let list = vec![address("ann", "example.org"), address("ANN", "example.org"), address("bob", "example.org")];
        assert_eq!(recipients(addresses(&list)).unwrap().len(), 2);
        assert_eq!(recipients(Vec::new()).unwrap_err().kind, "noRecipients");
        let bad = recipients(addresses(&[address("carl", "")])).unwrap_err();
        assert_eq!(bad.to_json()["invalidRecipients"], json!(["carl@"]));
    }

    #[test]
    fn groups_are_no_recipients() {
        let group = pb::EnvelopeAddress { mailbox: "team".into(), group_start: true, ..Default::default() };
        let end = pb::EnvelopeAddress::default();
        assert!(addresses(&[group, address("ann", "example.org"), end]).iter().all(Result::is_ok));
    }

    #[test]
    fn only_cancelling_is_refused_as_cannot_unsend() {
        assert_eq!(update(true, &json!({"undoStatus": "canceled"})).unwrap_err().kind, "cannotUnsend");
        assert!(update(true, &json!({"undoStatus": "final"})).is_ok());
        assert_eq!(update(true, &json!({"sendAt": "x"})).unwrap_err().kind, "invalidProperties");
        assert_eq!(update(false, &json!({})).unwrap_err().kind, "notFound");
    }
}
