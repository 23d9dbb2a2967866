//! Failed-login throttling that every replica of every protocol shares, so that reconnecting (or moving
//! to another replica, or from IMAP to POP3) does not reset it. Failures are counted in a JetStream
//! key-value bucket whose entries expire a window after their last failure:
//!
//! - per client address (IPv6 per /64, which one subscriber usually holds): a growing delay before each
//!   failed answer, and past [`ThrottlePolicy::max_failures_per_address`], refusal without even checking
//!   the password until the window has passed;
//! - per account: the same growing delay, never a refusal, so that guessing spread over many addresses is
//!   slowed down without letting anyone lock a user out by failing on purpose.
//!
//! Every failure is logged in one line that fail2ban can match (`deploy/fail2ban/`), with the account
//! name hashed: the names attackers try are often mistyped passwords.
//!
//! The counts are advisory: when NATS cannot answer, logins go on (a delay of one step) rather than stop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use mailbus_telemetry::metrics::{NatsOperation, nats_client_error};

use crate::queue::QueueError;

/// The longest delay is this many steps: enough to make guessing slow, short of a client's timeout.
const MAX_DELAY_STEPS: u32 = 15;
/// Attempts at a compare-and-set increment that other replicas keep beating.
const MAX_RACES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// The delay before a failed answer, per failure counted (at most [`MAX_DELAY_STEPS`] of them).
    pub delay: Duration,
    /// Failures from one address within the window after which its logins are refused.
    pub max_failures_per_address: u32,
    /// How long a failure counts, from the last one.
    pub window: Duration,
}

/// Whether a login may be tried at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Try,
    /// Too many failures from this address: refuse without checking the password (SMTP 454 4.7.0, IMAP
    /// `NO [UNAVAILABLE]`, POP3 `-ERR [SYS/TEMP]`).
    Refuse,
}

#[derive(Clone)]
pub struct LoginThrottle {
    counts: Counts,
    policy: ThrottlePolicy,
}

#[derive(Clone)]
enum Counts {
    Nats(Box<kv::Store>),
    /// One process's own counts: for unit tests of the protocol roles, which run without NATS.
    Memory(std::sync::Arc<Mutex<HashMap<String, (u32, Instant)>>>),
}

impl LoginThrottle {
    /// Opens (creating it on first use, with `replicas` copies) the bucket `bucket`, whose entries
    /// expire a window after their last change.
    pub async fn open(
        jetstream: &jetstream::Context,
        (bucket, replicas): (String, usize),
        policy: ThrottlePolicy,
    ) -> Result<Self, QueueError> {
        let kv = crate::open_bucket(jetstream, (bucket, replicas), policy.window).await?;
        Ok(LoginThrottle { counts: Counts::Nats(Box::new(kv)), policy })
    }

    /// Counts kept in this process only.
    pub fn in_memory(policy: ThrottlePolicy) -> Self {
        LoginThrottle { counts: Counts::Memory(Default::default()), policy }
    }

    /// Before a password is checked: may this address try?
    pub async fn verdict(&self, client: IpAddr) -> Verdict {
        match self.counts.get(&address_key(client)).await {
            Ok(n) if n >= self.policy.max_failures_per_address => Verdict::Refuse,
            Ok(_) => Verdict::Try,
            Err(error) => {
                tracing::debug!(%error, "failed-login counts unavailable");
                Verdict::Try
            }
        }
    }

    /// After a failed login: logs it, counts it against the address and the account, and says how long to
    /// wait before answering.
    pub async fn failed(&self, protocol: &'static str, client: IpAddr, username: &str) -> Duration {
        let account = account_tag(username);
        // One line, one format for every protocol: what fail2ban's filter matches.
        tracing::warn!(
            target: "mailbus::auth",
            protocol = %protocol,
            client = %client,
            account = %account,
            "authentication failed"
        );
        let by_address = self.counts.bump(&address_key(client), self.policy.window).await;
        let by_account = self.counts.bump(&format!("acct.{account}"), self.policy.window).await;
        let steps = match (by_address, by_account) {
            (Ok(a), Ok(b)) => a.max(b),
            (Ok(n), Err(error)) | (Err(error), Ok(n)) => {
                tracing::debug!(%error, "failed-login count not kept");
                n
            }
            (Err(error), Err(_)) => {
                tracing::debug!(%error, "failed-login counts not kept");
                1
            }
        };
        self.policy.delay * steps.clamp(1, MAX_DELAY_STEPS)
    }

    /// After a successful login: the account's own count starts again (a user's typo should not slow
    /// their next day). The address keeps its count, or one working account would let its holder reset
    /// the count between guesses at others.
    pub async fn succeeded(&self, username: &str) {
        let key = format!("acct.{}", account_tag(username));
        // A read first: most logins have nothing to clear, and a delete is a write to the stream.
        if self.counts.get(&key).await.is_ok_and(|n| n == 0) {
            return;
        }
        if let Err(error) = self.counts.clear(&key).await {
            tracing::debug!(%error, "failed-login count not cleared");
        }
    }
}

