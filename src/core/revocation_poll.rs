//! What the revocation poll remembers between polls, so that each poll reads little from the store
//! and passes each ended session to the validation cache once.
//!
//! Other instances record a session's end with their own clock, and a change commits a moment
//! after its time was taken, so "ended since my last poll" by this instance's clock could miss
//! endings. Two reads cover that:
//! - Every poll reads the endings recorded since [`OVERLAP`] before the last successful poll began
//!   (polls that failed meanwhile do not move that): an ending whose recorder's clock lags this
//!   one's, plus its commit's delay, by up to that much is seen by the first poll after it commits.
//! - Once every [`SWEEP_EVERY`], a poll reads the whole look-back window instead (twice the cache
//!   lifetime plus 10 s, as every poll used to): an ending recorded by a clock further behind is
//!   seen within that time. (Beyond the window, an entry's lifetime still bounds how long the
//!   cache can answer for an ended session.)
//!
//! Both reads overlap earlier ones, so the poll remembers which sessions it has already passed on
//! and passes on only the others: after a mass revocation the cache forgets each session once,
//! not on every poll of the window.

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// How far before the previous successful poll each poll reads: clock differences between
/// instances and commit delays up to this are caught by the very next poll.
const OVERLAP: Duration = Duration::seconds(2);

/// How often a poll reads the whole look-back window.
const SWEEP_EVERY: Duration = Duration::seconds(1);

/// The poll's memory; see the module documentation.
pub(crate) struct RevocationPoll {
    /// The widest look-back: endings recorded longer ago than this cannot matter to the cache.
    window: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When the last successful poll began, by this instance's clock.
    last_success: Option<DateTime<Utc>>,
    /// When the last successful read of the whole window began.
    last_sweep: Option<DateTime<Utc>>,
    /// Sessions already passed to the cache whose end may still be read again: those the last
    /// sweep read, and the new ones read since.
    passed_on: HashSet<Uuid>,
}

/// One poll: where it reads from, decided before the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PollPlan {
    /// Read the sessions whose end was recorded at or after this.
    pub since: DateTime<Utc>,
    started: DateTime<Utc>,
    sweep: bool,
}

impl RevocationPoll {
    /// A poll whose widest look-back is `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where a poll beginning at `now` reads from.
    pub fn plan(&self, now: DateTime<Utc>) -> PollPlan {
        let state = self.lock();
        let floor = now - self.window;
        // A clock that stepped back is treated as due for a sweep, too.
        let sweep = state
            .last_sweep
            .is_none_or(|last| now - last >= SWEEP_EVERY || now < last);
        let since = match state.last_success {
            Some(last) if !sweep => (last.min(now) - OVERLAP).max(floor),
            _ => floor,
        };
        PollPlan {
            since,
            started: now,
            sweep,
        }
    }

    /// Takes what a successful poll read, and returns the sessions among `ended` not passed on
    /// before. A poll that failed is simply not reported: the next one reads from where it would
    /// have.
    pub fn newly_ended(&self, plan: &PollPlan, ended: Vec<Uuid>) -> Vec<Uuid> {
        let mut state = self.lock();
        state.last_success = Some(plan.started);
        let new: Vec<Uuid> = ended
            .iter()
            .filter(|id| !state.passed_on.contains(id))
            .copied()
            .collect();
        if plan.sweep {
            state.last_sweep = Some(plan.started);
            // Later polls read nothing older than this sweep did, so a session it did not read
            // will not be read again: the sweep's answer is all there is to remember.
            state.passed_on = ended.into_iter().collect();
        } else {
            state.passed_on.extend(new.iter().copied());
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Duration {
        Duration::seconds(14)
    }

    fn ms(n: i64) -> Duration {
        Duration::milliseconds(n)
    }

    #[test]
    fn the_first_poll_reads_the_whole_window_and_later_ones_from_the_previous() {
        let poll = RevocationPoll::new(window());
        let t0 = Utc::now();
        let first = poll.plan(t0);
        assert_eq!(first.since, t0 - window());
        poll.newly_ended(&first, vec![]);

        let second = poll.plan(t0 + ms(50));
        assert_eq!(second.since, t0 - OVERLAP, "from the previous poll, less the overlap");
        poll.newly_ended(&second, vec![]);
        assert_eq!(poll.plan(t0 + ms(100)).since, t0 + ms(50) - OVERLAP);
    }

    #[test]
    fn each_ended_session_is_passed_on_once() {
        let poll = RevocationPoll::new(window());
        let t0 = Utc::now();
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let plan = poll.plan(t0);
        assert_eq!(poll.newly_ended(&plan, vec![a, b]), [a, b]);
        let plan = poll.plan(t0 + ms(50));
        assert_eq!(poll.newly_ended(&plan, vec![a, b, c]), [c], "read again in the overlap");
        let sweep = poll.plan(t0 + ms(1000));
        assert!(sweep.sweep);
        assert_eq!(poll.newly_ended(&sweep, vec![a, b, c]), Vec::<Uuid>::new());
    }

    #[test]
    fn a_failed_poll_leaves_the_next_reading_from_the_last_success() {
        let poll = RevocationPoll::new(window());
        let t0 = Utc::now();
        let plan = poll.plan(t0);
        poll.newly_ended(&plan, vec![]);
        let failed = poll.plan(t0 + ms(50));
        let _ = failed; // the store did not answer
        let after = poll.plan(t0 + ms(100));
        assert_eq!(after.since, t0 - OVERLAP);
    }

    #[test]
    fn a_long_outage_reads_no_further_back_than_the_window() {
        let poll = RevocationPoll::new(window());
        let t0 = Utc::now();
        let plan = poll.plan(t0);
        poll.newly_ended(&plan, vec![]);
        let later = t0 + Duration::minutes(10);
        assert_eq!(poll.plan(later).since, later - window());
    }

    #[test]
    fn the_whole_window_is_read_again_every_second() {
        let poll = RevocationPoll::new(window());
        let t0 = Utc::now();
        let mut now = t0;
        let mut sweeps = vec![];
        while now < t0 + ms(3000) {
            let plan = poll.plan(now);
            if plan.sweep {
                assert_eq!(plan.since, now - window());
                sweeps.push(now - t0);
            }
            poll.newly_ended(&plan, vec![]);
            now += ms(50);
        }
        assert_eq!(sweeps, [ms(0), ms(1000), ms(2000)]);
    }

    #[test]
    fn a_clock_that_steps_back_still_reads_what_ended_meanwhile() {
        let poll = RevocationPoll::new(window());
        let t0 = Utc::now();
        let plan = poll.plan(t0);
        poll.newly_ended(&plan, vec![]);
        let back = t0 - Duration::minutes(1);
        assert_eq!(poll.plan(back).since, back - window());
    }

    #[test]
    fn sessions_are_remembered_while_a_sweep_still_reads_them() {
        let poll = RevocationPoll::new(window());
        let t0 = Utc::now();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let plan = poll.plan(t0);
        poll.newly_ended(&plan, vec![a]);
        let plan = poll.plan(t0 + ms(50));
        poll.newly_ended(&plan, vec![a, b]);
        let sweep = poll.plan(t0 + ms(1000));
        assert_eq!(poll.newly_ended(&sweep, vec![b]), Vec::<Uuid>::new());
        assert_eq!(poll.lock().passed_on, HashSet::from([b]), "a is out of the window");
    }
}
