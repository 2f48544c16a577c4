//! Conversions between core values and protobuf messages.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

use super::pb;
use crate::core::{AccessTokenView, Error, LoginOutcome, ServiceAccountView, SessionView, TenantView, UserView};
use crate::domain::{AuditEvent, PasswordExpiry, Role, Roles, SessionKind};

pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn from_timestamp(field: &str, t: &Timestamp) -> Result<DateTime<Utc>, Error> {
    u32::try_from(t.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
        .ok_or_else(|| Error::invalid(field, "is not a valid timestamp"))
}

fn seconds(s: i32) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::from(s),
        nanos: 0,
    }
}

/// A duration of whole seconds; unset is 0 (the default).
pub fn whole_seconds(field: &str, d: Option<&prost_types::Duration>) -> Result<i32, Error> {
    let Some(d) = d else { return Ok(0) };
    if d.nanos != 0 || d.seconds < 0 {
        return Err(Error::invalid(field, "must be a whole, positive number of seconds"));
    }
    Ok(i32::try_from(d.seconds).unwrap_or(i32::MAX))
}

pub fn role(r: Role) -> pb::Role {
    match r {
        Role::SystemAdmin => pb::Role::SystemAdmin,
        Role::TenantAdmin => pb::Role::TenantAdmin,
        Role::CustomerSupport => pb::Role::CustomerSupport,
        Role::ProxyLogin => pb::Role::ProxyLogin,
    }
}

pub fn roles_from(field: &str, raw: &[i32]) -> Result<Roles, Error> {
    raw.iter()
        .map(|r| match pb::Role::try_from(*r) {
            Ok(pb::Role::SystemAdmin) => Ok(Role::SystemAdmin),
            Ok(pb::Role::TenantAdmin) => Ok(Role::TenantAdmin),
            Ok(pb::Role::CustomerSupport) => Ok(Role::CustomerSupport),
            Ok(pb::Role::ProxyLogin) => Ok(Role::ProxyLogin),
            Ok(pb::Role::Unspecified) | Err(_) => Err(Error::invalid(field, format!("{r} is not a role"))),
        })
        .collect()
}

pub fn password_expiry(p: PasswordExpiry) -> pb::PasswordExpiry {
    match p {
        PasswordExpiry::Days15 => pb::PasswordExpiry::Days15,
        PasswordExpiry::Days30 => pb::PasswordExpiry::Days30,
        PasswordExpiry::Days60 => pb::PasswordExpiry::Days60,
        PasswordExpiry::Days90 => pb::PasswordExpiry::Days90,
        PasswordExpiry::Days120 => pb::PasswordExpiry::Days120,
        PasswordExpiry::Never => pb::PasswordExpiry::Never,
    }
}

/// Unspecified means the default policy (90 days).
pub fn password_expiry_from(field: &str, raw: i32) -> Result<PasswordExpiry, Error> {
    Ok(match pb::PasswordExpiry::try_from(raw) {
        Ok(pb::PasswordExpiry::Unspecified) => PasswordExpiry::default(),
        Ok(pb::PasswordExpiry::Days15) => PasswordExpiry::Days15,
        Ok(pb::PasswordExpiry::Days30) => PasswordExpiry::Days30,
        Ok(pb::PasswordExpiry::Days60) => PasswordExpiry::Days60,
        Ok(pb::PasswordExpiry::Days90) => PasswordExpiry::Days90,
        Ok(pb::PasswordExpiry::Days120) => PasswordExpiry::Days120,
        Ok(pb::PasswordExpiry::Never) => PasswordExpiry::Never,
        Err(_) => return Err(Error::invalid(field, format!("{raw} is not a password-expiry policy"))),
    })
}

fn session_kind(k: SessionKind) -> pb::SessionKind {
    match k {
        SessionKind::Password => pb::SessionKind::Password,
        SessionKind::AccessToken => pb::SessionKind::AccessToken,
        SessionKind::Sso => pb::SessionKind::Sso,
        SessionKind::ServiceAccount => pb::SessionKind::ServiceAccount,
        SessionKind::CustomerSupport => pb::SessionKind::CustomerSupport,
        SessionKind::Proxy => pb::SessionKind::Proxy,
    }
}

pub fn tenant(t: TenantView) -> pb::Tenant {
    pb::Tenant {
        tenant_id: t.tenant_id.to_string(),
        name: t.name,
        password_expiry: password_expiry(t.password_expiry) as i32,
        served_tenant_ids: t.served_tenant_ids.iter().map(ToString::to_string).collect(),
        max_access_token_days: t.max_access_token_days,
        create_time: Some(timestamp(t.create_time)),
        update_time: Some(timestamp(t.update_time)),
        min_password_length: t.password_rules.min_length() as i32,
        lockout_failures: t.lockout.failures(),
        lockout_duration: Some(seconds(t.lockout.seconds())),
        max_lockout_duration: Some(seconds(t.lockout.max_seconds())),
        allow_customer_support: Some(t.allow_customer_support),
    }
}

