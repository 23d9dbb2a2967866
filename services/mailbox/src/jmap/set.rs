//! What every `Foo/set` shares (RFC 8620 §5.3): the arguments, the per-call limit, `ifInState`, SetError
//! objects, and the response with its `created`/`notCreated` pairs.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Ctx, MAX_OBJECTS_IN_SET, MethodError};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetArgs {
    #[serde(default)]
    pub if_in_state: Option<String>,
    #[serde(default)]
    pub create: Option<Map<String, Value>>,
    #[serde(default)]
    pub update: Option<Map<String, Value>>,
    #[serde(default)]
    pub destroy: Option<Vec<String>>,
}

impl SetArgs {
    /// Refuses more than maxObjectsInSet objects, and a state the client did not expect.
    pub async fn check(&self, ctx: &Ctx<'_>) -> Result<String, MethodError> {
        let count = self.create.as_ref().map_or(0, Map::len)
            + self.update.as_ref().map_or(0, Map::len)
            + self.destroy.as_ref().map_or(0, Vec::len);
        if count > MAX_OBJECTS_IN_SET {
            return Err(MethodError::RequestTooLarge);
        }
        let state = super::state(ctx.pool, ctx.account).await?;
        match &self.if_in_state {
            Some(expected) if *expected != state => Err(MethodError::StateMismatch),
            _ => Ok(state),
        }
    }
}

/// RFC 8620 §5.3 SetError.
#[derive(Debug, Clone, PartialEq)]
pub struct SetError {
    pub kind: &'static str,
    pub description: Option<String>,
    pub properties: Vec<String>,
    /// A type-specific member (`invalidRecipients`, say).
    pub extra: Option<(&'static str, Value)>,
}

impl SetError {
    pub fn new(kind: &'static str) -> SetError {
        SetError { kind, description: None, properties: Vec::new(), extra: None }
    }

    pub fn not_found() -> SetError {
        SetError::new("notFound")
    }

    pub fn forbidden(description: impl Into<String>) -> SetError {
        SetError::new("forbidden").describe(description)
    }

    pub fn invalid(properties: &[&str], description: impl Into<String>) -> SetError {
        SetError {
            properties: properties.iter().map(|p| p.to_string()).collect(),
            ..SetError::new("invalidProperties").describe(description)
        }
    }

    pub fn describe(mut self, description: impl Into<String>) -> SetError {
        self.description = Some(description.into());
        self
    }

    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("type".into(), json!(self.kind));
        if let Some(description) = &self.description {
            out.insert("description".into(), json!(description));
        }
        if !self.properties.is_empty() {
            out.insert("properties".into(), json!(self.properties));
        }
        if let Some((name, value)) = &self.extra {
            out.insert((*name).into(), value.clone());
        }
        Value::Object(out)
    }
}

/// The tables of JMAP's own objects whose rows a `/set` destroys outright.
#[derive(Debug, Clone, Copy)]
pub enum OwnRows {
    Identities,
    EmailSubmissions,
}

/// The outcome of each object a `/set` named.
#[derive(Debug, Default)]
pub struct SetResponse {
    pub created: Map<String, Value>,
    pub updated: Map<String, Value>,
    pub destroyed: Vec<String>,
    pub not_created: Map<String, Value>,
    pub not_updated: Map<String, Value>,
    pub not_destroyed: Map<String, Value>,
}

impl SetResponse {
    pub fn created(&mut self, creation_id: &str, object: Value) {
        self.created.insert(creation_id.to_owned(), object);
    }

    pub fn not_created(&mut self, creation_id: &str, error: SetError) {
        self.not_created.insert(creation_id.to_owned(), error.to_json());
    }

    pub fn updated(&mut self, id: &str, changed: Option<Value>) {
        self.updated.insert(id.to_owned(), changed.unwrap_or(Value::Null));
    }

    pub fn not_updated(&mut self, id: &str, error: SetError) {
        self.not_updated.insert(id.to_owned(), error.to_json());
    }

    pub fn not_destroyed(&mut self, id: &str, error: SetError) {
        self.not_destroyed.insert(id.to_owned(), error.to_json());
    }

    /// Destroys the rows of `table` that the ids in `given` (of `kind`, `#creationId`s resolved) name in
    /// the caller's account; an id that names none of them is notFound.
    pub async fn destroy_rows(
        &mut self,
        ctx: &Ctx<'_>,
        given: Vec<String>,
        kind: char,
        table: OwnRows,
    ) -> Result<(), MethodError> {
        let statement = match table {
            OwnRows::Identities => "DELETE FROM identities WHERE account_id = $1 AND id = $2",
            OwnRows::EmailSubmissions => "DELETE FROM email_submissions WHERE account_id = $1 AND id = $2",
        };
        for given in given {
            let row_id = ctx.resolve(&given).ok().and_then(|r| super::ids::decode(kind, r));
            let deleted = match row_id {
                Some(row_id) => {
                    sqlx::query(statement).bind(ctx.account.get()).bind(row_id).execute(ctx.pool).await?.rows_affected()
                }
                None => 0,
            };
            if deleted == 0 {
                self.not_destroyed(&given, SetError::not_found());
            } else {
                self.destroyed.push(given);
            }
        }
        Ok(())
    }

    /// The response arguments; an empty map or list is `null`, as RFC 8620 §5.3 allows.
    pub fn into_json(self, account_id: String, old_state: String, new_state: String) -> Value {
        let map = |m: Map<String, Value>| if m.is_empty() { Value::Null } else { Value::Object(m) };
        json!({
            "accountId": account_id,
            "oldState": old_state,
            "newState": new_state,
            "created": map(self.created),
            "updated": map(self.updated),
            "destroyed": if self.destroyed.is_empty() { Value::Null } else { json!(self.destroyed) },
            "notCreated": map(self.not_created),
            "notUpdated": map(self.not_updated),
            "notDestroyed": map(self.not_destroyed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_errors_carry_their_properties() {
        let error = SetError::invalid(&["name"], "no slash");
        assert_eq!(
            error.to_json(),
            json!({"type": "invalidProperties", "description": "no slash", "properties": ["name"]})
        );
        assert_eq!(SetError::not_found().to_json(), json!({"type": "notFound"}));
    }

    #[test]
    fn empty_outcomes_are_null() {
        let mut response = SetResponse::default();
        response.destroyed.push("m1".into());
        let json = response.into_json("a1".into(), "1".into(), "2".into());
        assert_eq!(json["created"], Value::Null);
        assert_eq!(json["destroyed"], json!(["m1"]));
    }
}
