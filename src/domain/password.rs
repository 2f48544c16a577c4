use secrecy::{ExposeSecret, SecretString};

use super::field::FieldViolation;

/// Passwords shorter than this are refused when set (NIST SP 800-63B's floor).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longer input is refused before hashing, so that nobody can make the server hash megabytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A password as typed. It is kept in a [`SecretString`] so that it never reaches a log line.
#[derive(Clone)]
pub struct Password(SecretString);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// A password offered at login: only the size cap applies, so that a user whose password was set
    /// under other rules can still log in.
    pub fn for_login(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        if raw.is_empty() {
            return Err(FieldViolation::new(field, "must not be empty"));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    /// A password being set: at least [`MIN_PASSWORD_CHARS`] characters as well.
    pub fn new_password(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let password = Self::for_login(field, raw)?;
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(FieldViolation::new(
                field,
                format!("must be at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        Ok(password)
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}
