use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::store::SessionLookup;

/// Entries beyond this many push out the oldest: it is a cache of hot sessions, not a copy of the table.
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
/// - Other instances' revocations arrive through the store. On Postgres they are pushed: each
///   ended session is removed as its notification arrives, and any user or tenant change empties
///   the cache (see [`super::revocation_push`]). Otherwise, and while the listening connection is
///   down, a poller reads the sessions whose end was recorded since its previous poll, every
///   50 ms, and removes each one newly ended
///   ([`Self::forget_sessions`]); the generation number stops a validation that read the store
///   before that from putting its answer back. See [`super::revocation_poll`] for how the polls
///   overlap so that no ending is missed.
/// - While that polling fails the cache is not used at all ([`Self::set_trusted`]).
/// - Expiry and idle time are still checked on every validation, against the cached times.
///
/// Nothing here scans the cache: an index from session id to token hash makes forgetting a
/// session one map removal, and a queue in insertion order (every entry has the same lifetime, so
/// that is also expiry order) lets expired entries be dropped from its front. Every call holds
/// the one lock for work in proportion to what it adds or removes, never to the cache's size, so
/// that a mass revocation elsewhere costs validations here next to nothing. (A concurrent cache
/// crate such as `moka` was weighed and not taken: it would still need this index to forget by
/// session, and its inserts cannot be made conditional on the generation under one lock.)
pub struct ValidationCache {
    ttl: Duration,
    max_entries: usize,
    trusted: AtomicBool,
    inner: Mutex<Inner>,
}

/// A cached lookup, keyed by its session token's hash.
struct Entry {
    /// Shared with every validation answered from it: a hit copies a pointer, not the lookup.
    lookup: Arc<SessionLookup>,
    at: Instant,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    entries: HashMap<Arc<[u8]>, Entry>,
    /// Each cached session's token hash: a session has one token.
    by_session: HashMap<Uuid, Arc<[u8]>>,
    /// Every insertion, oldest first. An item whose entry was replaced or removed since is stale
    /// and skipped when it reaches the front.
    insertions: VecDeque<(Instant, Arc<[u8]>)>,
}

impl Inner {
    /// Removes the entry under `key` if it is the one inserted at `at`.
    fn remove_if_inserted_at(&mut self, key: &Arc<[u8]>, at: Instant) -> bool {
        if self.entries.get(key).is_none_or(|e| e.at != at) {
            return false;
        }
        if let Some(entry) = self.entries.remove(key) {
            let session_id = entry.lookup.session.session_id;
            if self.by_session.get(&session_id) == Some(key) {
                self.by_session.remove(&session_id);
            }
        }
        true
    }

    /// Drops the entries inserted before `cutoff` (the expired ones), from the queue's front.
    fn expire(&mut self, cutoff: Instant) {
        while let Some((at, _)) = self.insertions.front() {
            if *at > cutoff {
                break;
            }
            if let Some((at, key)) = self.insertions.pop_front() {
                self.remove_if_inserted_at(&key, at);
            }
        }
    }

    /// Drops the oldest live entry.
    fn evict_oldest(&mut self) {
        while let Some((at, key)) = self.insertions.pop_front() {
            if self.remove_if_inserted_at(&key, at) {
                return;
            }
        }
    }

    /// Removes a session's entry, if cached.
    fn forget(&mut self, session_id: &Uuid) {
        if let Some(key) = self.by_session.remove(session_id) {
            self.entries.remove(&key);
        }
    }
}

