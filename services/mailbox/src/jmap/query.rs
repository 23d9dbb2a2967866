//! What every `Foo/query` and `Foo/queryChanges` shares (RFC 8620 §5.5, §5.6): filters with their
//! AND/OR/NOT operators, comparators, the window that position, anchor and limit cut from the results,
//! and queryChanges worked out from the change log.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Ctx, MethodError, changes};

/// The most ids one query returns; a larger or missing limit is cut to this and the response says so.
pub const MAX_QUERY_LIMIT: u64 = 1000;

/// A FilterOperator tree (RFC 8620 §5.5) over a type's own conditions.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter<C> {
    And(Vec<Filter<C>>),
    Or(Vec<Filter<C>>),
    Not(Vec<Filter<C>>),
    Condition(C),
}

impl<C> Filter<C> {
    /// Parses `value`, each FilterCondition by `condition`; `null` filters nothing out.
    pub fn parse(
        value: Option<&Value>,
        condition: &impl Fn(&Map<String, Value>) -> Result<C, MethodError>,
    ) -> Result<Option<Filter<C>>, MethodError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(value) => Self::parse_one(value, condition, 0).map(Some),
        }
    }

    fn parse_one(
        value: &Value,
        condition: &impl Fn(&Map<String, Value>) -> Result<C, MethodError>,
        depth: usize,
    ) -> Result<Filter<C>, MethodError> {
        // Deep nesting is no filter anyone writes: refuse it rather than recurse without bound.
        if depth > 16 {
            return Err(MethodError::UnsupportedFilter("filter nested too deeply".into()));
        }
        let Some(object) = value.as_object() else {
            return Err(MethodError::InvalidArguments("a filter is an object".into()));
        };
        let Some(operator) = object.get("operator") else { return condition(object).map(Filter::Condition) };
        let conditions = object
            .get("conditions")
            .and_then(Value::as_array)
            .ok_or_else(|| MethodError::InvalidArguments("a FilterOperator needs conditions".into()))?
            .iter()
            .map(|c| Self::parse_one(c, condition, depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        match operator.as_str() {
            Some("AND") => Ok(Filter::And(conditions)),
            Some("OR") => Ok(Filter::Or(conditions)),
            Some("NOT") => Ok(Filter::Not(conditions)),
            _ => Err(MethodError::UnsupportedFilter(format!("operator {operator}"))),
        }
    }

    pub fn matches(&self, test: &impl Fn(&C) -> bool) -> bool {
        match self {
            Filter::And(all) => all.iter().all(|f| f.matches(test)),
            Filter::Or(any) => any.iter().any(|f| f.matches(test)),
            Filter::Not(none) => !none.iter().any(|f| f.matches(test)),
            Filter::Condition(condition) => test(condition),
        }
    }
}

/// Refuses a FilterCondition property the type does not have.
pub fn known_properties(condition: &Map<String, Value>, known: &[&str]) -> Result<(), MethodError> {
    match condition.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(MethodError::UnsupportedFilter(format!("no filter on {unknown}"))),
        None => Ok(()),
    }
}

/// RFC 8620 §5.5 Comparator.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparator {
    pub property: String,
    #[serde(default = "ascending")]
    pub is_ascending: bool,
}

fn ascending() -> bool {
    true
}

/// Position, anchor, limit and total (RFC 8620 §5.5).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    #[serde(default)]
    pub position: i64,
    #[serde(default)]
    pub anchor: Option<String>,
    #[serde(default)]
    pub anchor_offset: i64,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub calculate_total: bool,
}

impl Page {
    /// The `/query` response for `ids`, all the results in order.
    pub fn respond(&self, account_id: String, state: String, ids: Vec<String>) -> Result<Value, MethodError> {
        let total = ids.len();
        let limit = match self.limit {
            Some(limit) if limit < 0 => return Err(MethodError::InvalidArguments("limit is negative".into())),
            Some(limit) => (limit as u64).min(MAX_QUERY_LIMIT),
            None => MAX_QUERY_LIMIT,
        } as usize;
        let anchor_at = match &self.anchor {
            Some(anchor) => Some(ids.iter().position(|id| id == anchor).ok_or(MethodError::AnchorNotFound)?),
            None => None,
        };
        let start = window_start(anchor_at, self.anchor_offset, self.position, total);
        let window: Vec<String> = ids.into_iter().skip(start).take(limit).collect();
        let mut out = json!({
            "accountId": account_id,
            "queryState": state,
            "canCalculateChanges": true,
            "position": start,
            "ids": window,
        });
        if self.calculate_total {
            out["total"] = json!(total);
        }
        if self.limit.is_none_or(|given| given as u64 > MAX_QUERY_LIMIT) {
            out["limit"] = json!(MAX_QUERY_LIMIT);
        }
        Ok(out)
    }
}

