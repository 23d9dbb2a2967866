//! Who is calling: HTTP Basic (RFC 7617) against the directory, or a bearer token (RFC 6750) this role
//! issued. Failed logins are throttled and logged exactly as IMAP's are (`LoginThrottle`, protocol
//! `http`), so fail2ban's filter matches them too. argon2id is slow by design and a JMAP client sends its
//! password with every request, so a success is remembered for a minute, keyed by the user name and a
//! SHA-256 of the password (never the password itself).
//!
//! A token or webmail session carries the account's credential epoch as the login found it, and is
//! refused once the epoch has moved (a new password or address): a stolen token dies with the password
//! it came from. The epochs are cached for a minute, and the cache (with the verified passwords) is
//! emptied whenever the mailbox role announces a directory change, so a change takes effect at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use base64::Engine;
use mailbus_grpc::TracedChannel;
use mailbus_jetstream::{LoginThrottle, Verdict};
use mailbus_proto::v1::{self as pb, directory_client::DirectoryClient, jmap_client::JmapClient};

use crate::problem::Problem;
use crate::tokens::Tokens;
use crate::webmail::sessions::{self, SESSION_COOKIE, Session, Sessions};

/// How long a verified password is trusted without asking the directory again.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Entries in the cache; past it, expired ones are dropped, and if none had expired, all of them.
const CACHE_SIZE: usize = 10_000;

/// A lowercased user name and the SHA-256 of the password that proved it.
type CacheKey = (String, [u8; 32]);

/// The authenticated account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub address: String,
    /// The account's credential epoch when its password was checked.
    pub credential_epoch: i64,
}

impl Account {
    /// The JMAP account id (`a<id>`).
    pub fn jmap_id(&self) -> String {
        format!("a{}", self.id)
    }
}

/// Credentials as the request carries them.
pub enum Credentials {
    Basic { username: String, password: String },
    Bearer(String),
}

impl Credentials {
    pub fn from_headers(headers: &HeaderMap) -> Option<Credentials> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
        let (scheme, rest) = value.split_once(' ')?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (username, password) = decoded.split_once(':')?;
            return Some(Credentials::Basic { username: username.to_owned(), password: password.to_owned() });
        }
        if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            return Some(Credentials::Bearer(rest.to_owned()));
        }
        None
    }
}

pub struct Authenticator {
    directory: DirectoryClient<TracedChannel>,
    jmap: JmapClient<TracedChannel>,
    throttle: LoginThrottle,
    pub tokens: Tokens,
    pub sessions: Sessions,
    caches: Arc<Caches>,
}

/// What the authenticator remembers, emptied together on a directory change.
struct Caches {
    passwords: Mutex<HashMap<CacheKey, (Account, Instant)>>,
    /// Account id → its credential epoch, and when it was read.
    epochs: Mutex<HashMap<i64, (i64, Instant)>>,
    /// Moves with every clear. An answer asked for before a clear is not kept after it (it may be of the
    /// password or epoch the change replaced), and EventSource connections hear it and look again.
    generation: tokio::sync::watch::Sender<u64>,
}

impl Default for Caches {
    fn default() -> Self {
        Caches { passwords: Mutex::default(), epochs: Mutex::default(), generation: tokio::sync::watch::Sender::new(0) }
    }
}

impl Caches {
    fn clear(&self) {
        // Both maps under their locks while the generation moves, so that no insert checked against the
        // old generation lands after the clear.
        let mut passwords = lock(&self.passwords);
        let mut epochs = lock(&self.epochs);
        passwords.clear();
        epochs.clear();
        self.generation.send_modify(|generation| *generation += 1);
    }

    fn generation(&self) -> u64 {
        *self.generation.borrow()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Drops expired entries of a full cache, and everything when none had expired.
fn make_room<K, V>(cache: &mut HashMap<K, (V, Instant)>) {
    if cache.len() >= CACHE_SIZE {
        cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        if cache.len() >= CACHE_SIZE {
            cache.clear();
        }
    }
}

impl Authenticator {
    pub fn new(
        directory: DirectoryClient<TracedChannel>,
        jmap: JmapClient<TracedChannel>,
        throttle: LoginThrottle,
        tokens: Tokens,
        sessions: Sessions,
    ) -> Self {
        Authenticator { directory, jmap, throttle, tokens, sessions, caches: Arc::default() }
    }

    /// Forgets every verified password and credential epoch; called on each directory change.
    pub fn forgetter(&self) -> impl Fn() + Send + 'static {
        let caches = self.caches.clone();
        move || caches.clear()
    }

    /// Wakes whenever the directory changed, for a long-lived connection to check its credentials again.
    pub fn directory_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.caches.generation.subscribe()
    }

