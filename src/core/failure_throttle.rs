//! A limit on failed attempts per key — a client address for token logins; a user name would do
//! for a password lockout. After `failures` failures within `window` under one key, further
//! attempts under it are refused at once, without asking the database, until the allowance has
//! room again.
//!
//! The rate is governor's keyed GCRA: each failure takes one cell, `failures` cells make the
//! burst, and one comes back every `window / failures`. Time comes from the core's [`Clock`], so
//! that tests move it with a manual clock. governor has no way to ask "would the next one pass?"
//! without taking a cell, so the failure that spends the allowance also notes when it has room
//! again (a refused check takes nothing and says when), and attempts are checked against that.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{HashMapStateStore, ShrinkableKeyedStateStore};
use governor::{Quota, RateLimiter};

use crate::clock::Clock;

/// Keys tracked at once. Beyond this, a key not yet tracked is not limited (and a warning is
/// logged): memory stays bounded when very many addresses fail, and no one's allowance is reset.
const MAX_TRACKED_KEYS: usize = 100_000;

/// How many failures a key may have within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    /// Failures allowed within the window; 0 turns the limit off.
    pub failures: u32,
    /// The window; its allowance comes back a cell at a time, one every `window / failures`.
    pub window: Duration,
}

/// See the module documentation.
pub(crate) struct FailureThrottle<K: Hash + Eq + Clone> {
    limiter: Option<Limiter<K>>,
    /// The same state the limiter keeps, to ask whether a key is tracked.
    tracked: Arc<HashMapStateStore<K>>,
    /// Keys whose allowance is spent, with when it has room again.
    holds: Mutex<HashMap<K, DateTime<Utc>>>,
    clock: Arc<dyn Clock>,
    max_keys: usize,
    warned_full: AtomicBool,
}

type Limiter<K> = RateLimiter<K, SharedState<K>, CoreClock, StateInformationMiddleware>;

impl<K: Hash + Eq + Clone> FailureThrottle<K> {
    pub fn new(limit: FailureLimit, clock: Arc<dyn Clock>) -> Self {
        Self::with_max_keys(limit, clock, MAX_TRACKED_KEYS)
    }

    fn with_max_keys(limit: FailureLimit, clock: Arc<dyn Clock>, max_keys: usize) -> Self {
        let tracked: Arc<HashMapStateStore<K>> = Arc::default();
        let limiter = NonZeroU32::new(limit.failures).map(|failures| {
            let period = (limit.window / failures.get()).max(Duration::from_nanos(1));
            let quota = Quota::with_period(period)
                .expect("a period of at least a nanosecond")
                .allow_burst(failures);
            Limiter::new(quota, SharedState(tracked.clone()), CoreClock(clock.clone()))
        });
        Self {
            limiter,
            tracked,
            holds: Mutex::default(),
            clock,
            max_keys,
            warned_full: AtomicBool::new(false),
        }
    }

    fn holds(&self) -> std::sync::MutexGuard<'_, HashMap<K, DateTime<Utc>>> {
        self.holds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an attempt under `key` may go ahead now; if not, how long until one may.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut holds = self.holds();
        match holds.get(key) {
            Some(until) if *until > now => Err((*until - now).to_std().unwrap_or_default()),
            Some(_) => {
                holds.remove(key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed attempt under `key`. When it spends the allowance, attempts under the key
    /// are refused until the allowance has room again.
    pub fn record_failure(&self, key: &K) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        if !self.tracked.lock().contains_key(key) && limiter.len() >= self.max_keys {
            limiter.retain_recent();
            if limiter.len() >= self.max_keys {
                if !self.warned_full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        keys = self.max_keys,
                        "too many addresses with failed logins to track: new ones are not limited"
                    );
                }
                return;
            }
        }
        let room_at = match limiter.check_key(key) {
            Ok(state) if state.remaining_burst_capacity() > 0 => return,
            // This failure spent the allowance. A refused check takes nothing and says when it
            // has room again.
            Ok(_) => match limiter.check_key(key) {
                Err(refused) => refused.earliest_possible(),
                Ok(_) => return, // time moved on meanwhile
            },
            Err(refused) => refused.earliest_possible(),
        };
        self.holds().insert(key.clone(), from_epoch(room_at));
    }

    /// Forgets keys whose allowance is whole again and holds that are over, so that memory
    /// follows the addresses failing now. Runs with the periodic flush.
    pub fn prune(&self) {
        let now = self.clock.now();
        self.holds().retain(|_, until| *until > now);
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.warned_full.store(false, Ordering::Relaxed);
    }

    /// How many keys are tracked.
    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        self.tracked.lock().len()
    }
}

