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

/// How long the log keeps a step. A client away longer starts over (cannotCalculateChanges), as it would
/// after a UIDVALIDITY change in IMAP.
pub const RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// The account's current step, if the changes after `since` can still be told: `since` is neither in the
/// future nor older than what the log still holds.
pub async fn computable(pool: &PgPool, account: AccountId, since: i64) -> Result<i64, MethodError> {
    let (current, floor): (i64, i64) = sqlx::query_as("SELECT change_seq, changes_floor FROM accounts WHERE id = $1")
        .bind(account.get())
        .fetch_one(pool)
        .await?;
    if since < floor || since > current {
        return Err(MethodError::CannotCalculateChanges);
    }
    Ok(current)
}

/// Drops the log's steps older than `RETENTION`, a batch at a time, and raises each account's floor to the
/// last step dropped; returns how many batches it took. Several replicas may run it at once harmlessly.
pub async fn prune(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut batches = 0;
    loop {
        let done = sqlx::query(
            "WITH gone AS (
                 DELETE FROM changes WHERE id IN (
                     SELECT id FROM changes WHERE at < now() - make_interval(secs => $1) LIMIT 10000)
                 RETURNING account_id, seq)
             UPDATE accounts a SET changes_floor = greatest(a.changes_floor, g.seq)
               FROM (SELECT account_id, max(seq) AS seq FROM gone GROUP BY account_id) g
              WHERE a.id = g.account_id",
        )
        .bind(RETENTION.as_secs_f64())
        .execute(pool)
        .await?;
        // The update touches one row per account the batch held; a batch that held none deleted nothing.
        if done.rows_affected() == 0 {
            return Ok(batches);
        }
        batches += 1;
    }
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
    let current = computable(pool, account, since).await?;
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
