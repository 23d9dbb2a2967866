//! The API endpoint (RFC 8620 §3): a request is parsed and checked as a whole (request-level errors are
//! problems, §3.6.1), then its method calls run in order. Each call is checked here (capability,
//! `accountId`, result references, object counts) and handed to the mailbox role as one `Jmap.Call`;
//! `Core/echo` is answered here and `EmailSubmission/set` is carried out here (`submission`), since only
//! this role may enqueue mail.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value, json};
use tracing::Instrument;

use crate::App;
use crate::auth::Account;
use crate::problem::Problem;
use crate::reference::{self, Earlier};
use crate::session::{CAPABILITIES, CORE, MAIL, SUBMISSION, VACATION_RESPONSE, session_state};
use crate::{MAX_CALLS_IN_REQUEST, MAX_CONCURRENT_REQUESTS, MAX_OBJECTS_IN_GET, MAX_OBJECTS_IN_SET};

/// One method call of a request: name, arguments, method call id (RFC 8620 §3.2).
pub struct Invocation {
    pub name: String,
    pub arguments: Map<String, Value>,
    pub call_id: String,
}

/// A request that passed the request-level checks.
pub struct Request {
    pub using: Vec<String>,
    pub calls: Vec<Invocation>,
    pub created_ids: Option<HashMap<String, String>>,
}

/// Requests in progress per account, in this process (`maxConcurrentRequests`). A slot is owned (it
/// can travel with a response body that is still being sent) and frees itself when dropped.
#[derive(Default)]
pub struct Concurrency(Arc<Mutex<HashMap<i64, usize>>>);

pub struct Slot {
    map: Arc<Mutex<HashMap<i64, usize>>>,
    account: i64,
}

impl Concurrency {
    pub fn enter(&self, account: i64, max: usize) -> Option<Slot> {
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = map.entry(account).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot { map: self.0.clone(), account })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = map.get_mut(&self.account) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.account);
            }
        }
    }
}

/// How long a request's body may take to arrive, once its headers have: 10 MB (the default
/// maxSizeRequest) at about 85 KB/s.
const BODY_WAIT: Duration = Duration::from_secs(120);

pub async fn api(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Problem> {
    // The body is read only after the caller is known and has one of its account's request slots, and
    // within BODY_WAIT: before, anyone could have the server hold maxSizeRequest per connection, sent a
    // byte at a time, without logging in.
    let account = crate::webmail::guard::authenticate_change(&app, &headers, peer.ip()).await?;
    if !is_json(&headers) {
        return Err(Problem::not_json("the request's Content-Type must be application/json"));
    }
    let Some(_slot) = app.concurrency.enter(account.id, MAX_CONCURRENT_REQUESTS) else {
        return Err(Problem::limit("maxConcurrentRequests", StatusCode::BAD_REQUEST));
    };
    // RFC 8620 §3.6.1: over maxSizeRequest is a `limit` problem.
    let body = match tokio::time::timeout(BODY_WAIT, axum::body::to_bytes(body, app.limits.max_size_request)).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return Err(Problem::limit("maxSizeRequest", StatusCode::PAYLOAD_TOO_LARGE)),
        Err(_) => return Err(Problem::timeout(BODY_WAIT)),
    };
    let request = parse(&body)?;
    let response = run(&app, &account, peer.ip(), request).await?;
    Ok(Json(response))
}

/// `application/json` or another `+json` type, with or without parameters. RFC 8620 §3.6.1 makes a
/// request whose type is not `application/json` a `notJSON` problem, and a missing type is not it; a
/// foreign page's `no-cors` request cannot send a JSON type either, so this also stands against CSRF.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let media = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    media == "application/json" || media.ends_with("+json")
}

