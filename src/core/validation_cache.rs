use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::store::SessionLookup;

/// Entries beyond this many empty the cache: it is a cache of hot sessions, not a copy of the table.
const MAX_ENTRIES: usize = 100_000;

/// Session lookups kept in memory for ValidateSession, so that repeated validations of the same
/// session skip the database.
///
/// The rules that keep it honest:
/// - An entry lives at most `ttl` (a short expiry, the fallback for anything else).
/// - Every local change that ends sessions or changes users or tenants empties the cache at once
///   ([`Self::clear`]); a generation number stops a validation that read the store before such a
///   change from putting its stale answer back.
/// - Other instances' revocations arrive through the store: a poller removes the sessions whose end
///   was recorded recently ([`Self::forget_sessions`]), every 50 ms.
/// - While that polling fails the cache is not used at all ([`Self::set_trusted`]).
/// - Expiry and idle time are still checked on every validation, against the cached times.
pub struct ValidationCache {
    ttl: Duration,
    trusted: AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    entries: HashMap<Vec<u8>, (SessionLookup, Instant)>,
}

impl ValidationCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            trusted: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current generation, to pass to [`Self::insert`] after reading the store.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    pub fn get(&self, token_hash: &[u8]) -> Option<SessionLookup> {
        if !self.trusted.load(Ordering::Acquire) {
            return None;
        }
        let inner = self.lock();
        let (lookup, at) = inner.entries.get(token_hash)?;
        (at.elapsed() < self.ttl).then(|| lookup.clone())
    }

    /// Keeps a lookup read from the store, unless the cache was emptied since `generation`.
    pub fn insert(&self, token_hash: Vec<u8>, lookup: SessionLookup, generation: u64) {
        if !self.trusted.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert(token_hash, (lookup, Instant::now()));
    }

    /// Empties the cache after a local change.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.clear();
    }

    /// Removes the given sessions (ended elsewhere) and stale entries.
    pub fn forget_sessions(&self, ended: &[Uuid]) {
        let mut inner = self.lock();
        if !ended.is_empty() {
            inner.generation += 1;
        }
        let ttl = self.ttl;
        inner
            .entries
            .retain(|_, (lookup, at)| at.elapsed() < ttl && !ended.contains(&lookup.session.session_id));
    }

    /// Whether the cache may be used: false (and emptied) while revocations cannot be polled.
    pub fn set_trusted(&self, trusted: bool) {
        if !trusted {
            self.clear();
        }
        self.trusted.store(trusted, Ordering::Release);
    }
}
