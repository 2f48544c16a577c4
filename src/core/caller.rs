use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Error, Identity, Result};
use crate::auth::{AccessTokenSecret, SessionToken};
use crate::domain::{Role, Roles};
use crate::store::{AccessTokenLookup, AccessTokenRecord, SessionLookup, UserRecord};

/// Who is making a call, established from their bearer credential: a session token, or a user
/// access token used directly (then there is no session).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The session the call comes through; `None` when a user access token is the bearer.
    pub session_id: Option<Uuid>,
    /// The access token the call comes through, when one is the bearer.
    pub access_token_id: Option<Uuid>,
    pub user: UserRecord,
    /// The tenant the caller acts in.
    pub tenant_id: Uuid,
    pub tenant_name: String,
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
    /// thing does not exist, so that ids cannot be probed; a member without the role is refused.
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

    /// The caller's session, for calls that only make sense inside one.
    pub fn require_session(&self) -> Result<Uuid> {
        self.session_id
            .ok_or_else(|| Error::FailedPrecondition("this call needs a session; a user access token has none".into()))
    }
}

impl Identity {
    /// Establishes the caller from the bearer credential. A missing one is MissingCredentials; a
    /// session token that is malformed, unknown, expired or ended is SessionInvalid; an access
    /// token is checked by [`Self::use_access_token`], and one it calls InvalidCredentials (Login's
    /// answer for a wrong password) is SessionInvalid here, as for any bad bearer.
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Caller> {
        let raw = bearer.ok_or(Error::MissingCredentials)?;
        if AccessTokenSecret::looks_like(raw) {
            let lookup = self.use_access_token(raw).await.map_err(|e| match e {
                Error::InvalidCredentials => Error::SessionInvalid,
                other => other,
            })?;
            return Ok(Caller {
                session_id: None,
                access_token_id: Some(lookup.token.token_id),
                tenant_id: lookup.user.tenant_id,
                tenant_name: lookup.tenant_name,
                user: lookup.user,
            });
        }
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
            session_id: Some(lookup.session.session_id),
            access_token_id: lookup.session.access_token_id,
            tenant_id: lookup.session.tenant_id,
            tenant_name: lookup.tenant_name,
            user: lookup.user,
        })
    }

    /// Checks a user access token and notes its use. A malformed one (its checksum catches any
    /// typo) is refused without a database query; unknown ones and those of disabled users are
    /// InvalidCredentials; expired and revoked ones say so, since only the token's holder can ask.
    pub(crate) async fn use_access_token(&self, raw: &str) -> Result<AccessTokenLookup> {
        let secret = AccessTokenSecret::parse(raw).ok_or(Error::InvalidCredentials)?;
        let lookup = self
            .store
            .lookup_access_token(secret.hash().as_bytes())
            .await?
            .ok_or(Error::InvalidCredentials)?;
        let now = self.clock.now();
        check_token_usable(&lookup.token, &lookup.user, now)?;
        self.token_last_use.touch(lookup.token.token_id, now);
        Ok(lookup)
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

fn check_token_usable(token: &AccessTokenRecord, user: &UserRecord, now: DateTime<Utc>) -> Result<()> {
    if user.disabled {
        return Err(Error::InvalidCredentials);
    }
    if token.revoke_time.is_some() {
        return Err(Error::TokenRevoked);
    }
    if token.expire_time.is_some_and(|end| now >= end) {
        return Err(Error::TokenExpired);
    }
    Ok(())
}
