//! Email/set (RFC 8621 §4.6): create (drafts composed by `compose`), update of keywords and mailboxIds,
//! destroy. Every write is a call of `store::messages` on one mailbox (append, store, copy, expunge), so
//! that each mailbox's UIDs and MODSEQs move as they do under IMAP, followed by the event IMAP IDLE
//! sessions and POP3 wait for; the triggers log each change for Email/changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mailbus_address::{MailboxName, Uid};
use mailbus_proto::v1::MailboxEventKind;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::compose::{self, Blob, Refused};
use super::{body, keywords};
use crate::error::MailboxError;
use crate::jmap::{Ctx, MAX_OBJECTS_IN_SET, MethodError, Responses, ids, one, state};
use crate::mime;
use crate::store::emails::{self, EmailEntry};
use crate::store::messages::{self, Copied, Expunged, StoreMode};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SetArgs {
    if_in_state: Option<String>,
    create: Option<Map<String, Value>>,
    update: Option<Map<String, Value>>,
    destroy: Option<Vec<String>>,
}

/// A SetError (RFC 8620 §5.3).
pub fn set_error(kind: &str, description: &str, properties: &[String]) -> Value {
    let mut error = json!({"type": kind, "description": description});
    if !properties.is_empty() {
        error["properties"] = json!(properties);
    }
    error
}

/// RFC 8621 §4.6: the message would be larger than the server takes (maxSizeUpload's sibling).
fn too_large() -> Value {
    set_error("tooLarge", "the message is larger than the server takes", &[])
}

fn refused_json(refused: &Refused) -> Value {
    set_error(refused.kind, &refused.description, &refused.properties)
}

/// A store error as the SetError of one object; None for an outage, which fails the method.
fn store_set_error(error: MailboxError) -> Result<Value, MethodError> {
    match error {
        MailboxError::OverQuota(why) => Ok(set_error("overQuota", &why, &[])),
        MailboxError::NotFound(what) => Ok(set_error("notFound", &what, &[])),
        MailboxError::InvalidArgument(what) | MailboxError::FailedPrecondition(what) => {
            Ok(set_error("invalidProperties", &what, &[]))
        }
        other => Err(other.into()),
    }
}

pub async fn set(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: SetArgs = super::super::arguments(arguments)?;
    let old_state = state(ctx.pool, ctx.account).await?;
    if args.if_in_state.as_ref().is_some_and(|s| *s != old_state) {
        return Err(MethodError::StateMismatch);
    }
    let count = args.create.as_ref().map_or(0, Map::len)
        + args.update.as_ref().map_or(0, Map::len)
        + args.destroy.as_ref().map_or(0, Vec::len);
    if count > MAX_OBJECTS_IN_SET {
        return Err(MethodError::RequestTooLarge);
    }
    let (mut created, mut not_created) = (Map::new(), Map::new());
    for (creation_id, object) in args.create.unwrap_or_default() {
        match create(ctx, &object).await? {
            Ok(done) => {
                ctx.created_ids.insert(creation_id.clone(), done["id"].as_str().unwrap_or_default().to_owned());
                created.insert(creation_id, done);
            }
            Err(error) => {
                not_created.insert(creation_id, error);
            }
        }
    }
    let (mut updated, mut not_updated) = (Map::new(), Map::new());
    // An unknown `#creationId` is that object's notFound, not the method's failure: the creates above are
    // committed, and the response must say so.
    let not_found = || set_error("notFound", "no object was created with this creation id", &[]);
    for (id, patch) in args.update.unwrap_or_default() {
        let Ok(resolved) = ctx.resolve(&id).map(str::to_owned) else {
            not_updated.insert(id, not_found());
            continue;
        };
        match update(ctx, &resolved, &patch).await? {
            Ok(()) => {
                updated.insert(id, Value::Null);
            }
            Err(error) => {
                not_updated.insert(id, error);
            }
        }
    }
    let (mut destroyed, mut not_destroyed) = (Vec::new(), Map::new());
    for id in args.destroy.unwrap_or_default() {
        let Ok(resolved) = ctx.resolve(&id).map(str::to_owned) else {
            not_destroyed.insert(id, not_found());
            continue;
        };
        match destroy(ctx, &resolved).await? {
            Ok(()) => destroyed.push(id),
            Err(error) => {
                not_destroyed.insert(id, error);
            }
        }
    }
    let new_state = state(ctx.pool, ctx.account).await?;
    let or_null = |map: Map<String, Value>| if map.is_empty() { Value::Null } else { Value::Object(map) };
    one(
        "Email/set",
        json!({
            "accountId": ctx.account_id(),
            "oldState": old_state,
            "newState": new_state,
            "created": or_null(created),
            "notCreated": or_null(not_created),
            "updated": or_null(updated),
            "notUpdated": or_null(not_updated),
            "destroyed": if destroyed.is_empty() { Value::Null } else { json!(destroyed) },
            "notDestroyed": or_null(not_destroyed),
        }),
    )
}

