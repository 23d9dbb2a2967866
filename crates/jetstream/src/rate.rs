//! Submission rate limits that every replica shares: messages per account and per client address,
//! recipients per account, in a window (an hour by default), and recipients per account per day. The
//! counts live in a JetStream key-value bucket, so a client that spreads its sessions over replicas of
//! smtp-ingress, or over SMTP and JMAP, meets the same limits.
//!
//! Windows are fixed, as Postfix's anvil counts per `anvil_rate_time_unit`: a key per subject and
//! window (`msg.acct.42.<window number>`), so a window's count starts at zero when it begins and nothing
//! has to be reset; old keys expire with the bucket's `max_age`. At a window's edge a client can send
//! up to twice a limit within a short time; a limit is a ceiling on abuse, not an exact budget.
//!
//! A count is raised only when it stays within its limit (compare-and-set, so replicas counting at once
//! all count): a refused attempt costs nothing, and sending works again as soon as the window turns.
//! The counts are advisory, as the failed-login counts are: when NATS cannot answer, mail goes on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, kv};
use mailbus_telemetry::metrics::{NatsOperation, nats_client_error};

use crate::queue::QueueError;
use crate::throttle::address_key;

const DAY: Duration = Duration::from_secs(86_400);
/// Attempts at a compare-and-set increment that other replicas keep beating.
const MAX_RACES: usize = 5;

/// The limits; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    /// The window of the per-account and per-address limits.
    pub window: Duration,
    pub messages_per_account: u32,
    pub recipients_per_account: u32,
    pub messages_per_address: u32,
    /// Recipients per account per day (a UTC day).
    pub recipients_per_account_per_day: u32,
}

/// The limit an attempt would have passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    AccountMessages,
    AddressMessages,
    AccountRecipients,
    AccountRecipientsPerDay,
}

impl Limit {
    pub const ALL: [Limit; 4] =
        [Limit::AccountMessages, Limit::AddressMessages, Limit::AccountRecipients, Limit::AccountRecipientsPerDay];

    /// The `limit` label of the metrics.
    pub fn label(self) -> &'static str {
        match self {
            Limit::AccountMessages => "account_messages",
            Limit::AddressMessages => "address_messages",
            Limit::AccountRecipients => "account_recipients",
            Limit::AccountRecipientsPerDay => "account_recipients_per_day",
        }
    }

    /// What a refusal tells the client.
    pub fn explanation(self) -> &'static str {
        match self {
            Limit::AccountMessages => "Too many messages from this account, try again later",
            Limit::AddressMessages => "Too many messages from this client address, try again later",
            Limit::AccountRecipients => "Too many recipients from this account, try again later",
            Limit::AccountRecipientsPerDay => "Daily recipient limit of this account reached, try again tomorrow",
        }
    }
}

#[derive(Clone)]
pub struct SubmissionLimits {
    counts: Counts,
    policy: RatePolicy,
}

#[derive(Clone)]
enum Counts {
    Nats(Box<kv::Store>),
    /// One process's own counts: for unit tests of the roles, which run without NATS.
    Memory(Arc<Mutex<HashMap<String, u32>>>),
}

impl SubmissionLimits {
    /// Opens (creating it on first use, with `replicas` copies) the bucket `bucket`, whose entries
    /// outlive the longest window.
    pub async fn open(
        jetstream: &jetstream::Context,
        (bucket, replicas): (String, usize),
        policy: RatePolicy,
    ) -> Result<Self, QueueError> {
        let kv = crate::open_bucket(jetstream, (bucket, replicas), policy.window.max(DAY)).await?;
        Ok(SubmissionLimits { counts: Counts::Nats(Box::new(kv)), policy })
    }

    /// Counts kept in this process only.
    pub fn in_memory(policy: RatePolicy) -> Self {
        SubmissionLimits { counts: Counts::Memory(Default::default()), policy }
    }

