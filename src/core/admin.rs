use uuid::Uuid;

use super::audit::{Audit, RequestMeta};
use super::authorization::Need;
use super::passwords::password_rules;
use super::views::{ServiceAccountView, TenantView, UserView};
use super::{Caller, Error, Identity, Result};
use crate::domain::{
    AuditEvent, AuditFilter, FieldViolation, LockoutPolicy, NewPassword, PageRequest, PageToken, PasswordExpiry,
    PasswordRules, ProfilePatch, Role, Roles, ServiceAccountName, TenantName, UserName, UserProfile,
};
use crate::store::{ServiceAccountRecord, TenantChanges, TenantRecord, UserGuard, UserRecord, UserWrite};

/// The changes asked of a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub password_expiry: Option<PasswordExpiry>,
    pub served_tenant_ids: Option<Vec<Uuid>>,
    pub max_access_token_days: Option<i32>,
    /// New password and lockout settings; 0 in a field given means that setting's default.
    pub min_password_length: Option<i32>,
    pub lockout_failures: Option<i32>,
    pub lockout_seconds: Option<i32>,
    pub max_lockout_seconds: Option<i32>,
    /// Whether customer-support (and cross-tenant proxy) logins into the tenant are allowed.
    pub allow_customer_support: Option<bool>,
}

/// A tenant to create.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: String,
    pub password_expiry: PasswordExpiry,
    /// Longest user-access-token lifetime in days; 0 for no cap.
    pub max_access_token_days: i32,
    /// The client tenants its customer-support users may log into.
    pub served_tenant_ids: Vec<Uuid>,
    pub passwords: PasswordSettings,
    /// Whether the support users of the tenants serving it may log into it.
    pub allow_customer_support: bool,
}

/// A tenant's password rules and lockout settings as asked; 0 means the default (8 characters;
/// lock after 5 failures for 60 s, doubling up to 900 s).
#[derive(Debug, Clone, Copy, Default)]
pub struct PasswordSettings {
    pub min_password_length: i32,
    pub lockout_failures: i32,
    pub lockout_seconds: i32,
    pub max_lockout_seconds: i32,
}

