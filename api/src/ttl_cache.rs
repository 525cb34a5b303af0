//! A small map whose entries are trusted for a fixed time after they were read: per-workspace
//! settings (rate-limit overrides, quota limits) read on hot paths, which an administrator
//! changes rarely and which may apply a few seconds late.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value read for `key` less than the TTL ago, if any.
    pub fn fresh(&self, key: &K) -> Option<V> {
        let now = Instant::now();
        self.entries()
            .get(key)
            .filter(|(read_at, _)| now.duration_since(*read_at) < self.ttl)
            .map(|(_, value)| value.clone())
    }

    /// Remembers `value`, read now.
    pub fn insert(&self, key: K, value: V) {
        self.entries().insert(key, (Instant::now(), value));
    }

    /// Drops entries past their TTL, so memory stays bounded by recent traffic.
    pub fn forget_stale(&self) {
        let now = Instant::now();
        let ttl = self.ttl;
        self.entries()
            .retain(|_, (read_at, _)| now.duration_since(*read_at) < ttl);
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<K, (Instant, V)>> {
        // A poisoned map holds only complete entries: a panic cannot half-write one.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
