//! Update masks: which fields of a message an update call changes. The paths come from the
//! caller's `google.protobuf.FieldMask` as they are; only the exact names an update allows pass.

use crate::core::Error;

/// The fields `UpdateTenant` may change.
pub const TENANT_PATHS: [&str; 9] = [
    "name",
    "password_expiry",
    "served_tenant_ids",
    "max_access_token_days",
    "min_password_length",
    "lockout_failures",
    "lockout_duration",
    "max_lockout_duration",
    "allow_customer_support",
];

/// The fields `UpdateUser` may change.
pub const USER_PATHS: [&str; 7] = [
    "email",
    "first_name",
    "last_name",
    "time_zone",
    "locale",
    "date_format",
    "employee_number",
];

/// The paths of an update mask, each one of `allowed`; at least one is required.
pub fn mask_paths(mask: Option<prost_types::FieldMask>, allowed: &[&str]) -> Result<Vec<String>, Error> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return Err(Error::invalid(
            "update_mask",
            format!("must name the fields to change: {}", allowed.join(", ")),
        ));
    }
    if let Some(bad) = paths.iter().find(|p| !allowed.contains(&p.as_str())) {
        return Err(Error::invalid(
            "update_mask",
            format!("{bad:?} cannot be changed; use {}", allowed.join(", ")),
        ));
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
        Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        })
    }

    #[test]
    fn only_the_allowed_names_pass_exactly_as_written() {
        assert_eq!(
            mask_paths(mask(&["email", "locale"]), &USER_PATHS).unwrap(),
            ["email", "locale"]
        );
        for bad in ["Email", "email ", "user.email", "", "password_hash", "*"] {
            assert!(
                mask_paths(mask(&["email", bad]), &USER_PATHS).is_err(),
                "{bad:?} is refused"
            );
        }
        assert!(
            mask_paths(None, &USER_PATHS).is_err(),
            "an update names what it changes"
        );
        assert!(mask_paths(mask(&[]), &TENANT_PATHS).is_err());
    }
}
