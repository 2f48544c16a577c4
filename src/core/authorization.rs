//! Who may do what, decided in one place. Every use case states what it needs of its caller as a
//! [`Need`], and [`Caller::require`] alone answers. The rules:
//!
//! - A caller who came with a user access token — as the bearer, or through a session opened with
//!   one — may read what their user may read and may leave the session they are in, but changes
//!   nothing: no access tokens, passwords, sessions, roles, users, service accounts or tenants. A
//!   leaked token can then never mint a credential that outlives its revocation, nor lock out the
//!   user it belongs to. Changes need a session opened by signing in (`ACCESS_TOKEN_NOT_ALLOWED`).
//! - A system administrator acts in every tenant; a tenant administrator in their own tenant. A
//!   user, tenant or session of another tenant is answered as not found, so ids cannot be probed;
//!   a member of the tenant without the role is refused.
//! - Nobody reads the credentials of, or changes, a user who holds a role the caller lacks, and
//!   nobody grants or removes a role they lack. A system administrator counts as holding every
//!   role. The roles are checked again in the transaction that makes the change (the store's
//!   [`UserGuard`](crate::store::UserGuard)), so a concurrent promotion cannot slip between.
//! - Nobody disables, or removes the role of, the last enabled system administrator; the store
//!   enforces it in the same transaction.
//! - A session opened with a password that must be changed (expired under the tenant's policy, or
//!   set by an administrator) may only change it, leave, and ask who it is: [`Need::WhoAmI`],
//!   [`Need::LogOut`] and [`Need::ChangeOwnPassword`]. Every other need answers
//!   `PASSWORD_CHANGE_REQUIRED`, so that a use case cannot forget the rule. Sessions opened with a
//!   user access token or through single sign-on are not restricted: the password is not their
//!   credential.
//! - Impersonation (proxy and customer-support login) is decided here too, by [`Impersonator`]: a
//!   support user enters only a client tenant their tenant serves and that allows it; a proxy
//!   enters only a user of their own tenant or of such a client tenant, who is enabled, is not
//!   themself, and holds no role the proxy lacks — nobody gains a role by impersonating. A
//!   customer-support session acts with the tenant administrator's rights in the client tenant and
//!   no other role ([`Caller::roles`]).
//! - A proxy or customer-support session may not mint credentials or change what guards accounts:
//!   no user access token created or rotated, no service-account session opened, no password
//!   changed or set, no role granted or removed, and no impersonation from it (it does not nest) — `IMPERSONATION_NOT_ALLOWED`. A
//!   stolen impersonation then cannot outlive its short lifetime, nor take an account over. Nor may
//!   it configure a tenant's identity provider, whose account linking could take accounts over.

use uuid::Uuid;

use super::{Caller, Error, Result};
use crate::domain::{Role, Roles};
use crate::store::{TenantRecord, UserRecord};

