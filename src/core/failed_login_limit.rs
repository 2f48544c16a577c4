//! A limit on failed password logins per client address, so that one client cannot fill the
//! password-hashing queue for everyone or guess across many accounts. After `failures` failed
//! logins (or password changes) within `window` from one address, further attempts from it are
//! refused at once, before any hashing, with [`Error::TooManyFailedLogins`] and how long to wait,
//! until the allowance has room again. The per-account lockout is the store's; this is per
//! address and in memory, so each instance keeps its own.
//!
//! The rate is governor's keyed GCRA: each failure takes a cell, `failures` cells make the burst,
//! and one comes back every `window / failures`. Time is the core's [`Clock`], so tests move it
//! with the manual clock. governor has no way to ask whether the next attempt would pass without
//! taking a cell, so the failure that spends the allowance notes when it has room again, and
//! attempts are checked against that note.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{HashMapStateStore, ShrinkableKeyedStateStore};
use governor::{Quota, RateLimiter};

use super::{Error, RequestMeta, Result};
use crate::clock::Clock;

/// Addresses tracked at once. Beyond this, failures from an address not yet tracked are not
/// limited (a warning is logged): memory stays bounded, and nobody's allowance is reset.
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// How many failed logins one address may make within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedLoginAllowance {
    /// Failures allowed within the window; 0 turns the limit off.
    pub failures: u32,
    /// The window; the allowance comes back one failure every `window / failures`.
    pub window: Duration,
}

impl Default for FailedLoginAllowance {
    /// 20 a minute: more than a room of people mistyping behind one address, far fewer than a
    /// guessing client wants.
    fn default() -> Self {
        Self {
            failures: 20,
            window: Duration::from_secs(60),
        }
    }
}

/// Who failures count against: the client's IP address, whatever port it uses. An IPv6 address
/// counts by its /64 network, which one host commonly holds whole. Behind a proxy, every client is
/// the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientAddress {
    V4(std::net::Ipv4Addr),
    /// The first 64 bits.
    V6Network(Ipv6Addr),
    /// The transport did not say: such clients share one allowance.
    Unknown,
}

impl ClientAddress {
    fn of(meta: &RequestMeta) -> Self {
        let ip = meta
            .peer
            .as_deref()
            .and_then(|peer| peer.parse::<SocketAddr>().ok())
            .map(|peer| peer.ip().to_canonical());
        match ip {
            Some(IpAddr::V4(v4)) => Self::V4(v4),
            Some(IpAddr::V6(v6)) => Self::V6Network(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
            None => Self::Unknown,
        }
    }
}

type Limiter = RateLimiter<ClientAddress, TrackedAddresses, CoreClock, StateInformationMiddleware>;

/// See the module documentation.
pub(crate) struct FailedLoginLimit {
    limiter: Option<Limiter>,
    /// The limiter's state, shared so that the limit can ask whether an address is tracked.
    tracked: Arc<HashMapStateStore<ClientAddress>>,
    /// Addresses whose allowance is spent, with when it has room again.
    held: Mutex<HashMap<ClientAddress, DateTime<Utc>>>,
    clock: Arc<dyn Clock>,
    max_addresses: usize,
    warned_full: AtomicBool,
}

impl FailedLoginLimit {
    pub fn new(allowance: FailedLoginAllowance, clock: Arc<dyn Clock>) -> Self {
        Self::with_max_addresses(allowance, clock, MAX_TRACKED_ADDRESSES)
    }

