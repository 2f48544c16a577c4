//! Customer-support login, proxy login and switching back: a real user, proven by their password
//! exactly as Login proves it, opens a short-lived session acting as someone else (a user, or the
//! administrator of a client tenant), and later returns to being themself.
//!
//! Who may impersonate whom is decided in [`super::authorization`], with what an impersonated
//! session may not do. Every start, switch-back and end is audited in the real user's tenant and
//! in the tenant acted in, so that each side sees it in its own trail.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::audit::{Audit, RequestMeta};
use super::authorization::{Impersonator, Need};
use super::login::parse_credentials;
use super::passwords::must_change_password;
use super::session_details::session_details;
use super::session_jwt::SessionJwt;
use super::views::{SessionView, TenantRef, UserView};
use super::{Caller, Error, Identity, LoginOutcome, Result};
use crate::auth::SessionToken;
use crate::domain::{AuditEvent, FieldViolation, Password, SessionKind, UserName};
use crate::store::{SessionRecord, TenantRecord, UserRecord};

/// The real user behind an impersonation, once their password is proven.
struct RealUser {
    user: UserRecord,
    tenant: TenantRecord,
    /// Their open session the login came from, kept for switching back.
    original_session_id: Option<Uuid>,
}

/// What switching back hands back: the real user's own session, resumed or new.
#[derive(Debug)]
pub struct SwitchBackOutcome {
    pub user: UserView,
    pub tenant: TenantRef,
    pub session: SessionView,
    /// The secret of a new session; `None` when the original session was resumed (its holder
    /// still has it).
    pub token: Option<SessionToken>,
    pub is_force_change_password: bool,
    /// A JWT of the session answered; none while the password must be changed.
    pub jwt: Option<SessionJwt>,
}

