//! Brute-force lockout, after Keycloak's brute-force detection: a tenant says after how many
//! consecutive failed logins an account is locked, for how long, and the longest lock; each
//! failure after that doubles the lock up to the longest. NIST SP 800-63B allows no more than 100
//! consecutive failures on an account: at that many, the account stays locked until an
//! administrator unlocks it.

use chrono::Duration;

use super::field::FieldViolation;

/// Consecutive failures at which an account stays locked until an administrator unlocks it.
pub const MAX_CONSECUTIVE_FAILURES: i32 = 100;
/// The longest lock a tenant may set: a day.
const MAX_LOCK_SECONDS: i32 = 86_400;

/// A tenant's lockout settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    failures: i32,
    seconds: i32,
    max_seconds: i32,
}

impl Default for LockoutPolicy {
    /// After 5 failures a minute, then 2, 4, 8, and at most 15 minutes.
    fn default() -> Self {
        Self {
            failures: 5,
            seconds: 60,
            max_seconds: 900,
        }
    }
}

impl LockoutPolicy {
    /// Lock after `failures` consecutive failures (1 to 100) for `seconds`, doubling with each
    /// further failure up to `max_seconds` (1 s to a day, not below `seconds`). Fields are named
    /// `{prefix}lockout_failures`, `{prefix}lockout_duration` and `{prefix}max_lockout_duration`.
    pub fn new(prefix: &str, failures: i32, seconds: i32, max_seconds: i32) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        if !(1..=MAX_CONSECUTIVE_FAILURES).contains(&failures) {
            violations.push(FieldViolation::new(
                format!("{prefix}lockout_failures"),
                format!("must be between 1 and {MAX_CONSECUTIVE_FAILURES}"),
            ));
        }
        for (name, value) in [("lockout_duration", seconds), ("max_lockout_duration", max_seconds)] {
            if !(1..=MAX_LOCK_SECONDS).contains(&value) {
                violations.push(FieldViolation::new(
                    format!("{prefix}{name}"),
                    "must be whole seconds, from 1 second to 1 day",
                ));
            }
        }
        if violations.is_empty() && max_seconds < seconds {
            violations.push(FieldViolation::new(
                format!("{prefix}max_lockout_duration"),
                "must not be shorter than lockout_duration",
            ));
        }
        if violations.is_empty() {
            Ok(Self {
                failures,
                seconds,
                max_seconds,
            })
        } else {
            Err(violations)
        }
    }

    /// The policy as stored; values the schema would refuse fall back to the default.
    pub fn from_stored(failures: i32, seconds: i32, max_seconds: i32) -> Self {
        Self::new("", failures, seconds, max_seconds).unwrap_or_default()
    }

    pub fn failures(self) -> i32 {
        self.failures
    }

    pub fn seconds(self) -> i32 {
        self.seconds
    }

    pub fn max_seconds(self) -> i32 {
        self.max_seconds
    }

    /// How long an account is locked after its `failures`-th consecutive failure: nothing below
    /// the threshold, then the lock doubling with each failure up to the longest. (At
    /// [`MAX_CONSECUTIVE_FAILURES`] the failure count itself locks the account for good.)
    pub fn lock_after(self, failures: i32) -> Option<Duration> {
        let beyond = failures.checked_sub(self.failures)?;
        if beyond < 0 {
            return None;
        }
        let seconds = i64::from(self.seconds)
            .checked_shl(beyond.min(32) as u32)
            .unwrap_or(i64::MAX)
            .min(i64::from(self.max_seconds));
        Some(Duration::seconds(seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_begins_at_the_threshold_and_doubles_up_to_the_longest() {
        let policy = LockoutPolicy::default();
        let minutes: Vec<_> = (1..=10)
            .map(|n| policy.lock_after(n).map(|d| d.num_seconds() as f64 / 60.0))
            .collect();
        assert_eq!(
            minutes,
            [
                None,
                None,
                None,
                None,
                Some(1.0),
                Some(2.0),
                Some(4.0),
                Some(8.0),
                Some(15.0),
                Some(15.0)
            ]
        );
        assert_eq!(policy.lock_after(99), Some(Duration::minutes(15)));
    }

    #[test]
    fn settings_out_of_bounds_are_refused_by_field() {
        let fields = |r: Result<LockoutPolicy, Vec<FieldViolation>>| {
            r.unwrap_err().into_iter().map(|v| v.field).collect::<Vec<_>>()
        };
        assert_eq!(
            fields(LockoutPolicy::new("t.", 0, 0, 100_000)),
            ["t.lockout_failures", "t.lockout_duration", "t.max_lockout_duration"]
        );
        assert_eq!(fields(LockoutPolicy::new("", 5, 600, 60)), ["max_lockout_duration"]);
        assert_eq!(
            LockoutPolicy::new("", 100, 1, 1).map(|p| p.lock_after(100)),
            Ok(Some(Duration::seconds(1)))
        );
    }
}