    fn with_max_addresses(allowance: FailedLoginAllowance, clock: Arc<dyn Clock>, max_addresses: usize) -> Self {
        let tracked: Arc<HashMapStateStore<ClientAddress>> = Arc::default();
        let limiter = NonZeroU32::new(allowance.failures).map(|failures| {
            let period = (allowance.window / failures.get()).max(Duration::from_nanos(1));
            let quota = Quota::with_period(period)
                .expect("a period of at least a nanosecond")
                .allow_burst(failures);
            RateLimiter::<_, _, _, NoOpMiddleware<Duration>>::new(
                quota,
                TrackedAddresses(tracked.clone()),
                CoreClock(clock.clone()),
            )
            .with_middleware::<StateInformationMiddleware>()
        });
        Self {
            limiter,
            tracked,
            held: Mutex::default(),
            clock,
            max_addresses,
            warned_full: AtomicBool::new(false),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<ClientAddress, DateTime<Utc>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses an attempt from an address whose allowance is spent, saying how long to wait.
    pub fn check(&self, meta: &RequestMeta) -> Result<()> {
        let client = ClientAddress::of(meta);
        let now = self.clock.now();
        let mut held = self.held();
        match held.get(&client) {
            Some(until) if *until > now => Err(Error::TooManyFailedLogins {
                retry_after: (*until - now).to_std().unwrap_or_default(),
            }),
            Some(_) => {
                held.remove(&client);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed attempt from the caller's address. When it spends the allowance, attempts
    /// from the address are refused until the allowance has room again.
    pub fn record_failure(&self, meta: &RequestMeta) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        let client = ClientAddress::of(meta);
        if !self.tracked.lock().contains_key(&client) && limiter.len() >= self.max_addresses {
            limiter.retain_recent();
            if limiter.len() >= self.max_addresses {
                if !self.warned_full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        addresses = self.max_addresses,
                        "too many addresses with failed logins to track: new ones are not limited"
                    );
                }
                return;
            }
        }
        let room_at = match limiter.check_key(&client) {
            Ok(state) if state.remaining_burst_capacity() > 0 => return,
            // This failure spent the allowance; a refused check takes nothing and says when
            // there is room again.
            Ok(_) => match limiter.check_key(&client) {
                Err(refused) => refused.earliest_possible(),
                Ok(_) => return,
            },
            Err(refused) => refused.earliest_possible(),
        };
        let until = DateTime::UNIX_EPOCH + chrono::Duration::from_std(room_at).unwrap_or(chrono::Duration::MAX);
        self.held().insert(client, until);
    }

    /// Forgets addresses whose allowance is whole again and holds that are over, so that memory
    /// follows the addresses failing now. Runs with the periodic flush.
    pub fn prune(&self) {
        let now = self.clock.now();
        self.held().retain(|_, until| *until > now);
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.warned_full.store(false, Ordering::Relaxed);
    }
}

/// governor's view of the core's clock: the time since the Unix epoch.
struct CoreClock(Arc<dyn Clock>);

impl governor::clock::Clock for CoreClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        (self.0.now() - DateTime::UNIX_EPOCH).to_std().unwrap_or_default()
    }
}

/// The limiter's state behind an `Arc`, so that [`FailedLoginLimit`] can look into it.
struct TrackedAddresses(Arc<HashMapStateStore<ClientAddress>>);

impl StateStore for TrackedAddresses {
    type Key = ClientAddress;

    fn measure_and_replace<T, F, E>(&self, key: &ClientAddress, f: F) -> std::result::Result<T, E>
    where
        F: Fn(Option<Nanos>) -> std::result::Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<ClientAddress> for TrackedAddresses {
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

    fn from(peer: &str) -> RequestMeta {
        RequestMeta {
            peer: Some(peer.to_owned()),
        }
    }

    fn limit(failures: u32, clock: &ManualClock, max_addresses: usize) -> FailedLoginLimit {
        let allowance = FailedLoginAllowance {
            failures,
            window: MINUTE,
        };
        FailedLoginLimit::with_max_addresses(allowance, Arc::new(clock.clone()), max_addresses)
    }

    fn retry_after(result: Result<()>) -> Duration {
        match result {
            Err(Error::TooManyFailedLogins { retry_after }) => retry_after,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn an_address_is_refused_after_its_failures_and_others_are_not() {
        let clock = ManualClock::default();
        let limit = limit(3, &clock, 100);
        let a = from("192.0.2.1:5000");
        for _ in 0..2 {
            limit.record_failure(&a);
            assert!(limit.check(&a).is_ok());
        }
        limit.record_failure(&from("192.0.2.1:6000"));
        assert_eq!(
            retry_after(limit.check(&a)),
            MINUTE / 3,
            "another port is the same client"
        );
        assert!(limit.check(&from("192.0.2.2:5000")).is_ok(), "another address is not");
        clock.advance(chrono::Duration::seconds(20));
        assert!(
            limit.check(&a).is_ok(),
            "a failure's share of the window later, one more try"
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64_bit_network() {
        let clock = ManualClock::default();
        let limit = limit(1, &clock, 100);
        limit.record_failure(&from("[2001:db8:1:2:aaaa::1]:443"));
        assert!(limit.check(&from("[2001:db8:1:2:bbbb::7]:443")).is_err());
        assert!(limit.check(&from("[2001:db8:1:3::1]:443")).is_ok());
    }

    #[test]
    fn a_zero_allowance_never_refuses() {
        let clock = ManualClock::default();
        let limit = limit(0, &clock, 100);
        for _ in 0..100 {
            limit.record_failure(&from("192.0.2.1:1"));
        }
        assert!(limit.check(&from("192.0.2.1:1")).is_ok());
    }

    #[test]
    fn memory_is_bounded_and_follows_the_addresses_failing_now() {
        let clock = ManualClock::default();
        let limit = limit(2, &clock, 2);
        limit.record_failure(&from("192.0.2.1:1"));
        limit.record_failure(&from("192.0.2.2:1"));
        for _ in 0..5 {
            limit.record_failure(&from("192.0.2.3:1"));
        }
        assert_eq!(
            limit.tracked.lock().len(),
            2,
            "a third address is not tracked while two are"
        );
        assert!(limit.check(&from("192.0.2.3:1")).is_ok());
        limit.record_failure(&from("192.0.2.1:1"));
        assert!(
            limit.check(&from("192.0.2.1:1")).is_err(),
            "tracked addresses are still limited"
        );
        clock.advance(chrono::Duration::seconds(90));
        limit.prune();
        assert_eq!(limit.tracked.lock().len(), 0, "whole allowances are forgotten");
        assert!(limit.held().is_empty());
    }
}
