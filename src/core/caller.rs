use uuid::Uuid;

use super::passwords::must_change_password;
use super::{Error, Identity, RequestMeta, Result};
use crate::auth::{AccessTokenSecret, SessionToken};
use crate::domain::{Role, Roles, SessionKind};
use crate::store::UserRecord;

/// Who is making a call, established from their bearer credential: a session token, or a user
/// access token used directly (then there is no session).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The session the call comes through; `None` when a user access token is the bearer.
    pub(crate) session_id: Option<Uuid>,
    /// The user access token behind the call: the bearer itself, or the one the session was
    /// opened with.
    pub(crate) access_token_id: Option<Uuid>,
    /// The user as read when the call was authenticated.
    pub(crate) user: UserRecord,
    /// The tenant the caller acts in.
    pub(crate) tenant_id: Uuid,
    pub(crate) tenant_name: String,
    /// The session was opened with a password that must now be changed: the caller may only
    /// change it, log out and ask who they are (see [`super::authorization`]).
    pub(crate) password_must_change: bool,
    /// For a proxy or customer-support session: the real user behind it.
    pub(crate) impersonation: Option<Impersonation>,
}

/// What a proxy or customer-support session records about the real user behind it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Impersonation {
    /// The real user.
    pub(crate) impersonator_user_id: Uuid,
    /// [`SessionKind::Proxy`] or [`SessionKind::CustomerSupport`].
    pub(crate) kind: SessionKind,
    /// The real user's session the login came from, kept open for switching back.
    pub(crate) original_session_id: Option<Uuid>,
}

impl Caller {
    /// The roles the caller acts with: their user's, but a customer-support session acts with the
    /// tenant administrator's rights in the client tenant, and nothing more.
    pub(crate) fn roles(&self) -> Roles {
        match self.impersonation {
            Some(Impersonation {
                kind: SessionKind::CustomerSupport,
                ..
            }) => [Role::TenantAdmin].into_iter().collect(),
            _ => Roles::from_bits(self.user.roles),
        }
    }

    /// Whether the call comes through a proxy or customer-support session.
    pub(crate) fn impersonated(&self) -> bool {
        self.impersonation.is_some()
    }

    pub(crate) fn has(&self, role: Role) -> bool {
        self.roles().contains(role)
    }

    /// Whether the caller's session was opened with a password that must now be changed.
    pub fn password_must_change(&self) -> bool {
        self.password_must_change
    }

    pub(crate) fn user_id(&self) -> Uuid {
        self.user.user_id
    }

    /// Whether the call comes through a user access token, directly or through a session opened
    /// with one.
    pub(crate) fn through_access_token(&self) -> bool {
        self.access_token_id.is_some()
    }

    /// The caller's session, for calls that only make sense inside one.
    pub(crate) fn require_session(&self) -> Result<Uuid> {
        self.session_id
            .ok_or_else(|| Error::FailedPrecondition("this call needs a session; a user access token has none".into()))
    }
}

impl Identity {
    /// Establishes the caller from the bearer credential. A missing one is MissingCredentials; a
    /// session token that is malformed, unknown, expired or ended is SessionInvalid; an access
    /// token is checked by [`Self::use_access_token`], and one it calls InvalidCredentials (Login's
    /// answer for a wrong password) is SessionInvalid here, as for any bad bearer.
    ///
    /// A well-formed access token costs a lookup, and anyone can forge one: failures count against
    /// the client's address as failed token logins do, and an address that failed too often is
    /// refused before the lookup.
    pub async fn authenticate(&self, bearer: Option<&str>, meta: &RequestMeta) -> Result<Caller> {
        let raw = bearer.ok_or(Error::MissingCredentials)?;
        if AccessTokenSecret::looks_like(raw) {
            // A malformed one is refused below without a lookup, so it costs nothing to count.
            let well_formed = AccessTokenSecret::parse(raw).is_some();
            if well_formed {
                self.admit_token_login(meta)?;
            }
            let lookup = match self.use_access_token(raw).await {
                Ok(lookup) => lookup,
                Err(e @ (Error::InvalidCredentials | Error::TokenExpired | Error::TokenRevoked)) => {
                    if well_formed {
                        self.token_login_failed(meta, &e).await?;
                    }
                    return Err(match e {
                        Error::InvalidCredentials => Error::SessionInvalid,
                        other => other,
                    });
                }
                Err(e) => return Err(e),
            };
            return Ok(Caller {
                session_id: None,
                access_token_id: Some(lookup.token_id),
                tenant_id: lookup.user.tenant_id,
                tenant_name: lookup.tenant_name,
                user: lookup.user,
                password_must_change: false,
                impersonation: None,
            });
        }
        let token = SessionToken::parse(raw).ok_or(Error::SessionInvalid)?;
        let now = self.clock.now();
        let lookup = self.lookup_session(&token.hash()).await?.ok_or(Error::SessionInvalid)?;
        if !self.is_live(&lookup, now) {
            return Err(Error::SessionInvalid);
        }
        // A service-account session proves who automation is to other services (through
        // ValidateSession); it is no key to identityd's own calls.
        let Some(user) = lookup.user.clone() else {
            return Err(Error::PermissionDenied(
                "a service-account session can only be checked with ValidateSession".into(),
            ));
        };
        self.last_use.touch(lookup.session.session_id, now);
        let password_must_change = must_change_password(lookup.session.kind, &user, lookup.password_expiry_days, now);
        let impersonation = lookup
            .session
            .impersonator_user_id
            .map(|impersonator_user_id| Impersonation {
                impersonator_user_id,
                kind: lookup.session.kind,
                original_session_id: lookup.session.original_session_id,
            });
        Ok(Caller {
            password_must_change,
            impersonation,
            session_id: Some(lookup.session.session_id),
            access_token_id: lookup.session.access_token_id,
            tenant_id: lookup.session.tenant_id,
            tenant_name: lookup.tenant_name.clone(),
            user,
        })
    }
}