pub fn user(u: UserView) -> pb::User {
    pb::User {
        user_id: u.user_id.to_string(),
        tenant_id: u.tenant_id.to_string(),
        user_name: u.user_name,
        email: u.profile.email,
        first_name: u.profile.first_name,
        last_name: u.profile.last_name,
        time_zone: u.profile.time_zone,
        locale: u.profile.locale,
        date_format: u.profile.date_format,
        employee_number: u.profile.employee_number,
        roles: u.roles.iter().map(|r| role(r) as i32).collect(),
        disabled: u.disabled,
        password_change_time: Some(timestamp(u.password_change_time)),
        create_time: Some(timestamp(u.create_time)),
        update_time: Some(timestamp(u.update_time)),
        force_change_password: u.force_change_password,
        failed_login_count: u.failed_login_count,
        locked_until: u.locked_until.map(timestamp),
    }
}

pub fn session(s: SessionView) -> pb::Session {
    pb::Session {
        session_id: s.session_id.to_string(),
        user_id: s.user_id.map(|id| id.to_string()).unwrap_or_default(),
        tenant_id: s.tenant_id.to_string(),
        kind: session_kind(s.kind) as i32,
        create_time: Some(timestamp(s.create_time)),
        expire_time: Some(timestamp(s.expire_time)),
        last_use_time: Some(timestamp(s.last_use_time)),
        end_time: s.end_time.map(timestamp),
        user_access_token_name: s.user_access_token_name.unwrap_or_default(),
        impersonator_user_id: s.impersonator_user_id.map(|id| id.to_string()).unwrap_or_default(),
        service_account_id: s
            .service_account
            .as_ref()
            .map(|(id, _)| id.to_string())
            .unwrap_or_default(),
        service_account_name: s.service_account.map(|(_, name)| name).unwrap_or_default(),
        current: s.current,
        user_agent: s.user_agent.unwrap_or_default(),
        peer_address: s.peer_address.unwrap_or_default(),
        device_name: s.device_name.unwrap_or_default(),
        impersonator_user_name: s.impersonator_user_name.unwrap_or_default(),
    }
}

pub fn access_token(v: AccessTokenView) -> pb::UserAccessToken {
    pb::UserAccessToken {
        name: v.name,
        description: v.description,
        user_name: v.user_name,
        create_time: Some(timestamp(v.create_time)),
        expire_time: v.expire_time.map(timestamp),
        last_use_time: v.last_use_time.map(timestamp),
        revoked: v.revoke_time.is_some(),
        revoke_time: v.revoke_time.map(timestamp),
        hint: v.hint,
    }
}

pub fn service_account(a: ServiceAccountView) -> pb::ServiceAccount {
    pb::ServiceAccount {
        service_account_id: a.service_account_id.to_string(),
        tenant_id: a.tenant_id.to_string(),
        name: a.name,
        description: a.description,
        create_time: Some(timestamp(a.create_time)),
    }
}

pub fn audit_event(a: AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        event_id: a.event_id.to_string(),
        time: Some(timestamp(a.time)),
        action: a.action,
        tenant_id: a.tenant_id.map(|id| id.to_string()).unwrap_or_default(),
        actor_user_id: a.actor_user_id.map(|id| id.to_string()).unwrap_or_default(),
        subject_user_id: a.subject_user_id.map(|id| id.to_string()).unwrap_or_default(),
        session_id: a.session_id.map(|id| id.to_string()).unwrap_or_default(),
        peer_address: a.peer_address.unwrap_or_default(),
        details: a.details.into_iter().collect(),
    }
}

/// The seven fields every login response carries, in the order of the contract.
pub struct LoginFields {
    pub user: Option<pb::User>,
    pub organization_id: String,
    pub organization_name: String,
    pub session: Option<pb::Session>,
    pub session_token: String,
    pub is_force_change_password: bool,
    pub session_jwt: String,
}

pub fn login_fields(o: LoginOutcome) -> LoginFields {
    LoginFields {
        organization_id: o.tenant.tenant_id.to_string(),
        organization_name: o.tenant.name,
        session_token: o.token.expose().to_owned(),
        is_force_change_password: o.is_force_change_password,
        session_jwt: o.jwt.map(|jwt| jwt.token).unwrap_or_default(),
        session: Some(session(o.session)),
        user: Some(user(o.user)),
    }
}

/// Builds any of the login responses (they share their seven fields) from a login outcome.
macro_rules! login_response {
    ($response:ident, $outcome:expr) => {{
        let f = $crate::grpc::convert::login_fields($outcome);
        $crate::grpc::pb::$response {
            user: f.user,
            organization_id: f.organization_id,
            organization_name: f.organization_name,
            session: f.session,
            session_token: f.session_token,
            is_force_change_password: f.is_force_change_password,
            session_jwt: f.session_jwt,
        }
    }};
}
pub(crate) use login_response;
