//! Passwords: as offered at login, and as chosen when one is set, under the rules of NIST SP
//! 800-63B: a minimum length and no composition rules, every Unicode character accepted (compared
//! in its NFKC form, so that a password typed on another keyboard or system still matches), and a
//! refusal of passwords that are commonly used or made of the user's own names.

use icu_normalizer::ComposingNormalizerBorrowed;
use secrecy::{ExposeSecret, SecretString};

use super::field::FieldViolation;
use super::names::name_key;

/// The floor of every tenant's minimum password length (NIST SP 800-63B).
pub const MIN_PASSWORD_CHARS: u32 = 8;
/// The highest minimum a tenant may set: a password of 64 characters is always accepted.
pub const MAX_MIN_PASSWORD_CHARS: u32 = 64;
/// Longer input is refused before any other work, so that nobody can make the server normalise or
/// hash megabytes. 512 bytes hold 128 characters of any script, twice the 64 that must fit.
pub const MAX_PASSWORD_BYTES: usize = 512;

/// Names shorter than this are refused as a whole password, but not inside a longer one.
const MIN_CONTAINED_NAME_CHARS: usize = 3;

/// A password in its NFKC form. It is kept in a [`SecretString`] so that it never reaches a log
/// line, and it is normalised before it is hashed and before it is checked, so that the same
/// characters typed as different code points (a precomposed "é" or "e" and a combining accent,
/// fullwidth forms) are the same password.
#[derive(Clone)]
pub struct Password(SecretString);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl PartialEq for Password {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Password {
    /// A password offered to prove who someone is: only emptiness and the size cap are checked,
    /// so that a user whose password was set under other rules can still log in.
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
        let normalized = ComposingNormalizerBorrowed::new_nfkc().normalize(raw).into_owned();
        Ok(Self(SecretString::from(normalized)))
    }

    /// The normalised password, for hashing and checking.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// The rules a tenant sets for new passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordRules {
    /// Fewest characters, after normalisation: from [`MIN_PASSWORD_CHARS`] to
    /// [`MAX_MIN_PASSWORD_CHARS`].
    min_length: u32,
}

impl Default for PasswordRules {
    fn default() -> Self {
        Self {
            min_length: MIN_PASSWORD_CHARS,
        }
    }
}

impl PasswordRules {
    /// Rules with a minimum length of `min_length` characters; refused outside 8 to 64.
    pub fn new(field: &str, min_length: i32) -> Result<Self, FieldViolation> {
        match u32::try_from(min_length) {
            Ok(n) if (MIN_PASSWORD_CHARS..=MAX_MIN_PASSWORD_CHARS).contains(&n) => Ok(Self { min_length: n }),
            _ => Err(FieldViolation::new(
                field,
                format!("must be between {MIN_PASSWORD_CHARS} and {MAX_MIN_PASSWORD_CHARS} characters"),
            )),
        }
    }

    /// The rules as stored; a value outside the bounds (which the schema refuses) is raised to the floor.
    pub fn from_stored(min_length: i32) -> Self {
        Self::new("", min_length).unwrap_or_default()
    }

    pub fn min_length(self) -> u32 {
        self.min_length
    }
}

/// A password being set: it meets the tenant's [`PasswordRules`], is not in a list of commonly
/// used passwords, and is not made of the user's own names.
#[derive(Debug, Clone)]
pub struct NewPassword(Password);

impl NewPassword {
    /// Parses a new password for the user known by `own_names` (their user name, first and last
    /// name, email address). The messages say what is wrong and never repeat the password.
    pub fn parse(field: &str, raw: &str, rules: &PasswordRules, own_names: &[&str]) -> Result<Self, FieldViolation> {
        let password = Password::for_login(field, raw)?;
        let refuse = |message: String| Err(FieldViolation::new(field, message));
        if password.expose().chars().count() < rules.min_length as usize {
            return refuse(format!("must be at least {} characters", rules.min_length));
        }
        if is_common(password.expose()) {
            return refuse("was found in a list of commonly used passwords: choose another".into());
        }
        if made_of_own_names(password.expose(), own_names) {
            return refuse("must not be or contain your user name, your name or the name of this service".into());
        }
        Ok(Self(password))
    }