/// The mailboxes of a `mailboxIds` object (ids or `#creation` references), checked to be the account's.
pub async fn mailboxes_of_ids(
    ctx: &Ctx<'_>,
    ids_given: &[String],
) -> Result<Result<Vec<(i64, MailboxName)>, Value>, MethodError> {
    let bad = || set_error("invalidProperties", "unknown mailbox", &["mailboxIds".to_owned()]);
    let mut wanted = Vec::new();
    for id in ids_given {
        let Ok(resolved) = ctx.resolve(id) else { return Ok(Err(bad())) };
        let Some(id) = ids::decode(ids::MAILBOX, resolved) else { return Ok(Err(bad())) };
        wanted.push(id);
    }
    let names = emails::mailbox_names(ctx.pool, ctx.account, &wanted).await?;
    let mut out = Vec::new();
    for id in wanted {
        match names.get(&id) {
            Some(name) => out.push((id, name.clone())),
            None => return Ok(Err(bad())),
        }
    }
    Ok(Ok(out))
}

/// The keys of a `{key: true}` object; None when a value is not `true`.
fn true_keys(value: &Value) -> Option<Vec<String>> {
    let object = value.as_object()?;
    object.iter().map(|(k, v)| (v == &Value::Bool(true)).then(|| k.clone())).collect()
}

/// The blobs a draft names, as far as reading them got.
pub enum DraftBlobs {
    Found(HashMap<String, Blob>),
    /// Ids that name no blob of the account.
    Missing(Vec<String>),
    /// Together they pass the largest message the server takes: reading stopped there.
    TooLarge,
}

/// Reads the blobs a draft names: uploads, whole emails and their parts, no more than `budget` octets.
pub async fn read_blobs(ctx: &Ctx<'_>, wanted: &[String], budget: u64) -> Result<DraftBlobs, MethodError> {
    read_within(wanted, budget, |id| async move { read_blob(ctx, &id).await }).await
}

/// Reads `wanted` with `read`, keeping a running total: the message holds every blob, so once the total
/// passes `budget` the draft is too large, and the blobs not yet read are never loaded.
async fn read_within<F, R>(wanted: &[String], budget: u64, mut read: R) -> Result<DraftBlobs, MethodError>
where
    R: FnMut(String) -> F,
    F: Future<Output = Result<Option<Blob>, MethodError>>,
{
    let mut found = HashMap::new();
    let mut missing = Vec::new();
    let mut total: u64 = 0;
    for id in wanted {
        let Some(blob) = read(id.clone()).await? else {
            missing.push(id.clone());
            continue;
        };
        total = total.saturating_add(blob.content.len() as u64);
        if total > budget {
            return Ok(DraftBlobs::TooLarge);
        }
        found.insert(id.clone(), blob);
    }
    Ok(if missing.is_empty() { DraftBlobs::Found(found) } else { DraftBlobs::Missing(missing) })
}

