//! Webmail sessions: a random 256-bit id in an HttpOnly cookie, and server-side in a NATS key-value bucket
//! (like the bearer tokens) under the id's SHA-256, so that every replica knows them, they expire by
//! themselves, and logging out ends one for good. Each session carries its own CSRF token, which the page
//! reads from `/webmail/session` and sends back in `X-CSRF-Token`.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use axum::http::{HeaderMap, header};
use mailbus_jetstream::QueueError;
use serde::{Deserialize, Serialize};

use crate::auth::Account;
use crate::tokens::key;
use crate::tokens::random_token;

/// The session cookie. The `__Host-` prefix (RFC 6265bis §4.1.3.2) makes a browser keep it only when set
/// Secure, with Path=/ and no Domain, by this very host: a sibling subdomain cannot plant one of its own.
pub const SESSION_COOKIE: &str = "__Host-mailbus_session";
/// The login form's double-submit cookie (its value is also in the form's hidden `csrf` field). Its
/// Path is `/webmail/login`, which `__Host-` forbids; `__Secure-` at least keeps an http: page of a
/// sibling from setting it.
pub const LOGIN_COOKIE: &str = "__Secure-mailbus_login_csrf";

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
    /// Absent in a session begun before epochs were kept: it stands for the first epoch.
    #[serde(default)]
    credential_epoch: i64,
}

#[derive(Clone)]
pub struct Sessions {
    kv: kv::Store,
    pub ttl: Duration,
}

impl Sessions {
    /// Opens (creating it on first use) the bucket `bucket`, whose entries live `ttl`.
    pub async fn open(
        jetstream: &jetstream::Context,
        (bucket, replicas): (String, usize),
        ttl: Duration,
    ) -> Result<Self, QueueError> {
        let kv = mailbus_jetstream::open_bucket(jetstream, (bucket, replicas), ttl).await?;
        Ok(Sessions { kv, ttl })
    }

    /// A new session for `account`: its cookie value and the session.
    pub async fn create(&self, account: &Account) -> Result<(String, Session), String> {
        let id = random_token()?;
        let session = Session { account: account.clone(), csrf: random_token()? };
        let stored = Stored {
            account_id: account.id,
            address: account.address.clone(),
            csrf: session.csrf.clone(),
            credential_epoch: account.credential_epoch,
        };
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
        let account =
            Account { id: stored.account_id, address: stored.address, credential_epoch: stored.credential_epoch };
        Ok(Some(Session { account, csrf: stored.csrf }))
    }

    pub async fn end(&self, id: &str) -> Result<(), String> {
        self.kv.purge(key(id)).await.map_err(|e| e.to_string())
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (RFC 6265 §5.4), if it looks like one of
/// ours (base64url; anything else is not worth a lookup). Two cookies of the name mean that someone
/// else set one (a browser sends both, in an order we cannot trust): neither is taken.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = cookies(headers, name);
    let value = values.next()?.trim();
    if values.next().is_some() {
        return None;
    }
    let ours = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    ours.then_some(value)
}

/// Whether the request carries any cookie `name`, well-formed or not.
pub fn has_cookie(headers: &HeaderMap, name: &str) -> bool {
    cookies(headers, name).next().is_some()
}

fn cookies<'h, 'n>(headers: &'h HeaderMap, name: &'n str) -> impl Iterator<Item = &'h str> + use<'h, 'n> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(n, _)| *n == name)
        .map(|(_, v)| v)
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
        headers.append(header::COOKIE, "a=1; mailbus_session=planted; __Host-mailbus_session=abc-_9".parse().unwrap());
        headers.append(header::COOKIE, "__Secure-mailbus_login_csrf=zz".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc-_9"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), Some("zz"));
        assert_eq!(cookie(&headers, "b"), None);
        let mut odd = HeaderMap::new();
        odd.append(header::COOKIE, "__Host-mailbus_session=\"x y\"".parse().unwrap());
        assert_eq!(cookie(&odd, SESSION_COOKIE), None);
        assert!(has_cookie(&odd, SESSION_COOKIE));
    }

    #[test]
    fn two_cookies_of_a_name_are_neither_trusted() {
        // A browser that got a second cookie of the name (set for a parent domain, say) sends both; the
        // first is not necessarily ours.
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "__Host-mailbus_session=planted; __Host-mailbus_session=ours".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), None);
        let mut split = HeaderMap::new();
        split.append(header::COOKIE, "__Secure-mailbus_login_csrf=a".parse().unwrap());
        split.append(header::COOKIE, "__Secure-mailbus_login_csrf=b".parse().unwrap());
        assert_eq!(cookie(&split, LOGIN_COOKIE), None);
        assert!(has_cookie(&split, LOGIN_COOKIE));
    }

    #[test]
    fn cookies_are_locked_down() {
        let set = set_cookie(SESSION_COOKIE, "v", "/", Duration::from_secs(60));
        // What `__Host-` requires: Secure, Path=/, no Domain.
        assert_eq!(set, "__Host-mailbus_session=v; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=60");
        assert!(!set.to_ascii_lowercase().contains("domain"));
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