    pub fn password(&self) -> &Password {
        &self.0
    }
}

/// Whether a password, or its lower case (the list is mostly lower case), is in the `passwords`
/// crate's list of about 100,000 commonly used and breached passwords.
fn is_common(password: &str) -> bool {
    passwords::analyzer::is_common_password(password)
        || passwords::analyzer::is_common_password(password.to_lowercase())
}

/// Whether a password is one of the user's names or the service's, or contains one of three
/// characters or more, compared as names are (case, width and composition do not matter). The
/// local part of an email address counts as a name of its own.
fn made_of_own_names(password: &str, own_names: &[&str]) -> bool {
    let password = name_key(password);
    let mut names: Vec<String> = vec![name_key("identityd")];
    for name in own_names {
        names.push(name_key(name));
        if let Some((local, _)) = name.split_once('@') {
            names.push(name_key(local));
        }
    }
    names.iter().filter(|n| !n.is_empty()).any(|name| {
        *name == password || (name.chars().count() >= MIN_CONTAINED_NAME_CHARS && password.contains(name.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<NewPassword, FieldViolation> {
        NewPassword::parse(
            "password",
            raw,
            &PasswordRules::default(),
            &["jim@acme.com", "Jim", "Ng"],
        )
    }

    #[test]
    fn long_and_unusual_passwords_are_accepted() {
        assert!(parse("correct horse battery staple").is_ok());
        assert!(parse(&"ü".repeat(64)).is_ok(), "64 two-byte characters");
        assert!(parse(&"😀".repeat(64)).is_ok(), "64 four-byte characters");
        assert!(parse("ŝĉiuroj ĉe la lago").is_ok());
    }

    #[test]
    fn short_common_and_personal_passwords_are_refused_without_being_repeated() {
        for (raw, says) in [
            ("seven77", "at least 8"),
            ("password1", "commonly used"),
            ("Password1", "commonly used"),
            ("qwertyuiop", "commonly used"),
            ("jim@acme.com", "your user name"),
            ("JIM-2024-summer", "your user name"),
            ("ｊｉｍ rocks hard", "your user name"),
            ("identityd-admin", "this service"),
        ] {
            let refused = parse(raw).expect_err(raw);
            assert_eq!(refused.field, "password");
            assert!(refused.message.contains(says), "{raw}: {}", refused.message);
            assert!(!refused.message.contains(raw), "the message repeats the password");
        }
        assert!(
            parse("ngaio the great").is_ok(),
            "a two-letter name is refused only whole"
        );
    }

    #[test]
    fn the_size_cap_is_checked_before_anything_else() {
        let refused = parse(&"x".repeat(MAX_PASSWORD_BYTES + 1)).unwrap_err();
        assert!(refused.message.contains("at most 512 bytes"));
        assert!(parse(&"é".repeat(MAX_PASSWORD_BYTES / 2)).is_ok(), "exactly the cap");
    }

    #[test]
    fn passwords_are_compared_in_their_nfkc_form() {
        let composed = Password::for_login("p", "caf\u{e9} au lait").unwrap();
        let decomposed = Password::for_login("p", "cafe\u{301} au lait").unwrap();
        let fullwidth = Password::for_login("p", "ｃａｆé au lait").unwrap();
        assert_eq!(composed.expose(), decomposed.expose());
        assert_eq!(composed.expose(), fullwidth.expose());
    }

    #[test]
    fn a_tenant_minimum_is_between_8_and_64() {
        assert!(PasswordRules::new("m", 7).is_err());
        assert!(PasswordRules::new("m", 65).is_err());
        let twelve = PasswordRules::new("m", 12).unwrap();
        let refused = NewPassword::parse("p", "elevenchars", &twelve, &[]).unwrap_err();
        assert!(refused.message.contains("at least 12"));
        assert!(NewPassword::parse("p", "twelve chars", &twelve, &[]).is_ok());
    }
}
