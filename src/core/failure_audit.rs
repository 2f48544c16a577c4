//! Repeated failures summarised for the audit log, so that a flood of them costs a bounded number
//! of writes and nothing goes uncounted.
//!
//! Under each key (a client address), the first failure of an interval is written at once, as
//! every failure used to be. Later failures in the same interval, and attempts refused outright,
//! are only counted; the counts are written as one event per kind of failure, carrying the count,
//! when the interval is over (the periodic flush, [`FailureAudit::due`]), at the key's next
//! failure after it, or at shutdown ([`FailureAudit::take_all`]). A write that fails puts its
//! counts back ([`FailureAudit::restore`]), so the events' counts always add up to the attempts.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Keys summarised at once; failures under further keys are counted together, under no key.
const MAX_KEYS: usize = 100_000;

/// Failures counted and not yet written, under one key and of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary<K> {
    /// `None` for failures under keys beyond the most tracked at once.
    pub key: Option<K>,
    /// The kind of failure (an error reason).
    pub failure: &'static str,
    pub count: u64,
    pub first_time: DateTime<Utc>,
    pub last_time: DateTime<Utc>,
}

/// What to write after a failure.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Writes<K> {
    /// Write this failure on its own, now: it is the first of its key's interval.
    pub this_one: bool,
    /// Counts of the key's previous interval, now over.
    pub summaries: Vec<Summary<K>>,
}

/// See the module documentation.
pub(crate) struct FailureAudit<K> {
    interval: Duration,
    max_keys: usize,
    state: Mutex<State<K>>,
}

struct State<K> {
    keys: HashMap<K, Interval>,
    /// Failures under keys beyond `max_keys`.
    overflow: Pending,
}

/// One key's current interval: when it began, and what it has counted since.
struct Interval {
    began: DateTime<Utc>,
    pending: Pending,
}