/// One blob of the account, by id; None when there is no such blob.
pub async fn read_blob(ctx: &Ctx<'_>, id: &str) -> Result<Option<Blob>, MethodError> {
    let Some(blob) = ids::blob(id) else { return Ok(None) };
    Ok(match blob {
        ids::Blob::Upload(upload) => emails::upload(ctx.pool, ctx.account, upload)
            .await?
            .map(|u| Blob { media_type: u.media_type, content: u.content }),
        ids::Blob::Email(email) => emails::content(ctx.pool, ctx.account, email)
            .await?
            .map(|content| Blob { media_type: "message/rfc822".into(), content }),
        ids::Blob::Part(email, part) => {
            let Some(content) = emails::content(ctx.pool, ctx.account, email).await? else { return Ok(None) };
            body::part_content(&content, &part)
        }
    })
}

/// One creation; the outer error fails the method, the inner one is this object's SetError.
async fn create(ctx: &mut Ctx<'_>, object: &Value) -> Result<Result<Value, Value>, MethodError> {
    let Some(object) = object.as_object() else {
        return Ok(Err(set_error("invalidProperties", "an Email is an object", &[])));
    };
    const SERVER_SET: &[&str] = &["id", "blobId", "threadId", "size", "hasAttachment", "preview"];
    if let Some(bad) = object.keys().find(|k| SERVER_SET.contains(&k.as_str())) {
        return Ok(Err(set_error("invalidProperties", "set by the server", std::slice::from_ref(bad))));
    }
    let mailbox_ids = object.get("mailboxIds").and_then(true_keys).filter(|m| !m.is_empty());
    let Some(mailbox_ids) = mailbox_ids else {
        return Ok(Err(set_error("invalidProperties", "an Email needs a mailbox", &["mailboxIds".into()])));
    };
    let mailboxes = match mailboxes_of_ids(ctx, &mailbox_ids).await? {
        Ok(m) => m,
        Err(e) => return Ok(Err(e)),
    };
    let flags = match object.get("keywords").map(flags_of) {
        None => Ok(Vec::new()),
        Some(flags) => flags,
    };
    let flags = match flags {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    let received = match object.get("receivedAt").and_then(Value::as_str) {
        Some(text) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => Some(t.timestamp()),
            Err(_) => return Ok(Err(set_error("invalidProperties", "not a date", &["receivedAt".into()]))),
        },
        None => None,
    };
    let blobs = match read_blobs(ctx, &compose::blob_ids(object), ctx.max_message_size).await? {
        DraftBlobs::Found(blobs) => blobs,
        DraftBlobs::Missing(missing) => {
            let mut error = set_error("blobNotFound", "blobs not found", &[]);
            error["notFound"] = json!(missing);
            return Ok(Err(error));
        }
        DraftBlobs::TooLarge => return Ok(Err(too_large())),
    };
    let now = chrono::Utc::now();
    let unique =
        format!("{}.{}.{}", now.timestamp_nanos_opt().unwrap_or_default(), ctx.account.get(), std::process::id());
    let content = match compose::compose(object, &blobs, &now.to_rfc2822(), &unique) {
        Ok(c) => c,
        Err(refused) => return Ok(Err(refused_json(&refused))),
    };
    store_new(ctx, content, &mailboxes, &flags, received).await
}

