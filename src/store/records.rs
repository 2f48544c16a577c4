use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A tenant row and the list of client tenants it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub tenant_id: Uuid,
    pub name: String,
    /// Case-folded name for uniqueness.
    pub name_key: String,
    /// Days a password stays valid; `None` for never.
    pub password_expiry_days: Option<i32>,
    /// Longest user-access-token lifetime in days; 0 for no cap.
    pub max_access_token_days: i32,
    pub served_tenant_ids: Vec<Uuid>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

/// A user row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRecord {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub user_name: String,
    pub user_name_key: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub time_zone: String,
    pub locale: String,
    pub date_format: String,
    pub employee_number: String,
    /// Bit mask of [`crate::domain::Roles`].
    pub roles: i32,
    pub disabled: bool,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub password_change_time: DateTime<Utc>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

/// How a session was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Password,
    AccessToken,
    Sso,
    ServiceAccount,
    CustomerSupport,
    Proxy,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::AccessToken => "access_token",
            Self::Sso => "sso",
            Self::ServiceAccount => "service_account",
            Self::CustomerSupport => "customer_support",
            Self::Proxy => "proxy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "password" => Self::Password,
            "access_token" => Self::AccessToken,
            "sso" => Self::Sso,
            "service_account" => Self::ServiceAccount,
            "customer_support" => Self::CustomerSupport,
            "proxy" => Self::Proxy,
            _ => return None,
        })
    }
}

/// A session row. Only the SHA-256 hash of its token is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub session_id: Uuid,
    pub token_hash: Vec<u8>,
    pub user_id: Uuid,
    /// The tenant the session acts in (a customer-support session acts in the client tenant).
    pub tenant_id: Uuid,
    pub kind: SessionKind,
    pub create_time: DateTime<Utc>,
    pub expire_time: DateTime<Utc>,
    pub last_use_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub impersonator_user_id: Option<Uuid>,
    /// The user access token the session was opened with, if any.
    pub access_token_id: Option<Uuid>,
}

/// What validating a session needs, read in one query.
#[derive(Debug, Clone)]
pub struct SessionLookup {
    pub session: SessionRecord,
    pub user: UserRecord,
    /// The password-expiry policy of the user's own tenant, in days (`None` for never).
    pub password_expiry_days: Option<i32>,
    /// The name of the tenant the session acts in.
    pub tenant_name: String,
}

/// A user access token row. Only the SHA-256 hash of its secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRecord {
    pub token_id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// Case-folded name, unique among the user's live tokens.
    pub name_key: String,
    pub description: String,
    pub token_hash: Vec<u8>,
    /// Non-secret: prefix and last characters.
    pub hint: String,
    pub create_time: DateTime<Utc>,
    /// `None`: never expires.
    pub expire_time: Option<DateTime<Utc>>,
    pub last_use_time: Option<DateTime<Utc>>,
    pub revoke_time: Option<DateTime<Utc>>,
}

/// What using an access token needs, read in one query.
#[derive(Debug, Clone)]
pub struct AccessTokenLookup {
    pub token: AccessTokenRecord,
    pub user: UserRecord,
    /// The password-expiry policy of the user's tenant, in days (`None` for never).
    pub password_expiry_days: Option<i32>,
    pub tenant_name: String,
}

/// A service-account row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ServiceAccountRecord {
    pub service_account_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub name_key: String,
    pub description: String,
    pub create_time: DateTime<Utc>,
}

/// One audit event. `details` is a JSON object of strings; never a secret.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRecord {
    pub event_id: Uuid,
    pub time: DateTime<Utc>,
    pub action: String,
    pub tenant_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    pub subject_user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub peer_address: Option<String>,
    pub details: String,
}

/// Which audit events to list; `None` matches all.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub tenant_id: Option<Uuid>,
    /// Matches events where the user is the actor or the subject.
    pub user_id: Option<Uuid>,
    pub action: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}
