//! Bearer tokens (RFC 6750) so that a client need not send its password with every request: `POST
//! /jmap/token` with the password (HTTP Basic, or a JSON or form body) issues a random 256-bit token,
//! `DELETE /jmap/token` with the token revokes it. Tokens live in a NATS key-value bucket whose entries
//! expire by themselves, so every replica knows them; the key is the token's SHA-256, so the bucket
//! never holds a usable token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use mailbus_jetstream::QueueError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::App;
use crate::auth::{Account, Credentials};
use crate::problem::Problem;

#[derive(Clone)]
pub struct Tokens {
    kv: kv::Store,
    ttl: Duration,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    account_id: i64,
    address: String,
    /// Absent in a token issued before epochs were kept: it stands for the first epoch.
    #[serde(default)]
    credential_epoch: i64,
}

impl Tokens {
    /// Opens (creating it on first use) the bucket `bucket`, whose entries live `ttl`.
    pub async fn open(
        jetstream: &jetstream::Context,
        (bucket, replicas): (String, usize),
        ttl: Duration,
    ) -> Result<Self, QueueError> {
        let kv = mailbus_jetstream::open_bucket(jetstream, (bucket, replicas), ttl).await?;
        Ok(Tokens { kv, ttl })
    }

    pub async fn issue(&self, account: &Account) -> Result<String, String> {
        let token = random_token()?;
        let stored = Stored {
            account_id: account.id,
            address: account.address.clone(),
            credential_epoch: account.credential_epoch,
        };
        let value = serde_json::to_vec(&stored).map_err(|e| e.to_string())?;
        self.kv.put(key(&token), value.into()).await.map_err(|e| e.to_string())?;
        Ok(token)
    }

    /// The account a token stands for, `None` for an unknown, expired or revoked one.
    pub async fn lookup(&self, token: &str) -> Result<Option<Account>, String> {
        let Some(value) = self.kv.get(key(token)).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let stored: Stored = match serde_json::from_slice(&value) {
            Ok(stored) => stored,
            Err(_) => return Ok(None),
        };
        Ok(Some(Account { id: stored.account_id, address: stored.address, credential_epoch: stored.credential_epoch }))
    }

    pub async fn revoke(&self, token: &str) -> Result<(), String> {
        self.kv.purge(key(token)).await.map_err(|e| e.to_string())
    }
}

/// The bucket key of a token: its SHA-256 in hex (key-value keys allow no `-` at the start, nor `/`).
pub(crate) fn key(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 random bytes in base64url: an API token, a webmail session id, a CSRF or login-form token.
pub(crate) fn random_token() -> Result<String, String> {
    let mut random = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| "no randomness".to_owned())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random))
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

/// `POST /jmap/token`: credentials in, `{"access_token", "token_type": "Bearer", "expires_in"}` out
/// (the shape of RFC 6749 §5.1).
pub async fn issue(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    crate::webmail::guard::not_cross_site(&headers, app.public_url.as_deref(), &app.cors_origins)?;
    let (username, password) = match Credentials::from_headers(&headers) {
        Some(Credentials::Basic { username, password }) => (username, password),
        Some(Credentials::Bearer(_)) => return Err(Problem::bad_request("a token is issued for a password")),
        None => login_from_body(&headers, &body).ok_or_else(Problem::unauthorized)?,
    };
    let account = app.auth.password(&username, &password, peer.ip()).await?;
    app.auth.check_enabled(&account).await?;
    let token = app.auth.tokens.issue(&account).await.map_err(|error| {
        tracing::warn!(%error, "token not stored");
        Problem::unavailable("the token store is unavailable")
    })?;
    let body = json!({"access_token": token, "token_type": "Bearer", "expires_in": app.auth.tokens.ttl.as_secs()});
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(response)
}

fn login_from_body(headers: &HeaderMap, body: &[u8]) -> Option<(String, String)> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let login: Login = if content_type.starts_with("application/x-www-form-urlencoded") {
        let mut username = None;
        let mut password = None;
        for (name, value) in form_pairs(body) {
            match name.as_str() {
                "username" => username = Some(value),
                "password" => password = Some(value),
                _ => {}
            }
        }
        Login { username: username?, password: password? }
    } else {
        serde_json::from_slice(body).ok()?
    };
    Some((login.username, login.password))
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space, then percent-decoding).
pub(crate) fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (decode(name), decode(value)))
        .collect()
}

/// `DELETE /jmap/token` with `Authorization: Bearer <token>`: the token stops working at once.
pub async fn revoke(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    crate::webmail::guard::not_cross_site(&headers, app.public_url.as_deref(), &app.cors_origins)?;
    let Some(Credentials::Bearer(token)) = Credentials::from_headers(&headers) else {
        return Err(Problem::unauthorized());
    };
    // Only a valid token may be revoked, and a guess counts as a failed login.
    app.auth.authenticate(&headers, peer.ip()).await?;
    app.auth.tokens.revoke(&token).await.map_err(|error| {
        tracing::warn!(%error, "token not revoked");
        Problem::unavailable("the token store is unavailable")
    })?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_come_from_json_or_forms() {
        let mut headers = HeaderMap::new();
        let json = br#"{"username":"a@b.test","password":"p w"}"#;
        assert_eq!(login_from_body(&headers, json), Some(("a@b.test".into(), "p w".into())));
        headers.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        let form = b"username=a%40b.test&password=p+w%26";
        assert_eq!(login_from_body(&headers, form), Some(("a@b.test".into(), "p w&".into())));
        assert_eq!(login_from_body(&headers, b"username=x"), None);
    }

    #[test]
    fn a_token_stored_before_epochs_stands_for_the_first() {
        let old: Stored = serde_json::from_str(r#"{"account_id": 4, "address": "a@b.test"}"#).unwrap();
        assert_eq!((old.account_id, old.credential_epoch), (4, 0));
        let new: Stored =
            serde_json::from_str(r#"{"account_id": 4, "address": "a@b.test", "credential_epoch": 2}"#).unwrap();
        assert_eq!(new.credential_epoch, 2);
    }

    #[test]
    fn keys_are_hex_digests() {
        let k = key("token");
        assert_eq!(k.len(), 64);
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