/// Stores a new message in the first mailbox and copies it into the others; the created object.
pub async fn store_new(
    ctx: &mut Ctx<'_>,
    content: Vec<u8>,
    mailboxes: &[(i64, MailboxName)],
    flags: &[String],
    received: Option<i64>,
) -> Result<Result<Value, Value>, MethodError> {
    if content.len() as u64 > ctx.max_message_size {
        return Ok(Err(too_large()));
    }
    let (content, parsed) = tokio::task::spawn_blocking(move || {
        let parsed = mime::parse(&content);
        (content, parsed)
    })
    .await
    .map_err(|e| MethodError::ServerFail(format!("parsing: {e}")))?;
    let Some(((_, first), others)) = mailboxes.split_first() else {
        return Ok(Err(set_error("invalidProperties", "an Email needs a mailbox", &["mailboxIds".into()])));
    };
    let placed = match messages::append(ctx.pool, ctx.account, first, flags, received, &content, &parsed).await {
        Ok(placed) => placed,
        Err(error) => return store_set_error(error).map(Err),
    };
    ctx.events.publish(
        ctx.account,
        &placed.mailbox,
        MailboxEventKind::Appended,
        &[placed.uid],
        placed.modseq,
        placed.uidvalidity,
    );
    let email = emails::message_at(ctx.pool, first, ctx.account, placed.uid).await?;
    for (_, other) in others {
        if other == first {
            continue;
        }
        match messages::copy(ctx.pool, ctx.account, first, other, &[placed.uid], false).await {
            Ok(copied) => publish_copied(ctx, &copied),
            Err(error) => return store_set_error(error).map(Err),
        }
    }
    let row = emails::rows(ctx.pool, ctx.account, &[email]).await?;
    let thread = row.first().and_then(|r| r.thread_id).unwrap_or(email);
    Ok(Ok(json!({
        "id": ids::encode(ids::EMAIL, email),
        "blobId": ids::email_blob(email),
        "threadId": ids::encode(ids::THREAD, thread),
        "size": content.len(),
    })))
}

/// IMAP flags of a `keywords` object.
pub fn flags_of(value: &Value) -> Result<Vec<String>, Value> {
    let bad = || set_error("invalidProperties", "keywords are {keyword: true}", &["keywords".into()]);
    let keys = true_keys(value).ok_or_else(bad)?;
    keys.iter().map(|k| keywords::to_flag(k).ok_or_else(bad)).collect()
}

pub fn publish_copied(ctx: &Ctx<'_>, copied: &Copied) {
    if let Some(gone) = &copied.expunged {
        publish_expunged(ctx, gone);
    }
    if !copied.target_uids.is_empty() {
        let kind = MailboxEventKind::Appended;
        ctx.events.publish(
            ctx.account,
            &copied.target,
            kind,
            &copied.target_uids,
            copied.target_modseq,
            copied.target_uidvalidity,
        );
    }
}

fn publish_expunged(ctx: &Ctx<'_>, gone: &Expunged) {
    if !gone.uids.is_empty() {
        ctx.events.publish(
            ctx.account,
            &gone.mailbox,
            MailboxEventKind::Expunged,
            &gone.uids,
            gone.modseq,
            gone.uidvalidity,
        );
    }
}

/// An email's entries grouped by mailbox.
fn by_mailbox(entries: &[EmailEntry]) -> BTreeMap<i64, (String, Vec<Uid>)> {
    let mut out: BTreeMap<i64, (String, Vec<Uid>)> = BTreeMap::new();
    for entry in entries {
        out.entry(entry.mailbox_id.get()).or_insert_with(|| (entry.mailbox_name.clone(), Vec::new())).1.push(entry.uid);
    }
    out
}

/// What an update asks for.
#[derive(Debug, Default)]
struct Plan {
    add_flags: Vec<String>,
    remove_flags: Vec<String>,
    /// The mailboxes the email is to be in, when mailboxIds changes.
    mailboxes: Option<BTreeSet<String>>,
}