/// What a use case needs of its caller.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Need<'a> {
    /// Read the caller's own account, sessions and tokens.
    ReadOwn,
    /// End the session the call comes through (revoking it by id).
    LeaveOwnSession,
    /// Read the caller's own account and session ("who am I").
    WhoAmI,
    /// Log out of one of the caller's own sessions: the one the call comes through (`current`),
    /// or another of theirs, which is a change.
    LogOut { current: bool },
    /// Change the caller's own password, proven with the current one.
    ChangeOwnPassword,
    /// Change the caller's own things: their profile, sessions and access tokens.
    ChangeOwn,
    /// Create or rotate one of the caller's own user access tokens: a new credential.
    MintOwnAccessToken,
    /// Keep the caller's session open for switching back, as the bearer of a proxy or
    /// customer-support login: a session of the real user opened by signing in.
    KeepForSwitchBack,
    /// Leave a proxy or customer-support session for the real user's own.
    SwitchBack,
    /// Read what a tenant holds: its administrators and system administrators. The `&str` names
    /// the thing answered as not found to callers of other tenants.
    ReadTenant(Uuid, &'static str),
    /// Read what every tenant holds: system administrators.
    ReadAllTenants,
    /// Change a tenant's policies or create in it: its administrators and system administrators.
    ChangeTenant(Uuid),
    /// Open a service-account session in a tenant, whose token is a new credential: its
    /// administrators and system administrators, not impersonated.
    MintServiceAccountSession(Uuid),
    /// Change or end a service-account session of a tenant: its administrators and system
    /// administrators. Another tenant's session is answered as not found.
    ManageServiceAccountSessionsIn(Uuid),
    /// Create tenants, rename them, say which tenants a tenant serves: system administrators.
    ChangeAllTenants,
    /// Read a user's account: the user, an administrator of their tenant.
    ReadUser(&'a UserRecord),
    /// Read a user's access tokens and sessions: the user, or an administrator of their tenant
    /// who holds every role the user holds.
    ReadCredentialsOf(&'a UserRecord),
    /// Change a user (profile, roles, disabled): an administrator of their tenant who holds every
    /// role the user holds.
    ChangeUser(&'a UserRecord),
    /// Set a user's password as an administrator: as [`Need::ChangeUser`], and not impersonated.
    SetPasswordOf(&'a UserRecord),
    /// Grant or remove these roles: a caller who holds each of them.
    GrantRoles(Roles),
    /// Configure how a tenant's users sign in (its identity provider): its administrators and
    /// system administrators, not impersonated — a provider that links accounts can take them over.
    ConfigureSignIn(Uuid),
}

impl Need<'_> {
    /// Whether meeting this need changes something, which a user access token may not do.
    fn changes(self) -> bool {
        matches!(
            self,
            Self::ChangeOwn
                | Self::LogOut { current: false }
                | Self::ChangeOwnPassword
                | Self::ChangeTenant(_)
                | Self::ManageServiceAccountSessionsIn(_)
                | Self::MintServiceAccountSession(_)
                | Self::ChangeAllTenants
                | Self::ChangeUser(_)
                | Self::SetPasswordOf(_)
                | Self::GrantRoles(_)
                | Self::MintOwnAccessToken
                | Self::KeepForSwitchBack
                | Self::ConfigureSignIn(_)
        )
    }

    /// Whether a proxy or customer-support session may not meet this need: minting a credential,
    /// changing a password or a role, impersonating again.
    fn refused_when_impersonated(self) -> bool {
        matches!(
            self,
            Self::MintOwnAccessToken
                | Self::MintServiceAccountSession(_)
                | Self::ChangeOwnPassword
                | Self::SetPasswordOf(_)
                | Self::GrantRoles(_)
                | Self::KeepForSwitchBack
                | Self::ConfigureSignIn(_)
        )
    }

    /// Whether a session whose password must be changed may meet this need.
    fn allowed_before_password_change(self) -> bool {
        matches!(self, Self::WhoAmI | Self::LogOut { .. } | Self::ChangeOwnPassword)
    }
}

impl Caller {
    /// The roles the caller counts as holding: all of them for a system administrator.
    fn effective_roles(&self) -> Roles {
        if self.has(Role::SystemAdmin) {
            Role::ALL.into_iter().collect()
        } else {
            self.roles()
        }
    }

    /// Succeeds when the caller meets `need`; otherwise says why not, without revealing what the
    /// caller may not know exists.
    pub(crate) fn require(&self, need: Need<'_>) -> Result<()> {
        if self.password_must_change && !need.allowed_before_password_change() {
            return Err(Error::PasswordChangeRequired);
        }
        if need.changes() && self.through_access_token() {
            return Err(Error::AccessTokenNotAllowed);
        }
        if need.refused_when_impersonated() && self.impersonated() {
            return Err(Error::ImpersonationNotAllowed);
        }
        match need {
            Need::ReadOwn
            | Need::LeaveOwnSession
            | Need::WhoAmI
            | Need::LogOut { .. }
            | Need::ChangeOwnPassword
            | Need::ChangeOwn
            | Need::MintOwnAccessToken
            | Need::KeepForSwitchBack => Ok(()),
            Need::SwitchBack if self.impersonated() => Ok(()),
            Need::SwitchBack => Err(Error::FailedPrecondition(
                "this session is not a proxy or customer-support session: there is nothing to switch back from".into(),
            )),
            Need::ReadTenant(tenant_id, what) => self.administers(tenant_id, what),
            Need::ChangeTenant(tenant_id) | Need::MintServiceAccountSession(tenant_id) => {
                self.administers(tenant_id, "tenant")
            }
            Need::ManageServiceAccountSessionsIn(tenant_id) => self.administers(tenant_id, "session"),
            Need::ConfigureSignIn(tenant_id) => self.administers(tenant_id, "identity provider"),
            Need::ReadAllTenants | Need::ChangeAllTenants => {
                if self.has(Role::SystemAdmin) {
                    Ok(())
                } else {
                    Err(Error::PermissionDenied(
                        "this call needs the system administrator role".into(),
                    ))
                }
            }
            Need::ReadUser(user) if user.user_id == self.user_id() => Ok(()),
            Need::ReadUser(user) => self.administers(user.tenant_id, "user"),
            Need::ReadCredentialsOf(user) if user.user_id == self.user_id() => Ok(()),
            Need::ReadCredentialsOf(user) | Need::ChangeUser(user) | Need::SetPasswordOf(user) => {
                self.administers(user.tenant_id, "user")?;
                self.holds_all(Roles::from_bits(user.roles), "this user holds a role you do not hold")
            }
            Need::GrantRoles(roles) => self.holds_all(roles, "you cannot grant or remove a role you do not hold"),
        }
    }

    /// A system administrator administers every tenant, a tenant administrator their own. Another
    /// tenant's things are answered as not found.
    fn administers(&self, tenant_id: Uuid, what: &'static str) -> Result<()> {
        if self.has(Role::SystemAdmin) {
            return Ok(());
        }
        if self.tenant_id != tenant_id {
            return Err(Error::NotFound(what));
        }
        if self.has(Role::TenantAdmin) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(
                "this call needs the tenant administrator role".into(),
            ))
        }
    }

    fn holds_all(&self, roles: Roles, why: &str) -> Result<()> {
        let held = self.effective_roles();
        if roles.iter().all(|r| held.contains(r)) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(why.into()))
        }
    }
}