    /// The account the request proves, by its `Authorization` or else its webmail session cookie, or the
    /// problem to answer with. A request that changes something must go through
    /// [`crate::webmail::guard::authenticate_change`] instead, which adds the webmail's CSRF checks.
    pub async fn authenticate(&self, headers: &HeaderMap, client: IpAddr) -> Result<Account, Problem> {
        Ok(self.caller(headers, client).await?.0)
    }

    /// The account, and the webmail session when it was the cookie that proved it.
    pub async fn caller(&self, headers: &HeaderMap, client: IpAddr) -> Result<(Account, Option<Session>), Problem> {
        match Credentials::from_headers(headers) {
            None => match self.session(headers).await? {
                Some((_, session)) => Ok((session.account.clone(), Some(session))),
                // The webmail's own requests get no Basic challenge, which would open the browser's
                // password dialog over the page.
                None if sessions::has_cookie(headers, SESSION_COOKIE) || headers.contains_key("x-csrf-token") => {
                    Err(Problem::unauthorized_session())
                }
                None => Err(Problem::unauthorized()),
            },
            Some(Credentials::Basic { username, password }) => {
                Ok((self.password(&username, &password, client).await?, None))
            }
            Some(Credentials::Bearer(token)) => Ok((self.bearer(&token, client).await?, None)),
        }
    }

    /// The webmail session of the request's cookie, with the cookie's value. An unknown cookie is not a
    /// failed login: a 256-bit id cannot be guessed, and an expired one is only a browser left open.
    pub async fn session(&self, headers: &HeaderMap) -> Result<Option<(String, Session)>, Problem> {
        let Some((id, session)) = self.stored_session(headers).await? else {
            return Ok(None);
        };
        // A session of an older password is over, whatever the browser keeps.
        if !self.current(&session.account).await? {
            return Ok(None);
        }
        Ok(Some((id, session)))
    }

