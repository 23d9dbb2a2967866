//! Errors that answer a whole HTTP request: RFC 7807 problem details (`application/problem+json`), with
//! the JMAP request-level types of RFC 8620 §3.6.1 where they apply. Method-level errors are not here:
//! they are responses inside a successful request (`api`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

const JMAP_ERROR: &str = "urn:ietf:params:jmap:error:";

#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// The `type` URI.
    pub kind: String,
    pub detail: String,
    /// For `limit`: the name of the limit that was exceeded (RFC 8620 §3.6.1).
    pub limit: Option<&'static str>,
    /// 401 asks for Basic credentials.
    challenge: bool,
}

impl Problem {
    fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Problem { status, kind: kind.to_owned(), detail: detail.into(), limit: None, challenge: false }
    }

    fn jmap(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Self::new(status, &format!("{JMAP_ERROR}{kind}"), detail)
    }

    pub fn not_json(detail: impl Into<String>) -> Self {
        Self::jmap(StatusCode::BAD_REQUEST, "notJSON", detail)
    }

    pub fn not_request(detail: impl Into<String>) -> Self {
        Self::jmap(StatusCode::BAD_REQUEST, "notRequest", detail)
    }

    pub fn unknown_capability(capability: &str) -> Self {
        Self::jmap(StatusCode::BAD_REQUEST, "unknownCapability", format!("unknown capability {capability:?}"))
    }

    /// A request over one of the session object's limits. Size limits answer 413, the others 400.
    pub fn limit(limit: &'static str, status: StatusCode) -> Self {
        let mut problem = Self::jmap(status, "limit", format!("the request is over {limit}"));
        problem.limit = Some(limit);
        problem
    }

    pub fn over_quota() -> Self {
        Self::jmap(StatusCode::PAYLOAD_TOO_LARGE, "overQuota", "the account is over its quota")
    }

    pub fn unauthorized() -> Self {
        let mut problem = Self::new(StatusCode::UNAUTHORIZED, "about:blank", "authentication required");
        problem.challenge = true;
        problem
    }

    /// 401 for the webmail, without the Basic challenge (which would make a browser pop up its own
    /// password dialog over the page).
    pub fn unauthorized_session() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "about:blank", "not logged in")
    }

    pub fn throttled() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "about:blank", "too many failed logins, try again later")
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "about:blank", detail)
    }

    /// 429 (RFC 6585): the account has `MAX_CONCURRENT_DOWNLOADS` downloads being sent already.
    pub fn too_many_downloads() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "about:blank", "too many downloads at once for this account")
    }

    /// 429 (RFC 6585): the account has `MAX_EVENTSOURCES` EventSource connections open already.
    pub fn too_many_eventsources() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "about:blank", "too many EventSource connections for this account")
    }

    /// 408: the request's body did not arrive in time.
    pub fn timeout(wait: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "about:blank",
            format!("the request's body did not arrive within {} s", wait.as_secs()),
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "about:blank", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "about:blank", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "about:blank", detail)
    }

    /// A status of the mailbox role that ends the request: a disabled account, or the role unreachable.
    pub fn from_status(status: &tonic::Status) -> Self {
        match status.code() {
            tonic::Code::PermissionDenied => Self::forbidden("the account is disabled"),
            tonic::Code::Unauthenticated => Self::unauthorized(),
            _ => Self::unavailable("the mail store is unavailable"),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({"type": self.kind, "status": self.status.as_u16(), "detail": self.detail});
        if let Some(limit) = self.limit {
            body["limit"] = json!(limit);
        }
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.challenge {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"mailbus\""));
        }
        response
    }
}

/// Any path we do not serve.
pub async fn not_found() -> Problem {
    Problem::not_found("no such resource")
}
