use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;

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

/// Descriptions are free text up to this many characters.
const MAX_DESCRIPTION_CHARS: usize = 1000;

/// The Unicode general category of a character.
pub(crate) fn general_category(c: char) -> GeneralCategory {
    CodePointMapData::<GeneralCategory>::new().get(c)
}

/// Control (Cc) and format (Cf) characters: invisible, or able to change how the text around them is
/// shown (zero-width spaces and joiners, bidirectional overrides, soft hyphens), so that two names
/// that look alike could differ, or a name could disguise what follows it in a log line or a list.
pub(crate) fn is_control_or_format(c: char) -> bool {
    matches!(general_category(c), GeneralCategory::Control | GeneralCategory::Format)
}

/// The message for a refused character, naming it by code point, since it may not show.
pub(crate) fn refused_character(kind: &str, c: char) -> String {
    format!("must not contain {kind} characters such as U+{:04X}", u32::from(c))
}

/// Checks the rules every short free-text field shares: a length cap and no control or format
/// characters.
pub(crate) fn check_text(field: &str, value: &str, max_chars: usize) -> Result<(), FieldViolation> {
    if value.chars().count() > max_chars {
        return Err(FieldViolation::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if let Some(c) = value.chars().find(|c| is_control_or_format(*c)) {
        return Err(FieldViolation::new(field, refused_character("control or format", c)));
    }
    Ok(())
}

/// A device name is short: what a person would call it in a list ("Work laptop").
const MAX_DEVICE_NAME_CHARS: usize = 100;

/// The optional name a client gives its device on login; empty means none.
pub fn device_name(field: &str, value: &str) -> Result<Option<String>, FieldViolation> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    check_text(field, value, MAX_DEVICE_NAME_CHARS)?;
    Ok(Some(value.to_owned()))
}

/// Descriptions are free text up to 1000 characters. Line breaks and tabs are kept, since free text
/// is written in lines; every other control character and every format character is refused, as
/// in names.
pub fn check_description(field: &str, value: &str) -> Result<(), FieldViolation> {
    if value.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(FieldViolation::new(
            field,
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    let layout = |c: char| matches!(c, '\n' | '\r' | '\t');
    if let Some(c) = value.chars().find(|c| !layout(*c) && is_control_or_format(*c)) {
        return Err(FieldViolation::new(
            field,
            refused_character("control (other than line breaks and tabs) or format", c),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_refuses_control_and_format_characters() {
        for bad in [
            "a\u{0}b",
            "a\nb",
            "a\u{200b}b",
            "a\u{202e}b",
            "a\u{ad}b",
            "a\u{2066}b",
            "a\u{feff}b",
        ] {
            assert!(check_text("f", bad, 100).is_err(), "{bad:?}");
        }
        assert!(check_text("f", "Zoë Ångström-O'Brien", 100).is_ok());
        let refused = check_text("f", "a\u{200b}b", 100).unwrap_err();
        assert!(refused.message.contains("U+200B"), "{}", refused.message);
    }

    #[test]
    fn descriptions_keep_line_breaks_and_tabs_only() {
        assert!(check_description("d", "first line\r\nsecond\tline\n").is_ok());
        for bad in ["a\u{0}b", "a\u{1b}[31mred", "a\u{202e}b", "a\u{200d}b"] {
            assert!(check_description("d", bad).is_err(), "{bad:?}");
        }
        assert!(check_description("d", &"x".repeat(1001)).is_err());
    }
}
