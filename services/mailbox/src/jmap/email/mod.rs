//! The Email methods (RFC 8621 §4): `get`, `changes` (here), `query` and `queryChanges`, `set`, `copy` and
//! `import`. An Email is a stored message that a live mailbox entry holds; its keywords are its entries'
//! flags under the mapping in `keywords`, and a write sets them on every entry of the email.
//!
//! Reading an email parses its octets with mail-parser (`headers` for the header forms, `body` for the
//! body parts, whose partId is the part's IMAP section number so that the blob ids match FETCH and
//! Download); writing goes through `store::messages` per mailbox, followed by the IMAP events.

pub mod body;
pub mod compose;
pub mod get;
pub mod headers;
pub mod import;
pub mod keywords;
pub mod query;
pub mod set;

use serde::Deserialize;
use serde_json::json;

use super::{Ctx, MethodError, Responses, changes, ids, one};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangesArgs {
    since_state: String,
    #[serde(default)]
    max_changes: Option<u64>,
}

/// Email/changes (RFC 8620 §5.2).
pub async fn changes(ctx: &mut Ctx<'_>, arguments: serde_json::Value) -> Result<Responses, MethodError> {
    let args: ChangesArgs = super::arguments(arguments)?;
    if args.max_changes == Some(0) {
        return Err(MethodError::InvalidArguments("maxChanges must be positive".into()));
    }
    let set = changes::since(ctx.pool, ctx.account, changes::EMAIL, &args.since_state, args.max_changes).await?;
    let list = |v: &[i64]| v.iter().map(|&id| ids::encode(ids::EMAIL, id)).collect::<Vec<_>>();
    one(
        "Email/changes",
        json!({
            "accountId": ctx.account_id(),
            "oldState": args.since_state,
            "newState": set.new_state,
            "hasMoreChanges": set.has_more_changes,
            "created": list(&set.created),
            "updated": list(&set.updated),
            "destroyed": list(&set.destroyed),
        }),
    )
}