/// Parses and checks a request body (RFC 8620 §3.3, §3.6.1).
pub fn parse(body: &[u8]) -> Result<Request, Problem> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Problem::not_json(format!("not JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(Problem::not_request("the request is not a JSON object"));
    };
    let using = match object.remove("using") {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(Problem::not_request("using must be an array of strings")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(Problem::not_request("using must be an array of strings")),
    };
    let Some(Value::Array(raw_calls)) = object.remove("methodCalls") else {
        return Err(Problem::not_request("methodCalls must be an array"));
    };
    let created_ids = match object.remove("createdIds") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(
            map.into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    _ => Err(Problem::not_request("createdIds must map ids to ids")),
                })
                .collect::<Result<HashMap<_, _>, _>>()?,
        ),
        Some(_) => return Err(Problem::not_request("createdIds must be an object")),
    };
    let mut calls = Vec::with_capacity(raw_calls.len());
    for call in raw_calls {
        calls.push(invocation(call)?);
    }
    if let Some(unknown) = using.iter().find(|c| !CAPABILITIES.contains(&c.as_str())) {
        return Err(Problem::unknown_capability(unknown));
    }
    if calls.len() > MAX_CALLS_IN_REQUEST {
        return Err(Problem::limit("maxCallsInRequest", StatusCode::BAD_REQUEST));
    }
    Ok(Request { using, calls, created_ids })
}

fn invocation(call: Value) -> Result<Invocation, Problem> {
    let bad = || Problem::not_request("each method call must be [name, arguments, id]");
    let Value::Array(parts) = call else { return Err(bad()) };
    let Ok([name, arguments, call_id]) = <[Value; 3]>::try_from(parts) else { return Err(bad()) };
    match (name, arguments, call_id) {
        (Value::String(name), Value::Object(arguments), Value::String(call_id)) => {
            Ok(Invocation { name, arguments, call_id })
        }
        _ => Err(bad()),
    }
}

/// The capability a method needs in `using`; `None` for a method nobody serves. An exact list: a name
/// from a client also becomes a metric label, which must not grow without bound.
pub fn capability(method: &str) -> Option<&'static str> {
    match method {
        "Core/echo" => Some(CORE),
        "Mailbox/get"
        | "Mailbox/changes"
        | "Mailbox/query"
        | "Mailbox/queryChanges"
        | "Mailbox/set"
        | "Thread/get"
        | "Thread/changes"
        | "Email/get"
        | "Email/changes"
        | "Email/query"
        | "Email/queryChanges"
        | "Email/set"
        | "Email/copy"
        | "Email/import"
        | "SearchSnippet/get" => Some(MAIL),
        "Identity/get"
        | "Identity/changes"
        | "Identity/set"
        | "EmailSubmission/get"
        | "EmailSubmission/changes"
        | "EmailSubmission/query"
        | "EmailSubmission/queryChanges"
        | "EmailSubmission/set" => Some(SUBMISSION),
        "VacationResponse/get" | "VacationResponse/set" => Some(VACATION_RESPONSE),
        _ => None,
    }
}

/// A method's responses, each `[name, arguments, call id]`.
pub type Responses = Vec<(String, Value, String)>;

/// Runs every call in order and builds the response object (RFC 8620 §3.4). A disabled account ends the
/// request at its first call.
async fn run(app: &App, account: &Account, client: IpAddr, request: Request) -> Result<Value, Problem> {
    let echo_created = request.created_ids.is_some();
    let mut created_ids = request.created_ids.unwrap_or_default();
    let mut responses: Responses = Vec::with_capacity(request.calls.len());
    // What result references may copy in all, across the request: as much as a request may be.
    let mut budget = app.limits.max_size_request;
    for call in request.calls {
        let span = tracing::info_span!(
            "jmap.method",
            otel.name = %format!("JMAP {}", call.name),
            rpc.system = "jmap",
            rpc.method = %call.name,
            jmap.call_id = %call.call_id,
            outcome = tracing::field::Empty,
        );
        let started = Instant::now();
        let name = call.name.clone();
        let caller = Caller { app, account, client, using: &request.using };
        let produced =
            one_call(&caller, call, &responses, &mut created_ids, &mut budget).instrument(span.clone()).await?;
        let outcome = match produced.first() {
            Some((n, args, _)) if n == "error" => {
                args.get("type").and_then(Value::as_str).unwrap_or("error").to_owned()
            }
            _ => "ok".to_owned(),
        };
        span.record("outcome", outcome.as_str());
        app.metrics.jmap_call(&name, &outcome, started.elapsed());
        responses.extend(produced);
    }
    let mut out = json!({
        "methodResponses": responses.into_iter().map(|(n, a, id)| json!([n, a, id])).collect::<Vec<_>>(),
        "sessionState": session_state(account),
    });
    if echo_created {
        out["createdIds"] = json!(created_ids);
    }
    Ok(out)
}

