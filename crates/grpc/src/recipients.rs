//! What the mailbox role answered to `Directory.ResolveRecipient`, kept for a while by the roles that ask
//! it per message: smtp-ingress for every RCPT TO, the relay for every recipient it delivers. Without it
//! each accepted message costs two gRPC calls and their PostgreSQL queries before it is even stored,
//! about as much CPU as accepting it (BENCHMARKS.md, issue 18), where Postfix looks its recipients up in
//! local tables and Dovecot and Stalwart cache their directory answers.
//!
//! An answer is kept for the TTL (`MAILBUS_RECIPIENT_CACHE_SECS`), and the whole cache is cleared when
//! the mailbox role announces a directory change on NATS (an account, alias or domain added, changed or
//! removed): a change is seen within milliseconds, and the TTL only bounds how long a lost announcement
//! (NATS down at that moment) can leave an answer stale. An answer that was being asked while the cache
//! was cleared is not kept ([`RecipientCache::resolve`] compares generations), so a clear never loses to
//! a slow call. A failed call and an unspecified answer are never kept.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mailbus_proto::v1::{self as pb, RecipientKind};

/// Most answers kept at once. Past it the expired ones go, and if none had, all of them: a flood of
/// distinct unknown addresses costs the cache its contents, never unbounded memory.
pub const CAPACITY: usize = 50_000;

pub struct RecipientCache {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every clear.
    generation: u64,
    entries: HashMap<String, (Instant, pb::ResolveRecipientResponse)>,
}

