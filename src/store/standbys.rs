//! Hot standbys for the hot reads: which of them may be read right now, and when the primary must
//! be read instead.
//!
//! A standby replays the primary's changes a little later. Reading one is safe for the hot reads
//! because of three rules, which together bound what a caller can see:
//! - A standby is read only while it is at most `max_lag` behind the primary, as measured every
//!   [`CHECK_EVERY`] (see [`LagProbe`]); one that is further behind, or does not answer, is skipped
//!   until it catches up.
//! - After a write on this instance, or a user or tenant change pushed from another, the hot reads
//!   go to the primary for the longest a usable standby may still lack it (`max_lag` plus one
//!   check), so that an instance reads its own writes.
//! - Sessions another instance ended (pushed, or read by the poll from the primary) are kept as
//!   long: a standby's answer naming one of them is read again from the primary. And a session
//!   a standby does not know (made a moment ago on another instance) is looked up on the primary.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Database, Pool};
use uuid::Uuid;

/// How often each standby's lag is measured.
pub const CHECK_EVERY: Duration = Duration::from_millis(50);

/// One standby: its pool and whether it may be read.
pub struct Standby<DB: Database> {
    pub pool: Pool<DB>,
    /// Host and port, for the logs (never the URL: it may hold a password).
    pub name: String,
    usable: AtomicBool,
}

/// The standbys of a store (none on SQLite, or without `DATABASE_READ_URL`).
pub struct Standbys<DB: Database> {
    standbys: Vec<Standby<DB>>,
    next: AtomicUsize,
    max_lag: Duration,
    state: Mutex<Fresh>,
}

/// What must not be read from a standby, and until when.
#[derive(Default)]
struct Fresh {
    primary_until: Option<Instant>,
    ended: HashMap<Uuid, Instant>,
    ended_order: VecDeque<(Instant, Uuid)>,
}

impl<DB: Database> Standbys<DB> {
    pub fn new(pools: Vec<(Pool<DB>, String)>, max_lag: Duration) -> Self {
        Self {
            standbys: pools
                .into_iter()
                .map(|(pool, name)| Standby {
                    pool,
                    name,
                    usable: AtomicBool::new(false),
                })
                .collect(),
            next: AtomicUsize::new(0),
            max_lag,
            state: Mutex::default(),
        }
    }

    pub fn none() -> Self {
        Self::new(Vec::new(), Duration::ZERO)
    }

    pub fn is_empty(&self) -> bool {
        self.standbys.is_empty()
    }

    pub fn all(&self) -> &[Standby<DB>] {
        &self.standbys
    }

    pub fn max_lag(&self) -> Duration {
        self.max_lag
    }

    /// How long something this instance knows may still be missing from a usable standby.
    fn horizon(&self) -> Duration {
        self.max_lag + CHECK_EVERY
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Fresh> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A standby to read from now, in turn; `None` when none is usable or the primary must be read.
    pub fn pick(&self) -> Option<&Pool<DB>> {
        if self.standbys.is_empty() {
            return None;
        }
        if self.lock().primary_until.is_some_and(|until| Instant::now() < until) {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..self.standbys.len())
            .map(|i| &self.standbys[(start + i) % self.standbys.len()])
            .find(|s| s.usable.load(Ordering::Acquire))
            .map(|s| &s.pool)
    }

    /// How many standbys the hot reads would use right now: none while the primary must be read.
    pub fn usable(&self) -> usize {
        if self.lock().primary_until.is_some_and(|until| Instant::now() < until) {
            return 0;
        }
        self.standbys
            .iter()
            .filter(|s| s.usable.load(Ordering::Acquire))
            .count()
    }

    /// Records a standby's measured lag (`None`: it did not answer, or is no standby); returns
    /// whether its usability changed.
    pub fn set_lag(&self, standby: &Standby<DB>, lag: Option<Duration>) -> bool {
        let usable = lag.is_some_and(|lag| lag <= self.max_lag);
        standby.usable.swap(usable, Ordering::AcqRel) != usable
    }

    /// Something changed that a standby may not have yet: read the primary for a while.
    pub fn read_primary_for_a_while(&self) {
        if self.standbys.is_empty() {
            return;
        }
        let until = Instant::now() + self.horizon();
        let mut state = self.lock();
        state.primary_until = Some(state.primary_until.map_or(until, |u| u.max(until)));
    }

    /// Sessions ended elsewhere: a standby's word that one is open is not taken for a while.
    pub fn ended_elsewhere(&self, sessions: &[Uuid]) {
        if self.standbys.is_empty() || sessions.is_empty() {
            return;
        }
        let now = Instant::now();
        let until = now + self.horizon();
        let mut state = self.lock();
        while let Some((at, id)) = state.ended_order.front().copied() {
            if at > now {
                break;
            }
            state.ended_order.pop_front();
            if state.ended.get(&id).is_some_and(|t| *t <= now) {
                state.ended.remove(&id);
            }
        }
        for id in sessions {
            state.ended.insert(*id, until);
            state.ended_order.push_back((until, *id));
        }
    }

    /// Whether a standby's answer about `session` must be checked on the primary.
    pub fn recently_ended(&self, session: Uuid) -> bool {
        self.lock()
            .ended
            .get(&session)
            .is_some_and(|until| Instant::now() < *until)
    }
}

/// Measures standbys' lag against the primary's write position over time.
///
/// Every check samples the primary's current WAL position, then asks each standby how far it has
/// replayed. A standby that has replayed the position sampled at time t holds everything committed
/// before t, so its lag is at most now − t for the newest such sample. An idle primary does not
/// make a standby look late (unlike `now() − pg_last_xact_replay_timestamp()`, which grows while
/// nothing is written), and no clock but this instance's is used.
#[derive(Default)]
pub struct LagProbe {
    samples: VecDeque<(Instant, u64)>,
}

impl LagProbe {
    /// Records the primary's position at `at`, keeping samples as old as `keep`.
    pub fn primary_at(&mut self, at: Instant, position: u64, keep: Duration) {
        self.samples.push_back((at, position));
        while self.samples.front().is_some_and(|(t, _)| at.duration_since(*t) > keep) {
            self.samples.pop_front();
        }
    }