/// A method-level error response (RFC 8620 §3.6.2).
pub fn error(kind: &str, description: Option<&str>, call_id: &str) -> (String, Value, String) {
    let mut arguments = json!({"type": kind});
    if let Some(description) = description {
        arguments["description"] = json!(description);
    }
    ("error".to_owned(), arguments, call_id.to_owned())
}

/// What every call of one request shares: who asks, from where, with which capabilities.
struct Caller<'a> {
    app: &'a App,
    account: &'a Account,
    client: IpAddr,
    using: &'a [String],
}

async fn one_call(
    caller: &Caller<'_>,
    call: Invocation,
    earlier: &Responses,
    created_ids: &mut HashMap<String, String>,
    budget: &mut usize,
) -> Result<Responses, Problem> {
    let Caller { app, account, client, using } = *caller;
    let id = call.call_id.clone();
    // RFC 8620 §3.6.2: a method not covered by `using` is unknown.
    match capability(&call.name) {
        Some(needed) if using.iter().any(|u| u == needed) => {}
        _ => return Ok(vec![error("unknownMethod", None, &id)]),
    }
    let earlier: Vec<Earlier<'_>> =
        earlier.iter().map(|(name, arguments, call_id)| Earlier { name, arguments, call_id }).collect();
    let arguments = match reference::resolve(call.arguments, &earlier, budget) {
        Ok(arguments) => arguments,
        Err(e) => return Ok(vec![error(e.kind(), Some(e.description()), &id)]),
    };
    if call.name == "Core/echo" {
        return Ok(vec![(call.name, Value::Object(arguments), id)]);
    }
    if let Some(kind) = account_error(&arguments, account) {
        return Ok(vec![error(kind, None, &id)]);
    }
    if let Some(description) = too_large(&call.name, &arguments) {
        return Ok(vec![error("requestTooLarge", Some(&description), &id)]);
    }
    if call.name == "EmailSubmission/set" {
        return crate::submission::set(app, account, client, arguments, &id, created_ids).await;
    }
    call_mailbox(app, account, &call.name, arguments, &id, created_ids).await
}

/// RFC 8620 §3.6.2: `accountNotFound` for another account (RFC 8620 §5.4 and RFC 8621 §4.7:
/// `fromAccountNotFound` for the source of a copy); `invalidArguments` for none at all.
fn account_error(arguments: &Map<String, Value>, account: &Account) -> Option<&'static str> {
    let ours = account.jmap_id();
    match arguments.get("accountId") {
        Some(Value::String(id)) if *id == ours => {}
        Some(Value::String(_)) => return Some("accountNotFound"),
        _ => return Some("invalidArguments"),
    }
    match arguments.get("fromAccountId") {
        None => None,
        Some(Value::String(id)) if *id == ours => None,
        Some(_) => Some("fromAccountNotFound"),
    }
}

/// `maxObjectsInGet` and `maxObjectsInSet` (RFC 8620 §5.1, §5.3): refused before the store sees them.
fn too_large(method: &str, arguments: &Map<String, Value>) -> Option<String> {
    let count = |key: &str| match arguments.get(key) {
        Some(Value::Array(items)) => items.len(),
        Some(Value::Object(map)) => map.len(),
        _ => 0,
    };
    if method.ends_with("/get") && count("ids") > MAX_OBJECTS_IN_GET {
        return Some(format!("more than {MAX_OBJECTS_IN_GET} ids"));
    }
    let set = if method.ends_with("/set") || method.ends_with("/copy") {
        count("create") + count("update") + count("destroy")
    } else if method == "Email/import" {
        count("emails")
    } else {
        0
    };
    (set > MAX_OBJECTS_IN_SET).then(|| format!("more than {MAX_OBJECTS_IN_SET} objects"))
}

