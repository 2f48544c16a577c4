//! Names that identify things: users, tenants, service accounts, user access tokens.
//!
//! Two names that a person cannot tell apart must not name two things. The [`name_key`] of a name
//! is what uniqueness and lookups compare, and it folds away the differences Unicode calls
//! compatibility and case differences: width ("ａdmin" and "admin"), composition ("café" written
//! with one code point or with "e" and a combining accent), ligatures and case ("Straße" and
//! "STRASSE"). User names, which people type to log in, also refuse characters that do not show
//! or have no agreed meaning.

use icu_casemap::CaseMapper;
use icu_normalizer::{ComposingNormalizerBorrowed, DecomposingNormalizerBorrowed};
use icu_properties::CodePointSetData;
use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};

use super::field::{FieldViolation, check_text, general_category, refused_character};

const MAX_NAME_CHARS: usize = 255;

/// The form of a name that uniqueness and lookups compare: NFKC_Casefold, that is Unicode
/// compatibility normalisation with full case folding and default-ignorable characters removed.
///
/// It follows the definition of a compatibility caseless match (Unicode §3.13, D146),
/// `NFKD(toCasefold(NFKD(toCasefold(NFD(X)))))`, then drops default-ignorable code points as
/// NFKC_Casefold does, and composes the result (NFC) so that keys stay short. The key of a key is
/// itself. Every store compares keys byte for byte, so it is computed here and never in SQL.
///
/// Rows stored under an earlier key function must be given this key again when it changes.
pub fn name_key(name: &str) -> String {
    let nfd = DecomposingNormalizerBorrowed::new_nfd();
    let nfkd = DecomposingNormalizerBorrowed::new_nfkd();
    let fold = CaseMapper::new();
    let once = nfkd.normalize(&fold.fold_string(&nfd.normalize(name))).into_owned();
    let twice = nfkd.normalize(&fold.fold_string(&once)).into_owned();
    let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
    let kept: String = twice.chars().filter(|c| !ignorable.contains(*c)).collect();
    ComposingNormalizerBorrowed::new_nfc().normalize(&kept).into_owned()
}

/// The characters every name refuses: control and format characters.
fn check_name_text(field: &str, name: &str) -> Result<(), FieldViolation> {
    check_text(field, name, MAX_NAME_CHARS)
}

/// The characters a user name refuses besides: unassigned code points (Cn: their meaning, and so
/// their key, may change with a later Unicode version), private-use characters (Co: no agreed
/// meaning or look) and surrogates (Cs: not characters; valid UTF-8 never holds them, so this is
/// only a guard).
fn check_user_name_text(field: &str, name: &str) -> Result<(), FieldViolation> {
    check_name_text(field, name)?;
    for c in name.chars() {
        let kind = match general_category(c) {
            GeneralCategory::Unassigned => "unassigned",
            GeneralCategory::PrivateUse => "private-use",
            GeneralCategory::Surrogate => "surrogate",
            _ => continue,
        };
        return Err(FieldViolation::new(field, refused_character(kind, c)));
    }
    Ok(())
}

fn parse_name(
    field: &str,
    raw: &str,
    check: fn(&str, &str) -> Result<(), FieldViolation>,
) -> Result<String, FieldViolation> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(FieldViolation::new(field, "must not be empty"));
    }
    check(field, trimmed)?;
    Ok(trimmed.to_owned())
}

/// Declares a name newtype: 1 to 255 characters, no control or format characters (and whatever
/// more `$check` refuses), surrounding spaces removed, with a [`key`](UserName::key) for uniqueness
/// and lookups.
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
                parse_name(field, raw, $check).map(Self)
            }

            /// The name as it was written.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The form that uniqueness and lookups use: [`name_key`].
            pub fn key(&self) -> String {
                name_key(&self.0)
            }
        }
    };
}

name_type!(
    /// A user's login name, unique across all tenants, compared by [`name_key`]. Besides control
    /// and format characters it refuses unassigned, private-use and surrogate code points.
    UserName,
    check_user_name_text
);
name_type!(
    /// A tenant's display name, unique by [`name_key`].
    TenantName,
    check_name_text
);
name_type!(
    /// A service account's name, unique by [`name_key`] within its tenant.
    ServiceAccountName,
    check_name_text
);
name_type!(
    /// A user access token's name, unique by [`name_key`] among the user's live tokens.
    AccessTokenName,
    check_name_text
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
    fn names_that_look_alike_share_a_key() {
        for (a, b) in [
            ("ａdmin", "admin"),                  // fullwidth a
            ("ADMIN", "admin"),                   // case
            ("ＡＤＭＩＮ", "admin"),              // fullwidth capitals
            ("caf\u{e9}", "cafe\u{301}"),         // NFC and NFD
            ("Stra\u{df}e", "STRASSE"),           // full case folding: ß is ss
            ("\u{fb01}le", "FILE"),               // the ﬁ ligature
            ("\u{212a}elvin", "kelvin"),          // the Kelvin sign is K
            ("\u{3a3}\u{3a3}", "\u{3c3}\u{3c2}"), // Greek capital, small and final sigma
            ("\u{1c5}", "d\u{17e}"),              // the titlecase digraph ǅ
            ("x\u{2075}", "x5"),                  // superscript five
            ("ad\u{34f}min", "admin"),            // a default-ignorable combining grapheme joiner
        ] {
            assert_eq!(name_key(a), name_key(b), "{a:?} and {b:?}");
        }
        assert_ne!(name_key("admin"), name_key("admins"));
        assert_ne!(
            name_key("r\u{e9}sum\u{e9}"),
            name_key("resume"),
            "accents are not folded away"
        );
    }

    #[test]
    fn a_key_is_its_own_key() {
        for name in [
            "ａdmin",
            "Stra\u{df}e",
            "cafe\u{301}",
            "\u{fb03}",
            "\u{1e9e}",
            "\u{130}stanbul",
            "ǅ",
            "x\u{2075}",
        ] {
            let key = name_key(name);
            assert_eq!(name_key(&key), key, "{name:?}");
        }
    }

    #[test]
    fn empty_long_and_invisible_names_are_refused() {
        assert!(UserName::parse("f", "   ").is_err());
        assert!(UserName::parse("f", &"x".repeat(256)).is_err());
        assert!(UserName::parse("f", &"x".repeat(255)).is_ok());
        for bad in [
            "a\u{0}b",     // control
            "a\u{200b}b",  // zero-width space (format)
            "a\u{200d}b",  // zero-width joiner (format)
            "a\u{202e}b",  // right-to-left override (format)
            "a\u{ad}b",    // soft hyphen (format)
            "a\u{e000}b",  // private use
            "a\u{10ffff}", // unassigned (a noncharacter)
            "a\u{378}b",   // unassigned
        ] {
            let refused = UserName::parse("user_name", bad).unwrap_err();
            assert_eq!(refused.field, "user_name");
            assert!(refused.message.contains("U+"), "{}", refused.message);
        }
        assert!(UserName::parse("f", "Zoë@example.com").is_ok());
        assert!(UserName::parse("f", "山田@example.jp").is_ok());
    }

    #[test]
    fn other_names_refuse_control_and_format_characters_only() {
        assert!(TenantName::parse("f", "Acme\u{202e}").is_err());
        assert!(AccessTokenName::parse("f", "ci\u{2067}").is_err());
        assert!(ServiceAccountName::parse("f", "bot\u{200b}").is_err());
        assert!(
            TenantName::parse("f", "Acme \u{e000}").is_ok(),
            "private use is a user-name rule"
        );
    }
}
