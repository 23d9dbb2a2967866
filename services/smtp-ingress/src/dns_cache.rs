//! The answers mail-auth's lookups keep (TXT records parsed as SPF, DKIM keys and DMARC policies; MX; A;
//! AAAA; PTR), each until its TTL runs out, shared by every session of the process. Bounded: when full,
//! the expired entries go, and if that frees nothing, everything does (a cache miss costs a lookup, never
//! a wrong answer). Tests fill it in advance, so that no lookup leaves the process.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Instant;

use mail_auth::{MX, RecordSet, ResolverCache, Txt};

/// Entries of one record type.
pub struct DnsCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> DnsCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        DnsCache { entries: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        // A panic while holding the lock leaves a map that is still a valid cache.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for DnsCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.lock();
        match entries.get(name) {
            Some((value, until)) if *until > Instant::now() => Some(value.clone()),
            Some(_) => {
                entries.remove(name);
                None
            }
            None => None,
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().remove(name).map(|(value, _)| value)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            let now = Instant::now();
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (value, valid_until));
    }
}

/// One cache per record type, as mail-auth's `Parameters` take them.
pub struct DnsCaches {
    pub txt: DnsCache<Box<str>, Txt>,
    pub mx: DnsCache<Box<str>, RecordSet<MX>>,
    pub ipv4: DnsCache<Box<str>, RecordSet<Ipv4Addr>>,
    pub ipv6: DnsCache<Box<str>, RecordSet<Ipv6Addr>>,
    pub ptr: DnsCache<IpAddr, RecordSet<Box<str>>>,
}

impl DnsCaches {
    pub fn new(capacity: usize) -> Self {
        DnsCaches {
            txt: DnsCache::new(capacity),
            mx: DnsCache::new(capacity),
            ipv4: DnsCache::new(capacity),
            ipv6: DnsCache::new(capacity),
            ptr: DnsCache::new(capacity),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn entries_live_until_their_ttl_and_a_full_cache_makes_room() {
        let cache: DnsCache<Box<str>, u32> = DnsCache::new(2);
        let later = Instant::now() + Duration::from_secs(60);
        cache.insert("a.example.".into(), 1, later);
        cache.insert("gone.example.".into(), 2, Instant::now());
        assert_eq!(cache.get("a.example."), Some(1));
        assert_eq!(cache.get("gone.example."), None, "expired");
        cache.insert("b.example.".into(), 3, later);
        cache.insert("c.example.".into(), 4, later);
        assert_eq!(cache.get("c.example."), Some(4), "the newest entry always fits");
        assert!(cache.lock().len() <= 2);
        assert_eq!(cache.remove("c.example."), Some(4));
        assert_eq!(cache.get("c.example."), None);
    }
}
