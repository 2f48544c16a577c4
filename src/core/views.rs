//! What the core hands back to transports: views made for callers, never store rows. None of
//! them carries a password hash, a token hash or a secret.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{LockoutPolicy, PasswordExpiry, PasswordRules, Roles, SessionKind, UserProfile};
use crate::store::{ServiceAccountRecord, SessionRecord, TenantRecord, UserRecord};

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantView {
    pub tenant_id: Uuid,
    pub name: String,
    pub password_expiry: PasswordExpiry,
    /// The client tenants its customer-support users may log into.
    pub served_tenant_ids: Vec<Uuid>,
    /// Longest user-access-token lifetime in days; 0 for no cap.
    pub max_access_token_days: i32,
    pub password_rules: PasswordRules,
    pub lockout: LockoutPolicy,
    /// Whether the support users of the tenants serving it may log into it.
    pub allow_customer_support: bool,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

/// A tenant named in an answer: its id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRef {
    pub tenant_id: Uuid,
    pub name: String,
}

impl From<TenantRecord> for TenantRef {
    fn from(t: TenantRecord) -> Self {
        Self {
            tenant_id: t.tenant_id,
            name: t.name,
        }
    }
}

impl From<TenantRecord> for TenantView {
    fn from(t: TenantRecord) -> Self {
        let (password_rules, lockout) = (
            super::passwords::password_rules(&t),
            super::passwords::lockout_policy(&t),
        );
        Self {
            tenant_id: t.tenant_id,
            name: t.name,
            password_expiry: PasswordExpiry::from_days(t.password_expiry_days).unwrap_or_default(),
            served_tenant_ids: t.served_tenant_ids,
            max_access_token_days: t.max_access_token_days,
            password_rules,
            lockout,
            allow_customer_support: t.allow_customer_support,
            create_time: t.create_time,
            update_time: t.update_time,
        }
    }
}

/// A user, without their password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub user_name: String,
    pub profile: UserProfile,
    pub roles: Roles,
    pub disabled: bool,
    pub password_change_time: DateTime<Utc>,
    /// An administrator set the password and it has not been changed since.
    pub force_change_password: bool,
    /// Consecutive failed password logins since the last successful one; at
    /// [`crate::domain::MAX_CONSECUTIVE_FAILURES`] the account stays locked until unlocked.
    pub failed_login_count: i32,
    /// The end of the latest temporary lock; password logins are refused while it is to come.
    pub locked_until: Option<DateTime<Utc>>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl From<UserRecord> for UserView {
    fn from(u: UserRecord) -> Self {
        Self {
            user_id: u.user_id,
            tenant_id: u.tenant_id,
            user_name: u.user_name,
            profile: u.profile,
            roles: Roles::from_bits(u.roles),
            disabled: u.disabled,
            password_change_time: u.password_change_time,
            force_change_password: u.force_change_password,
            failed_login_count: u.failed_login_count,
            locked_until: u.locked_until,
            create_time: u.create_time,
            update_time: u.update_time,
        }
    }
}

/// A session, without its token hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub session_id: Uuid,
    /// The user the session acts as; `None` for a service-account session.
    pub user_id: Option<Uuid>,
    /// The tenant the session acts in.
    pub tenant_id: Uuid,
    pub kind: SessionKind,
    pub create_time: DateTime<Utc>,
    pub expire_time: DateTime<Utc>,
    /// The last use, including uses not yet written to the store.
    pub last_use_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub impersonator_user_id: Option<Uuid>,
    /// The impersonator's user name.
    pub impersonator_user_name: Option<String>,
    /// The name of the user access token the session was opened with.
    pub user_access_token_name: Option<String>,
    /// The service account a service-account session acts as: its id and name.
    pub service_account: Option<(Uuid, String)>,
    /// The client's user-agent when the session was opened, truncated.
    pub user_agent: Option<String>,
    /// The address the session was opened from.
    pub peer_address: Option<String>,
    /// The device name the client gave on login.
    pub device_name: Option<String>,
    /// Whether this is the session the caller is using for this very call.
    pub current: bool,
}

impl SessionView {
    pub(crate) fn new(s: SessionRecord, last_use_time: DateTime<Utc>, current: bool) -> Self {
        Self {
            session_id: s.session_id,
            user_id: s.user_id,
            tenant_id: s.tenant_id,
            kind: s.kind,
            create_time: s.create_time,
            expire_time: s.expire_time,
            last_use_time,
            end_time: s.end_time,
            impersonator_user_id: s.impersonator_user_id,
            impersonator_user_name: s.impersonator_user_name,
            user_access_token_name: s.access_token_name,
            service_account: s
                .service_account_id
                .map(|id| (id, s.service_account_name.unwrap_or_default())),
            user_agent: s.details.user_agent,
            peer_address: s.details.peer_address,
            device_name: s.details.device_name,
            current,
        }
    }
}

/// A user access token, without its secret or the secret's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenView {
    pub name: String,
    pub description: String,
    /// The owner's user name.
    pub user_name: String,
    pub create_time: DateTime<Utc>,
    pub expire_time: Option<DateTime<Utc>>,
    /// The last use, including uses not yet written to the store.
    pub last_use_time: Option<DateTime<Utc>>,
    pub revoke_time: Option<DateTime<Utc>>,
    /// Non-secret: the prefix and the last characters.
    pub hint: String,
}

/// A service account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountView {
    pub service_account_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: String,
    pub create_time: DateTime<Utc>,
}

impl From<ServiceAccountRecord> for ServiceAccountView {
    fn from(a: ServiceAccountRecord) -> Self {
        Self {
            service_account_id: a.service_account_id,
            tenant_id: a.tenant_id,
            name: a.name,
            description: a.description,
            create_time: a.create_time,
        }
    }
}
