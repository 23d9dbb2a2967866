//! `Foo/changes` (RFC 8620 §5.2) for every type, from the `changes` log that the tables' triggers write.

use mailbus_address::AccountId;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{Ctx, MethodError};

/// Kinds of object in the log.
pub const EMAIL: &str = "E";
pub const MAILBOX: &str = "M";
pub const THREAD: &str = "T";
pub const SUBMISSION: &str = "S";
pub const IDENTITY: &str = "I";

/// The objects of one kind that changed after a state, each in one list.
#[derive(Debug, Default)]
pub struct ChangeSet {
    pub new_state: String,
    pub has_more_changes: bool,
    pub created: Vec<i64>,
    pub updated: Vec<i64>,
    pub destroyed: Vec<i64>,
    /// Every update was of counts only (Mailbox/changes' updatedProperties).
    pub counts_only: bool,
}

/// The changes of `kind` after `since_state`, at most `max_changes` objects (RFC 8620 §5.2). An object
/// created and destroyed within the span is left out; one destroyed and created again (an email moved out
/// of its last mailbox and back) is updated.
pub async fn since(
    pool: &PgPool,
    account: AccountId,
    kind: &str,
    since_state: &str,
    max_changes: Option<u64>,
) -> Result<ChangeSet, MethodError> {
    let since: i64 = since_state.parse().map_err(|_| MethodError::CannotCalculateChanges)?;
    let current: i64 =
        sqlx::query_scalar("SELECT change_seq FROM accounts WHERE id = $1").bind(account.get()).fetch_one(pool).await?;
    if since < 0 || since > current {
        return Err(MethodError::CannotCalculateChanges);
    }
    let max = max_changes.unwrap_or(u64::MAX).max(1);
    // Steps in order, and a step's changes in the order they were made. One step is one transaction, which
    // may change many objects.
    let rows: Vec<(i64, i64, String, bool)> = sqlx::query_as(
        "SELECT seq, object_id, op::text, counts_only FROM changes
          WHERE account_id = $1 AND kind = $2 AND seq > $3 ORDER BY seq, id",
    )
    .bind(account.get())
    .bind(kind)
    .bind(since)
    .fetch_all(pool)
    .await?;
    let mut order: Vec<i64> = Vec::new();
    let mut seen: std::collections::HashMap<i64, (char, char, bool)> = std::collections::HashMap::new();
    let mut cutoff = current;
    let mut has_more = false;
    for step in rows.chunk_by(|a, b| a.0 == b.0) {
        let seq = step[0].0;
        let mut new_objects: Vec<i64> = step.iter().map(|r| r.1).filter(|o| !seen.contains_key(o)).collect();
        new_objects.sort_unstable();
        new_objects.dedup();
        if (order.len() + new_objects.len()) as u64 > max {
            if order.is_empty() {
                // One step alone changed more objects than the client takes at once: it must start over
                // (RFC 8620 §5.2 allows no more than maxChanges).
                return Err(MethodError::CannotCalculateChanges);
            }
            // The state given back is the last step whose objects are all reported.
            cutoff = seq - 1;
            has_more = true;
            break;
        }
        for (_, object, op, counts_only) in step {
            let op = op.chars().next().unwrap_or('u');
            let entry = seen.entry(*object).or_insert_with(|| {
                order.push(*object);
                (op, op, true)
            });
            entry.1 = op;
            entry.2 &= *counts_only && op == 'u';
        }
    }
    let mut set = ChangeSet {
        new_state: cutoff.to_string(),
        has_more_changes: has_more,
        counts_only: true,
        ..Default::default()
    };
    for object in order {
        let (first, last, counts_only) = seen[&object];
        match (first, last) {
            ('c', 'd') => {}
            ('c', _) => set.created.push(object),
            (_, 'd') => set.destroyed.push(object),
            _ => {
                set.updated.push(object);
                set.counts_only &= counts_only;
            }
        }
    }
    set.counts_only &= set.created.is_empty() && set.destroyed.is_empty();
    Ok(set)
}

/// A `Foo/changes` call's arguments (RFC 8620 §5.2).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangesArgs {
    pub since_state: String,
    #[serde(default)]
    pub max_changes: Option<u64>,
}

/// A whole `Foo/changes` response for a type whose ids are `to_id` of the log's row ids; the ChangeSet comes
/// back too, for a type that adds arguments of its own (Mailbox's updatedProperties).
pub async fn respond(
    ctx: &Ctx<'_>,
    kind: &str,
    arguments: Value,
    to_id: impl Fn(i64) -> String,
) -> Result<(Value, ChangeSet), MethodError> {
    let args: ChangesArgs = super::arguments(arguments)?;
    if args.max_changes == Some(0) {
        return Err(MethodError::InvalidArguments("maxChanges must be positive".into()));
    }
    let set = since(ctx.pool, ctx.account, kind, &args.since_state, args.max_changes).await?;
    let ids = |v: &[i64]| v.iter().map(|&id| to_id(id)).collect::<Vec<_>>();
    let response = json!({
        "accountId": ctx.account_id(),
        "oldState": args.since_state,
        "newState": set.new_state,
        "hasMoreChanges": set.has_more_changes,
        "created": ids(&set.created),
        "updated": ids(&set.updated),
        "destroyed": ids(&set.destroyed),
    });
    Ok((response, set))
}
