//! Values parsed from untrusted input. A value of one of these types has passed its rules, so the
//! core never checks it twice.

mod audit_event;
mod audit_filter;
mod expiration;
mod field;
mod identity_provider;
mod lockout;
mod names;
mod paging;
mod password;
mod password_expiry;
mod profile;
mod role;
mod saml_provider;
mod session_kind;

pub use audit_event::AuditEvent;
pub use audit_filter::AuditFilter;
pub use expiration::Expiration;
pub(crate) use field::is_control_or_format;
pub use field::{FieldViolation, check_description, device_name};
pub use identity_provider::{ProviderSettings, client_secret};
pub use lockout::{LockoutPolicy, MAX_CONSECUTIVE_FAILURES};
pub use names::{AccessTokenName, ServiceAccountName, TenantName, UserName, name_key};
pub use paging::{PageRequest, PageToken};
pub use password::{NewPassword, Password, PasswordRules};
pub use password_expiry::PasswordExpiry;
pub use profile::{ProfilePatch, UserProfile};
pub use role::{Role, Roles};
pub use saml_provider::{MAX_SAML_RESPONSE, SamlResponseRefusal, SamlSettings, screen_saml_response};
pub use session_kind::{SessionKind, UnknownSessionKind};