/// What stands for an account in the counts and the logs: the first 16 hex digits of the SHA-256 of its
/// lowercased name. Operators can compute it for a name they know; the log never holds a typed secret.
pub fn account_tag(username: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, username.to_lowercase().as_bytes());
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// IPv4 per address; IPv6 per /64, the block one subscriber usually gets.
pub(crate) fn address_key(client: IpAddr) -> String {
    match client {
        IpAddr::V4(v4) => format!("ip4.{}", v4.octets().map(|o| o.to_string()).join("-")),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => address_key(IpAddr::V4(v4)),
            None => format!("ip6.{}", v6.octets()[..8].iter().map(|b| format!("{b:02x}")).collect::<String>()),
        },
    }
}

fn count_of(value: &[u8]) -> u32 {
    std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl Counts {
    async fn get(&self, key: &str) -> Result<u32, String> {
        match self {
            Counts::Nats(kv) => match kv.get(key).await {
                Ok(value) => Ok(value.map(|v| count_of(&v)).unwrap_or(0)),
                Err(error) => Err(error.to_string()),
            },
            Counts::Memory(map) => {
                let map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                Ok(map.get(key).filter(|(_, until)| *until > Instant::now()).map(|(n, _)| *n).unwrap_or(0))
            }
        }
    }

    /// Adds one failure and returns the count; compare-and-set, so replicas failing at once all count.
    async fn bump(&self, key: &str, window: Duration) -> Result<u32, String> {
        let kv = match self {
            Counts::Nats(kv) => kv,
            Counts::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let now = Instant::now();
                let entry = map.entry(key.to_owned()).or_insert((0, now));
                let n = if entry.1 > now { entry.0 + 1 } else { 1 };
                *entry = (n, now + window);
                return Ok(n);
            }
        };
        for _ in 0..MAX_RACES {
            let written = match kv.entry(key).await {
                Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                    let n = count_of(&entry.value).saturating_add(1);
                    kv.update(key, n.to_string().into(), entry.revision).await.map(|_| n).map_err(|e| e.to_string())
                }
                // Deleted (a success cleared it) or never there.
                Ok(Some(entry)) => {
                    kv.update(key, "1".into(), entry.revision).await.map(|_| 1).map_err(|e| e.to_string())
                }
                Ok(None) => kv.create(key, "1".into()).await.map(|_| 1).map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            match written {
                Ok(n) => return Ok(n),
                // Another replica counted first: read again.
                Err(_) => continue,
            }
        }
        nats_client_error(NatsOperation::KvUpdate);
        Err(format!("failed-login count {key}: {MAX_RACES} conflicting writes"))
    }

    async fn clear(&self, key: &str) -> Result<(), String> {
        match self {
            Counts::Nats(kv) => kv.delete(key).await.map_err(|e| e.to_string()),
            Counts::Memory(map) => {
                map.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            delay: Duration::from_millis(100),
            max_failures_per_address: 3,
            window: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn delays_grow_per_address_and_account_and_the_address_is_refused_past_its_limit() {
        let throttle = LoginThrottle::in_memory(policy());
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert_eq!(throttle.failed("imap", a, "alice@example.org").await, Duration::from_millis(100));
        // Another address guessing the same account is slowed by the account's count.
        assert_eq!(throttle.failed("pop3", b, "Alice@example.org").await, Duration::from_millis(200));
        assert_eq!(throttle.verdict(a).await, Verdict::Try);
        throttle.failed("smtp", a, "bob@example.org").await;
        throttle.failed("smtp", a, "carol@example.org").await;
        assert_eq!(throttle.verdict(a).await, Verdict::Refuse, "a third failure from one address");
        assert_eq!(throttle.verdict(b).await, Verdict::Try, "another address is not refused");
        throttle.succeeded("alice@example.org").await;
        assert_eq!(
            throttle.failed("imap", "192.0.2.3".parse().unwrap(), "alice@example.org").await,
            Duration::from_millis(100),
            "a success starts the account's count again"
        );
    }

    #[tokio::test]
    async fn the_delay_stops_growing() {
        let throttle = LoginThrottle::in_memory(ThrottlePolicy { max_failures_per_address: 1000, ..policy() });
        let client: IpAddr = "192.0.2.9".parse().unwrap();
        let mut last = Duration::ZERO;
        for _ in 0..40 {
            last = throttle.failed("imap", client, "x@example.org").await;
        }
        assert_eq!(last, Duration::from_millis(100) * MAX_DELAY_STEPS);
    }

    #[test]
    fn keys_are_valid_kv_keys_and_ipv6_counts_per_64() {
        let valid = |k: &str| k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.=/".contains(&b));
        for ip in ["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"] {
            let key = address_key(ip.parse().unwrap());
            assert!(valid(&key), "{key}");
        }
        assert_eq!(address_key("2001:db8:0:1::1".parse().unwrap()), address_key("2001:db8:0:1::2".parse().unwrap()));
        assert_ne!(address_key("2001:db8:0:1::1".parse().unwrap()), address_key("2001:db8:0:2::1".parse().unwrap()));
        assert_eq!(address_key("::ffff:192.0.2.1".parse().unwrap()), "ip4.192-0-2-1");
        let tag = account_tag("Alice@Example.org");
        assert_eq!(tag.len(), 16);
        assert_eq!(tag, account_tag("alice@example.org"));
        assert!(valid(&format!("acct.{tag}")));
    }
}
