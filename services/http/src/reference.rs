//! Result references (RFC 8620 §3.7): an argument named `#foo` whose value is
//! `{"resultOf", "name", "path"}` stands for the value at `path` (a JSON Pointer, RFC 6901, where `*`
//! maps over an array) in the response of an earlier call in the same request.

use serde_json::{Map, Value};

/// An earlier response of this request: its name, arguments and method call id.
pub struct Earlier<'a> {
    pub name: &'a str,
    pub arguments: &'a Value,
    pub call_id: &'a str,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ReferenceError {
    /// RFC 8620 §3.7: `invalidResultReference`.
    Invalid(String),
    /// Both `foo` and `#foo` given: `invalidArguments`.
    Conflict(String),
    /// The values referred to would pass the request's budget: `requestTooLarge`. References can copy an
    /// earlier response many times over (`Core/echo` answers with what it was given), so a small request
    /// could otherwise grow without bound.
    TooLarge(String),
}

impl ReferenceError {
    pub fn kind(&self) -> &'static str {
        match self {
            ReferenceError::Invalid(_) => "invalidResultReference",
            ReferenceError::Conflict(_) => "invalidArguments",
            ReferenceError::TooLarge(_) => "requestTooLarge",
        }
    }

    pub fn description(&self) -> &str {
        match self {
            ReferenceError::Invalid(d) | ReferenceError::Conflict(d) | ReferenceError::TooLarge(d) => d,
        }
    }
}

