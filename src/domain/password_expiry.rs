use chrono::{DateTime, Duration, Utc};

/// How long a password stays valid before its user must change it, per tenant. The choices and
/// the default are those of the AgileApps password policy: 15, 30, 60, 90 or 120 days, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PasswordExpiry {
    Days15,
    Days30,
    Days60,
    #[default]
    Days90,
    Days120,
    Never,
}

impl PasswordExpiry {
    /// The number of days, or `None` for never.
    pub fn days(self) -> Option<i32> {
        match self {
            Self::Days15 => Some(15),
            Self::Days30 => Some(30),
            Self::Days60 => Some(60),
            Self::Days90 => Some(90),
            Self::Days120 => Some(120),
            Self::Never => None,
        }
    }

    /// The policy stored as a number of days (`None` for never). Any other number is refused.
    pub fn from_days(days: Option<i32>) -> Option<Self> {
        Some(match days {
            Some(15) => Self::Days15,
            Some(30) => Self::Days30,
            Some(60) => Self::Days60,
            Some(90) => Self::Days90,
            Some(120) => Self::Days120,
            None => Self::Never,
            Some(_) => return None,
        })
    }

    /// Whether a password last changed at `changed` must be changed at `now`.
    pub fn is_expired(self, changed: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        match self.days() {
            Some(days) => now >= changed + Duration::days(i64::from(days)),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_expires_on_its_last_day() {
        let changed = Utc::now();
        let policy = PasswordExpiry::Days15;
        assert!(!policy.is_expired(changed, changed + Duration::days(15) - Duration::seconds(1)));
        assert!(policy.is_expired(changed, changed + Duration::days(15)));
        assert!(!PasswordExpiry::Never.is_expired(changed, changed + Duration::days(10_000)));
    }

    #[test]
    fn stored_days_round_trip() {
        for policy in [
            PasswordExpiry::Days15,
            PasswordExpiry::Days30,
            PasswordExpiry::Days60,
            PasswordExpiry::Days90,
            PasswordExpiry::Days120,
            PasswordExpiry::Never,
        ] {
            assert_eq!(PasswordExpiry::from_days(policy.days()), Some(policy));
        }
        assert_eq!(PasswordExpiry::from_days(Some(7)), None);
    }
}
