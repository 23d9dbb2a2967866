//! Email/query and Email/queryChanges (RFC 8620 §5.5–5.6, RFC 8621 §4.4–4.5). The filter and sort are
//! checked here and run as one SQL query (`store::email_query`); position, anchor, limit and thread
//! collapsing are applied to the ordered ids. queryState is the account's state: queryChanges works out
//! the difference from the change log.

use std::collections::{HashMap, HashSet};

use chrono::DateTime;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::keywords;
use crate::jmap::query::window_start;
use crate::jmap::{Ctx, MethodError, Responses, ids, one, resolve, state};
use crate::store::email_query::{self, Comparator, Condition, Filter, Found, SortKey};
use crate::store::emails;

/// Rows read per step when collapsing threads from the start of the results.
const COLLAPSE_CHUNK: usize = 256;
/// The most ids one query returns (Stalwart's default is 50 with a maximum of 1000; we give 256 when the
/// client asks for no limit, and never more than 1000).
pub const DEFAULT_LIMIT: usize = 256;
pub const MAX_LIMIT: usize = 1000;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct QueryArgs {
    filter: Option<Value>,
    sort: Option<Vec<Value>>,
    position: i64,
    anchor: Option<String>,
    anchor_offset: i64,
    limit: Option<u64>,
    calculate_total: bool,
    collapse_threads: bool,
}

/// A filter from its JSON (RFC 8620 §5.5 FilterOperator or RFC 8621 §4.4.1 FilterCondition). Mailbox ids
/// may be `#creationId` references to mailboxes created earlier in the request (RFC 8620 §5.3).
/// At most `email_query::MAX_FILTER_NODES` operators and conditions in all.
pub fn parse_filter(value: &Value, created_ids: &HashMap<String, String>) -> Result<Filter, MethodError> {
    let mut left = email_query::MAX_FILTER_NODES;
    parse_at(value, created_ids, 0, &mut left)
}

fn parse_at(
    value: &Value,
    created_ids: &HashMap<String, String>,
    depth: usize,
    left: &mut usize,
) -> Result<Filter, MethodError> {
    if depth > email_query::MAX_DEPTH {
        return Err(MethodError::UnsupportedFilter("filter nested too deeply".into()));
    }
    let mut take = || match left.checked_sub(1) {
        Some(rest) => {
            *left = rest;
            Ok(())
        }
        None => Err(MethodError::UnsupportedFilter(format!(
            "a filter of more than {} operators and conditions",
            email_query::MAX_FILTER_NODES
        ))),
    };
    let Value::Object(object) = value else {
        return Err(MethodError::InvalidArguments("a filter is an object".into()));
    };
    if let Some(operator) = object.get("operator") {
        take()?;
        let conditions = object
            .get("conditions")
            .and_then(Value::as_array)
            .ok_or_else(|| MethodError::InvalidArguments("a FilterOperator needs conditions".into()))?;
        let inner =
            conditions.iter().map(|c| parse_at(c, created_ids, depth + 1, left)).collect::<Result<Vec<_>, _>>()?;
        return match operator.as_str() {
            Some("AND") => Ok(Filter::And(inner)),
            Some("OR") => Ok(Filter::Or(inner)),
            Some("NOT") => Ok(Filter::Not(inner)),
            _ => Err(MethodError::UnsupportedFilter(format!("operator {operator}"))),
        };
    }
    // A FilterCondition counts once, and once more for each property beyond its first: `{}` too.
    take()?;
    let mut all = Vec::new();
    for (index, (name, value)) in object.iter().enumerate() {
        if index > 0 {
            take()?;
        }
        all.push(Filter::Condition(condition(name, value, created_ids)?));
    }
    Ok(if all.len() == 1 { all.remove(0) } else { Filter::And(all) })
}

