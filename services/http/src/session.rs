//! The session resource (RFC 8620 §2) and the doors to it: `/.well-known/jmap` (RFC 8620 §2.2).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use crate::auth::Account;
use crate::problem::Problem;
use crate::{App, MAX_CALLS_IN_REQUEST, MAX_CONCURRENT_REQUESTS, MAX_CONCURRENT_UPLOAD, Secure};
use crate::{MAX_OBJECTS_IN_GET, MAX_OBJECTS_IN_SET};

pub const CORE: &str = "urn:ietf:params:jmap:core";
pub const MAIL: &str = "urn:ietf:params:jmap:mail";
pub const SUBMISSION: &str = "urn:ietf:params:jmap:submission";
/// RFC 8621 §8.
pub const VACATION_RESPONSE: &str = "urn:ietf:params:jmap:vacationresponse";
/// The capabilities a request may name in `using`.
pub const CAPABILITIES: [&str; 4] = [CORE, MAIL, SUBMISSION, VACATION_RESPONSE];

/// RFC 8621 §2: mailbox names are at most this many octets (Cyrus' and Stalwart's limit as well).
const MAX_SIZE_MAILBOX_NAME: u64 = 490;
/// The deepest mailbox hierarchy we promise (IMAP's `/`-separated names allow more).
const MAX_MAILBOX_DEPTH: u64 = 10;

/// RFC 8620 §2.2: the well-known URL redirects to the session resource.
pub async fn well_known() -> Redirect {
    Redirect::temporary("/jmap/session")
}

pub async fn session(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    secure: Option<axum::Extension<Secure>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let account = app.auth.authenticate(&headers, peer.ip()).await?;
    app.auth.check_enabled(&account).await?;
    let base = base_url(&app, &headers, secure.is_some_and(|s| s.0.0));
    let mut response = Json(session_object(&app, &account, &base)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache, no-store"));
    Ok(response)
}

/// The configured public URL, or the scheme and Host of this request.
pub(crate) fn base_url(app: &App, headers: &HeaderMap, secure: bool) -> String {
    if let Some(url) = &app.public_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)))
        .unwrap_or(&app.hostname);
    format!("{}://{host}", if secure { "https" } else { "http" })
}

/// RFC 8620 §2: the session state changes when anything in the object would; here that is the account
/// (its id and address), so it is a digest of them.
pub fn session_state(account: &Account) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{}\0{}", account.id, account.address).as_bytes());
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

pub fn session_object(app: &App, account: &Account, base: &str) -> Value {
    let limits = &app.limits;
    let id = account.jmap_id();
    json!({
        "capabilities": {
            CORE: {
                "maxSizeUpload": limits.max_size_upload,
                "maxConcurrentUpload": MAX_CONCURRENT_UPLOAD,
                "maxSizeRequest": limits.max_size_request,
                "maxConcurrentRequests": MAX_CONCURRENT_REQUESTS,
                "maxCallsInRequest": MAX_CALLS_IN_REQUEST,
                "maxObjectsInGet": MAX_OBJECTS_IN_GET,
                "maxObjectsInSet": MAX_OBJECTS_IN_SET,
                "collationAlgorithms": ["i;ascii-casemap", "i;ascii-numeric", "i;octet", "i;unicode-casemap"],
            },
            MAIL: {},
            SUBMISSION: {},
            VACATION_RESPONSE: {},
        },
        "accounts": {
            id.clone(): {
                "name": account.address,
                "isPersonal": true,
                "isReadOnly": false,
                "accountCapabilities": {
                    MAIL: {
                        "maxMailboxesPerEmail": null,
                        "maxMailboxDepth": MAX_MAILBOX_DEPTH,
                        "maxSizeMailboxName": MAX_SIZE_MAILBOX_NAME,
                        "maxSizeAttachmentsPerEmail": limits.max_message_size,
                        "emailQuerySortOptions": ["receivedAt", "size", "from", "subject", "sentAt"],
                        "mayCreateTopLevelMailbox": true,
                    },
                    SUBMISSION: {
                        "maxDelayedSend": 0,
                        "submissionExtensions": {},
                    },
                    VACATION_RESPONSE: {},
                },
            },
        },
        "primaryAccounts": {MAIL: id, SUBMISSION: id, VACATION_RESPONSE: id, CORE: id},
        "username": account.address,
        "apiUrl": format!("{base}/jmap/api"),
        "downloadUrl": format!("{base}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?type={{type}}"),
        "uploadUrl": format!("{base}/jmap/upload/{{accountId}}/"),
        "eventSourceUrl": format!("{base}/jmap/eventsource?types={{types}}&closeafter={{closeafter}}&ping={{ping}}"),
        "state": session_state(account),
    })
}
