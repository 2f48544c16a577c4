use uuid::Uuid;

use super::admin::user_record;
use super::audit::{Audit, RequestMeta};
use super::{Identity, Result};
use crate::domain::{
    LockoutPolicy, NewPassword, PasswordExpiry, PasswordRules, Role, Roles, TenantName, UserName, UserProfile,
};
use crate::store::TenantRecord;

/// The first tenant and its administrator.
#[derive(Debug, Clone)]
pub struct BootstrapRequest {
    pub tenant_name: String,
    pub user_name: String,
    pub password: String,
    pub email: String,
}

impl Identity {
    /// Creates the first tenant and its administrator (system and tenant administrator) when the
    /// database has no tenant yet. Returns false, changing nothing, when it already has one.
    pub async fn bootstrap(&self, request: &BootstrapRequest) -> Result<bool> {
        let tenant_name = TenantName::parse("tenant_name", &request.tenant_name)?;
        let user_name = UserName::parse("user_name", &request.user_name)?;
        let own_names = [user_name.as_str(), request.email.as_str()];
        let password = NewPassword::parse("password", &request.password, &PasswordRules::default(), &own_names)?;
        let profile = UserProfile {
            email: request.email.clone(),
            ..UserProfile::default()
        };
        profile.check("")?;
        let password_hash = self.hasher.hash(password.password()).await?;
        let now = self.clock.now();
        let tenant = TenantRecord {
            tenant_id: Uuid::now_v7(),
            name: tenant_name.as_str().to_owned(),
            name_key: tenant_name.key(),
            password_expiry_days: PasswordExpiry::default().days(),
            max_access_token_days: 0,
            min_password_length: PasswordRules::default().min_length() as i32,
            lockout_failures: LockoutPolicy::default().failures(),
            lockout_seconds: LockoutPolicy::default().seconds(),
            max_lockout_seconds: LockoutPolicy::default().max_seconds(),
            allow_customer_support: true,
            served_tenant_ids: Vec::new(),
            create_time: now,
            update_time: now,
        };
        let roles: Roles = [Role::SystemAdmin, Role::TenantAdmin].into_iter().collect();
        let admin = user_record(tenant.tenant_id, &user_name, profile, roles, password_hash, now);
        let audit = Audit::new("bootstrap", now, &RequestMeta::default())
            .tenant(tenant.tenant_id)
            .subject(admin.user_id)
            .detail("user_name", &admin.user_name)
            .build();
        Ok(self.store.bootstrap(&tenant, &admin, &audit).await?)
    }
}
