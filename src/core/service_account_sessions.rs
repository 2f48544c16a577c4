//! Service-account sessions: the deprecated CloudBees createSession, getSessions, modifySession
//! and deleteSession. An administrator opens a session for a service account of their tenant
//! with an expiry they choose (read in a time zone; see [`Expiration`]), hands its token to the
//! automation, and may move the expiry or end the session. The token has the format and storage
//! rules of a user's session token; other services check it with ValidateSession, which says it
//! is a service account's. It opens none of identityd's own calls (see [`Identity::authenticate`]).

use uuid::Uuid;

use super::audit::{Audit, RequestMeta};
use super::authorization::Need;
use super::session_details::session_details;
use super::views::SessionView;
use super::{Caller, Error, Identity, Result};
use crate::auth::SessionToken;
use crate::domain::{Expiration, FieldViolation, PageRequest, PageToken, ServiceAccountName, SessionKind};
use crate::store::{ServiceAccountRecord, SessionRecord, SessionsOf};

impl Identity {
    /// Opens a session for the service account named `name` in the caller's tenant, expiring at
    /// `expiration_date` read in `time_zone`; answers it with its token, which is never shown
    /// again.
    pub async fn create_service_account_session(
        &self,
        caller: &Caller,
        name: &str,
        expiration_date: &str,
        time_zone: &str,
        meta: &RequestMeta,
    ) -> Result<(SessionView, SessionToken)> {
        caller.require(Need::MintServiceAccountSession(caller.tenant_id))?;
        let now = self.clock.now();
        let (name, expiration) = match (
            ServiceAccountName::parse("service_account_name", name),
            self.expiration(expiration_date, time_zone),
        ) {
            (Ok(name), Ok(expiration)) => (name, expiration),
            (name, expiration) => {
                let mut violations: Vec<FieldViolation> = name.err().into_iter().collect();
                violations.extend(expiration.err().into_iter().flatten());
                return Err(Error::InvalidArgument(violations));
            }
        };
        let account = self.service_account_named(caller.tenant_id, &name).await?;
        let token = SessionToken::mint();
        let session = SessionRecord {
            service_account_id: Some(account.service_account_id),
            service_account_name: Some(account.name.clone()),
            details: session_details(meta),
            ..SessionRecord::opened(
                token.hash().as_bytes().to_vec(),
                account.tenant_id,
                SessionKind::ServiceAccount,
                now,
                expiration.instant(),
            )
        };
        let audit = Audit::new("service_account_session.created", now, meta)
            .tenant(account.tenant_id)
            .actor(caller.user_id())
            .session(session.session_id)
            .detail("service_account_name", &account.name)
            .detail("expire_time", session.expire_time.to_rfc3339())
            .build();
        self.store.insert_session(&session, &audit).await?;
        tracing::info!(session_id = %session.session_id, service_account = %account.name, "service-account session opened");
        Ok((SessionView::new(session, now, false), token))
    }

    /// The sessions of the service account named `name` in the caller's tenant that have not
    /// been ended, oldest first.
    pub async fn list_service_account_sessions(
        &self,
        caller: &Caller,
        name: &str,
        page: PageRequest,
    ) -> Result<(Vec<SessionView>, Option<PageToken>)> {
        caller.require(Need::ReadTenant(caller.tenant_id, "service account"))?;
        let name = ServiceAccountName::parse("service_account_name", name)?;
        let account = self.service_account_named(caller.tenant_id, &name).await?;
        let rows = self
            .store
            .list_sessions(SessionsOf::ServiceAccount(account.service_account_id), false, page)
            .await?;
        let (rows, next) = page.finish(rows, |s| s.session_id);
        Ok((rows.into_iter().map(|s| self.view(s, caller)).collect(), next))
    }

    /// Moves the expiry of an open, unexpired service-account session.
    pub async fn update_service_account_session(
        &self,
        caller: &Caller,
        session_id: Uuid,
        expiration_date: &str,
        time_zone: &str,
        meta: &RequestMeta,
    ) -> Result<SessionView> {
        let session = self.service_account_session(caller, session_id).await?;
        let expiration = self
            .expiration(expiration_date, time_zone)
            .map_err(Error::InvalidArgument)?;
        let audit = Audit::new("service_account_session.updated", self.clock.now(), meta)
            .tenant(session.tenant_id)
            .actor(caller.user_id())
            .session(session_id)
            .detail(
                "service_account_name",
                session.service_account_name.clone().unwrap_or_default(),
            )
            .detail("expire_time", expiration.instant().to_rfc3339())
            .build();
        // Cached validations carry the old expiry.
        let _invalidate = self.invalidate_validations();
        if !self
            .store
            .set_service_account_session_expiry(session_id, expiration.instant(), &audit)
            .await?
        {
            return Err(Error::NotFound("session"));
        }
        let session = self
            .store
            .get_session(session_id)
            .await?
            .ok_or(Error::NotFound("session"))?;
        Ok(self.view(session, caller))
    }

    /// Ends a service-account session; its token is refused from then on, on every instance.
    pub async fn delete_service_account_session(
        &self,
        caller: &Caller,
        session_id: Uuid,
        meta: &RequestMeta,
    ) -> Result<()> {
        let session = self.service_account_session(caller, session_id).await?;
        let audit = Audit::new("service_account_session.deleted", self.clock.now(), meta)
            .tenant(session.tenant_id)
            .actor(caller.user_id())
            .session(session_id)
            .detail("service_account_name", session.service_account_name.unwrap_or_default())
            .build();
        let _invalidate = self.invalidate_validations();
        if !self.store.end_service_account_session(session_id, &audit).await? {
            return Err(Error::NotFound("session"));
        }
        Ok(())
    }

    fn expiration(&self, date: &str, zone: &str) -> std::result::Result<Expiration, Vec<FieldViolation>> {
        Expiration::parse(date, zone, self.clock.now(), self.sessions.service_account_max_lifetime)
    }

    async fn service_account_named(&self, tenant_id: Uuid, name: &ServiceAccountName) -> Result<ServiceAccountRecord> {
        self.store
            .find_service_account(tenant_id, &name.key())
            .await?
            .ok_or(Error::NotFound("service account"))
    }

    /// A service-account session the caller may change. A user's session is not one: answered
    /// as not found, as is one of another tenant.
    async fn service_account_session(&self, caller: &Caller, session_id: Uuid) -> Result<SessionRecord> {
        let session = self
            .store
            .get_session(session_id)
            .await?
            .filter(|s| s.service_account_id.is_some())
            .ok_or(Error::NotFound("session"))?;
        caller.require(Need::ManageServiceAccountSessionsIn(session.tenant_id))?;
        Ok(session)
    }
}
