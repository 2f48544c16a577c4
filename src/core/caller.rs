use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Error, Identity, Result};
use crate::auth::SessionToken;
use crate::domain::{Role, Roles};
use crate::store::{SessionLookup, UserRecord};

/// Who is making a call, established from their bearer session token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub session_id: Uuid,
    pub user: UserRecord,
    /// The tenant the session acts in.
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub session_expire_time: DateTime<Utc>,
}

impl Caller {
    pub fn roles(&self) -> Roles {
        Roles::from_bits(self.user.roles)
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles().contains(role)
    }

    pub fn user_id(&self) -> Uuid {
        self.user.user_id
    }

    /// Succeeds when the caller administers `tenant_id`. A caller from another tenant is told the
    /// tenant does not exist, so that ids cannot be probed; a member without the role is refused.
    pub fn require_tenant_admin(&self, tenant_id: Uuid, what: &'static str) -> Result<()> {
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

    pub fn require_system_admin(&self) -> Result<()> {
        if self.has(Role::SystemAdmin) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(
                "this call needs the system administrator role".into(),
            ))
        }
    }
}

impl Identity {
    /// Establishes the caller from the bearer token. A missing token is MissingCredentials; a
    /// malformed, unknown, expired or ended one is SessionInvalid.
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Caller> {
        let raw = bearer.ok_or(Error::MissingCredentials)?;
        let token = SessionToken::parse(raw).ok_or(Error::SessionInvalid)?;
        let now = self.clock.now();
        let lookup = self
            .store
            .lookup_session(token.hash().as_bytes())
            .await?
            .ok_or(Error::SessionInvalid)?;
        if !self.is_live(&lookup, now) {
            return Err(Error::SessionInvalid);
        }
        self.last_use.touch(lookup.session.session_id, now);
        Ok(Caller {
            session_id: lookup.session.session_id,
            tenant_id: lookup.session.tenant_id,
            tenant_name: lookup.tenant_name,
            session_expire_time: lookup.session.expire_time,
            user: lookup.user,
        })
    }

    /// Whether a looked-up session may be used at `now`: not ended, not past its absolute expiry,
    /// not idle too long, and its user not disabled.
    pub(crate) fn is_live(&self, lookup: &SessionLookup, now: DateTime<Utc>) -> bool {
        let session = &lookup.session;
        let last_use = self
            .last_use
            .pending(session.session_id)
            .map_or(session.last_use_time, |pending| pending.max(session.last_use_time));
        session.end_time.is_none()
            && now < session.expire_time
            && now < last_use + self.sessions.idle_timeout
            && !lookup.user.disabled
    }
}