/// One call on the mailbox role. A failure of the role is `serverFail` for this call; a disabled account
/// ends the request.
pub async fn call_mailbox(
    app: &App,
    account: &Account,
    method: &str,
    arguments: Map<String, Value>,
    id: &str,
    created_ids: &mut HashMap<String, String>,
) -> Result<Responses, Problem> {
    let request = mailbus_proto::v1::JmapCall {
        account_id: account.id,
        method: method.to_owned(),
        arguments: Value::Object(arguments).to_string(),
        created_ids: created_ids.clone(),
    };
    let result = match app.jmap.clone().call(request).await {
        Ok(result) => result.into_inner(),
        Err(status) if status.code() == tonic::Code::PermissionDenied => return Err(Problem::from_status(&status)),
        Err(status) => {
            tracing::warn!(%status, method, "JMAP call failed on the mailbox role");
            return Ok(vec![error("serverFail", Some("the mail store failed"), id)]);
        }
    };
    created_ids.extend(result.created_ids);
    let mut responses = Vec::with_capacity(result.responses.len());
    for response in result.responses {
        match serde_json::from_str::<Value>(&response.arguments) {
            Ok(arguments) => responses.push((response.name, arguments, id.to_owned())),
            Err(_) => return Ok(vec![error("serverFail", Some("the mail store answered nonsense"), id)]),
        }
    }
    Ok(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(problem: Problem) -> String {
        problem.kind.rsplit(':').next().unwrap().to_owned()
    }

    #[test]
    fn request_level_errors_are_told_apart() {
        let err = |body: &str| kind(parse(body.as_bytes()).err().expect(body));
        assert_eq!(err("{"), "notJSON");
        assert_eq!(err("[]"), "notRequest");
        assert_eq!(err(r#"{"using": [], "methodCalls": {}}"#), "notRequest");
        assert_eq!(err(r#"{"using": [], "methodCalls": [["Core/echo", {}]]}"#), "notRequest");
        assert_eq!(err(r#"{"using": ["urn:x"], "methodCalls": []}"#), "unknownCapability");
        let many = vec![r#"["Core/echo", {}, "c"]"#; 17].join(",");
        let problem = parse(format!(r#"{{"using": [], "methodCalls": [{many}]}}"#).as_bytes()).err().unwrap();
        assert_eq!(problem.limit, Some("maxCallsInRequest"));
        let ok = parse(br#"{"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {"a": 1}, "c1"]]}"#);
        assert_eq!(ok.ok().unwrap().calls.len(), 1);
    }

    #[test]
    fn methods_need_their_capability() {
        assert_eq!(capability("Email/get"), Some(MAIL));
        assert_eq!(capability("Identity/get"), Some(SUBMISSION));
        assert_eq!(capability("VacationResponse/set"), Some(VACATION_RESPONSE));
        assert_eq!(capability("Core/echo"), Some(CORE));
        assert_eq!(capability("Calendar/get"), None);
        assert_eq!(capability("Email/anything"), None, "only methods that exist");
        assert_eq!(capability("nonsense"), None);
    }

    #[test]
    fn object_counts_are_limited() {
        let ids: Vec<Value> = (0..501).map(|i| json!(format!("e{i}"))).collect();
        let get = json!({"ids": ids}).as_object().unwrap().clone();
        assert!(too_large("Email/get", &get).is_some());
        let mut destroy = Map::new();
        destroy.insert("destroy".into(), json!((0..300).collect::<Vec<_>>()));
        destroy.insert("update".into(), Value::Object((0..201).map(|i| (format!("m{i}"), json!({}))).collect()));
        assert!(too_large("Mailbox/set", &destroy).is_some());
        destroy.remove("update");
        assert!(too_large("Mailbox/set", &destroy).is_none());
    }

    #[test]
    fn only_json_types_are_json() {
        let typed = |value: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(value) = value {
                headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            }
            is_json(&headers)
        };
        assert!(typed(Some("application/json")));
        assert!(typed(Some("Application/JSON; charset=utf-8")));
        assert!(typed(Some("application/jmap+json")));
        // RFC 8620 §3.6.1; and a foreign page's no-cors request can send no JSON type, or none at all.
        assert!(!typed(None));
        assert!(!typed(Some("text/plain")));
        assert!(!typed(Some("application/x-www-form-urlencoded")));
    }

    #[test]
    fn concurrency_is_counted_per_account() {
        let concurrency = Concurrency::default();
        let a = concurrency.enter(1, 1).unwrap();
        assert!(concurrency.enter(1, 1).is_none());
        assert!(concurrency.enter(2, 1).is_some());
        drop(a);
        assert!(concurrency.enter(1, 1).is_some());
    }
}
