//! RFC 8621 §6 Identity: the addresses an account sends as, each with a display name, reply-to and bcc
//! addresses and signatures. An identity may name only an address the account may send from (its own, or
//! an alias that leads to it: `store::directory::sender_allowed`); an account without any gets one for its
//! own address the first time it reads them.

use mailbus_address::{AccountId, EmailAddress};
use serde_json::{Map, Value, json};
use sqlx::PgPool;

use super::get::{self, GetArgs};
use super::set::{OwnRows, SetArgs, SetError, SetResponse};
use super::{Ctx, MethodError, Responses, changes, ids, one};
use crate::store::directory;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub reply_to: Option<Value>,
    pub bcc: Option<Value>,
    pub text_signature: String,
    pub html_signature: String,
}

const SELECT_ALL: &str = "SELECT id, name, email, reply_to, bcc, text_signature, html_signature
      FROM identities WHERE account_id = $1 ORDER BY id";
const SELECT_ONE: &str = "SELECT id, name, email, reply_to, bcc, text_signature, html_signature
      FROM identities WHERE account_id = $1 AND id = $2";

fn id(row_id: i64) -> String {
    ids::encode(ids::IDENTITY, row_id)
}

fn object(row: &Row) -> Map<String, Value> {
    let object = json!({
        "id": id(row.id),
        "name": row.name,
        "email": row.email,
        "replyTo": row.reply_to,
        "bcc": row.bcc,
        "textSignature": row.text_signature,
        "htmlSignature": row.html_signature,
        "mayDelete": true,
    });
    match object {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The account's identities, after giving it one for its own address if it has none. The accounts row is
/// locked first (as the change log's trigger would lock it anyway), so two first reads make one.
async fn load(ctx: &Ctx<'_>) -> Result<Vec<Row>, MethodError> {
    let mut tx = ctx.pool.begin().await?;
    let address: Option<String> = sqlx::query_scalar("SELECT address FROM accounts WHERE id = $1 FOR NO KEY UPDATE")
        .bind(ctx.account.get())
        .fetch_optional(&mut *tx)
        .await?;
    let mut rows: Vec<Row> = sqlx::query_as(SELECT_ALL).bind(ctx.account.get()).fetch_all(&mut *tx).await?;
    if rows.is_empty()
        && let Some(address) = address
    {
        sqlx::query("INSERT INTO identities (account_id, email) VALUES ($1, $2)")
            .bind(ctx.account.get())
            .bind(address)
            .execute(&mut *tx)
            .await?;
        rows = sqlx::query_as(SELECT_ALL).bind(ctx.account.get()).fetch_all(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(rows)
}

/// One of the account's identities (EmailSubmission names one).
pub async fn find(pool: &PgPool, account: AccountId, given: &str) -> Result<Option<Row>, MethodError> {
    let Some(row_id) = ids::decode(ids::IDENTITY, given) else { return Ok(None) };
    Ok(sqlx::query_as(SELECT_ONE).bind(account.get()).bind(row_id).fetch_optional(pool).await?)
}

pub async fn get(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args = GetArgs::parse(arguments)?;
    // Read first: a default identity made now is a change the state must already show.
    let rows = load(ctx).await?;
    let state = super::state(ctx.pool, ctx.account).await?;
    let (list, not_found) = match &args.ids {
        None => (rows.iter().map(|r| args.pick(object(r))).collect(), Vec::new()),
        Some(wanted) => {
            let mut list = Vec::new();
            let mut not_found = Vec::new();
            for given in wanted {
                let resolved = ctx.resolve(given).unwrap_or(given);
                match rows.iter().find(|r| id(r.id) == resolved) {
                    Some(row) => list.push(args.pick(object(row))),
                    None => not_found.push(given.clone()),
                }
            }
            (list, not_found)
        }
    };
    one("Identity/get", get::response(ctx.account_id(), state, list, not_found))
}

pub async fn changes(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let (response, _) = changes::respond(ctx, changes::IDENTITY, arguments, id).await?;
    one("Identity/changes", response)
}

/// The settable properties of a create or an update, checked.
#[derive(Debug, Default)]
struct Fields {
    name: Option<String>,
    email: Option<String>,
    reply_to: Option<Value>,
    bcc: Option<Value>,
    text_signature: Option<String>,
    html_signature: Option<String>,
}

/// RFC 8621 §6 EmailAddress[]|null.
fn addresses(key: &str, value: &Value) -> Result<Value, SetError> {
    let valid = match value {
        Value::Null => true,
        Value::Array(list) => list.iter().all(|a| {
            a.as_object().is_some_and(|a| {
                a.get("email").and_then(Value::as_str).is_some_and(|e| e.parse::<EmailAddress>().is_ok())
                    && a.get("name").is_none_or(|n| n.is_null() || n.is_string())
                    && a.keys().all(|k| k == "email" || k == "name")
            })
        }),
        _ => false,
    };
    if valid { Ok(value.clone()) } else { Err(SetError::invalid(&[key], format!("{key} is a list of EmailAddress"))) }
}

fn fields(props: &Value) -> Result<Fields, SetError> {
    let Some(props) = props.as_object() else { return Err(SetError::invalid(&[], "an Identity is an object")) };
    let mut fields = Fields::default();
    for (key, value) in props {
        let text =
            || value.as_str().map(str::to_owned).ok_or_else(|| SetError::invalid(&[key], format!("{key} is a string")));
        match key.as_str() {
            "name" => fields.name = Some(text()?),
            "email" => fields.email = Some(text()?),
            "replyTo" => fields.reply_to = Some(addresses(key, value)?),
            "bcc" => fields.bcc = Some(addresses(key, value)?),
            "textSignature" => fields.text_signature = Some(text()?),
            "htmlSignature" => fields.html_signature = Some(text()?),
            "id" | "mayDelete" => return Err(SetError::invalid(&[key], format!("{key} is set by the server"))),
            _ => return Err(SetError::invalid(&[key], format!("Identity has no property {key}"))),
        }
    }
    Ok(fields)
}

pub async fn set(ctx: &mut Ctx<'_>, arguments: Value) -> Result<Responses, MethodError> {
    let args: SetArgs = super::arguments(arguments)?;
    let old_state = args.check(ctx).await?;
    let mut response = SetResponse::default();
    for (creation_id, props) in args.create.unwrap_or_default() {
        match create(ctx, &props).await? {
            Ok(row_id) => {
                ctx.created_ids.insert(creation_id.clone(), id(row_id));
                response.created(&creation_id, json!({"id": id(row_id), "mayDelete": true}));
            }
            Err(error) => response.not_created(&creation_id, error),
        }
    }
    for (given, props) in args.update.unwrap_or_default() {
        let row_id = ctx.resolve(&given).ok().and_then(|r| ids::decode(ids::IDENTITY, r));
        match update(ctx, row_id, &props).await? {
            Ok(()) => response.updated(&given, None),
            Err(error) => response.not_updated(&given, error),
        }
    }
    response.destroy_rows(ctx, args.destroy.unwrap_or_default(), ids::IDENTITY, OwnRows::Identities).await?;
    let new_state = super::state(ctx.pool, ctx.account).await?;
    one("Identity/set", response.into_json(ctx.account_id(), old_state, new_state))
}

async fn create(ctx: &Ctx<'_>, props: &Value) -> Result<Result<i64, SetError>, MethodError> {
    let fields = match fields(props) {
        Ok(fields) => fields,
        Err(error) => return Ok(Err(error)),
    };
    let Some(email) = fields.email else { return Ok(Err(SetError::invalid(&["email"], "email is required"))) };
    let Ok(address) = email.parse::<EmailAddress>() else {
        return Ok(Err(SetError::invalid(&["email"], "email is not an address")));
    };
    // RFC 8621 §6.3: an address the user may not send from is forbiddenFrom.
    if !directory::sender_allowed(ctx.pool, ctx.account, &address, ctx.recipient_delimiter).await? {
        return Ok(Err(SetError::new("forbiddenFrom").describe(format!("this account may not send as {email}"))));
    }
    let row_id: i64 = sqlx::query_scalar(
        "INSERT INTO identities (account_id, name, email, reply_to, bcc, text_signature, html_signature)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(ctx.account.get())
    .bind(fields.name.unwrap_or_default())
    .bind(address.to_string())
    .bind(fields.reply_to.filter(|v| !v.is_null()))
    .bind(fields.bcc.filter(|v| !v.is_null()))
    .bind(fields.text_signature.unwrap_or_default())
    .bind(fields.html_signature.unwrap_or_default())
    .fetch_one(ctx.pool)
    .await?;
    Ok(Ok(row_id))
}

async fn update(ctx: &Ctx<'_>, row_id: Option<i64>, props: &Value) -> Result<Result<(), SetError>, MethodError> {
    let Some(row_id) = row_id else { return Ok(Err(SetError::not_found())) };
    let fields = match fields(props) {
        Ok(fields) => fields,
        Err(error) => return Ok(Err(error)),
    };
    let Some(row) = find(ctx.pool, ctx.account, &id(row_id)).await? else { return Ok(Err(SetError::not_found())) };
    // RFC 8621 §6: email is immutable once the identity exists.
    if fields.email.as_ref().is_some_and(|e| !e.eq_ignore_ascii_case(&row.email)) {
        return Ok(Err(SetError::invalid(&["email"], "an identity's email cannot change")));
    }
    let keep = |new: Option<Value>, old: Option<Value>| match new {
        Some(Value::Null) => None,
        Some(value) => Some(value),
        None => old,
    };
    sqlx::query(
        "UPDATE identities SET name = $3, reply_to = $4, bcc = $5, text_signature = $6, html_signature = $7
          WHERE account_id = $1 AND id = $2",
    )
    .bind(ctx.account.get())
    .bind(row_id)
    .bind(fields.name.unwrap_or(row.name))
    .bind(keep(fields.reply_to, row.reply_to))
    .bind(keep(fields.bcc, row.bcc))
    .bind(fields.text_signature.unwrap_or(row.text_signature))
    .bind(fields.html_signature.unwrap_or(row.html_signature))
    .execute(ctx.pool)
    .await?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_email_address_lists() {
        assert!(addresses("bcc", &json!(null)).is_ok());
        assert!(addresses("bcc", &json!([{"name": "A", "email": "a@example.org"}])).is_ok());
        assert!(addresses("bcc", &json!([{"email": "not an address"}])).is_err());
        assert!(addresses("bcc", &json!("a@example.org")).is_err());
    }

    #[test]
    fn server_set_properties_are_refused() {
        assert_eq!(fields(&json!({"mayDelete": false})).unwrap_err().properties, vec!["mayDelete"]);
        assert_eq!(fields(&json!({"name": 3})).unwrap_err().properties, vec!["name"]);
        assert_eq!(fields(&json!({"name": "Ann"})).unwrap().name.as_deref(), Some("Ann"));
    }
}
