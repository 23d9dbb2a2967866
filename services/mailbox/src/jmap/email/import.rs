//! Email/import (RFC 8621 §4.8): messages from blobs (uploads, or emails and parts of the account) stored
//! as they are; and Email/copy (RFC 8621 §4.7), which copies between accounts: a caller has only their
//! own account here, so any other `fromAccountId` is not found and their own is no copy at all.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::set::{self, set_error};
use crate::jmap::{Ctx, MAX_OBJECTS_IN_SET, MethodError, Responses, one, state};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImportArgs {
    #[serde(default)]
    if_in_state: Option<String>,
    emails: Map<String, Value>,
}

pub async fn import(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: ImportArgs = super::super::arguments(arguments)?;
    let old_state = state(ctx.pool, ctx.account).await?;
    if args.if_in_state.as_ref().is_some_and(|s| *s != old_state) {
        return Err(MethodError::StateMismatch);
    }
    if args.emails.len() > MAX_OBJECTS_IN_SET {
        return Err(MethodError::RequestTooLarge);
    }
    let (mut created, mut not_created) = (Map::new(), Map::new());
    for (creation_id, object) in args.emails {
        match import_one(ctx, &object).await? {
            Ok(done) => {
                ctx.created_ids.insert(creation_id.clone(), done["id"].as_str().unwrap_or_default().to_owned());
                created.insert(creation_id, done);
            }
            Err(error) => {
                not_created.insert(creation_id, error);
            }
        }
    }
    let new_state = state(ctx.pool, ctx.account).await?;
    let or_null = |map: Map<String, Value>| if map.is_empty() { Value::Null } else { Value::Object(map) };
    one(
        "Email/import",
        json!({
            "accountId": ctx.account_id(),
            "oldState": old_state,
            "newState": new_state,
            "created": or_null(created),
            "notCreated": or_null(not_created),
        }),
    )
}

async fn import_one(ctx: &mut Ctx<'_>, object: &Value) -> Result<Result<Value, Value>, MethodError> {
    let invalid = |p: &str, why: &str| Ok(Err(set_error("invalidProperties", why, &[p.to_owned()])));
    let Some(object) = object.as_object() else { return invalid("blobId", "an EmailImport is an object") };
    let Some(blob_id) = object.get("blobId").and_then(Value::as_str) else { return invalid("blobId", "a blobId") };
    let blob_id = ctx.resolve(blob_id).map(str::to_owned).unwrap_or_else(|_| blob_id.to_owned());
    let mailbox_ids: Vec<String> = match object.get("mailboxIds").and_then(Value::as_object) {
        Some(m) if !m.is_empty() && m.values().all(|v| v == &Value::Bool(true)) => m.keys().cloned().collect(),
        _ => return invalid("mailboxIds", "an Email needs a mailbox"),
    };
    let flags = match object.get("keywords") {
        Some(keywords) => match set::flags_of(keywords) {
            Ok(flags) => flags,
            Err(error) => return Ok(Err(error)),
        },
        None => Vec::new(),
    };
    let received = match object.get("receivedAt").and_then(Value::as_str) {
        Some(text) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => Some(t.timestamp()),
            Err(_) => return invalid("receivedAt", "not a date"),
        },
        None => None,
    };
    let Some(blob) = set::read_blob(ctx, &blob_id).await? else {
        let mut error = set_error("blobNotFound", "no such blob", &[]);
        error["notFound"] = json!([blob_id]);
        return Ok(Err(error));
    };
    let mailboxes = match set::mailboxes_of_ids(ctx, &mailbox_ids).await? {
        Ok(m) => m,
        Err(error) => return Ok(Err(error)),
    };
    set::store_new(ctx, blob.content, &mailboxes, &flags, received).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CopyArgs {
    from_account_id: String,
}

pub async fn copy(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: CopyArgs = super::super::arguments(arguments)?;
    if args.from_account_id == ctx.account_id() {
        // RFC 8620 §5.4: the two accounts must differ.
        return Err(MethodError::InvalidArguments("fromAccountId must differ from accountId".into()));
    }
    Err(MethodError::FromAccountNotFound)
}
