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
/// - An entry lives at most `ttl` (a short expiry, the fallback for anything else); a zero `ttl`
///   turns the cache off.
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
        if self.ttl.is_zero() || !self.trusted.load(Ordering::Acquire) {
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
    /// Returns whether that changed.
    pub fn set_trusted(&self, trusted: bool) -> bool {
        if !trusted {
            self.clear();
        }
        self.trusted.swap(trusted, Ordering::AcqRel) != trusted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SessionKind, UserProfile};
    use crate::store::{SessionRecord, UserRecord};
    use chrono::Utc;

    fn lookup(session_id: Uuid) -> SessionLookup {
        let now = Utc::now();
        let user_id = Uuid::now_v7();
        let tenant_id = Uuid::now_v7();
        SessionLookup {
            session: SessionRecord {
                session_id,
                token_hash: vec![1; 32],
                user_id,
                tenant_id,
                kind: SessionKind::Password,
                create_time: now,
                expire_time: now,
                last_use_time: now,
                end_time: None,
                impersonator_user_id: None,
                access_token_id: None,
                access_token_name: None,
            },
            user: UserRecord {
                user_id,
                tenant_id,
                user_name: "ann".into(),
                user_name_key: "ann".into(),
                profile: UserProfile::default(),
                roles: 0,
                disabled: false,
                password_hash: String::new(),
                password_change_time: now,
                force_change_password: false,
                failed_login_count: 0,
                locked_until: None,
                create_time: now,
                update_time: now,
            },
            password_expiry_days: None,
            tenant_name: "Default".into(),
        }
    }

    fn trusted_cache(ttl: Duration) -> ValidationCache {
        let cache = ValidationCache::new(ttl);
        cache.set_trusted(true);
        cache
    }

    #[test]
    fn an_untrusted_cache_neither_answers_nor_keeps() {
        let cache = ValidationCache::new(Duration::from_secs(60));
        let id = Uuid::now_v7();
        cache.insert(b"a".to_vec(), lookup(id), cache.generation());
        assert!(cache.get(b"a").is_none(), "not trusted before the first poll");

        assert!(cache.set_trusted(true), "became trusted");
        assert!(!cache.set_trusted(true), "already trusted");
        cache.insert(b"a".to_vec(), lookup(id), cache.generation());
        assert!(cache.get(b"a").is_some());

        assert!(cache.set_trusted(false), "a failed poll");
        assert!(!cache.set_trusted(false), "still failing: reported once");
        assert!(cache.get(b"a").is_none());
        cache.set_trusted(true);
        assert!(cache.get(b"a").is_none(), "emptied when trust was lost");
    }

    #[test]
    fn a_lookup_read_before_a_clear_is_not_kept() {
        let cache = trusted_cache(Duration::from_secs(60));
        let before = cache.generation();
        cache.clear();
        cache.insert(b"a".to_vec(), lookup(Uuid::now_v7()), before);
        assert!(cache.get(b"a").is_none());
        cache.insert(b"a".to_vec(), lookup(Uuid::now_v7()), cache.generation());
        assert!(cache.get(b"a").is_some());
        cache.clear();
        assert!(cache.get(b"a").is_none());
    }

    #[test]
    fn sessions_ended_elsewhere_are_forgotten_and_others_kept() {
        let cache = trusted_cache(Duration::from_secs(60));
        let (ended, live) = (Uuid::now_v7(), Uuid::now_v7());
        cache.insert(b"ended".to_vec(), lookup(ended), cache.generation());
        cache.insert(b"live".to_vec(), lookup(live), cache.generation());
        let before = cache.generation();
        cache.forget_sessions(&[ended]);
        assert!(cache.get(b"ended").is_none());
        assert!(cache.get(b"live").is_some());
        cache.insert(b"ended".to_vec(), lookup(ended), before);
        assert!(cache.get(b"ended").is_none(), "a read that raced the poll is not kept");
    }

    #[test]
    fn a_zero_lifetime_turns_the_cache_off() {
        let cache = trusted_cache(Duration::ZERO);
        cache.insert(b"a".to_vec(), lookup(Uuid::now_v7()), cache.generation());
        assert!(cache.get(b"a").is_none());
        assert!(cache.lock().entries.is_empty(), "a zero lifetime keeps nothing");
    }
}