/// A real user asking to impersonate, with the client tenants their tenant serves; the rules of
/// proxy and customer-support login, decided once the password is proven.
pub(crate) struct Impersonator<'a> {
    pub(crate) user: &'a UserRecord,
    /// The tenants the user's tenant serves.
    pub(crate) served: &'a [Uuid],
}

impl Impersonator<'_> {
    /// The roles the user counts as holding: all of them for a system administrator.
    fn effective_roles(&self) -> Roles {
        let roles = Roles::from_bits(self.user.roles);
        if roles.contains(Role::SystemAdmin) {
            Role::ALL.into_iter().collect()
        } else {
            roles
        }
    }

    fn needs(&self, role: Role, name: &str) -> Result<()> {
        if self.effective_roles().contains(role) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!("this call needs the {name} role")))
        }
    }

    /// A customer-support login into `client` (`None`: no such tenant): the role, a client tenant
    /// the user's tenant serves, and one that allows support. An unknown tenant answers as an
    /// unserved one, so that ids cannot be probed.
    pub(crate) fn may_support(&self, client: Option<&TenantRecord>) -> Result<()> {
        self.needs(Role::CustomerSupport, "customer support")?;
        let Some(client) = client.filter(|c| self.served.contains(&c.tenant_id)) else {
            return Err(Error::PermissionDenied("your tenant does not serve this tenant".into()));
        };
        if !client.allow_customer_support {
            return Err(Error::PermissionDenied(
                "this tenant does not allow customer support access".into(),
            ));
        }
        Ok(())
    }

    /// A proxy login as `target` (`None`: no such user), whose tenant is `target_tenant`: the role,
    /// a user of the caller's own tenant or of a served tenant that allows support (others are not
    /// found), not themself, holding no role the caller lacks, and enabled.
    pub(crate) fn may_proxy(&self, target: Option<&UserRecord>, target_tenant: Option<&TenantRecord>) -> Result<()> {
        self.needs(Role::ProxyLogin, "proxy login")?;
        let own_tenant = self.user.tenant_id;
        let Some(target) = target.filter(|t| t.tenant_id == own_tenant || self.served.contains(&t.tenant_id)) else {
            return Err(Error::NotFound("user"));
        };
        if target.user_id == self.user.user_id {
            return Err(Error::FailedPrecondition("you cannot proxy as yourself".into()));
        }
        if target.tenant_id != own_tenant && !target_tenant.is_some_and(|t| t.allow_customer_support) {
            return Err(Error::PermissionDenied(
                "this tenant does not allow customer support access".into(),
            ));
        }
        let held = self.effective_roles();
        if !Roles::from_bits(target.roles).iter().all(|r| held.contains(r)) {
            return Err(Error::PermissionDenied("this user holds a role you do not hold".into()));
        }
        if target.disabled {
            return Err(Error::FailedPrecondition("this user is disabled".into()));
        }
        Ok(())
    }
}