    /// One more message from `account` at `client`, or the limit it would pass.
    pub async fn message(&self, account: i64, client: IpAddr) -> Result<(), Limit> {
        let now = unix_now();
        let window = self.policy.window;
        let own = Count::new(&format!("msg.acct.{account}"), window, now, 1, self.policy.messages_per_account);
        let address =
            Count::new(&format!("msg.{}", address_key(client)), window, now, 1, self.policy.messages_per_address);
        self.take_both((own, Limit::AccountMessages), (address, Limit::AddressMessages)).await
    }

    /// `count` more recipients from `account`, or the limit they would pass.
    pub async fn recipients(&self, account: i64, count: u32) -> Result<(), Limit> {
        let now = unix_now();
        let (window, policy) = (self.policy.window, self.policy);
        let hourly = Count::new(&format!("rcpt.acct.{account}"), window, now, count, policy.recipients_per_account);
        let daily =
            Count::new(&format!("rcptday.acct.{account}"), DAY, now, count, policy.recipients_per_account_per_day);
        self.take_both((hourly, Limit::AccountRecipients), (daily, Limit::AccountRecipientsPerDay)).await
    }

    /// Counts against both limits or neither: when the second refuses, the first is given back, so a
    /// refused attempt costs nothing.
    async fn take_both(&self, first: (Count, Limit), second: (Count, Limit)) -> Result<(), Limit> {
        if !self.take(&first.0).await {
            return Err(first.1);
        }
        if !self.take(&second.0).await {
            if first.0.limit != 0
                && let Err(error) = self.counts.give_back(&first.0.key, first.0.count).await
            {
                tracing::debug!(%error, key = first.0.key, "submission rate count not given back");
            }
            return Err(second.1);
        }
        Ok(())
    }

    /// Adds to a count unless that would pass its limit; `false` when it would.
    async fn take(&self, count: &Count) -> bool {
        if count.limit == 0 {
            return true;
        }
        match self.counts.add_within(&count.key, count.count, count.limit).await {
            Ok(within) => within,
            Err(error) => {
                tracing::debug!(%error, key = count.key, "submission rate count unavailable");
                true
            }
        }
    }
}

/// An addition to one subject's count in the window holding a moment.
struct Count {
    key: String,
    count: u32,
    limit: u32,
}