impl RecipientCache {
    /// A cache keeping answers for `ttl`; zero keeps none (every call asks).
    pub fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, CAPACITY)
    }

    pub fn with_capacity(ttl: Duration, capacity: usize) -> Self {
        RecipientCache { ttl, capacity: capacity.max(1), inner: Mutex::default() }
    }

    /// The answer for `address`: a kept one younger than the TTL, or `ask`'s (kept unless the cache was
    /// cleared meanwhile).
    pub async fn resolve<F, Fut>(&self, address: &str, ask: F) -> Result<pb::ResolveRecipientResponse, tonic::Status>
    where
        F: FnOnce(pb::ResolveRecipientRequest) -> Fut,
        Fut: Future<Output = Result<pb::ResolveRecipientResponse, tonic::Status>>,
    {
        if self.ttl.is_zero() {
            return ask(pb::ResolveRecipientRequest { address: address.to_owned() }).await;
        }
        let generation = {
            let inner = self.lock();
            if let Some((at, answer)) = inner.entries.get(address)
                && at.elapsed() < self.ttl
            {
                return Ok(answer.clone());
            }
            inner.generation
        };
        let answer = ask(pb::ResolveRecipientRequest { address: address.to_owned() }).await?;
        if answer.kind() != RecipientKind::Unspecified {
            self.keep(generation, address, &answer);
        }
        Ok(answer)
    }

    /// Forgets every answer: the directory changed.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.clear();
    }

    /// Forgets the answer about `address` (one that acting on did not work out), and keeps none being
    /// asked meanwhile.
    pub fn forget(&self, address: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.remove(address);
    }

    /// How many answers are kept (expired ones included until they are swept).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn keep(&self, generation: u64, address: &str, answer: &pb::ResolveRecipientResponse) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= self.capacity && !inner.entries.contains_key(address) {
            let ttl = self.ttl;
            inner.entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if inner.entries.len() >= self.capacity {
                inner.entries.clear();
            }
        }
        inner.entries.insert(address.to_owned(), (Instant::now(), answer.clone()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn local(account: i64) -> pb::ResolveRecipientResponse {
        pb::ResolveRecipientResponse {
            kind: RecipientKind::Local.into(),
            account_ids: vec![account],
            ..Default::default()
        }
    }

    /// Answers `answer` and counts the calls.
    async fn ask_counted(
        calls: &AtomicUsize,
        answer: Result<pb::ResolveRecipientResponse, tonic::Status>,
        cache: &RecipientCache,
        address: &str,
    ) -> Result<pb::ResolveRecipientResponse, tonic::Status> {
        cache
            .resolve(address, |request| {
                assert_eq!(request.address, address);
                calls.fetch_add(1, Ordering::SeqCst);
                async { answer }
            })
            .await
    }

    #[tokio::test]
    async fn a_kept_answer_is_used_until_the_cache_is_cleared() {
        let cache = RecipientCache::new(Duration::from_secs(60));
        let calls = AtomicUsize::new(0);
        assert_eq!(ask_counted(&calls, Ok(local(7)), &cache, "a@x.test").await.unwrap(), local(7));
        assert_eq!(ask_counted(&calls, Ok(local(8)), &cache, "a@x.test").await.unwrap(), local(7));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cache.clear();
        assert_eq!(ask_counted(&calls, Ok(local(8)), &cache, "a@x.test").await.unwrap(), local(8));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        ask_counted(&calls, Ok(local(1)), &cache, "b@x.test").await.unwrap();
        cache.forget("a@x.test");
        assert_eq!(ask_counted(&calls, Ok(local(9)), &cache, "a@x.test").await.unwrap(), local(9));
        assert_eq!(ask_counted(&calls, Ok(local(2)), &cache, "b@x.test").await.unwrap(), local(1), "only a@ forgotten");
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn unknown_users_are_kept_too_but_failures_and_unspecified_answers_are_not() {
        let cache = RecipientCache::new(Duration::from_secs(60));
        let calls = AtomicUsize::new(0);
        let unknown = pb::ResolveRecipientResponse { kind: RecipientKind::UnknownUser.into(), ..Default::default() };
        ask_counted(&calls, Ok(unknown.clone()), &cache, "u@x.test").await.unwrap();
        assert_eq!(ask_counted(&calls, Ok(local(1)), &cache, "u@x.test").await.unwrap(), unknown);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let error = ask_counted(&calls, Err(tonic::Status::unavailable("down")), &cache, "f@x.test").await;
        assert_eq!(error.unwrap_err().code(), tonic::Code::Unavailable);
        ask_counted(&calls, Ok(pb::ResolveRecipientResponse::default()), &cache, "f@x.test").await.unwrap();
        assert_eq!(ask_counted(&calls, Ok(local(2)), &cache, "f@x.test").await.unwrap(), local(2));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn answers_expire_after_the_ttl_and_a_zero_ttl_keeps_nothing() {
        let cache = RecipientCache::new(Duration::from_millis(30));
        let calls = AtomicUsize::new(0);
        ask_counted(&calls, Ok(local(1)), &cache, "a@x.test").await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(ask_counted(&calls, Ok(local(2)), &cache, "a@x.test").await.unwrap(), local(2));
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        let off = RecipientCache::new(Duration::ZERO);
        ask_counted(&calls, Ok(local(1)), &off, "a@x.test").await.unwrap();
        assert_eq!(ask_counted(&calls, Ok(local(2)), &off, "a@x.test").await.unwrap(), local(2));
        assert_eq!(off.len(), 0);
    }

    #[tokio::test]
    async fn an_answer_asked_across_a_clear_is_not_kept() {
        let cache = RecipientCache::new(Duration::from_secs(60));
        let answer = cache
            .resolve("a@x.test", |_| {
                // The directory changes while the call is on its way.
                cache.clear();
                async { Ok(local(1)) }
            })
            .await
            .unwrap();
        assert_eq!(answer, local(1));
        assert_eq!(cache.len(), 0, "a stale answer was kept after the clear");
    }

    #[tokio::test]
    async fn a_full_cache_sweeps_and_never_grows_past_its_capacity() {
        let cache = RecipientCache::with_capacity(Duration::from_secs(60), 3);
        let calls = AtomicUsize::new(0);
        for n in 0..10 {
            ask_counted(&calls, Ok(local(n)), &cache, &format!("{n}@x.test")).await.unwrap();
            assert!(cache.len() <= 3, "{} answers kept", cache.len());
        }
        // The newest is always kept.
        assert_eq!(ask_counted(&calls, Ok(local(99)), &cache, "9@x.test").await.unwrap(), local(9));
    }
}
