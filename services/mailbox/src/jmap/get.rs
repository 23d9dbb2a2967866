//! What every `Foo/get` shares (RFC 8620 §5.1): the `ids` and `properties` arguments, the per-call limit,
//! and trimming an object to the properties asked for.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{MAX_OBJECTS_IN_GET, MethodError};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetArgs {
    /// `null`: every object of the type.
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    #[serde(default)]
    pub properties: Option<Vec<String>>,
}

impl GetArgs {
    /// The arguments, refusing more ids than maxObjectsInGet (the http role checks too; a call that
    /// reaches us another way must not read without bound).
    pub fn parse(arguments: Value) -> Result<GetArgs, MethodError> {
        let mut args: GetArgs = super::arguments(arguments)?;
        if args.ids.as_ref().is_some_and(|ids| ids.len() > MAX_OBJECTS_IN_GET) {
            return Err(MethodError::RequestTooLarge);
        }
        args.ids = args.ids.map(unique_ids);
        Ok(args)
    }

    /// `object` with only the properties asked for (`id` always, RFC 8620 §5.1).
    pub fn pick(&self, object: Map<String, Value>) -> Value {
        match &self.properties {
            None => Value::Object(object),
            Some(wanted) => {
                Value::Object(object.into_iter().filter(|(k, _)| k == "id" || wanted.iter().any(|w| w == k)).collect())
            }
        }
    }
}

/// `ids` without repeats, in the order first given: RFC 8620 §5.1 has an id asked for twice appear once, in
/// `list` or in `notFound`.
pub fn unique_ids(ids: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter().filter(|id| seen.insert(id.clone())).collect()
}

/// The `/get` response: `list` in the order found, `notFound` for ids that name nothing of the account's.
pub fn response(account_id: String, state: String, list: Vec<Value>, not_found: Vec<String>) -> Value {
    serde_json::json!({"accountId": account_id, "state": state, "list": list, "notFound": not_found})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pick_keeps_id_and_the_properties_asked_for() {
        let args = GetArgs::parse(json!({"ids": null, "properties": ["name"]})).unwrap();
        let object = json!({"id": "m1", "name": "x", "role": null}).as_object().unwrap().clone();
        assert_eq!(args.pick(object), json!({"id": "m1", "name": "x"}));
    }

    #[test]
    fn a_repeated_id_is_asked_for_once() {
        let args = GetArgs::parse(json!({"ids": ["m2", "m1", "m2", "m1", "m3"]})).unwrap();
        assert_eq!(args.ids.unwrap(), ["m2", "m1", "m3"]);
    }

    #[test]
    fn too_many_ids_are_refused() {
        let ids: Vec<String> = (0..=MAX_OBJECTS_IN_GET).map(|i| format!("m{i}")).collect();
        assert!(matches!(GetArgs::parse(json!({ "ids": ids })), Err(MethodError::RequestTooLarge)));
        assert!(matches!(GetArgs::parse(json!({"ids": "m1"})), Err(MethodError::InvalidArguments(_))));
    }
}