fn plan(patch: &Map<String, Value>, entries: &[EmailEntry]) -> Result<Plan, Value> {
    let invalid = |p: &str, why: &str| set_error("invalidProperties", why, &[p.to_owned()]);
    let mut plan = Plan::default();
    let current_mailboxes: BTreeSet<String> =
        entries.iter().map(|e| ids::encode(ids::MAILBOX, e.mailbox_id.get())).collect();
    let mut mailboxes = current_mailboxes.clone();
    let mut mailboxes_changed = false;
    for (path, value) in patch {
        if path == "keywords" {
            let target = flags_of(value)?;
            let current: Vec<&String> =
                entries.iter().flat_map(|e| e.flags.iter()).filter(|f| keywords::of_flag(f).is_some()).collect();
            plan.remove_flags = current
                .iter()
                .filter(|f| !target.iter().any(|t| t.eq_ignore_ascii_case(f)))
                .map(|f| (*f).clone())
                .collect();
            plan.add_flags = target;
        } else if let Some(keyword) = path.strip_prefix("keywords/") {
            let flag = keywords::to_flag(keyword).ok_or_else(|| invalid(path, "not a keyword"))?;
            match value {
                Value::Bool(true) => plan.add_flags.push(flag),
                Value::Null => plan.remove_flags.push(flag),
                _ => return Err(invalid(path, "true or null")),
            }
        } else if path == "mailboxIds" {
            mailboxes = true_keys(value).ok_or_else(|| invalid(path, "{mailboxId: true}"))?.into_iter().collect();
            mailboxes_changed = true;
        } else if let Some(mailbox) = path.strip_prefix("mailboxIds/") {
            match value {
                Value::Bool(true) => mailboxes.insert(mailbox.to_owned()),
                Value::Null => mailboxes.remove(mailbox),
                _ => return Err(invalid(path, "true or null")),
            };
            mailboxes_changed = true;
        } else {
            return Err(invalid(path, "this property cannot be changed"));
        }
    }
    if mailboxes_changed {
        if mailboxes.is_empty() {
            return Err(invalid("mailboxIds", "an Email must stay in at least one mailbox"));
        }
        if mailboxes != current_mailboxes {
            plan.mailboxes = Some(mailboxes);
        }
    }
    Ok(plan)
}

