//! Values parsed from untrusted input. A value of one of these types has passed its rules, so the
//! core never checks it twice.

mod field;
mod names;
mod paging;
mod password;
mod password_expiry;
mod profile;
mod role;

pub use field::{FieldViolation, check_description};
pub use names::{AccessTokenName, ServiceAccountName, TenantName, UserName, name_key};
pub use paging::{PageRequest, PageToken};
pub use password::Password;
pub use password_expiry::PasswordExpiry;
pub use profile::UserProfile;
pub use role::{Role, Roles};
