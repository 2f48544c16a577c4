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

/// A user's login name: 1 to 255 characters, no control characters, surrounding spaces removed.
/// User names are unique across all tenants and compared case-insensitively, through [`Self::key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        parse_name(field, raw).map(Self)
    }

    /// The name as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form that uniqueness and lookups use: Unicode lower case, computed here rather than in
    /// SQL so that every store folds case the same way.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A tenant's display name: 1 to 255 characters, unique case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        parse_name(field, raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A service account's name: 1 to 255 characters, unique case-insensitively within its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountName(String);

impl ServiceAccountName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        parse_name(field, raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A user access token's name: 1 to 255 characters, unique case-insensitively among the user's
/// live tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenName(String);

impl AccessTokenName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        parse_name(field, raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

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
