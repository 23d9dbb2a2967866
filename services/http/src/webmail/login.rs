//! Logging in and out of the webmail, and the session the page starts from. A login checks the password
//! exactly as HTTP Basic does (the same throttle, the same `protocol=http` log line), then keeps a
//! session in NATS and hands the browser only its id, in an HttpOnly, Secure, SameSite=Strict cookie.
//! Every answer to a form is a 303 to `/`, with a reason in the query that the login page turns into one
//! of its own fixed messages.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::problem::Problem;
use crate::session::{base_url, session_object};
use crate::tokens::form_pairs;
use crate::webmail::guard::{self, same_origin};
use crate::webmail::pages::needs_https;
use crate::webmail::sessions::{LOGIN_COOKIE, SESSION_COOKIE, cookie, same_secret, set_cookie};
use crate::{App, Secure};

/// Why a login went back to the form; the login page has a message for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Credentials,
    Throttled,
    Csrf,
    Unavailable,
}

impl Refusal {
    fn location(self) -> &'static str {
        match self {
            Refusal::Credentials => "/?error=credentials",
            Refusal::Throttled => "/?error=throttled",
            Refusal::Csrf => "/?error=csrf",
            Refusal::Unavailable => "/?error=unavailable",
        }
    }
}

/// 303 See Other to `location`, setting `cookies`.
fn see_other(location: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /webmail/login`: the form's `username`, `password` and `csrf` (which must equal the login
/// cookie the form came with).
pub async fn login(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    secure: Option<axum::Extension<Secure>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    if let Some(elsewhere) = needs_https(&app, secure.is_some_and(|s| s.0.0), &headers, &uri) {
        return Ok(elsewhere);
    }
    same_origin(&headers, app.public_url.as_deref())?;
    let (mut username, mut password, mut csrf) = (None, None, None);
    for (name, value) in form_pairs(&body) {
        match name.as_str() {
            "username" => username = Some(value),
            "password" => password = Some(value),
            "csrf" => csrf = Some(value),
            _ => {}
        }
    }
    let expected = cookie(&headers, LOGIN_COOKIE);
    let csrf_ok = matches!((csrf.as_deref(), expected), (Some(sent), Some(expected)) if same_secret(sent, expected));
    if !csrf_ok {
        return Ok(see_other(Refusal::Csrf.location(), &[]));
    }
    let (Some(username), Some(password)) = (username, password) else {
        return Ok(see_other(Refusal::Credentials.location(), &[]));
    };
    let refusal = |problem: Problem| match problem.status {
        StatusCode::TOO_MANY_REQUESTS => Refusal::Throttled,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Refusal::Credentials,
        _ => Refusal::Unavailable,
    };
    let account = match app.auth.password(username.trim(), &password, peer.ip()).await {
        Ok(account) => account,
        Err(problem) => return Ok(see_other(refusal(problem).location(), &[])),
    };
    if let Err(problem) = app.auth.check_enabled(&account).await {
        return Ok(see_other(refusal(problem).location(), &[]));
    }
    let (id, _) = match app.auth.sessions.create(&account).await {
        Ok(created) => created,
        Err(error) => {
            tracing::warn!(%error, "webmail session not stored");
            return Ok(see_other(Refusal::Unavailable.location(), &[]));
        }
    };
    // A browser that logs in again (as someone else, perhaps) leaves no older session alive behind it.
    if let Some(old) = cookie(&headers, SESSION_COOKIE)
        && let Err(error) = app.auth.sessions.end(old).await
    {
        tracing::warn!(%error, "earlier webmail session not ended");
    }
    tracing::info!(protocol = "http", client = %peer.ip(), account = %account.address, "webmail login");
    let cookies = [
        set_cookie(SESSION_COOKIE, &id, "/", app.auth.sessions.ttl),
        set_cookie(LOGIN_COOKIE, "", "/webmail/login", Duration::ZERO),
    ];
    Ok(see_other("/", &cookies))
}

/// `POST /webmail/logout` with the CSRF token in `X-CSRF-Token` or a form field `csrf`: the session ends
/// on the server, whatever the browser keeps.
pub async fn logout(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Result<Response, Problem> {
    let clear = [set_cookie(SESSION_COOKIE, "", "/", Duration::ZERO)];
    // The stored session, even one a new password has ended: logging out still removes it.
    let Some((id, session)) = app.auth.stored_session(&headers).await? else {
        return Ok(see_other("/?logged_out=1", &clear));
    };
    let field = form_pairs(&body).into_iter().find(|(name, _)| name == "csrf").map(|(_, value)| value);
    let token = guard::header_token(&headers).or(field.as_deref());
    guard::check(&app, &headers, &session, token)?;
    app.auth.sessions.end(&id).await.map_err(|error| {
        tracing::warn!(%error, "webmail session not ended");
        Problem::unavailable("the session store is unavailable")
    })?;
    tracing::info!(protocol = "http", account = %session.account.address, "webmail logout");
    Ok(see_other("/?logged_out=1", &clear))
}

/// `GET /webmail/session`: what the page needs to start: who is logged in, the CSRF token for its
/// requests, and the JMAP session object.
pub async fn session(
    State(app): State<Arc<App>>,
    secure: Option<axum::Extension<Secure>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let Some((_, session)) = app.auth.session(&headers).await? else {
        return Err(Problem::unauthorized_session());
    };
    // The INBOX's id comes with the session, so that the page asks for the folders and the first page of
    // the INBOX in one request from the start. Asking also refuses a disabled account.
    let inbox = inbox_id(&app, &session.account).await?;
    let base = base_url(&app, &headers, secure.is_some_and(|s| s.0.0));
    let body = json!({
        "username": session.account.address,
        "accountId": session.account.jmap_id(),
        "csrfToken": session.csrf,
        "inboxId": inbox,
        "session": session_object(&app, &session.account, &base),
    });
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The id of the account's INBOX (`Mailbox/query` by role), or null if it has none.
async fn inbox_id(app: &App, account: &crate::auth::Account) -> Result<Value, Problem> {
    let call = mailbus_proto::v1::JmapCall {
        account_id: account.id,
        method: "Mailbox/query".into(),
        arguments: json!({"accountId": account.jmap_id(), "filter": {"role": "inbox"}}).to_string(),
        created_ids: Default::default(),
    };
    let result = app.jmap.clone().call(call).await.map_err(|status| Problem::from_status(&status))?.into_inner();
    let answer: Option<Value> = result.responses.first().and_then(|r| serde_json::from_str(&r.arguments).ok());
    Ok(answer.and_then(|a| a["ids"].get(0).cloned()).unwrap_or(Value::Null))
}