    /// The lag of a standby that has replayed up to `replayed`, at `now`; `None` when it is behind
    /// every kept sample.
    pub fn lag(&self, replayed: u64, now: Instant) -> Option<Duration> {
        self.samples
            .iter()
            .rev()
            .find(|(_, position)| *position <= replayed)
            .map(|(t, _)| now.saturating_duration_since(*t))
    }
}

/// Reads a Postgres LSN (`16/B374D848`) as a number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_standby(max_lag: Duration) -> Standbys<sqlx::Sqlite> {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect_lazy("sqlite::memory:")
            .expect("a lazy pool");
        Standbys::new(vec![(pool, "standby".into())], max_lag)
    }

    #[tokio::test]
    async fn a_standby_is_read_only_while_close_enough_and_not_just_after_a_change() {
        let standbys = one_standby(Duration::from_secs(1));
        assert!(standbys.pick().is_none(), "not measured yet");
        standbys.set_lag(&standbys.all()[0], Some(Duration::from_millis(10)));
        assert!(standbys.pick().is_some());
        assert_eq!(standbys.usable(), 1);
        standbys.read_primary_for_a_while();
        assert!(standbys.pick().is_none(), "a change was just made");
        assert_eq!(standbys.usable(), 0);
        let late = one_standby(Duration::from_secs(1));
        late.set_lag(&late.all()[0], Some(Duration::from_secs(2)));
        assert!(late.pick().is_none(), "further behind than the bound");
        late.set_lag(&late.all()[0], None);
        assert!(late.pick().is_none(), "not answering");
    }

    #[tokio::test]
    async fn sessions_ended_elsewhere_are_remembered_for_the_lag_bound() {
        let standbys = one_standby(Duration::from_secs(1));
        let (ended, open) = (Uuid::now_v7(), Uuid::now_v7());
        standbys.ended_elsewhere(&[ended]);
        assert!(standbys.recently_ended(ended));
        assert!(!standbys.recently_ended(open));
        let none = Standbys::<sqlx::Sqlite>::none();
        none.ended_elsewhere(&[ended]);
        assert!(!none.recently_ended(ended), "without standbys nothing is kept");
    }

    #[test]
    fn lsns_read_as_numbers() {
        assert_eq!(parse_lsn("0/1D745B0"), Some(0x1D745B0));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374D848));
        assert_eq!(parse_lsn("nonsense"), None);
    }

    #[test]
    fn a_standby_lags_by_the_age_of_the_newest_position_it_has_replayed() {
        let mut probe = LagProbe::default();
        let t0 = Instant::now();
        let keep = Duration::from_secs(2);
        probe.primary_at(t0, 100, keep);
        probe.primary_at(t0 + Duration::from_millis(50), 200, keep);
        probe.primary_at(t0 + Duration::from_millis(100), 200, keep);
        let now = t0 + Duration::from_millis(100);
        assert_eq!(probe.lag(200, now), Some(Duration::ZERO), "caught up, primary idle");
        assert_eq!(probe.lag(150, now), Some(Duration::from_millis(100)));
        assert_eq!(probe.lag(50, now), None, "behind everything kept");
    }
}
