use super::field::{FieldViolation, check_text};

const MAX_PROFILE_CHARS: usize = 255;
const MAX_SHORT_CHARS: usize = 64;

/// The descriptive fields of a user, as the login response of the source API carries them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserProfile {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// An IANA time zone name such as `Europe/Paris`; empty means the server's default (UTC).
    pub time_zone: String,
    pub locale: String,
    pub date_format: String,
    pub employee_number: String,
}

impl UserProfile {
    /// Checks every field, reporting all violations at once under `prefix` (`user.`).
    pub fn check(&self, prefix: &str) -> Result<(), Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let mut check = |name: &str, value: &str, max: usize| {
            if let Err(v) = check_text(&format!("{prefix}{name}"), value, max) {
                violations.push(v);
            }
        };
        check("email", &self.email, MAX_PROFILE_CHARS);
        check("first_name", &self.first_name, MAX_PROFILE_CHARS);
        check("last_name", &self.last_name, MAX_PROFILE_CHARS);
        check("time_zone", &self.time_zone, MAX_SHORT_CHARS);
        check("locale", &self.locale, MAX_SHORT_CHARS);
        check("date_format", &self.date_format, MAX_SHORT_CHARS);
        check("employee_number", &self.employee_number, MAX_SHORT_CHARS);
        if !self.email.is_empty() && !self.email.contains('@') {
            violations.push(FieldViolation::new(
                format!("{prefix}email"),
                "must be an e-mail address",
            ));
        }
        if !self.time_zone.is_empty() && self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            violations.push(FieldViolation::new(
                format!("{prefix}time_zone"),
                "must be an IANA time zone name such as Europe/Paris",
            ));
        }
        if violations.is_empty() { Ok(()) } else { Err(violations) }
    }
}

/// The profile fields of a user to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilePatch {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub time_zone: Option<String>,
    pub locale: Option<String>,
    pub date_format: Option<String>,
    pub employee_number: Option<String>,
}