fn condition(name: &str, value: &Value, created_ids: &HashMap<String, String>) -> Result<Condition, MethodError> {
    let bad = || MethodError::InvalidArguments(format!("filter condition {name} has a value of the wrong type"));
    let text = || value.as_str().map(str::to_owned).ok_or_else(bad);
    let keyword = || {
        let given = value.as_str().ok_or_else(bad)?;
        keywords::to_flag(given).ok_or_else(|| MethodError::InvalidArguments(format!("{given:?} is not a keyword")))
    };
    let date = || {
        let given = value.as_str().ok_or_else(bad)?;
        DateTime::parse_from_rfc3339(given).map(|d| d.timestamp()).map_err(|_| bad())
    };
    let size = || value.as_u64().map(|n| n.min(i64::MAX as u64) as i64).ok_or_else(bad);
    Ok(match name {
        "inMailbox" => {
            let given = resolve(created_ids, value.as_str().ok_or_else(bad)?)?;
            ids::decode(ids::MAILBOX, given).map_or(Condition::Nothing, Condition::InMailbox)
        }
        "inMailboxOtherThan" => {
            let list = value.as_array().ok_or_else(bad)?;
            let given = list
                .iter()
                .map(|v| resolve(created_ids, v.as_str().ok_or_else(bad)?))
                .collect::<Result<Vec<_>, _>>()?;
            Condition::InMailboxOtherThan(given.iter().filter_map(|id| ids::decode(ids::MAILBOX, id)).collect())
        }
        "before" => Condition::Before(date()?),
        "after" => Condition::After(date()?),
        "minSize" => Condition::MinSize(size()?),
        "maxSize" => Condition::MaxSize(size()?),
        "allInThreadHaveKeyword" => Condition::AllInThreadHaveKeyword(keyword()?),
        "someInThreadHaveKeyword" => Condition::SomeInThreadHaveKeyword(keyword()?),
        "noneInThreadHaveKeyword" => Condition::NoneInThreadHaveKeyword(keyword()?),
        "hasKeyword" => Condition::HasKeyword(keyword()?),
        "notKeyword" => Condition::NotKeyword(keyword()?),
        "hasAttachment" => Condition::HasAttachment(value.as_bool().ok_or_else(bad)?),
        "text" => Condition::Text(text()?),
        "from" | "to" | "cc" | "bcc" | "subject" => Condition::HeaderContains(name.to_owned(), text()?),
        "body" => Condition::Body(text()?),
        "header" => {
            let list = value.as_array().ok_or_else(bad)?;
            let strings = list.iter().map(|v| v.as_str().ok_or_else(bad)).collect::<Result<Vec<_>, _>>()?;
            match strings.as_slice() {
                [name] => Condition::HeaderExists(name.to_ascii_lowercase()),
                [name, value] => Condition::HeaderContains(name.to_ascii_lowercase(), (*value).to_owned()),
                _ => return Err(MethodError::InvalidArguments("header takes [name] or [name, value]".into())),
            }
        }
        other => return Err(MethodError::UnsupportedFilter(format!("unknown filter condition {other}"))),
    })
}

/// Comparators (RFC 8620 §5.5); none means receivedAt, newest first.
pub fn parse_sort(sort: Option<&[Value]>) -> Result<Vec<Comparator>, MethodError> {
    let Some(list) = sort.filter(|l| !l.is_empty()) else {
        return Ok(vec![Comparator { key: SortKey::ReceivedAt, ascending: false }]);
    };
    list.iter()
        .map(|c| {
            let property = c
                .get("property")
                .and_then(Value::as_str)
                .ok_or_else(|| MethodError::InvalidArguments("a comparator needs a property".into()))?;
            let ascending = c
                .get("isAscending")
                .map_or(Some(true), Value::as_bool)
                .ok_or_else(|| MethodError::InvalidArguments("isAscending is a boolean".into()))?;
            let key = match property {
                "receivedAt" => SortKey::ReceivedAt,
                "size" => SortKey::Size,
                "from" => SortKey::From,
                "to" => SortKey::To,
                "subject" => SortKey::Subject,
                "sentAt" => SortKey::SentAt,
                "hasKeyword" => {
                    let keyword = c.get("keyword").and_then(Value::as_str).unwrap_or_default();
                    SortKey::HasKeyword(
                        keywords::to_flag(keyword)
                            .ok_or_else(|| MethodError::InvalidArguments(format!("{keyword:?} is not a keyword")))?,
                    )
                }
                other => return Err(MethodError::UnsupportedSort(format!("cannot sort by {other}"))),
            };
            Ok(Comparator { key, ascending })
        })
        .collect()
}