impl Count {
    fn new(subject: &str, window: Duration, now: u64, count: u32, limit: u32) -> Self {
        Count { key: window_key(subject, window, now), count, limit }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The key of `subject`'s count in the fixed window that holds `now`: the window's number since the
/// epoch, so each window starts from nothing.
fn window_key(subject: &str, window: Duration, now: u64) -> String {
    format!("{subject}.{}", now / window.as_secs().max(1))
}

fn count_of(value: &[u8]) -> u32 {
    std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl Counts {
    /// Adds `count` unless the total would pass `limit`: `Ok(true)` counted, `Ok(false)` refused.
    async fn add_within(&self, key: &str, count: u32, limit: u32) -> Result<bool, String> {
        let kv = match self {
            Counts::Nats(kv) => kv,
            Counts::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let current = map.entry(key.to_owned()).or_insert(0);
                let total = current.saturating_add(count);
                if total > limit {
                    return Ok(false);
                }
                *current = total;
                return Ok(true);
            }
        };
        for _ in 0..MAX_RACES {
            let (current, revision) = match kv.entry(key).await {
                Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                    (count_of(&entry.value), Some(entry.revision))
                }
                Ok(Some(entry)) => (0, Some(entry.revision)),
                Ok(None) => (0, None),
                Err(error) => {
                    nats_client_error(NatsOperation::KvUpdate);
                    return Err(error.to_string());
                }
            };
            let total = current.saturating_add(count);
            if total > limit {
                return Ok(false);
            }
            let written = match revision {
                Some(revision) => {
                    kv.update(key, total.to_string().into(), revision).await.map(|_| ()).map_err(|e| e.to_string())
                }
                None => kv.create(key, total.to_string().into()).await.map(|_| ()).map_err(|e| e.to_string()),
            };
            if written.is_ok() {
                return Ok(true);
            }
            // Another replica counted first: read again.
        }
        nats_client_error(NatsOperation::KvUpdate);
        Err(format!("submission rate count {key}: {MAX_RACES} conflicting writes"))
    }

    /// Takes back `count` that [`Counts::add_within`] added.
    async fn give_back(&self, key: &str, count: u32) -> Result<(), String> {
        let kv = match self {
            Counts::Nats(kv) => kv,
            Counts::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(current) = map.get_mut(key) {
                    *current = current.saturating_sub(count);
                }
                return Ok(());
            }
        };
        for _ in 0..MAX_RACES {
            let entry = match kv.entry(key).await {
                Ok(Some(entry)) if entry.operation == kv::Operation::Put => entry,
                Ok(_) => return Ok(()),
                Err(error) => return Err(error.to_string()),
            };
            let total = count_of(&entry.value).saturating_sub(count);
            if kv.update(key, total.to_string().into(), entry.revision).await.is_ok() {
                return Ok(());
            }
        }
        nats_client_error(NatsOperation::KvUpdate);
        Err(format!("submission rate count {key}: {MAX_RACES} conflicting writes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RatePolicy {
        RatePolicy {
            window: Duration::from_secs(3600),
            messages_per_account: 3,
            recipients_per_account: 5,
            messages_per_address: 4,
            recipients_per_account_per_day: 7,
        }
    }

    #[tokio::test]
    async fn messages_are_limited_per_account_and_per_address() {
        let limits = SubmissionLimits::in_memory(policy());
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(limits.message(1, a).await, Ok(()));
        }
        assert_eq!(limits.message(1, a).await, Err(Limit::AccountMessages));
        assert_eq!(limits.message(1, b).await, Err(Limit::AccountMessages), "the account's count follows it");
        assert_eq!(limits.message(2, a).await, Ok(()), "another account from the same address");
        assert_eq!(limits.message(3, a).await, Err(Limit::AddressMessages), "the address's fifth message");
        assert_eq!(limits.message(3, b).await, Ok(()));
        assert_eq!(limits.message(3, b).await, Ok(()));
        assert_eq!(limits.message(3, b).await, Ok(()), "the refusal at address a did not count for account 3");
        assert_eq!(limits.message(3, b).await, Err(Limit::AccountMessages));
    }

    #[tokio::test]
    async fn recipients_are_limited_per_window_and_per_day_and_a_refusal_costs_nothing() {
        let limits = SubmissionLimits::in_memory(policy());
        assert_eq!(limits.recipients(1, 4).await, Ok(()));
        assert_eq!(limits.recipients(1, 2).await, Err(Limit::AccountRecipients), "4 + 2 is over 5");
        assert_eq!(limits.recipients(1, 1).await, Ok(()), "the refused two were not counted");
        let daily = SubmissionLimits::in_memory(RatePolicy { recipients_per_account: 0, ..policy() });
        assert_eq!(daily.recipients(1, 7).await, Ok(()));
        assert_eq!(daily.recipients(1, 1).await, Err(Limit::AccountRecipientsPerDay));
    }

    #[tokio::test]
    async fn zero_turns_a_limit_off() {
        let off = RatePolicy {
            messages_per_account: 0,
            recipients_per_account: 0,
            messages_per_address: 0,
            recipients_per_account_per_day: 0,
            ..policy()
        };
        let limits = SubmissionLimits::in_memory(off);
        for _ in 0..100 {
            assert_eq!(limits.message(1, "192.0.2.1".parse().unwrap()).await, Ok(()));
            assert_eq!(limits.recipients(1, 1000).await, Ok(()));
        }
    }

    #[test]
    fn each_window_has_a_key_of_its_own() {
        let hour = Duration::from_secs(3600);
        assert_eq!(window_key("msg.acct.1", hour, 7200), window_key("msg.acct.1", hour, 10_799));
        assert_ne!(window_key("msg.acct.1", hour, 10_799), window_key("msg.acct.1", hour, 10_800));
        let valid = |k: &str| k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.=/".contains(&b));
        let address = format!("msg.{}", address_key("2001:db8::1".parse().unwrap()));
        assert!(valid(&window_key(&address, hour, 1_700_000_000)));
    }
}