/// The index of a query's first result (RFC 8620 §5.5): the anchor's index plus anchorOffset when there is
/// an anchor, else position (from the end when negative), clamped to `0..=total`. Both numbers are the
/// client's: the arithmetic saturates, so an `anchorOffset` near `i64::MAX` cannot overflow.
pub fn window_start(anchor_at: Option<usize>, anchor_offset: i64, position: i64, total: usize) -> usize {
    let total_i64 = i64::try_from(total).unwrap_or(i64::MAX);
    let start = match anchor_at {
        Some(at) => i64::try_from(at).unwrap_or(i64::MAX).saturating_add(anchor_offset),
        None if position < 0 => total_i64.saturating_add(position),
        None => position,
    };
    usize::try_from(start.clamp(0, total_i64)).unwrap_or(total)
}

/// `Foo/queryChanges` arguments besides the filter and sort, which each type reads itself.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryChangesArgs {
    pub since_query_state: String,
    #[serde(default)]
    pub max_changes: Option<u64>,
    #[serde(default)]
    pub calculate_total: bool,
}

/// RFC 8620 §5.6 from the change log: every object of `kind` that changed since the state is `removed`
/// (the client drops it wherever it was), and those of them in the current results are `added` back at
/// their index. `results` are the query's current ids in order, as `to_id` names the log's row ids.
pub async fn changes(
    ctx: &Ctx<'_>,
    kind: &str,
    args: &QueryChangesArgs,
    results: &[String],
    to_id: impl Fn(i64) -> String,
) -> Result<Value, MethodError> {
    let set = changes::since(ctx.pool, ctx.account, kind, &args.since_query_state, None).await?;
    let removed: Vec<String> =
        set.created.iter().chain(&set.updated).chain(&set.destroyed).map(|&id| to_id(id)).collect();
    let added: Vec<Value> = results
        .iter()
        .enumerate()
        .filter(|(_, id)| removed.contains(id))
        .map(|(index, id)| json!({"id": id, "index": index}))
        .collect();
    if args.max_changes.is_some_and(|max| (removed.len() + added.len()) as u64 > max) {
        return Err(MethodError::TooManyChanges);
    }
    let mut out = json!({
        "accountId": ctx.account_id(),
        "oldQueryState": args.since_query_state,
        "newQueryState": set.new_state,
        "removed": removed,
        "added": added,
    });
    if args.calculate_total {
        out["total"] = json!(results.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("m{i}")).collect()
    }

    fn page(value: Value) -> Page {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn position_anchor_and_limit_cut_the_window() {
        let respond = |p: Value| page(p).respond("a1".into(), "7".into(), ids(5)).unwrap();
        assert_eq!(respond(json!({"position": 1, "limit": 2}))["ids"], json!(["m2", "m3"]));
        assert_eq!(respond(json!({"position": -2}))["ids"], json!(["m4", "m5"]));
        assert_eq!(respond(json!({"position": -9}))["position"], json!(0));
        assert_eq!(respond(json!({"anchor": "m3", "anchorOffset": -1, "limit": 2}))["ids"], json!(["m2", "m3"]));
        assert_eq!(respond(json!({"position": 9}))["ids"], json!([]));
        let total = respond(json!({"calculateTotal": true}));
        assert_eq!(total["total"], json!(5));
        assert!(matches!(
            page(json!({"anchor": "m9"})).respond("a1".into(), "7".into(), ids(5)),
            Err(MethodError::AnchorNotFound)
        ));
        assert!(page(json!({"limit": -1})).respond("a1".into(), "7".into(), ids(5)).is_err());
    }

    #[test]
    fn huge_offsets_and_positions_saturate() {
        let respond = |p: Value| page(p).respond("a1".into(), "7".into(), ids(5)).unwrap();
        let far = respond(json!({"anchor": "m2", "anchorOffset": i64::MAX}));
        assert_eq!((far["position"].clone(), far["ids"].clone()), (json!(5), json!([])));
        let before = respond(json!({"anchor": "m2", "anchorOffset": i64::MIN}));
        assert_eq!(before["ids"], json!(["m1", "m2", "m3", "m4", "m5"]));
        assert_eq!(respond(json!({"position": i64::MIN}))["position"], json!(0));
        assert_eq!(respond(json!({"position": i64::MAX}))["position"], json!(5));
        assert_eq!(window_start(Some(usize::MAX), i64::MAX, 0, 3), 3);
    }

    #[test]
    fn filter_operators_combine_conditions() {
        let parse = |v: Value| {
            Filter::parse(Some(&v), &|c: &Map<String, Value>| Ok(c["n"].as_i64().unwrap())).unwrap().unwrap()
        };
        let f = parse(json!({"operator": "OR", "conditions": [{"n": 1}, {"n": 2}]}));
        assert!(f.matches(&|&n| n == 2) && !f.matches(&|&n| n == 3));
        let not = parse(json!({"operator": "NOT", "conditions": [{"n": 1}]}));
        assert!(!not.matches(&|&n| n == 1) && not.matches(&|&n| n == 2));
        let bad = json!({"operator": "XOR", "conditions": []});
        assert!(Filter::parse(Some(&bad), &|_: &Map<String, Value>| Ok(0)).is_err());
    }
}