impl Identity {
    /// Signs a customer-support user into a client tenant their tenant serves (see
    /// [`Impersonator::may_support`]), acting there as its administrator. `original` is the
    /// caller named by the login's bearer, if any: that session of the same user stays open for
    /// [`Self::switch_back`].
    pub async fn login_as_customer_support(
        &self,
        original: Option<&Caller>,
        user_name: &str,
        password: &str,
        client_tenant_id: &str,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome> {
        let (credentials, client_tenant_id) = parse_request(user_name, password, "client_tenant_id", client_tenant_id)?;
        let real = self.prove_real_user(original, credentials, meta).await?;
        let client = self.store.get_tenant(client_tenant_id).await?;
        let impersonator = Impersonator {
            user: &real.user,
            served: &real.tenant.served_tenant_ids,
        };
        if let Err(e) = impersonator.may_support(client.as_ref()) {
            return Err(self.refused(&real, SessionKind::CustomerSupport, e, meta).await);
        }
        let client = client.ok_or(Error::NotFound("tenant"))?;
        let acting = real.user.clone();
        self.open_impersonation(&real, acting, client, SessionKind::CustomerSupport, meta)
            .await
    }

    /// Signs a user in as another user (see [`Impersonator::may_proxy`]). `original` is as for
    /// [`Self::login_as_customer_support`].
    pub async fn proxy_login(
        &self,
        original: Option<&Caller>,
        user_name: &str,
        password: &str,
        proxy_user_id: &str,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome> {
        let (credentials, proxy_user_id) = parse_request(user_name, password, "proxy_user_id", proxy_user_id)?;
        let real = self.prove_real_user(original, credentials, meta).await?;
        let target = self.store.get_user(proxy_user_id).await?;
        let target_tenant = match &target {
            Some(t) if t.tenant_id == real.tenant.tenant_id => Some(real.tenant.clone()),
            Some(t) => self.store.get_tenant(t.tenant_id).await?,
            None => None,
        };
        let impersonator = Impersonator {
            user: &real.user,
            served: &real.tenant.served_tenant_ids,
        };
        if let Err(e) = impersonator.may_proxy(target.as_ref(), target_tenant.as_ref()) {
            return Err(self.refused(&real, SessionKind::Proxy, e, meta).await);
        }
        let (Some(target), Some(tenant)) = (target, target_tenant) else {
            return Err(Error::NotFound("user"));
        };
        self.open_impersonation(&real, target, tenant, SessionKind::Proxy, meta)
            .await
    }

    /// Ends the caller's proxy or customer-support session and gives the real user their own
    /// session back: the original one, when the login came from it and it is still open;
    /// otherwise a new one, which ends when a session opened by signing in at the time of the
    /// impersonating login would have.
    pub async fn switch_back(&self, caller: &Caller, meta: &RequestMeta) -> Result<SwitchBackOutcome> {
        caller.require(Need::SwitchBack)?;
        let session_id = caller.require_session()?;
        let impersonation = caller.impersonation.ok_or(Error::SessionInvalid)?;
        let current = self.store.get_session(session_id).await?.ok_or(Error::SessionInvalid)?;
        let real = self
            .store
            .get_user(impersonation.impersonator_user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or(Error::SessionInvalid)?;
        let tenant = self.tenant_of(&real).await?;
        let now = self.clock.now();
        let original = match impersonation.original_session_id {
            Some(id) => self
                .store
                .get_session(id)
                .await?
                .filter(|s| s.user_id == Some(real.user_id) && self.session_is_live(s, now)),
            None => None,
        };
        let (session, token) = match original {
            Some(original) => (original, None),
            None => {
                let token = SessionToken::mint();
                let expire_time = (current.create_time + self.sessions.lifetime).max(now);
                let fresh = SessionRecord {
                    user_id: Some(real.user_id),
                    details: session_details(meta),
                    ..SessionRecord::opened(
                        token.hash().as_bytes().to_vec(),
                        real.tenant_id,
                        SessionKind::Password,
                        now,
                        expire_time,
                    )
                };
                (fresh, Some(token))
            }
        };
        let resumed = token.is_none();
        let back_to = if resumed {
            "resumed_session_id"
        } else {
            "new_session_id"
        };
        let audits: Vec<_> = impersonation_audits("impersonation.switched_back", now, meta, &current, real.tenant_id)
            .into_iter()
            .map(|mut audit| {
                audit.details.insert(back_to.to_owned(), session.session_id.to_string());
                audit
            })
            .collect();
        let fresh = if resumed { None } else { Some(&session) };
        let is_force_change_password = must_change_password(session.kind, &real, tenant.password_expiry_days, now);
        let jwt = match is_force_change_password {
            true => None,
            false => Some(self.issue_session_jwt(&session, now).await?),
        };
        let _invalidate = self.invalidate_validations();
        if !self
            .store
            .end_impersonation(session_id, caller.user_id(), fresh, &audits)
            .await?
        {
            return Err(Error::SessionInvalid); // ended meanwhile
        }
        if resumed {
            // Switching back is a use of the original session.
            self.last_use.touch(session.session_id, now);
        }
        tracing::info!(session_id = %session_id, back_to = %session.session_id, resumed, "switched back");
        Ok(SwitchBackOutcome {
            user: real.into(),
            tenant: tenant.into(),
            session: SessionView::new(session, now, true),
            token,
            is_force_change_password,
            jwt,
        })
    }

    /// The impersonated session `session_id`, when it is one and the caller may end it as their own
    /// (it acts as them); `None` for any other session.
    pub(crate) async fn impersonated_session_of(
        &self,
        caller: &Caller,
        session_id: Uuid,
    ) -> Result<Option<SessionRecord>> {
        if Some(session_id) == caller.session_id && !caller.impersonated() {
            return Ok(None); // the caller's own, plain session: no read needed
        }
        Ok(self.store.get_session(session_id).await?.filter(|s| {
            s.impersonator_user_id.is_some() && s.user_id == Some(caller.user_id()) && s.end_time.is_none()
        }))
    }

    /// Ends an impersonated session the caller may end (see [`Self::impersonated_session_of`]),
    /// recording `how` it ended in both tenants. The actor is the real user when they end it from
    /// within, the user acted as when they end it.
    pub(crate) async fn end_impersonated_session(
        &self,
        caller: &Caller,
        session: &SessionRecord,
        how: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        let impersonator = session.impersonator_user_id.ok_or(Error::NotFound("session"))?;
        let impersonator_tenant = self
            .store
            .get_user(impersonator)
            .await?
            .map_or(session.tenant_id, |u| u.tenant_id);
        let actor = match caller.impersonation {
            Some(i) => i.impersonator_user_id,
            None => caller.user_id(),
        };
        let now = self.clock.now();
        let audits: Vec<_> = impersonation_audits("impersonation.ended", now, meta, session, impersonator_tenant)
            .into_iter()
            .map(|mut a| {
                a.actor_user_id = Some(actor);
                a.details.insert("how".to_owned(), how.to_owned());
                a
            })
            .collect();
        let _invalidate = self.invalidate_validations();
        if !self
            .store
            .end_impersonation(session.session_id, caller.user_id(), None, &audits)
            .await?
        {
            return Err(Error::NotFound("session"));
        }
        tracing::info!(session_id = %session.session_id, how, "impersonation ended");
        Ok(())
    }

    /// Proves the real user's password as Login does (same answers, same work, same lockout and
    /// per-address limit), and checks the bearer they sent, if any, to keep for switching back.
    async fn prove_real_user(
        &self,
        original: Option<&Caller>,
        (name, password): (UserName, Password),
        meta: &RequestMeta,
    ) -> Result<RealUser> {
        if let Some(original) = original {
            original.require(Need::KeepForSwitchBack)?;
        }
        let user = self.prove_password(&name, &password, meta).await?.user;
        self.password_login_succeeded(&user, &password).await?;
        let original_session_id = match original {
            None => None,
            Some(caller) if caller.user_id() == user.user_id => caller.session_id,
            Some(_) => {
                return Err(Error::FailedPrecondition(
                    "the authorization metadata names another user's session: send your own, or none".into(),
                ));
            }
        };
        let tenant = self.tenant_of(&user).await?;
        // Its session could only change the password: it may not act as someone else either.
        if must_change_password(
            SessionKind::Password,
            &user,
            tenant.password_expiry_days,
            self.clock.now(),
        ) {
            return Err(Error::PasswordChangeRequired);
        }
        Ok(RealUser {
            user,
            tenant,
            original_session_id,
        })
    }

    async fn tenant_of(&self, user: &UserRecord) -> Result<TenantRecord> {
        self.store
            .get_tenant(user.tenant_id)
            .await?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("user {} has no tenant", user.user_id)))
    }

    /// Records a refused impersonation in the real user's tenant, and hands back the refusal.
    async fn refused(&self, real: &RealUser, kind: SessionKind, refusal: Error, meta: &RequestMeta) -> Error {
        let audit = Audit::new("impersonation.refused", self.clock.now(), meta)
            .tenant(real.tenant.tenant_id)
            .actor(real.user.user_id)
            .detail("kind", kind.as_str())
            .detail("reason", refusal.to_string())
            .build();
        match self.store.insert_audit(&audit).await {
            Ok(()) => refusal,
            Err(e) => e.into(),
        }
    }

    /// Opens the impersonated session: `acting` in `tenant`, with `real` behind it.
    async fn open_impersonation(
        &self,
        real: &RealUser,
        acting: UserRecord,
        tenant: TenantRecord,
        kind: SessionKind,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome> {
        let now = self.clock.now();
        let token = SessionToken::mint();
        let expire_time = now + self.sessions.impersonation_lifetime;
        let session = SessionRecord {
            user_id: Some(acting.user_id),
            impersonator_user_id: Some(real.user.user_id),
            original_session_id: real.original_session_id,
            impersonator_user_name: Some(real.user.user_name.clone()),
            details: session_details(meta),
            ..SessionRecord::opened(
                token.hash().as_bytes().to_vec(),
                tenant.tenant_id,
                kind,
                now,
                expire_time,
            )
        };
        let mut audits = impersonation_audits("impersonation.started", now, meta, &session, real.tenant.tenant_id);
        if let Some(original) = real.original_session_id {
            for audit in &mut audits {
                audit
                    .details
                    .insert("original_session_id".to_owned(), original.to_string());
            }
        }
        let jwt = self.issue_session_jwt(&session, now).await?;
        self.store.start_impersonation(&session, &audits).await?;
        tracing::info!(
            impersonator = %real.user.user_id, user_id = %acting.user_id, tenant_id = %tenant.tenant_id,
            session_id = %session.session_id, kind = kind.as_str(), "impersonation started"
        );
        Ok(LoginOutcome {
            user: acting.into(),
            tenant: tenant.into(),
            session: SessionView::new(session, now, true),
            token,
            is_force_change_password: false,
            jwt: Some(jwt),
        })
    }
}

/// Parses an impersonating login's credentials and the id it names (`field`), naming every bad
/// field at once.
fn parse_request(user_name: &str, password: &str, field: &str, id: &str) -> Result<((UserName, Password), Uuid)> {
    let id = match id {
        "" => Err(FieldViolation::new(field, "must not be empty")),
        id => Uuid::parse_str(id).map_err(|_| FieldViolation::new(field, "must be an id as returned by this server")),
    };
    match (parse_credentials(user_name, password), id) {
        (Ok(credentials), Ok(id)) => Ok((credentials, id)),
        (credentials, id) => {
            let mut violations = match credentials {
                Err(Error::InvalidArgument(violations)) => violations,
                _ => Vec::new(),
            };
            violations.extend(id.err());
            Err(Error::InvalidArgument(violations))
        }
    }
}

/// The events of one step of an impersonation: one in the real user's tenant and one in the
/// tenant acted in (one event when they are the same), each naming the real user as actor and
/// the user acted as as subject.
fn impersonation_audits(
    action: &str,
    at: DateTime<Utc>,
    meta: &RequestMeta,
    session: &SessionRecord,
    impersonator_tenant_id: Uuid,
) -> Vec<AuditEvent> {
    let mut tenants = vec![impersonator_tenant_id];
    if session.tenant_id != impersonator_tenant_id {
        tenants.push(session.tenant_id);
    }
    tenants
        .into_iter()
        .map(|tenant| {
            let mut audit = Audit::new(action, at, meta).tenant(tenant);
            if let Some(user_id) = session.user_id {
                audit = audit.subject(user_id);
            }
            let mut audit = audit
                .session(session.session_id)
                .detail("kind", session.kind.as_str())
                .detail("acting_tenant_id", session.tenant_id.to_string())
                .detail("impersonator_tenant_id", impersonator_tenant_id.to_string());
            if let Some(impersonator) = session.impersonator_user_id {
                audit = audit.actor(impersonator);
            }
            audit.build()
        })
        .collect()
}
