use super::field::{FieldViolation, check_text};

const MAX_NAME_CHARS: usize = 255;

fn parse_name(field: &str, raw: &str) -> Result<String, FieldViolation> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(FieldViolation::new(field, "must not be empty"));
    }
    check_text(field, trimmed, MAX_NAME_CHARS)?;
    Ok(trimmed.to_owned())
}

/// Declares a name newtype: 1 to 255 characters, no control characters, surrounding spaces
/// removed, with a case-folded [`key`](UserName::key) for uniqueness and lookups. The key is
/// computed here (Unicode lower case) rather than in SQL, so that every store folds case alike.
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
                parse_name(field, raw).map(Self)
            }

            /// The name as it was written.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The form that uniqueness and lookups use.
            pub fn key(&self) -> String {
                self.0.to_lowercase()
            }
        }
    };
}

name_type!(
    /// A user's login name, unique across all tenants, compared case-insensitively.
    UserName
);
name_type!(
    /// A tenant's display name, unique case-insensitively.
    TenantName
);
name_type!(
    /// A service account's name, unique case-insensitively within its tenant.
    ServiceAccountName
);
name_type!(
    /// A user access token's name, unique case-insensitively among the user's live tokens.
    AccessTokenName
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_trimmed_and_keyed_case_insensitively() {
        let name = UserName::parse("user_name", "  Jim@Acme.com ").unwrap();
        assert_eq!(name.as_str(), "Jim@Acme.com");
        assert_eq!(name.key(), "jim@acme.com");
    }

    #[test]
    fn empty_long_and_control_names_are_refused() {
        assert!(UserName::parse("f", "   ").is_err());
        assert!(UserName::parse("f", &"x".repeat(256)).is_err());
        assert!(UserName::parse("f", &"x".repeat(255)).is_ok());
        assert!(UserName::parse("f", "a\u{0}b").is_err());
    }
}
