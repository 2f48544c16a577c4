use uuid::Uuid;

use super::audit::{Audit, RequestMeta};
use super::{Caller, Error, Identity, Result};
use crate::domain::{
    FieldViolation, PageRequest, PageToken, Password, PasswordExpiry, Role, Roles, ServiceAccountName, TenantName,
    UserName, UserProfile,
};
use crate::store::{AuditFilter, AuditRecord, ServiceAccountRecord, TenantRecord, UserRecord};

/// The changes asked of a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub password_expiry: Option<PasswordExpiry>,
    pub served_tenant_ids: Option<Vec<Uuid>>,
    pub max_access_token_days: Option<i32>,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub tenant_id: Uuid,
    pub user_name: String,
    pub password: String,
    pub profile: UserProfile,
    pub roles: Roles,
}

/// The profile changes asked of a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub time_zone: Option<String>,
    pub locale: Option<String>,
    pub date_format: Option<String>,
    pub employee_number: Option<String>,
}

pub(crate) fn check_max_token_days(field: &str, days: i32) -> Result<(), FieldViolation> {
    if (0..=3650).contains(&days) {
        Ok(())
    } else {
        Err(FieldViolation::new(field, "must be between 0 (no cap) and 3650 days"))
    }
}

impl Identity {
    /// Creates a tenant. System administrators only.
    pub async fn create_tenant(
        &self,
        caller: &Caller,
        name: &str,
        password_expiry: PasswordExpiry,
        max_access_token_days: i32,
        served_tenant_ids: Vec<Uuid>,
        meta: &RequestMeta,
    ) -> Result<TenantRecord> {
        caller.require_system_admin()?;
        let name = TenantName::parse("tenant.name", name)?;
        check_max_token_days("tenant.max_access_token_days", max_access_token_days)?;
        self.check_tenants_exist(&served_tenant_ids).await?;
        let now = self.clock.now();
        let tenant = TenantRecord {
            tenant_id: Uuid::now_v7(),
            name: name.as_str().to_owned(),
            name_key: name.key(),
            password_expiry_days: password_expiry.days(),
            max_access_token_days,
            served_tenant_ids: dedup(served_tenant_ids),
            create_time: now,
            update_time: now,
        };
        let audit = Audit::new("tenant.created", now, meta)
            .tenant(tenant.tenant_id)
            .actor(caller.user_id())
            .detail("name", &tenant.name)
            .build();
        self.store.insert_tenant(&tenant, &audit).await?;
        Ok(tenant)
    }

    /// Reads a tenant: system administrators, and the tenant's own administrators.
    pub async fn get_tenant(&self, caller: &Caller, tenant_id: Uuid) -> Result<TenantRecord> {
        caller.require_tenant_admin(tenant_id, "tenant")?;
        self.store.get_tenant(tenant_id).await?.ok_or(Error::NotFound("tenant"))
    }