impl ValidationCache {
    pub fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, MAX_ENTRIES)
    }

    fn with_capacity(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries: max_entries.max(1),
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

    pub fn get(&self, token_hash: &[u8]) -> Option<Arc<SessionLookup>> {
        let found = self.get_at(token_hash, Instant::now());
        crate::telemetry::metrics::validation_cache(found.is_some());
        found
    }

    fn get_at(&self, token_hash: &[u8], now: Instant) -> Option<Arc<SessionLookup>> {
        if !self.trusted.load(Ordering::Acquire) {
            return None;
        }
        let inner = self.lock();
        let entry = inner.entries.get(token_hash)?;
        (now.saturating_duration_since(entry.at) < self.ttl).then(|| entry.lookup.clone())
    }

    /// Keeps a lookup read from the store, unless the cache was emptied since `generation`.
    pub fn insert(&self, token_hash: Vec<u8>, lookup: Arc<SessionLookup>, generation: u64) {
        self.insert_at(token_hash, lookup, generation, Instant::now());
    }

    fn insert_at(&self, token_hash: Vec<u8>, lookup: Arc<SessionLookup>, generation: u64, now: Instant) {
        if self.ttl.is_zero() || !self.trusted.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if let Some(cutoff) = now.checked_sub(self.ttl) {
            inner.expire(cutoff);
        }
        let key: Arc<[u8]> = token_hash.into();
        let session_id = lookup.session.session_id;
        if !inner.entries.contains_key(&key) && inner.entries.len() >= self.max_entries {
            inner.evict_oldest();
        }
        if let Some(previous) = inner.entries.insert(key.clone(), Entry { lookup, at: now }) {
            let previous_session = previous.lookup.session.session_id;
            if previous_session != session_id && inner.by_session.get(&previous_session) == Some(&key) {
                inner.by_session.remove(&previous_session);
            }
        }
        if let Some(other) = inner.by_session.insert(session_id, key.clone())
            && other != key
        {
            // Not expected (a session has one token), but an entry the index no longer reaches
            // could not be forgotten: drop it.
            inner.entries.remove(&other);
        }
        inner.insertions.push_back((now, key));
        // Replaced entries leave stale items behind; keep the queue in proportion to the cache.
        if inner.insertions.len() > 2 * self.max_entries {
            let Inner {
                entries, insertions, ..
            } = &mut *inner;
            insertions.retain(|(at, key)| entries.get(key).is_some_and(|e| e.at == *at));
        }
    }

    /// Empties the cache after a local change.
    pub fn clear(&self) {
        let emptied = {
            let mut inner = self.lock();
            let generation = inner.generation + 1;
            std::mem::replace(
                &mut *inner,
                Inner {
                    generation,
                    ..Inner::default()
                },
            )
        };
        // Freed after the lock is released, so that validations do not wait for it.
        drop(emptied);
    }

    /// Removes the given sessions (ended elsewhere, each passed once) and expired entries. Costs
    /// in proportion to the sessions given and the entries expired, not to the cache's size.
    pub fn forget_sessions(&self, ended: &[Uuid]) {
        self.forget_sessions_at(ended, Instant::now());
    }

    fn forget_sessions_at(&self, ended: &[Uuid], now: Instant) {
        let mut inner = self.lock();
        if !ended.is_empty() {
            inner.generation += 1;
        }
        for session_id in ended {
            inner.forget(session_id);
        }
        if let Some(cutoff) = now.checked_sub(self.ttl) {
            inner.expire(cutoff);
        }
    }

    /// Whether the cache may be used: false (and emptied) while revocations cannot be polled.
    /// Returns whether that changed.
    pub fn set_trusted(&self, trusted: bool) -> bool {
        if !trusted {
            self.clear();
        }
        self.trusted.swap(trusted, Ordering::AcqRel) != trusted
    }

    /// How many lookups are cached.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::{SessionKind, UserProfile};
    use crate::store::{SessionRecord, UserRecord};
    use chrono::Utc;

    /// A lookup of a live session of its own user.
    pub(in crate::core) fn lookup(session_id: Uuid) -> Arc<SessionLookup> {
        let now = Utc::now();
        let user_id = Uuid::now_v7();
        let tenant_id = Uuid::now_v7();
        Arc::new(SessionLookup {
            session: SessionRecord {
                session_id,
                user_id: Some(user_id),
                ..SessionRecord::opened(vec![1; 32], tenant_id, SessionKind::Password, now, now)
            },
            user: Some(UserRecord {
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
            }),
            password_expiry_days: None,
            tenant_name: "Default".into(),
        })
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

    #[test]
    fn forgetting_removes_exactly_the_ended_sessions() {
        let cache = trusted_cache(Duration::from_secs(60));
        let ids: Vec<Uuid> = (0..1000).map(|_| Uuid::now_v7()).collect();
        for (i, id) in ids.iter().enumerate() {
            cache.insert(format!("t{i}").into_bytes(), lookup(*id), cache.generation());
        }
        let ended: Vec<Uuid> = ids.iter().step_by(100).copied().chain([Uuid::now_v7()]).collect();
        cache.forget_sessions(&ended);
        for (i, id) in ids.iter().enumerate() {
            let cached = cache.get(format!("t{i}").as_bytes()).is_some();
            assert_eq!(cached, !ended.contains(id), "session {i}");
        }
        let inner = cache.lock();
        assert_eq!((inner.entries.len(), inner.by_session.len()), (990, 990));
    }

    #[test]
    fn expired_entries_are_dropped_from_the_front() {
        let cache = trusted_cache(Duration::from_secs(2));
        let t0 = Instant::now();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        cache.insert_at(b"a".to_vec(), lookup(a), cache.generation(), t0);
        cache.insert_at(
            b"b".to_vec(),
            lookup(b),
            cache.generation(),
            t0 + Duration::from_secs(1),
        );
        assert!(cache.get_at(b"a", t0 + Duration::from_millis(1999)).is_some());
        assert!(
            cache.get_at(b"a", t0 + Duration::from_secs(2)).is_none(),
            "a lifetime at most"
        );

        cache.forget_sessions_at(&[], t0 + Duration::from_millis(2500));
        let inner = cache.lock();
        assert!(!inner.entries.contains_key(&b"a"[..]), "expired, and dropped");
        assert!(!inner.by_session.contains_key(&a), "from the index too");
        assert!(inner.entries.contains_key(&b"b"[..]), "not yet expired");
        assert_eq!(inner.insertions.len(), 1);
    }

    #[test]
    fn an_entry_stored_again_outlives_its_first_insertion() {
        let cache = trusted_cache(Duration::from_secs(2));
        let t0 = Instant::now();
        let a = Uuid::now_v7();
        cache.insert_at(b"a".to_vec(), lookup(a), cache.generation(), t0);
        let later = t0 + Duration::from_millis(1500);
        cache.insert_at(b"a".to_vec(), lookup(a), cache.generation(), later);
        cache.forget_sessions_at(&[], t0 + Duration::from_millis(2500));
        assert!(cache.get_at(b"a", t0 + Duration::from_millis(2500)).is_some());
        cache.forget_sessions(&[a]);
        assert!(cache.get_at(b"a", later).is_none(), "still reachable through the index");
    }

    #[test]
    fn a_full_cache_pushes_out_its_oldest_entry() {
        let cache = ValidationCache::with_capacity(Duration::from_secs(60), 3);
        cache.set_trusted(true);
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        for (i, id) in ids.iter().enumerate() {
            cache.insert(vec![i as u8], lookup(*id), cache.generation());
        }
        assert!(cache.get(&[0]).is_none(), "the oldest made room");
        assert!((1..4u8).all(|i| cache.get(&[i]).is_some()));
        assert_eq!(cache.lock().by_session.len(), 3);
    }
}