/// governor's view of the core's clock: time since the Unix epoch.
struct CoreClock(Arc<dyn Clock>);

impl governor::clock::Clock for CoreClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        (self.0.now() - DateTime::UNIX_EPOCH).to_std().unwrap_or_default()
    }
}

fn from_epoch(since_epoch: Duration) -> DateTime<Utc> {
    DateTime::UNIX_EPOCH + chrono::Duration::from_std(since_epoch).unwrap_or(chrono::Duration::MAX)
}

/// The limiter's state, shared so that the throttle can ask which keys it tracks.
struct SharedState<K: Hash + Eq + Clone>(Arc<HashMapStateStore<K>>);

impl<K: Hash + Eq + Clone> StateStore for SharedState<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for SharedState<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&*self.0);
    }

    fn len(&self) -> usize {
        ShrinkableKeyedStateStore::len(&*self.0)
    }

    fn is_empty(&self) -> bool {
        ShrinkableKeyedStateStore::is_empty(&*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const MINUTE: Duration = Duration::from_secs(60);

    fn throttle(failures: u32, clock: &ManualClock) -> FailureThrottle<&'static str> {
        FailureThrottle::new(
            FailureLimit {
                failures,
                window: MINUTE,
            },
            Arc::new(clock.clone()),
        )
    }

    fn advance(clock: &ManualClock, by: Duration) {
        clock.advance(chrono::Duration::from_std(by).unwrap());
    }

    #[test]
    fn a_key_is_refused_after_its_failures_and_others_are_not() {
        let clock = ManualClock::default();
        let throttle = throttle(3, &clock);
        for _ in 0..2 {
            throttle.record_failure(&"10.0.0.1");
            assert_eq!(throttle.check(&"10.0.0.1"), Ok(()));
        }
        throttle.record_failure(&"10.0.0.1");
        let wait = throttle
            .check(&"10.0.0.1")
            .expect_err("the third failure spends the allowance");
        assert_eq!(wait, MINUTE / 3, "until one failure's share of the window is back");
        assert_eq!(throttle.check(&"10.0.0.2"), Ok(()), "another key is not affected");
        throttle.record_failure(&"10.0.0.2");
        assert_eq!(throttle.check(&"10.0.0.2"), Ok(()), "and has an allowance of its own");
    }

    #[test]
    fn the_allowance_comes_back_with_time() {
        let clock = ManualClock::default();
        let throttle = throttle(3, &clock);
        for _ in 0..3 {
            throttle.record_failure(&"a");
        }
        advance(&clock, MINUTE / 3 - Duration::from_secs(1));
        assert_eq!(throttle.check(&"a"), Err(Duration::from_secs(1)));
        advance(&clock, Duration::from_secs(1));
        assert_eq!(throttle.check(&"a"), Ok(()), "one more attempt");
        throttle.record_failure(&"a");
        assert!(throttle.check(&"a").is_err(), "which failed, and spent it again");

        advance(&clock, MINUTE);
        for _ in 0..2 {
            throttle.record_failure(&"a");
            assert_eq!(
                throttle.check(&"a"),
                Ok(()),
                "after a window the whole allowance is back"
            );
        }
    }

    #[test]
    fn a_zero_limit_never_refuses() {
        let clock = ManualClock::default();
        let throttle = throttle(0, &clock);
        for _ in 0..100 {
            throttle.record_failure(&"a");
        }
        assert_eq!(throttle.check(&"a"), Ok(()));
        assert_eq!(throttle.tracked_keys(), 0);
    }

    #[test]
    fn memory_follows_the_keys_failing_now() {
        let clock = ManualClock::default();
        let limit = FailureLimit {
            failures: 2,
            window: MINUTE,
        };
        let throttle = FailureThrottle::with_max_keys(limit, Arc::new(clock.clone()), 2);
        throttle.record_failure(&"a");
        throttle.record_failure(&"b");
        for _ in 0..5 {
            throttle.record_failure(&"c");
        }
        assert_eq!(throttle.tracked_keys(), 2, "a third key is not tracked while two are");
        assert_eq!(throttle.check(&"c"), Ok(()));
        throttle.record_failure(&"a");
        assert!(throttle.check(&"a").is_err(), "tracked keys are still limited");

        // governor forgets a key a failure's share of the window after its allowance is whole.
        advance(&clock, MINUTE + MINUTE / 2);
        throttle.prune();
        assert_eq!(throttle.tracked_keys(), 0, "whole allowances are forgotten");
        assert!(throttle.holds().is_empty());
        throttle.record_failure(&"c");
        throttle.record_failure(&"c");
        assert!(throttle.check(&"c").is_err(), "and there is room to track others");
    }
}