/// Counts by kind of failure.
#[derive(Default)]
struct Pending(BTreeMap<&'static str, Tally>);

#[derive(Clone, Copy)]
struct Tally {
    count: u64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

impl Pending {
    fn add(&mut self, failure: &'static str, count: u64, first: DateTime<Utc>, last: DateTime<Utc>) {
        let tally = self.0.entry(failure).or_insert(Tally { count: 0, first, last });
        tally.count += count;
        tally.first = tally.first.min(first);
        tally.last = tally.last.max(last);
    }

    fn take<K: Clone>(&mut self, key: Option<&K>) -> impl Iterator<Item = Summary<K>> + use<K> {
        let key = key.cloned();
        std::mem::take(&mut self.0)
            .into_iter()
            .map(move |(failure, tally)| Summary {
                key: key.clone(),
                failure,
                count: tally.count,
                first_time: tally.first,
                last_time: tally.last,
            })
    }
}

impl<K: Hash + Eq + Clone> FailureAudit<K> {
    /// Summarises each key's failures over `interval`.
    pub fn new(interval: std::time::Duration) -> Self {
        Self::with_max_keys(interval, MAX_KEYS)
    }

    fn with_max_keys(interval: std::time::Duration, max_keys: usize) -> Self {
        Self {
            interval: Duration::from_std(interval).unwrap_or(Duration::MAX),
            max_keys,
            state: Mutex::new(State {
                keys: HashMap::new(),
                overflow: Pending::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a failure under `key` at `now`, and says what to write.
    pub fn failed(&self, key: &K, failure: &'static str, now: DateTime<Utc>) -> Writes<K> {
        let mut state = self.lock();
        let interval = self.interval;
        let full = state.keys.len() >= self.max_keys;
        let nothing = Writes {
            this_one: false,
            summaries: vec![],
        };
        match state.keys.get_mut(key) {
            Some(current) if now < current.began + interval => {
                current.pending.add(failure, 1, now, now);
                nothing
            }
            Some(over) => {
                over.began = now;
                Writes {
                    this_one: true,
                    summaries: over.pending.take(Some(key)).collect(),
                }
            }
            None if full => {
                state.overflow.add(failure, 1, now, now);
                nothing
            }
            None => {
                let fresh = Interval {
                    began: now,
                    pending: Pending::default(),
                };
                state.keys.insert(key.clone(), fresh);
                Writes {
                    this_one: true,
                    summaries: vec![],
                }
            }
        }
    }

    /// Counts an attempt refused outright under `key` at `now`; it is never written on its own.
    pub fn refused(&self, key: &K, failure: &'static str, now: DateTime<Utc>) {
        let mut state = self.lock();
        let full = state.keys.len() >= self.max_keys;
        match state.keys.get_mut(key) {
            Some(current) => current.pending.add(failure, 1, now, now),
            None if full => state.overflow.add(failure, 1, now, now),
            None => {
                let mut pending = Pending::default();
                pending.add(failure, 1, now, now);
                state.keys.insert(key.clone(), Interval { began: now, pending });
            }
        }
    }

    /// The counts of intervals over at `now`; their keys start afresh.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<Summary<K>> {
        let mut state = self.lock();
        let interval = self.interval;
        let mut due = vec![];
        state.keys.retain(|key, current| {
            if now < current.began + interval {
                return true;
            }
            due.extend(current.pending.take(Some(key)));
            false
        });
        due.extend(state.overflow.take(None));
        due
    }

    /// Every count not yet written, for the last flush at shutdown.
    pub fn take_all(&self) -> Vec<Summary<K>> {
        let mut state = self.lock();
        let mut all: Vec<Summary<K>> = state
            .keys
            .drain()
            .flat_map(|(key, mut current)| current.pending.take(Some(&key)).collect::<Vec<_>>())
            .collect();
        all.extend(state.overflow.take(None));
        all
    }

    /// Puts back counts whose write failed, to be written with the key's next summary.
    pub fn restore(&self, summary: Summary<K>) {
        let mut state = self.lock();
        let Summary {
            key,
            failure,
            count,
            first_time,
            last_time,
        } = summary;
        let full = state.keys.len() >= self.max_keys;
        let pending = match key {
            Some(key) if state.keys.contains_key(&key) || !full => {
                &mut state
                    .keys
                    .entry(key)
                    .or_insert(Interval {
                        began: first_time,
                        pending: Pending::default(),
                    })
                    .pending
            }
            _ => &mut state.overflow,
        };
        pending.add(failure, count, first_time, last_time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

    fn total(summaries: &[Summary<&str>]) -> u64 {
        summaries.iter().map(|s| s.count).sum()
    }

    #[test]
    fn the_first_failure_is_written_and_later_ones_counted_until_the_interval_is_over() {
        let audit = FailureAudit::new(MINUTE);
        let t0 = Utc::now();
        let first = audit.failed(&"a", "INVALID_CREDENTIALS", t0);
        assert_eq!((first.this_one, first.summaries.len()), (true, 0));
        for s in 1..=5 {
            let later = audit.failed(&"a", "INVALID_CREDENTIALS", t0 + Duration::seconds(s));
            assert_eq!((later.this_one, later.summaries.len()), (false, 0));
        }
        audit.refused(&"a", "TOO_MANY_FAILED_LOGINS", t0 + Duration::seconds(6));
        assert!(audit.due(t0 + Duration::seconds(59)).is_empty(), "not over yet");

        let next = audit.failed(&"a", "INVALID_CREDENTIALS", t0 + Duration::seconds(61));
        assert!(next.this_one, "the first of a new interval");
        let mut summaries = next.summaries;
        summaries.sort_by_key(|s| s.failure);
        assert_eq!(summaries.len(), 2, "one event per kind of failure");
        assert_eq!((summaries[0].failure, summaries[0].count), ("INVALID_CREDENTIALS", 5));
        assert_eq!(summaries[0].first_time, t0 + Duration::seconds(1));
        assert_eq!(summaries[0].last_time, t0 + Duration::seconds(5));
        assert_eq!(
            (summaries[1].failure, summaries[1].count),
            ("TOO_MANY_FAILED_LOGINS", 1)
        );
        assert_eq!(summaries[1].key, Some("a"));
    }

    #[test]
    fn the_periodic_flush_writes_intervals_that_are_over_and_shutdown_writes_the_rest() {
        let audit = FailureAudit::new(MINUTE);
        let t0 = Utc::now();
        audit.failed(&"a", "INVALID_CREDENTIALS", t0);
        audit.failed(&"a", "INVALID_CREDENTIALS", t0);
        audit.failed(&"b", "TOKEN_REVOKED", t0 + Duration::seconds(30));
        audit.failed(&"b", "TOKEN_REVOKED", t0 + Duration::seconds(30));
        let due = audit.due(t0 + Duration::seconds(60));
        assert_eq!((due.len(), due[0].key, due[0].count), (1, Some("a"), 1));
        assert!(
            audit
                .failed(&"a", "INVALID_CREDENTIALS", t0 + Duration::seconds(61))
                .this_one,
            "a starts afresh"
        );
        let rest = audit.take_all();
        assert_eq!((rest.len(), rest[0].key, rest[0].count), (1, Some("b"), 1));
        assert!(audit.take_all().is_empty());
    }

    #[test]
    fn a_failed_write_is_put_back() {
        let audit = FailureAudit::new(MINUTE);
        let t0 = Utc::now();
        audit.failed(&"a", "INVALID_CREDENTIALS", t0);
        audit.failed(&"a", "INVALID_CREDENTIALS", t0);
        let due = audit.due(t0 + Duration::seconds(60));
        for summary in due {
            audit.restore(summary);
        }
        audit.refused(&"a", "INVALID_CREDENTIALS", t0 + Duration::seconds(61));
        assert_eq!(total(&audit.take_all()), 2);
    }

    #[test]
    fn keys_beyond_the_most_tracked_are_counted_together() {
        let audit = FailureAudit::with_max_keys(MINUTE, 2);
        let t0 = Utc::now();
        let mut written = 0;
        for key in ["a", "b", "c", "d", "c"] {
            written += u64::from(audit.failed(&key, "INVALID_CREDENTIALS", t0).this_one);
        }
        assert_eq!(written, 2, "a and b");
        let all = audit.take_all();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].key, all[0].count), (None, 3), "c, d and c again");
    }
}
