//! RFC 8621 §8 VacationResponse: one object per account, id `singleton`, kept in the
//! `vacation_responses` row that delivery reads (after the account's active Sieve script) to answer
//! senders while it is enabled and within its dates. An account without a row has a disabled response.
//! A change bumps the account's change sequence, so the object's state (the account's) moves.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::get::{self, GetArgs};
use super::set::{SetArgs, SetError, SetResponse};
use super::{Ctx, MethodError, Responses, one};

/// RFC 8621 §8: the only id.
pub const SINGLETON: &str = "singleton";

#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
struct Row {
    is_enabled: bool,
    from_date: Option<DateTime<Utc>>,
    to_date: Option<DateTime<Utc>>,
    subject: Option<String>,
    text_body: Option<String>,
    html_body: Option<String>,
}

async fn load(ctx: &Ctx<'_>) -> Result<Row, MethodError> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT is_enabled, from_date, to_date, subject, text_body, html_body FROM vacation_responses
          WHERE account_id = $1",
    )
    .bind(ctx.account.get())
    .fetch_optional(ctx.pool)
    .await?;
    Ok(row.unwrap_or_default())
}

/// RFC 8620 §1.4 UTCDate.
fn utc_date(date: Option<DateTime<Utc>>) -> Value {
    date.map_or(Value::Null, |d| json!(d.to_rfc3339_opts(SecondsFormat::Secs, true)))
}

fn object(row: &Row) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "id": SINGLETON,
        "isEnabled": row.is_enabled,
        "fromDate": utc_date(row.from_date),
        "toDate": utc_date(row.to_date),
        "subject": row.subject,
        "textBody": row.text_body,
        "htmlBody": row.html_body,
    }) else {
        return Map::new();
    };
    map
}

pub async fn get(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args = GetArgs::parse(arguments)?;
    let row = load(ctx).await?;
    let state = super::state(ctx.pool, ctx.account).await?;
    let (list, not_found) = match &args.ids {
        None => (vec![args.pick(object(&row))], Vec::new()),
        Some(wanted) => {
            let (found, missing): (Vec<_>, Vec<_>) = wanted.iter().cloned().partition(|id| id == SINGLETON);
            (found.iter().map(|_| args.pick(object(&row))).collect(), missing)
        }
    };
    one("VacationResponse/get", get::response(ctx.account_id(), state, list, not_found))
}

/// The properties an update sets, applied over `row`.
fn apply(mut row: Row, props: &Value) -> Result<Row, SetError> {
    let Some(props) = props.as_object() else { return Err(SetError::invalid(&[], "a VacationResponse is an object")) };
    for (key, value) in props {
        let text = || match value {
            Value::Null => Ok(None),
            Value::String(text) => Ok(Some(text.clone())),
            _ => Err(SetError::invalid(&[key], format!("{key} is a string or null"))),
        };
        let date = || match value {
            Value::Null => Ok(None),
            Value::String(text) => DateTime::parse_from_rfc3339(text)
                .ok()
                .filter(|_| text.ends_with('Z'))
                .map(|d| Some(d.with_timezone(&Utc)))
                .ok_or_else(|| SetError::invalid(&[key], format!("{key} is a UTCDate (RFC 3339, in Z)"))),
            _ => Err(SetError::invalid(&[key], format!("{key} is a UTCDate or null"))),
        };
        match key.as_str() {
            "isEnabled" => {
                row.is_enabled = value.as_bool().ok_or_else(|| SetError::invalid(&[key], "isEnabled is a boolean"))?
            }
            "fromDate" => row.from_date = date()?,
            "toDate" => row.to_date = date()?,
            "subject" => row.subject = text()?,
            "textBody" => row.text_body = text()?,
            "htmlBody" => row.html_body = text()?,
            "id" if value.as_str() == Some(SINGLETON) => {}
            "id" => return Err(SetError::invalid(&[key], "id is set by the server")),
            _ => return Err(SetError::invalid(&[key], format!("VacationResponse has no property {key}"))),
        }
    }
    Ok(row)
}

/// RFC 8621 §8.2: only an update of `singleton`; a create or destroy is a `singleton` error.
pub async fn set(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: SetArgs = super::arguments(arguments)?;
    let old_state = args.check(ctx).await?;
    let mut response = SetResponse::default();
    let singleton = || SetError::new("singleton").describe("the VacationResponse can only be updated");
    for creation_id in args.create.unwrap_or_default().keys() {
        response.not_created(creation_id, singleton());
    }
    for given in args.destroy.unwrap_or_default() {
        response.not_destroyed(&given, singleton());
    }
    for (given, props) in args.update.unwrap_or_default() {
        if given != SINGLETON {
            response.not_updated(&given, SetError::not_found());
            continue;
        }
        match apply(load(ctx).await?, &props) {
            Ok(row) => {
                store(ctx, &row).await?;
                response.updated(&given, None);
            }
            Err(error) => response.not_updated(&given, error),
        }
    }
    let new_state = super::state(ctx.pool, ctx.account).await?;
    one("VacationResponse/set", response.into_json(ctx.account_id(), old_state, new_state))
}

/// Writes the row and moves the account's state in one transaction.
async fn store(ctx: &Ctx<'_>, row: &Row) -> Result<(), MethodError> {
    let mut tx = ctx.pool.begin().await?;
    sqlx::query(
        "INSERT INTO vacation_responses (account_id, is_enabled, from_date, to_date, subject, text_body, html_body)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (account_id) DO UPDATE SET is_enabled = $2, from_date = $3, to_date = $4, subject = $5,
             text_body = $6, html_body = $7",
    )
    .bind(ctx.account.get())
    .bind(row.is_enabled)
    .bind(row.from_date)
    .bind(row.to_date)
    .bind(&row.subject)
    .bind(&row.text_body)
    .bind(&row.html_body)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT mailbus_next_change($1)").bind(ctx.account.get()).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_are_checked_and_applied() {
        let row = apply(
            Row::default(),
            &json!({"isEnabled": true, "fromDate": "2026-12-24T00:00:00Z", "subject": "Away", "textBody": "Back soon"}),
        )
        .unwrap();
        assert!(row.is_enabled);
        assert_eq!(utc_date(row.from_date), json!("2026-12-24T00:00:00Z"));
        assert_eq!(row.subject.as_deref(), Some("Away"));
        let cleared = apply(row, &json!({"subject": null, "fromDate": null})).unwrap();
        assert_eq!((cleared.subject, cleared.from_date), (None, None));
        for bad in [
            json!({"isEnabled": "yes"}),
            json!({"fromDate": "2026-12-24"}),
            json!({"toDate": "2026-12-24T00:00:00+01:00"}),
            json!({"subject": 3}),
            json!({"id": "other"}),
            json!({"replyTo": "x"}),
        ] {
            assert!(apply(Row::default(), &bad).is_err(), "{bad}");
        }
    }
}