    /// Updates a tenant. Its administrators may rename it and set its policies; which tenants it
    /// serves is for system administrators alone.
    pub async fn update_tenant(
        &self,
        caller: &Caller,
        tenant_id: Uuid,
        patch: TenantPatch,
        meta: &RequestMeta,
    ) -> Result<TenantRecord> {
        caller.require_tenant_admin(tenant_id, "tenant")?;
        if patch.served_tenant_ids.is_some() {
            caller.require_system_admin()?;
        }
        let mut tenant = self
            .store
            .get_tenant(tenant_id)
            .await?
            .ok_or(Error::NotFound("tenant"))?;
        let mut violations = Vec::new();
        if let Some(name) = &patch.name {
            match TenantName::parse("tenant.name", name) {
                Ok(name) => {
                    tenant.name = name.as_str().to_owned();
                    tenant.name_key = name.key();
                }
                Err(v) => violations.push(v),
            }
        }
        if let Some(days) = patch.max_access_token_days {
            match check_max_token_days("tenant.max_access_token_days", days) {
                Ok(()) => tenant.max_access_token_days = days,
                Err(v) => violations.push(v),
            }
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        if let Some(policy) = patch.password_expiry {
            tenant.password_expiry_days = policy.days();
        }
        if let Some(served) = patch.served_tenant_ids {
            if served.contains(&tenant_id) {
                return Err(Error::invalid(
                    "tenant.served_tenant_ids",
                    "must not contain the tenant itself",
                ));
            }
            self.check_tenants_exist(&served).await?;
            tenant.served_tenant_ids = dedup(served);
        }
        tenant.update_time = self.clock.now();
        let audit = Audit::new("tenant.updated", tenant.update_time, meta)
            .tenant(tenant_id)
            .actor(caller.user_id())
            .build();
        self.store.update_tenant(&tenant, &audit).await?;
        self.sessions_changed();
        Ok(tenant)
    }

    async fn check_tenants_exist(&self, ids: &[Uuid]) -> Result<()> {
        for id in ids {
            if self.store.get_tenant(*id).await?.is_none() {
                return Err(Error::invalid(
                    "tenant.served_tenant_ids",
                    format!("names an unknown tenant {id}"),
                ));
            }
        }
        Ok(())
    }

    /// Creates a user in a tenant the caller administers. Only a system administrator may grant
    /// the system administrator role.
    pub async fn create_user(&self, caller: &Caller, new: NewUser, meta: &RequestMeta) -> Result<UserRecord> {
        caller.require_tenant_admin(new.tenant_id, "tenant")?;
        if new.roles.contains(Role::SystemAdmin) {
            caller.require_system_admin()?;
        }
        let mut violations = Vec::new();
        let name = UserName::parse("user.user_name", &new.user_name)
            .map_err(|v| violations.push(v))
            .ok();
        let password = Password::new_password("password", &new.password)
            .map_err(|v| violations.push(v))
            .ok();
        if let Err(mut v) = new.profile.check("user.") {
            violations.append(&mut v);
        }
        let (Some(name), Some(password)) = (name, password) else {
            return Err(Error::InvalidArgument(violations));
        };
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        if self.store.get_tenant(new.tenant_id).await?.is_none() {
            return Err(Error::NotFound("tenant"));
        }
        let password_hash = self.hasher.hash(&password).await?;
        let now = self.clock.now();
        let user = user_record(new.tenant_id, &name, new.profile, new.roles, password_hash, now);
        let audit = Audit::new("user.created", now, meta)
            .tenant(user.tenant_id)
            .actor(caller.user_id())
            .subject(user.user_id)
            .detail("user_name", &user.user_name)
            .build();
        self.store.insert_user(&user, &audit).await?;
        Ok(user)
    }

    /// Reads a user: the user themself, or an administrator of their tenant.
    pub async fn get_user(&self, caller: &Caller, user_id: Uuid) -> Result<UserRecord> {
        if user_id == caller.user_id() {
            return Ok(caller.user.clone());
        }
        let user = self.store.get_user(user_id).await?.ok_or(Error::NotFound("user"))?;
        caller.require_tenant_admin(user.tenant_id, "user")?;
        Ok(user)
    }

    pub async fn list_users(
        &self,
        caller: &Caller,
        tenant_id: Uuid,
        page: PageRequest,
    ) -> Result<(Vec<UserRecord>, Option<PageToken>)> {
        caller.require_tenant_admin(tenant_id, "tenant")?;
        let rows = self
            .store
            .list_users(tenant_id, page.after.map(|t| t.0), page.fetch_limit())
            .await?;
        Ok(page.finish(rows, |u| u.user_id))
    }

    /// Changes a user's profile: the user themself, or an administrator of their tenant.
    pub async fn update_user(
        &self,
        caller: &Caller,
        user_id: Uuid,
        patch: UserPatch,
        meta: &RequestMeta,
    ) -> Result<UserRecord> {
        let mut user = self.get_user(caller, user_id).await?;
        let p = &mut user;
        let fields = [
            (patch.email, &mut p.email),
            (patch.first_name, &mut p.first_name),
            (patch.last_name, &mut p.last_name),
            (patch.time_zone, &mut p.time_zone),
            (patch.locale, &mut p.locale),
            (patch.date_format, &mut p.date_format),
            (patch.employee_number, &mut p.employee_number),
        ];
        for (new, slot) in fields {
            if let Some(value) = new {
                *slot = value;
            }
        }
        profile_of(&user).check("user.")?;
        self.save_user(caller, user, "user.updated", meta).await
    }

    /// Disables or enables a user. Disabling ends their sessions at once. Administrators cannot
    /// disable themselves, so that a tenant is never left without its last administrator by mistake.
    pub async fn set_user_disabled(
        &self,
        caller: &Caller,
        user_id: Uuid,
        disabled: bool,
        meta: &RequestMeta,
    ) -> Result<UserRecord> {
        let mut user = self.administered_user(caller, user_id).await?;
        if disabled && user_id == caller.user_id() {
            return Err(Error::FailedPrecondition("you cannot disable your own account".into()));
        }
        user.disabled = disabled;
        let action = if disabled { "user.disabled" } else { "user.enabled" };
        self.save_user(caller, user, action, meta).await
    }

    /// Replaces a user's roles. Only a system administrator grants or removes that role.
    pub async fn set_user_roles(
        &self,
        caller: &Caller,
        user_id: Uuid,
        roles: Roles,
        meta: &RequestMeta,
    ) -> Result<UserRecord> {
        let mut user = self.administered_user(caller, user_id).await?;
        let had_system_admin = Roles::from_bits(user.roles).contains(Role::SystemAdmin);
        if had_system_admin != roles.contains(Role::SystemAdmin) {
            caller.require_system_admin()?;
        }
        user.roles = roles.bits();
        self.save_user(caller, user, "user.roles_changed", meta).await
    }

    async fn administered_user(&self, caller: &Caller, user_id: Uuid) -> Result<UserRecord> {
        let user = self.store.get_user(user_id).await?.ok_or(Error::NotFound("user"))?;
        caller.require_tenant_admin(user.tenant_id, "user")?;
        Ok(user)
    }

    async fn save_user(
        &self,
        caller: &Caller,
        mut user: UserRecord,
        action: &str,
        meta: &RequestMeta,
    ) -> Result<UserRecord> {
        user.update_time = self.clock.now();
        let audit = Audit::new(action, user.update_time, meta)
            .tenant(user.tenant_id)
            .actor(caller.user_id())
            .subject(user.user_id)
            .build();
        self.store.update_user(&user, &audit).await?;
        self.sessions_changed();
        Ok(user)
    }

    pub async fn create_service_account(
        &self,
        caller: &Caller,
        tenant_id: Uuid,
        name: &str,
        description: &str,
        meta: &RequestMeta,
    ) -> Result<ServiceAccountRecord> {
        caller.require_tenant_admin(tenant_id, "tenant")?;
        let name = ServiceAccountName::parse("name", name)?;
        crate::domain::check_description("description", description)?;
        if self.store.get_tenant(tenant_id).await?.is_none() {
            return Err(Error::NotFound("tenant"));
        }
        let now = self.clock.now();
        let account = ServiceAccountRecord {
            service_account_id: Uuid::now_v7(),
            tenant_id,
            name: name.as_str().to_owned(),
            name_key: name.key(),
            description: description.to_owned(),
            create_time: now,
        };
        let audit = Audit::new("service_account.created", now, meta)
            .tenant(tenant_id)
            .actor(caller.user_id())
            .detail("name", &account.name)
            .build();
        self.store.insert_service_account(&account, &audit).await?;
        Ok(account)
    }

    pub async fn list_service_accounts(
        &self,
        caller: &Caller,
        tenant_id: Uuid,
        page: PageRequest,
    ) -> Result<(Vec<ServiceAccountRecord>, Option<PageToken>)> {
        caller.require_tenant_admin(tenant_id, "tenant")?;
        let rows = self
            .store
            .list_service_accounts(tenant_id, page.after.map(|t| t.0), page.fetch_limit())
            .await?;
        Ok(page.finish(rows, |a| a.service_account_id))
    }

    /// Lists audit events, oldest first. A tenant administrator sees their own tenant's events;
    /// a system administrator sees any tenant's, or all when no tenant is named.
    pub async fn list_audit_events(
        &self,
        caller: &Caller,
        mut filter: AuditFilter,
        page: PageRequest,
    ) -> Result<(Vec<AuditRecord>, Option<PageToken>)> {
        if !caller.has(Role::SystemAdmin) {
            let tenant_id = *filter.tenant_id.get_or_insert(caller.tenant_id);
            caller.require_tenant_admin(tenant_id, "tenant")?;
        }
        if let (Some(start), Some(end)) = (filter.start_time, filter.end_time)
            && start > end
        {
            return Err(Error::invalid("end_time", "must not be before start_time"));
        }
        let rows = self
            .store
            .list_audit(&filter, page.after.map(|t| t.0), page.fetch_limit())
            .await?;
        Ok(page.finish(rows, |a| a.event_id))
    }
}

fn dedup(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids.dedup();
    ids
}

pub(crate) fn user_record(
    tenant_id: Uuid,
    name: &UserName,
    profile: UserProfile,
    roles: Roles,
    password_hash: String,
    now: chrono::DateTime<chrono::Utc>,
) -> UserRecord {
    UserRecord {
        user_id: Uuid::now_v7(),
        tenant_id,
        user_name: name.as_str().to_owned(),
        user_name_key: name.key(),
        email: profile.email,
        first_name: profile.first_name,
        last_name: profile.last_name,
        time_zone: profile.time_zone,
        locale: profile.locale,
        date_format: profile.date_format,
        employee_number: profile.employee_number,
        roles: roles.bits(),
        disabled: false,
        password_hash,
        password_change_time: now,
        create_time: now,
        update_time: now,
    }
}

fn profile_of(u: &UserRecord) -> UserProfile {
    UserProfile {
        email: u.email.clone(),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        time_zone: u.time_zone.clone(),
        locale: u.locale.clone(),
        date_format: u.date_format.clone(),
        employee_number: u.employee_number.clone(),
    }
}