impl PasswordSettings {
    /// Parses the settings, 0 standing for each default; fields are named `tenant.…`.
    fn parse(self) -> Result<(PasswordRules, LockoutPolicy), Vec<FieldViolation>> {
        let or = |value: i32, default: i32| if value == 0 { default } else { value };
        let (rules, lockout) = (PasswordRules::default(), LockoutPolicy::default());
        let min_length = or(self.min_password_length, rules.min_length() as i32);
        let rules = PasswordRules::new("tenant.min_password_length", min_length);
        let lockout = LockoutPolicy::new(
            "tenant.",
            or(self.lockout_failures, lockout.failures()),
            or(self.lockout_seconds, lockout.seconds()),
            or(self.max_lockout_seconds, lockout.max_seconds()),
        );
        match (rules, lockout) {
            (Ok(rules), Ok(lockout)) => Ok((rules, lockout)),
            (rules, lockout) => Err(rules
                .err()
                .into_iter()
                .chain(lockout.err().into_iter().flatten())
                .collect()),
        }
    }
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

pub(crate) fn check_max_token_days(field: &str, days: i32) -> Result<(), FieldViolation> {
    if (0..=3650).contains(&days) {
        Ok(())
    } else {
        Err(FieldViolation::new(field, "must be between 0 (no cap) and 3650 days"))
    }
}

impl Identity {
    /// Creates a tenant. System administrators only.
    // Each argument is one of the tenant's fields as asked; a struct for them would only repeat
    // the view's.
    pub async fn create_tenant(&self, caller: &Caller, new: NewTenant, meta: &RequestMeta) -> Result<TenantView> {
        let NewTenant {
            name,
            password_expiry,
            max_access_token_days,
            served_tenant_ids,
            passwords,
            allow_customer_support,
        } = new;
        caller.require(Need::ChangeAllTenants)?;
        let name = TenantName::parse("tenant.name", &name)?;
        check_max_token_days("tenant.max_access_token_days", max_access_token_days)?;
        let (rules, lockout) = passwords.parse()?;
        self.check_tenants_exist(&served_tenant_ids).await?;
        let now = self.clock.now();
        let tenant = TenantRecord {
            tenant_id: Uuid::now_v7(),
            name: name.as_str().to_owned(),
            name_key: name.key(),
            password_expiry_days: password_expiry.days(),
            max_access_token_days,
            min_password_length: rules.min_length() as i32,
            lockout_failures: lockout.failures(),
            lockout_seconds: lockout.seconds(),
            max_lockout_seconds: lockout.max_seconds(),
            allow_customer_support,
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
        Ok(tenant.into())
    }

    /// Reads a tenant: system administrators, and the tenant's own administrators.
    pub async fn get_tenant(&self, caller: &Caller, tenant_id: Uuid) -> Result<TenantView> {
        caller.require(Need::ReadTenant(tenant_id, "tenant"))?;
        let tenant = self
            .store
            .get_tenant(tenant_id)
            .await?
            .ok_or(Error::NotFound("tenant"))?;
        Ok(tenant.into())
    }

    /// Updates a tenant. Its administrators set its policies; renaming it and saying which
    /// tenants it serves is for system administrators, who see every tenant — a tenant
    /// administrator could otherwise learn other tenants' names from a clash.
    pub async fn update_tenant(
        &self,
        caller: &Caller,
        tenant_id: Uuid,
        patch: TenantPatch,
        meta: &RequestMeta,
    ) -> Result<TenantView> {
        caller.require(Need::ChangeTenant(tenant_id))?;
        if patch.name.is_some() || patch.served_tenant_ids.is_some() {
            caller.require(Need::ChangeAllTenants)?;
        }
        let mut changes = TenantChanges {
            tenant_id,
            password_expiry_days: patch.password_expiry.map(PasswordExpiry::days),
            allow_customer_support: patch.allow_customer_support,
            ..TenantChanges::default()
        };
        let mut violations = Vec::new();
        if let Some(name) = &patch.name {
            match TenantName::parse("tenant.name", name) {
                Ok(name) => changes.name = Some((name.as_str().to_owned(), name.key())),
                Err(v) => violations.push(v),
            }
        }
        if let Some(days) = patch.max_access_token_days {
            match check_max_token_days("tenant.max_access_token_days", days) {
                Ok(()) => changes.max_access_token_days = Some(days),
                Err(v) => violations.push(v),
            }
        }
        if patch.min_password_length.is_some()
            || patch.lockout_failures.is_some()
            || patch.lockout_seconds.is_some()
            || patch.max_lockout_seconds.is_some()
        {
            // Settings not named keep their values; the longest lock is checked against the first.
            let current = self
                .store
                .get_tenant(tenant_id)
                .await?
                .ok_or(Error::NotFound("tenant"))?;
            let settings = PasswordSettings {
                min_password_length: patch.min_password_length.unwrap_or(current.min_password_length),
                lockout_failures: patch.lockout_failures.unwrap_or(current.lockout_failures),
                lockout_seconds: patch.lockout_seconds.unwrap_or(current.lockout_seconds),
                max_lockout_seconds: patch.max_lockout_seconds.unwrap_or(current.max_lockout_seconds),
            };
            match settings.parse() {
                Ok((rules, lockout)) => {
                    changes.min_password_length = Some(rules.min_length() as i32);
                    changes.lockout = Some((lockout.failures(), lockout.seconds(), lockout.max_seconds()));
                }
                Err(mut v) => violations.append(&mut v),
            }
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        if let Some(served) = patch.served_tenant_ids {
            if served.contains(&tenant_id) {
                return Err(Error::invalid(
                    "tenant.served_tenant_ids",
                    "must not contain the tenant itself",
                ));
            }
            self.check_tenants_exist(&served).await?;
            changes.served_tenant_ids = Some(dedup(served));
        }
        let now = self.clock.now();
        let audit = Audit::new("tenant.updated", now, meta)
            .tenant(tenant_id)
            .actor(caller.user_id())
            .build();
        let _invalidate = self.invalidate_validations();
        let tenant = self
            .store
            .update_tenant(&changes, &audit)
            .await?
            .ok_or(Error::NotFound("tenant"))?;
        Ok(tenant.into())
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

    /// Creates a user in a tenant the caller administers, with roles the caller holds.
    pub async fn create_user(&self, caller: &Caller, new: NewUser, meta: &RequestMeta) -> Result<UserView> {
        caller.require(Need::ChangeTenant(new.tenant_id))?;
        // A user created with no role is granted none: a customer-support session may do it.
        if new.roles != Roles::default() {
            caller.require(Need::GrantRoles(new.roles))?;
        }
        let mut violations = Vec::new();
        let name = UserName::parse("user.user_name", &new.user_name)
            .map_err(|v| violations.push(v))
            .ok();
        // The rules every tenant shares now, so that every bad field is named at once; the
        // tenant's own rules and the user's names once the tenant is known.
        let password = NewPassword::parse("password", &new.password, &PasswordRules::default(), &[])
            .map_err(|v| violations.push(v))
            .ok();
        if let Err(mut v) = new.profile.check("user.") {
            violations.append(&mut v);
        }
        let (Some(name), Some(_)) = (name, password) else {
            return Err(Error::InvalidArgument(violations));
        };
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let tenant = self
            .store
            .get_tenant(new.tenant_id)
            .await?
            .ok_or(Error::NotFound("tenant"))?;
        let own_names = [
            name.as_str(),
            &new.profile.email,
            &new.profile.first_name,
            &new.profile.last_name,
        ];
        let password = NewPassword::parse("password", &new.password, &password_rules(&tenant), &own_names)?;
        let password_hash = self.hasher.hash(password.password()).await?;
        let now = self.clock.now();
        let user = user_record(new.tenant_id, &name, new.profile, new.roles, password_hash, now);
        let audit = Audit::new("user.created", now, meta)
            .tenant(user.tenant_id)
            .actor(caller.user_id())
            .subject(user.user_id)
            .detail("user_name", &user.user_name)
            .build();
        self.store.insert_user(&user, &audit).await?;
        Ok(user.into())
    }

    /// Reads a user: the user themself, or an administrator of their tenant.
    pub async fn get_user(&self, caller: &Caller, user_id: Uuid) -> Result<UserView> {
        let user = self.store.get_user(user_id).await?.ok_or(Error::NotFound("user"))?;
        caller.require(Need::ReadUser(&user))?;
        Ok(user.into())
    }

    pub async fn list_users(
        &self,
        caller: &Caller,
        tenant_id: Uuid,
        page: PageRequest,
    ) -> Result<(Vec<UserView>, Option<PageToken>)> {
        caller.require(Need::ReadTenant(tenant_id, "tenant"))?;
        let rows = self.store.list_users(tenant_id, page).await?;
        let (rows, next) = page.finish(rows, |u| u.user_id);
        Ok((rows.into_iter().map(UserView::from).collect(), next))
    }

    /// Changes a user's profile: the user themself, or an administrator of their tenant who holds
    /// every role the user holds. Only the fields in `patch` are written.
    pub async fn update_user(
        &self,
        caller: &Caller,
        user_id: Uuid,
        patch: ProfilePatch,
        meta: &RequestMeta,
    ) -> Result<UserView> {
        let user = self.store.get_user(user_id).await?.ok_or(Error::NotFound("user"))?;
        if user_id == caller.user_id() {
            caller.require(Need::ChangeOwn)?;
        } else {
            caller.require(Need::ChangeUser(&user))?;
        }
        patched_profile(&user, &patch).check("user.")?;
        let guard = UserGuard {
            user_id,
            roles: user.roles,
            keep_an_enabled_holder_of: None,
        };
        let audit = self.user_audit("user.updated", caller, &user, meta);
        let _invalidate = self.invalidate_validations();
        let written = self.store.update_user_profile(&guard, &patch, &audit).await?;
        user_written(written)
    }

    /// Disables or enables a user. Disabling ends their sessions at once. Nobody disables
    /// themselves (so that a tenant is never left without its last administrator by mistake), and
    /// nobody disables the last enabled system administrator.
    pub async fn set_user_disabled(
        &self,
        caller: &Caller,
        user_id: Uuid,
        disabled: bool,
        meta: &RequestMeta,
    ) -> Result<UserView> {
        let user = self.store.get_user(user_id).await?.ok_or(Error::NotFound("user"))?;
        caller.require(Need::ChangeUser(&user))?;
        if disabled && user_id == caller.user_id() {
            return Err(Error::FailedPrecondition("you cannot disable your own account".into()));
        }
        let guard = UserGuard {
            user_id,
            roles: user.roles,
            keep_an_enabled_holder_of: (disabled && Roles::from_bits(user.roles).contains(Role::SystemAdmin))
                .then(|| Roles::from_iter([Role::SystemAdmin]).bits()),
        };
        let action = if disabled { "user.disabled" } else { "user.enabled" };
        let audit = self.user_audit(action, caller, &user, meta);
        let _invalidate = self.invalidate_validations();
        let written = self.store.set_user_disabled(&guard, disabled, &audit).await?;
        user_written(written)
    }

    /// Replaces a user's roles. The caller must hold every role the user holds and every role
    /// granted or removed; nobody removes the last enabled system administrator's role.
    pub async fn set_user_roles(
        &self,
        caller: &Caller,
        user_id: Uuid,
        roles: Roles,
        meta: &RequestMeta,
    ) -> Result<UserView> {
        let user = self.store.get_user(user_id).await?.ok_or(Error::NotFound("user"))?;
        caller.require(Need::ChangeUser(&user))?;
        let old = Roles::from_bits(user.roles);
        caller.require(Need::GrantRoles(Roles::from_bits(old.bits() ^ roles.bits())))?;
        let guard = UserGuard {
            user_id,
            roles: user.roles,
            keep_an_enabled_holder_of: (old.contains(Role::SystemAdmin) && !roles.contains(Role::SystemAdmin))
                .then(|| Roles::from_iter([Role::SystemAdmin]).bits()),
        };
        let audit = self.user_audit("user.roles_changed", caller, &user, meta);
        let _invalidate = self.invalidate_validations();
        let written = self.store.set_user_roles(&guard, roles.bits(), &audit).await?;
        user_written(written)
    }

    fn user_audit(
        &self,
        action: &str,
        caller: &Caller,
        user: &UserRecord,
        meta: &RequestMeta,
    ) -> crate::domain::AuditEvent {
        Audit::new(action, self.clock.now(), meta)
            .tenant(user.tenant_id)
            .actor(caller.user_id())
            .subject(user.user_id)
            .build()
    }

    pub async fn create_service_account(
        &self,
        caller: &Caller,
        tenant_id: Uuid,
        name: &str,
        description: &str,
        meta: &RequestMeta,
    ) -> Result<ServiceAccountView> {
        caller.require(Need::ChangeTenant(tenant_id))?;
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
        Ok(account.into())
    }

    pub async fn list_service_accounts(
        &self,
        caller: &Caller,
        tenant_id: Uuid,
        page: PageRequest,
    ) -> Result<(Vec<ServiceAccountView>, Option<PageToken>)> {
        caller.require(Need::ReadTenant(tenant_id, "tenant"))?;
        let rows = self.store.list_service_accounts(tenant_id, page).await?;
        let (rows, next) = page.finish(rows, |a| a.service_account_id);
        Ok((rows.into_iter().map(ServiceAccountView::from).collect(), next))
    }

    /// Lists audit events, oldest first. A tenant administrator sees their own tenant's events;
    /// a system administrator sees any tenant's, or all when no tenant is named.
    pub async fn list_audit_events(
        &self,
        caller: &Caller,
        mut filter: AuditFilter,
        page: PageRequest,
    ) -> Result<(Vec<AuditEvent>, Option<PageToken>)> {
        match filter.tenant_id {
            Some(tenant_id) => caller.require(Need::ReadTenant(tenant_id, "tenant"))?,
            None if caller.has(Role::SystemAdmin) => caller.require(Need::ReadAllTenants)?,
            None => {
                let tenant_id = *filter.tenant_id.insert(caller.tenant_id);
                caller.require(Need::ReadTenant(tenant_id, "tenant"))?;
            }
        }
        if let (Some(start), Some(end)) = (filter.start_time, filter.end_time)
            && start > end
        {
            return Err(Error::invalid("end_time", "must not be before start_time"));
        }
        let rows = self.store.list_audit(&filter, page).await?;
        Ok(page.finish(rows, |a| a.event_id))
    }
}

/// What a guarded write on a user answers the caller.
pub(crate) fn user_written(written: UserWrite) -> Result<UserView> {
    match written {
        UserWrite::Written(user) => Ok((*user).into()),
        UserWrite::Missing => Err(Error::NotFound("user")),
        UserWrite::RolesChanged => Err(Error::ConcurrentChange("user")),
        UserWrite::LastHolder => Err(Error::LastSystemAdmin),
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
        profile,
        roles: roles.bits(),
        disabled: false,
        password_hash,
        password_change_time: now,
        force_change_password: false,
        failed_login_count: 0,
        locked_until: None,
        create_time: now,
        update_time: now,
    }
}

/// The profile a user would have after `patch`, for checking it whole.
fn patched_profile(u: &UserRecord, patch: &ProfilePatch) -> UserProfile {
    let pick = |new: &Option<String>, old: &String| new.clone().unwrap_or_else(|| old.clone());
    let old = &u.profile;
    UserProfile {
        email: pick(&patch.email, &old.email),
        first_name: pick(&patch.first_name, &old.first_name),
        last_name: pick(&patch.last_name, &old.last_name),
        time_zone: pick(&patch.time_zone, &old.time_zone),
        locale: pick(&patch.locale, &old.locale),
        date_format: pick(&patch.date_format, &old.date_format),
        employee_number: pick(&patch.employee_number, &old.employee_number),
    }
}