/// Replaces every `#name` argument with the value it refers to, under `name`. `budget` is what the
/// request's references may still copy, in octets of JSON; each resolved value is taken from it.
pub fn resolve(
    arguments: Map<String, Value>,
    earlier: &[Earlier<'_>],
    budget: &mut usize,
) -> Result<Map<String, Value>, ReferenceError> {
    if !arguments.keys().any(|k| k.starts_with('#')) {
        return Ok(arguments);
    }
    let mut resolved = Map::with_capacity(arguments.len());
    for (key, value) in &arguments {
        let Some(name) = key.strip_prefix('#') else {
            resolved.insert(key.clone(), value.clone());
            continue;
        };
        if arguments.contains_key(name) {
            return Err(ReferenceError::Conflict(format!("both {name:?} and {key:?} are given")));
        }
        let value = follow(value, earlier)?;
        let size = json_size(&value);
        if size > *budget {
            return Err(ReferenceError::TooLarge(format!(
                "the request's result references would copy more than its {} octets allow",
                size.max(*budget)
            )));
        }
        *budget -= size;
        resolved.insert(name.to_owned(), value);
    }
    Ok(resolved)
}

/// Octets of a value's JSON, counted without writing them anywhere.
fn json_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

fn follow(reference: &Value, earlier: &[Earlier<'_>]) -> Result<Value, ReferenceError> {
    let field = |name: &str| reference.get(name).and_then(Value::as_str);
    let (Some(result_of), Some(name), Some(path)) = (field("resultOf"), field("name"), field("path")) else {
        return Err(ReferenceError::Invalid("a result reference needs resultOf, name and path".into()));
    };
    // RFC 8620 §3.7: the first response with that method call id.
    let Some(response) = earlier.iter().find(|e| e.call_id == result_of) else {
        return Err(ReferenceError::Invalid(format!("no earlier call {result_of:?}")));
    };
    if response.name != name {
        return Err(ReferenceError::Invalid(format!("call {result_of:?} answered {:?}, not {name:?}", response.name)));
    }
    evaluate(response.arguments, path).ok_or_else(|| ReferenceError::Invalid(format!("path {path:?} not found")))
}

/// RFC 6901 with RFC 8620 §3.7's `*`: at an array, the rest of the path is applied to each item, and
/// items that come out as arrays are flattened into the result.
pub fn evaluate(value: &Value, path: &str) -> Option<Value> {
    if path.is_empty() {
        return Some(value.clone());
    }
    let rest = path.strip_prefix('/')?;
    let tokens: Vec<String> = rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
    walk(value, &tokens)
}

fn walk(value: &Value, tokens: &[String]) -> Option<Value> {
    let Some((token, rest)) = tokens.split_first() else {
        return Some(value.clone());
    };
    match value {
        Value::Object(map) => walk(map.get(token.as_str())?, rest),
        Value::Array(items) if token == "*" => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match walk(item, rest)? {
                    Value::Array(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            Some(Value::Array(out))
        }
        Value::Array(items) => {
            // RFC 6901 §4: an index is "0" or digits without a leading zero.
            if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
                return None;
            }
            let index: usize = token.parse().ok()?;
            walk(items.get(index)?, rest)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn unlimited() -> usize {
        usize::MAX
    }

    fn earlier(value: &Value) -> Vec<Earlier<'_>> {
        vec![Earlier { name: "Email/query", arguments: value, call_id: "c1" }]
    }

    #[test]
    fn a_reference_is_replaced_by_its_value() {
        let query = json!({"ids": ["e1", "e2"], "accountId": "a1"});
        let args = json!({"accountId": "a1", "#ids": {"resultOf": "c1", "name": "Email/query", "path": "/ids"}});
        let resolved = resolve(args.as_object().unwrap().clone(), &earlier(&query), &mut unlimited()).unwrap();
        assert_eq!(Value::Object(resolved), json!({"accountId": "a1", "ids": ["e1", "e2"]}));
    }

    #[test]
    fn star_maps_over_arrays_and_flattens() {
        // RFC 8620 §3.7's example: /list/*/thread/*... here /list/*/emailIds flattens.
        let get = json!({"list": [{"id": "t1", "emailIds": ["e1", "e2"]}, {"id": "t2", "emailIds": ["e3"]}]});
        assert_eq!(evaluate(&get, "/list/*/emailIds"), Some(json!(["e1", "e2", "e3"])));
        assert_eq!(evaluate(&get, "/list/*/id"), Some(json!(["t1", "t2"])));
        assert_eq!(evaluate(&get, "/list/1/id"), Some(json!("t2")));
        assert_eq!(evaluate(&get, "/list/01/id"), None);
        assert_eq!(evaluate(&get, "/list/*/missing"), None);
        assert_eq!(evaluate(&get, "list"), None);
        assert_eq!(evaluate(&json!({"a/b": {"~c": 1}}), "/a~1b/~0c"), Some(json!(1)));
    }

    #[test]
    fn references_spend_the_request_budget() {
        let echo = json!({"big": "x".repeat(1000)});
        let args = json!({"#a": {"resultOf": "c0", "name": "Core/echo", "path": ""},
                          "#b": {"resultOf": "c0", "name": "Core/echo", "path": ""}});
        let earlier = [Earlier { name: "Core/echo", arguments: &echo, call_id: "c0" }];
        let mut budget = 2100;
        let resolved = resolve(args.as_object().unwrap().clone(), &earlier, &mut budget).unwrap();
        assert_eq!(resolved.len(), 2);
        assert!(budget < 100, "two copies of a 1 KB value were taken from the budget: {budget} left");
        let mut budget = 1500;
        let error = resolve(args.as_object().unwrap().clone(), &earlier, &mut budget).unwrap_err();
        assert_eq!(error.kind(), "requestTooLarge");
    }

    #[test]
    fn bad_references_are_invalid_result_references() {
        let query = json!({"ids": []});
        let bad = [
            json!({"#ids": {"resultOf": "c2", "name": "Email/query", "path": "/ids"}}),
            json!({"#ids": {"resultOf": "c1", "name": "Email/get", "path": "/ids"}}),
            json!({"#ids": {"resultOf": "c1", "name": "Email/query", "path": "/nope"}}),
            json!({"#ids": {"resultOf": "c1"}}),
            json!({"#ids": "c1"}),
        ];
        for args in bad {
            let error = resolve(args.as_object().unwrap().clone(), &earlier(&query), &mut unlimited()).unwrap_err();
            assert_eq!(error.kind(), "invalidResultReference", "{args}");
        }
        let both = json!({"ids": [], "#ids": {"resultOf": "c1", "name": "Email/query", "path": "/ids"}});
        let error = resolve(both.as_object().unwrap().clone(), &earlier(&query), &mut unlimited()).unwrap_err();
        assert_eq!(error.kind(), "invalidArguments");
    }
}
