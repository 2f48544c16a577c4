/// One field of a request that breaks a rule, with a message that says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The request field, as named in the protobuf contract (`user.user_name`).
    pub field: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Checks the rules every short free-text field shares: a length cap and no control characters.
pub(crate) fn check_text(field: &str, value: &str, max_chars: usize) -> Result<(), FieldViolation> {
    if value.chars().count() > max_chars {
        return Err(FieldViolation::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldViolation::new(field, "must not contain control characters"));
    }
    Ok(())
}

/// Descriptions are free text up to 1000 characters.
pub fn check_description(field: &str, value: &str) -> Result<(), FieldViolation> {
    if value.chars().count() > 1000 {
        return Err(FieldViolation::new(field, "must be at most 1000 characters"));
    }
    Ok(())
}