/// One email per thread: the first of each in the order given.
fn collapse(found: Vec<Found>) -> Vec<Found> {
    let mut seen = HashSet::new();
    found.into_iter().filter(|f| seen.insert(f.thread_id)).collect()
}

pub async fn query(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: QueryArgs = super::super::arguments(arguments)?;
    let filter = args.filter.as_ref().map(|f| parse_filter(f, ctx.created_ids)).transpose()?;
    let sort = parse_sort(args.sort.as_deref())?;
    let limit = args.limit.map_or(DEFAULT_LIMIT, |l| (l as usize).min(MAX_LIMIT));
    let state = state(ctx.pool, ctx.account).await?;
    // The common case, a page from the start without an anchor or collapsing, is cut in SQL.
    let simple = args.anchor.is_none() && !args.collapse_threads && args.position >= 0;
    let (position, page, total) = if simple {
        let page = email_query::run(ctx.pool, ctx.account, filter.as_ref(), &sort, Some((args.position, limit as i64)))
            .await?;
        let total = match args.calculate_total {
            true => Some(email_query::count(ctx.pool, ctx.account, filter.as_ref()).await?),
            false => None,
        };
        (args.position, page, total)
    } else if args.collapse_threads && args.anchor.is_none() && args.position >= 0 {
        // Collapsed from the start: rows in sort order a chunk at a time, each thread's first kept, until
        // the page is full; a message list's first page reads a few hundred rows, not the whole mailbox.
        let position = usize::try_from(args.position).unwrap_or(usize::MAX);
        let wanted = position.saturating_add(limit);
        let chunk = i64::try_from(wanted.saturating_mul(2).max(COLLAPSE_CHUNK)).unwrap_or(i64::MAX);
        let (mut kept, mut threads, mut offset) = (Vec::new(), HashSet::new(), 0i64);
        loop {
            let rows = email_query::run(ctx.pool, ctx.account, filter.as_ref(), &sort, Some((offset, chunk))).await?;
            let read = rows.len() as i64;
            kept.extend(rows.into_iter().filter(|f| threads.insert(f.thread_id)));
            offset = offset.saturating_add(read);
            if kept.len() >= wanted || read < chunk {
                break;
            }
        }
        let total = match args.calculate_total {
            true => Some(email_query::count_threads(ctx.pool, ctx.account, filter.as_ref()).await?),
            false => None,
        };
        let page: Vec<Found> = kept.into_iter().skip(position).take(limit).collect();
        (args.position, page, total)
    } else {
        let mut all = email_query::run(ctx.pool, ctx.account, filter.as_ref(), &sort, None).await?;
        if args.collapse_threads {
            all = collapse(all);
        }
        let total = all.len();
        let anchor_at = match &args.anchor {
            Some(anchor) => {
                let anchor = ctx.resolve(anchor)?;
                let at = ids::decode(ids::EMAIL, anchor).and_then(|id| all.iter().position(|f| f.id == id));
                Some(at.ok_or(MethodError::AnchorNotFound)?)
            }
            None => None,
        };
        let start = window_start(anchor_at, args.anchor_offset, args.position, total);
        let page: Vec<Found> = all.into_iter().skip(start).take(limit).collect();
        (start as i64, page, Some(total as i64).filter(|_| args.calculate_total))
    };
    let mut response = Map::new();
    response.insert("accountId".into(), json!(ctx.account_id()));
    response.insert("queryState".into(), json!(state));
    response.insert("canCalculateChanges".into(), json!(true));
    response.insert("position".into(), json!(position));
    response.insert("ids".into(), json!(page.iter().map(|f| ids::encode(ids::EMAIL, f.id)).collect::<Vec<_>>()));
    if let Some(total) = total {
        response.insert("total".into(), json!(total));
    }
    if args.limit.is_some_and(|l| l as usize > MAX_LIMIT) {
        response.insert("limit".into(), json!(MAX_LIMIT));
    }
    one("Email/query", Value::Object(response))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct QueryChangesArgs {
    filter: Option<Value>,
    sort: Option<Vec<Value>>,
    since_query_state: String,
    max_changes: Option<u64>,
    up_to_id: Option<String>,
    calculate_total: bool,
    collapse_threads: bool,
}

/// Email/queryChanges (RFC 8620 §5.6): every email changed since the old state is reported removed, and
/// added again at its index if it is in the results now (the simple, always correct way the RFC allows).
/// With collapsed threads, every email of a thread that changed counts as changed.
pub async fn query_changes(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: QueryChangesArgs = super::super::arguments(arguments)?;
    let filter = args.filter.as_ref().map(|f| parse_filter(f, ctx.created_ids)).transpose()?;
    let sort = parse_sort(args.sort.as_deref())?;
    let since: i64 = args.since_query_state.parse().map_err(|_| MethodError::CannotCalculateChanges)?;
    let new_state = state(ctx.pool, ctx.account).await?;
    if since < 0 || since > new_state.parse::<i64>().unwrap_or(0) {
        return Err(MethodError::CannotCalculateChanges);
    }
    super::super::changes::computable(ctx.pool, ctx.account, since).await?;
    let mut changed = emails::changed_since(ctx.pool, ctx.account, since).await?;
    let mut all = email_query::run(ctx.pool, ctx.account, filter.as_ref(), &sort, None).await?;
    if args.collapse_threads {
        // A thread's representative may change when any of its emails does: report the whole thread.
        let threads = emails::threads_of(ctx.pool, ctx.account, &changed).await?;
        let touched: HashSet<i64> = threads.values().copied().collect();
        let extra: Vec<i64> =
            all.iter().filter(|f| touched.contains(&f.thread_id) && !changed.contains(&f.id)).map(|f| f.id).collect();
        changed.extend(extra);
        all = collapse(all);
    }
    // RFC 8620 §5.6: more changes than maxChanges is tooManyChanges (the client starts over with a query).
    if args.max_changes.is_some_and(|max| changed.len() as u64 > max) {
        return Err(MethodError::TooManyChanges);
    }
    let changed_set: HashSet<i64> = changed.iter().copied().collect();
    let up_to = match &args.up_to_id {
        Some(id) => ids::decode(ids::EMAIL, ctx.resolve(id)?),
        None => None,
    };
    let mut added = Vec::new();
    for (index, found) in all.iter().enumerate() {
        if changed_set.contains(&found.id) {
            added.push(json!({"id": ids::encode(ids::EMAIL, found.id), "index": index}));
        }
        if Some(found.id) == up_to {
            break;
        }
    }
    let mut response = Map::new();
    response.insert("accountId".into(), json!(ctx.account_id()));
    response.insert("oldQueryState".into(), json!(args.since_query_state));
    response.insert("newQueryState".into(), json!(new_state));
    response.insert("removed".into(), json!(changed.iter().map(|&id| ids::encode(ids::EMAIL, id)).collect::<Vec<_>>()));
    response.insert("added".into(), Value::Array(added));
    if args.calculate_total {
        response.insert("total".into(), json!(all.len()));
    }
    one("Email/queryChanges", Value::Object(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_into_conditions_and_unknown_ones_are_refused() {
        let filter = parse_filter(
            &json!({"operator": "OR", "conditions": [
                {"inMailbox": "m3", "hasKeyword": "$Seen"},
                {"operator": "NOT", "conditions": [{"header": ["X-Spam"]}]},
                {"inMailbox": "x"}
            ]}),
            &HashMap::new(),
        )
        .unwrap();
        assert_eq!(
            filter,
            Filter::Or(vec![
                Filter::And(vec![
                    Filter::Condition(Condition::HasKeyword("\\Seen".into())),
                    Filter::Condition(Condition::InMailbox(3)),
                ]),
                Filter::Not(vec![Filter::Condition(Condition::HeaderExists("x-spam".into()))]),
                Filter::Condition(Condition::Nothing),
            ])
        );
        assert!(matches!(parse_filter(&json!({"bogus": 1}), &HashMap::new()), Err(MethodError::UnsupportedFilter(_))));
        assert!(matches!(
            parse_filter(&json!({"minSize": "x"}), &HashMap::new()),
            Err(MethodError::InvalidArguments(_))
        ));
        assert!(matches!(
            parse_filter(&json!({"operator": "XOR", "conditions": []}), &HashMap::new()),
            Err(MethodError::UnsupportedFilter(_))
        ));
        assert_eq!(
            parse_filter(&json!({"after": "2026-12-07T10:00:00Z"}), &HashMap::new()).unwrap(),
            Filter::Condition(Condition::After(1_796_637_600))
        );
    }

    #[test]
    fn a_filter_has_at_most_256_operators_and_conditions() {
        let wide = |n: usize| json!({"operator": "OR", "conditions": vec![json!({"body": "x"}); n]});
        assert!(parse_filter(&wide(255), &HashMap::new()).is_ok());
        let refused = parse_filter(&wide(256), &HashMap::new());
        assert!(matches!(refused, Err(MethodError::UnsupportedFilter(ref d)) if d.contains("256")), "{refused:?}");
        // Conditions side by side in one object count one by one; empty operators count too.
        let side_by_side: serde_json::Map<String, Value> = ["from", "to", "cc", "bcc", "subject", "body", "text"]
            .iter()
            .map(|k| (k.to_string(), json!("x")))
            .collect();
        let many = vec![Value::Object(side_by_side); 37];
        assert!(parse_filter(&json!({"operator": "AND", "conditions": many}), &HashMap::new()).is_err());
        let empty = vec![json!({"operator": "AND", "conditions": []}); 256];
        assert!(parse_filter(&json!({"operator": "OR", "conditions": empty}), &HashMap::new()).is_err());
        let nothing = vec![json!({}); 256];
        assert!(parse_filter(&json!({"operator": "OR", "conditions": nothing}), &HashMap::new()).is_err());
    }

    #[test]
    fn mailbox_conditions_resolve_creation_ids() {
        let created = HashMap::from([("new".to_owned(), "m7".to_owned())]);
        assert_eq!(
            parse_filter(&json!({"inMailbox": "#new"}), &created).unwrap(),
            Filter::Condition(Condition::InMailbox(7))
        );
        assert_eq!(
            parse_filter(&json!({"inMailboxOtherThan": ["m3", "#new"]}), &created).unwrap(),
            Filter::Condition(Condition::InMailboxOtherThan(vec![3, 7]))
        );
        assert!(matches!(
            parse_filter(&json!({"inMailbox": "#other"}), &created),
            Err(MethodError::InvalidArguments(_))
        ));
    }

    #[test]
    fn sort_defaults_to_newest_first_and_refuses_unknown_keys() {
        assert_eq!(parse_sort(None).unwrap(), [Comparator { key: SortKey::ReceivedAt, ascending: false }]);
        let sort = [json!({"property": "hasKeyword", "keyword": "$flagged", "isAscending": false})];
        assert_eq!(
            parse_sort(Some(&sort)).unwrap(),
            [Comparator { key: SortKey::HasKeyword("\\Flagged".into()), ascending: false }]
        );
        assert!(matches!(parse_sort(Some(&[json!({"property": "id"})])), Err(MethodError::UnsupportedSort(_))));
        let threads = vec![Found { id: 5, thread_id: 1 }, Found { id: 4, thread_id: 2 }, Found { id: 3, thread_id: 1 }];
        assert_eq!(collapse(threads).iter().map(|f| f.id).collect::<Vec<_>>(), [5, 4]);
    }
}
