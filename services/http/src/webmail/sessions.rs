//! Webmail sessions: a random 256-bit id in an HttpOnly cookie, and server-side in a NATS key-value bucket
//! (like the bearer tokens) under the id's SHA-256, so that every replica knows them, they expire by
//! themselves, and logging out ends one for good. Each session carries its own CSRF token, which the page
//! reads from `/webmail/session` and sends back in `X-CSRF-Token`.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use axum::http::{HeaderMap, header};
use base64::Engine;
use mailbus_jetstream::QueueError;
use serde::{Deserialize, Serialize};

use crate::auth::Account;

/// The session cookie.
pub const SESSION_COOKIE: &str = "mailbus_session";
/// The login form's double-submit cookie (its value is also in the form's hidden `csrf` field).
pub const LOGIN_COOKIE: &str = "mailbus_login_csrf";

/// One logged-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub account: Account,
    pub csrf: String,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    account_id: i64,
    address: String,
    csrf: String,
}

#[derive(Clone)]
pub struct Sessions {
    kv: kv::Store,
    pub ttl: Duration,
}

impl Sessions {
    /// Opens (creating it on first use) the bucket `bucket`, whose entries live `ttl`.
    pub async fn open(jetstream: &jetstream::Context, bucket: String, ttl: Duration) -> Result<Self, QueueError> {
        let kv = match jetstream.get_key_value(&bucket).await {
            Ok(kv) => kv,
            Err(_) => jetstream
                .create_key_value(kv::Config { bucket: bucket.clone(), history: 1, max_age: ttl, ..Default::default() })
                .await
                .map_err(|e| QueueError::Setup { what: bucket, message: e.to_string() })?,
        };
        Ok(Sessions { kv, ttl })
    }

    /// A new session for `account`: its cookie value and the session.
    pub async fn create(&self, account: &Account) -> Result<(String, Session), String> {
        let id = random_token()?;
        let session = Session { account: account.clone(), csrf: random_token()? };
        let stored = Stored { account_id: account.id, address: account.address.clone(), csrf: session.csrf.clone() };
        let value = serde_json::to_vec(&stored).map_err(|e| e.to_string())?;
        self.kv.put(key(&id), value.into()).await.map_err(|e| e.to_string())?;
        Ok((id, session))
    }

    /// The session a cookie value stands for; `None` for an unknown, expired or ended one.
    pub async fn lookup(&self, id: &str) -> Result<Option<Session>, String> {
        let Some(value) = self.kv.get(key(id)).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let Ok(stored) = serde_json::from_slice::<Stored>(&value) else {
            return Ok(None);
        };
        Ok(Some(Session { account: Account { id: stored.account_id, address: stored.address }, csrf: stored.csrf }))
    }

    pub async fn end(&self, id: &str) -> Result<(), String> {
        self.kv.purge(key(id)).await.map_err(|e| e.to_string())
    }
}

/// 256 random bits, base64url: a session id or a CSRF token.
pub fn random_token() -> Result<String, String> {
    let mut random = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| "no randomness".to_owned())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random))
}

/// The bucket key of a session id: its SHA-256 in hex, so the bucket never holds a usable cookie.
fn key(id: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name` in the request's `Cookie` headers (RFC 6265 §5.4), if it looks like one of
/// ours (base64url; anything else is not worth a lookup).
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        })
}

/// `Set-Cookie` for a cookie of ours: HttpOnly, Secure, SameSite=Strict; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: Duration) -> String {
    format!("{name}={value}; HttpOnly; Secure; SameSite=Strict; Path={path}; Max-Age={}", max_age.as_secs())
}

/// Equality whose time does not depend on where the strings differ (a CSRF token is a secret).
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "a=1; mailbus_session=abc-_9".parse().unwrap());
        headers.append(header::COOKIE, "mailbus_login_csrf=zz".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc-_9"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), Some("zz"));
        assert_eq!(cookie(&headers, "b"), None);
        let mut odd = HeaderMap::new();
        odd.append(header::COOKIE, "mailbus_session=\"x y\"".parse().unwrap());
        assert_eq!(cookie(&odd, SESSION_COOKIE), None);
    }

    #[test]
    fn cookies_are_locked_down() {
        let set = set_cookie(SESSION_COOKIE, "v", "/", Duration::from_secs(60));
        assert_eq!(set, "mailbus_session=v; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=60");
    }

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        assert!(!same_secret(&a, &a[..42]));
    }
}
