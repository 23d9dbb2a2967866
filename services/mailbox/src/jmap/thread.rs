//! RFC 8621 §3 Thread: the emails that share a `messages.thread_id` (given by the schema's trigger from
//! Message-ID, In-Reply-To and References), those alive in some mailbox, oldest first.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::get::{self, GetArgs};
use super::{Ctx, MAX_OBJECTS_IN_GET, MethodError, Responses, changes, ids, one};

#[derive(sqlx::FromRow)]
struct Member {
    thread_id: i64,
    id: i64,
}

/// The live emails of threads (all the account's when `threads` is None), each thread's in receivedAt
/// order.
async fn members(ctx: &Ctx<'_>, threads: Option<&[i64]>) -> Result<BTreeMap<i64, Vec<i64>>, MethodError> {
    let rows: Vec<Member> = sqlx::query_as(
        "SELECT m.thread_id, m.id FROM messages m
          WHERE m.account_id = $1 AND m.thread_id IS NOT NULL
            AND ($2::bigint[] IS NULL OR m.thread_id = ANY($2))
            AND EXISTS (SELECT 1 FROM mailbox_entries e WHERE e.message_id = m.id)
          ORDER BY m.thread_id, m.internal_date, m.id",
    )
    .bind(ctx.account.get())
    .bind(threads)
    .fetch_all(ctx.pool)
    .await?;
    let mut out: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for row in rows {
        out.entry(row.thread_id).or_default().push(row.id);
    }
    Ok(out)
}

fn object(thread: i64, emails: &[i64]) -> serde_json::Map<String, Value> {
    let emails: Vec<String> = emails.iter().map(|&e| ids::encode(ids::EMAIL, e)).collect();
    let mut object = serde_json::Map::new();
    object.insert("id".into(), json!(ids::encode(ids::THREAD, thread)));
    object.insert("emailIds".into(), json!(emails));
    object
}

pub async fn get(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args = GetArgs::parse(arguments)?;
    let state = super::state(ctx.pool, ctx.account).await?;
    let (list, not_found) = match &args.ids {
        None => {
            let all = members(ctx, None).await?;
            if all.len() > MAX_OBJECTS_IN_GET {
                return Err(MethodError::RequestTooLarge);
            }
            (all.iter().map(|(&t, emails)| args.pick(object(t, emails))).collect(), Vec::new())
        }
        Some(wanted) => {
            let rows: Vec<i64> = wanted.iter().filter_map(|id| ids::decode(ids::THREAD, id)).collect();
            let found = members(ctx, Some(&rows)).await?;
            let mut list = Vec::new();
            let mut not_found = Vec::new();
            for given in wanted {
                match ids::decode(ids::THREAD, given).and_then(|t| found.get(&t).map(|emails| (t, emails))) {
                    Some((thread, emails)) => list.push(args.pick(object(thread, emails))),
                    None => not_found.push(given.clone()),
                }
            }
            (list, not_found)
        }
    };
    one("Thread/get", get::response(ctx.account_id(), state, list, not_found))
}

pub async fn changes(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let (response, _) = changes::respond(ctx, changes::THREAD, arguments, |t| ids::encode(ids::THREAD, t)).await?;
    one("Thread/changes", response)
}