async fn update(ctx: &mut Ctx<'_>, id: &str, patch: &Value) -> Result<Result<(), Value>, MethodError> {
    let not_found = || set_error("notFound", "no such email", &[]);
    let Some(email) = ids::decode(ids::EMAIL, id) else { return Ok(Err(not_found())) };
    let entries = emails::entries(ctx.pool, ctx.account, &[email]).await?.remove(&email).unwrap_or_default();
    if entries.is_empty() {
        return Ok(Err(not_found()));
    }
    let Some(patch) = patch.as_object() else {
        return Ok(Err(set_error("invalidPatch", "a patch is an object", &[])));
    };
    let plan = match plan(patch, &entries) {
        Ok(plan) => plan,
        Err(error) => return Ok(Err(error)),
    };
    // Mailboxes first (a copy carries the flags), then flags on every entry there is then.
    let mut entries = entries;
    if let Some(target) = &plan.mailboxes {
        let target: Vec<String> = target.iter().cloned().collect();
        let wanted = match mailboxes_of_ids(ctx, &target).await? {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        let source = entries[0].clone();
        let source_name = source.mailbox()?;
        let current = by_mailbox(&entries);
        for (id, name) in &wanted {
            if current.contains_key(id) {
                continue;
            }
            match messages::copy(ctx.pool, ctx.account, &source_name, name, &[source.uid], false).await {
                Ok(copied) => publish_copied(ctx, &copied),
                Err(error) => return store_set_error(error).map(Err),
            }
        }
        for (id, (name, uids)) in &current {
            if wanted.iter().any(|(w, _)| w == id) {
                continue;
            }
            let name: MailboxName = name.parse().map_err(|_| MethodError::ServerFail("stored mailbox name".into()))?;
            match messages::expunge(ctx.pool, ctx.account, &name, uids, false).await {
                Ok(gone) => publish_expunged(ctx, &gone),
                Err(error) => return store_set_error(error).map(Err),
            }
        }
        entries = emails::entries(ctx.pool, ctx.account, &[email]).await?.remove(&email).unwrap_or_default();
    }
    for (mode, flags) in [(StoreMode::Add, &plan.add_flags), (StoreMode::Remove, &plan.remove_flags)] {
        if flags.is_empty() {
            continue;
        }
        for (name, uids) in by_mailbox(&entries).into_values() {
            let name: MailboxName = name.parse().map_err(|_| MethodError::ServerFail("stored mailbox name".into()))?;
            match messages::store(ctx.pool, ctx.account, &name, &uids, mode, flags, None).await {
                Ok(stored) if !stored.changed.is_empty() => {
                    let kind = MailboxEventKind::FlagsChanged;
                    ctx.events.publish(ctx.account, &name, kind, &stored.changed, stored.modseq, stored.uidvalidity);
                }
                Ok(_) => {}
                Err(error) => return store_set_error(error).map(Err),
            }
        }
    }
    Ok(Ok(()))
}

async fn destroy(ctx: &mut Ctx<'_>, id: &str) -> Result<Result<(), Value>, MethodError> {
    let not_found = || set_error("notFound", "no such email", &[]);
    let Some(email) = ids::decode(ids::EMAIL, id) else { return Ok(Err(not_found())) };
    let entries = emails::entries(ctx.pool, ctx.account, &[email]).await?.remove(&email).unwrap_or_default();
    if entries.is_empty() {
        return Ok(Err(not_found()));
    }
    for (name, uids) in by_mailbox(&entries).into_values() {
        let name: MailboxName = name.parse().map_err(|_| MethodError::ServerFail("stored mailbox name".into()))?;
        match messages::expunge(ctx.pool, ctx.account, &name, &uids, false).await {
            Ok(gone) => publish_expunged(ctx, &gone),
            Err(error) => return store_set_error(error).map(Err),
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mailbox: i64, flags: &[&str]) -> EmailEntry {
        EmailEntry {
            message_id: 1,
            mailbox_id: mailbus_address::MailboxId::new(mailbox),
            mailbox_name: "INBOX".into(),
            uid: Uid::new(1).unwrap(),
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    #[tokio::test]
    async fn blobs_stop_being_read_once_the_draft_is_too_large() {
        let wanted: Vec<String> = ["u1", "u2", "u3", "u4"].iter().map(|id| (*id).to_owned()).collect();
        let mut reads = Vec::new();
        let blob = |size: usize| Blob { media_type: "application/octet-stream".into(), content: vec![0; size] };
        let outcome = read_within(&wanted, 1000, |id| {
            reads.push(id);
            async { Ok(Some(blob(600))) }
        })
        .await
        .unwrap();
        assert!(matches!(outcome, DraftBlobs::TooLarge));
        assert_eq!(reads, ["u1", "u2"], "the third and fourth blobs are never loaded");

        let fits = read_within(&wanted, 4000, |_| async { Ok(Some(blob(1000))) }).await.unwrap();
        assert!(matches!(fits, DraftBlobs::Found(found) if found.len() == 4));
        let missing = read_within(&wanted, 4000, |id| async move { Ok((id != "u3").then(|| blob(10))) }).await.unwrap();
        assert!(matches!(missing, DraftBlobs::Missing(ids) if ids == ["u3"]));
    }

    #[test]
    fn patches_become_flag_changes_and_mailbox_targets() {
        let entries = [entry(3, &["\\Seen", "\\Deleted", "$Work"])];
        let whole = json!({"keywords": {"$flagged": true, "$work": true}});
        let plan = plan(whole.as_object().unwrap(), &entries).unwrap();
        assert_eq!(plan.add_flags, ["\\Flagged", "$work"]);
        assert_eq!(plan.remove_flags, ["\\Seen"], "\\Deleted is no keyword and stays");
        let patch = json!({"keywords/$seen": null, "mailboxIds/m4": true, "mailboxIds/m3": null});
        let plan = super::plan(patch.as_object().unwrap(), &entries).unwrap();
        assert_eq!(plan.remove_flags, ["\\Seen"]);
        assert_eq!(plan.mailboxes, Some(BTreeSet::from(["m4".to_owned()])));
        let emptied = json!({"mailboxIds/m3": null});
        assert_eq!(
            super::plan(emptied.as_object().unwrap(), &entries).unwrap_err()["properties"],
            json!(["mailboxIds"])
        );
        let immutable = json!({"subject": "x"});
        assert_eq!(
            super::plan(immutable.as_object().unwrap(), &entries).unwrap_err()["properties"],
            json!(["subject"])
        );
    }
}