    /// The session of the request's cookie as stored, whether or not its credentials are still the
    /// account's: what logging out ends.
    pub async fn stored_session(&self, headers: &HeaderMap) -> Result<Option<(String, Session)>, Problem> {
        let Some(id) = sessions::cookie(headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        match self.sessions.lookup(id).await {
            Ok(found) => Ok(found.map(|session| (id.to_owned(), session))),
            Err(error) => {
                tracing::warn!(%error, "session store unavailable");
                Err(Problem::unavailable("the session store is unavailable"))
            }
        }
    }

    /// A user name and password: from the cache, or checked by the directory under the throttle.
    pub async fn password(&self, username: &str, password: &str, client: IpAddr) -> Result<Account, Problem> {
        let key = (username.to_lowercase(), digest(password));
        if let Some(account) = self.cached(&key) {
            return Ok(account);
        }
        if self.throttle.verdict(client).await == Verdict::Refuse {
            return Err(Problem::throttled());
        }
        let generation = self.caches.generation();
        let request = pb::AuthenticateRequest { username: username.to_owned(), password: password.to_owned() };
        let reply = match self.directory.clone().authenticate(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => {
                tracing::warn!(%status, "directory unavailable for an HTTP login");
                return Err(Problem::unavailable("the directory is unavailable"));
            }
        };
        if !reply.ok {
            let delay = self.throttle.failed("http", client, username).await;
            tokio::time::sleep(delay).await;
            return Err(Problem::unauthorized());
        }
        self.throttle.succeeded(username).await;
        let account =
            Account { id: reply.account_id, address: reply.account_address, credential_epoch: reply.credential_epoch };
        self.remember(generation, key, account.clone());
        Ok(account)
    }

    async fn bearer(&self, token: &str, client: IpAddr) -> Result<Account, Problem> {
        if self.throttle.verdict(client).await == Verdict::Refuse {
            return Err(Problem::throttled());
        }
        match self.tokens.lookup(token).await {
            // A token of an older password is refused as if revoked (it was, by the change), but it is
            // not a guess: no failed login is counted for it.
            Ok(Some(account)) if self.current(&account).await? => Ok(account),
            Ok(Some(_)) => Err(Problem::unauthorized()),
            Ok(None) => {
                // A guessed token is a failed login like a guessed password.
                let delay = self.throttle.failed("http", client, "bearer-token").await;
                tokio::time::sleep(delay).await;
                Err(Problem::unauthorized())
            }
            Err(error) => {
                tracing::warn!(%error, "token store unavailable");
                Err(Problem::unavailable("the token store is unavailable"))
            }
        }
    }

    /// Refuses a disabled account at once (the mailbox role answers PERMISSION_DENIED for it).
    pub async fn check_enabled(&self, account: &Account) -> Result<(), Problem> {
        let request = pb::StateRequest { account_id: account.id };
        match self.jmap.clone().state(request).await {
            Ok(_) => Ok(()),
            Err(status) => Err(Problem::from_status(&status)),
        }
    }

    /// Whether `account` (as a token or session carries it) is of the account's current credential
    /// epoch. An account that is gone has none. A cached epoch older than the one given was read before
    /// a change whose announcement has not come yet: the directory is asked again.
    pub async fn current(&self, account: &Account) -> Result<bool, Problem> {
        let cached = lock(&self.caches.epochs)
            .get(&account.id)
            .filter(|(epoch, at)| at.elapsed() < CACHE_TTL && *epoch >= account.credential_epoch)
            .map(|(epoch, _)| *epoch);
        if let Some(epoch) = cached {
            return Ok(epoch == account.credential_epoch);
        }
        let generation = self.caches.generation();
        let request = pb::CredentialEpochRequest { account_id: account.id };
        let epoch = match self.directory.clone().credential_epoch(request).await {
            Ok(reply) => reply.into_inner().credential_epoch,
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(false),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                // A mailbox role from before credential epochs (a rolling upgrade that reached this role
                // first): credentials are taken as they were before, until it is upgraded too.
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| tracing::warn!("the mailbox role has no CredentialEpoch yet; tokens are not checked against password changes until it is upgraded"));
                return Ok(true);
            }
            Err(status) => {
                tracing::warn!(%status, "directory unavailable for a credential check");
                return Err(Problem::unavailable("the directory is unavailable"));
            }
        };
        self.remember_epoch(generation, account.id, epoch);
        Ok(epoch == account.credential_epoch)
    }

    /// Keeps `epoch` unless the caches were cleared since `generation` (it may be from before the change).
    fn remember_epoch(&self, generation: u64, account: i64, epoch: i64) {
        let mut epochs = lock(&self.caches.epochs);
        if self.caches.generation() != generation {
            return;
        }
        make_room(&mut epochs);
        epochs.insert(account, (epoch, Instant::now()));
    }

    fn cached(&self, key: &CacheKey) -> Option<Account> {
        let cache = lock(&self.caches.passwords);
        cache.get(key).filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(account, _)| account.clone())
    }

    /// Keeps a verified password, and the epoch it came with, unless the caches were cleared since
    /// `generation`: a password checked before a change may be the one it replaced.
    fn remember(&self, generation: u64, key: CacheKey, account: Account) {
        self.remember_epoch(generation, account.id, account.credential_epoch);
        let mut cache = lock(&self.caches.passwords);
        if self.caches.generation() != generation {
            return;
        }
        make_room(&mut cache);
        cache.insert(key, (account, Instant::now()));
    }
}

fn digest(password: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, password.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn basic_and_bearer_credentials_parse() {
        // "alice@example.org:pa:ss" — a password may hold a colon (RFC 7617 §2).
        let basic = headers("Basic YWxpY2VAZXhhbXBsZS5vcmc6cGE6c3M=");
        match Credentials::from_headers(&basic) {
            Some(Credentials::Basic { username, password }) => {
                assert_eq!((username.as_str(), password.as_str()), ("alice@example.org", "pa:ss"));
            }
            _ => panic!("basic credentials not parsed"),
        }
        assert!(
            matches!(Credentials::from_headers(&headers("bearer abc")), Some(Credentials::Bearer(t)) if t == "abc")
        );
        for bad in ["Basic !!!", "Basic", "Digest x", "Bearer ", "Basic bm9jb2xvbg=="] {
            assert!(Credentials::from_headers(&headers(bad)).is_none(), "{bad}");
        }
    }
}
