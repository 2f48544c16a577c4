use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::audit::{Audit, RequestMeta};
use super::authorization::Need;
use super::passwords::must_change_password;
use super::views::{SessionView, UserView};
use super::{Caller, Error, Identity, Result};
use crate::auth::{SessionToken, TokenHash};
use crate::domain::{PageRequest, PageToken};
use crate::store::{SessionLookup, SessionRecord, SessionsOf};

/// Who a session acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A user: their id and login name.
    User { user_id: Uuid, user_name: String },
    /// A service account (the deprecated CloudBees createSession): its id and name.
    ServiceAccount { service_account_id: Uuid, name: String },
}

/// The answer to "is this session valid, and whose is it".
#[derive(Debug, Clone)]
pub struct SessionValidity {
    pub session_id: Uuid,
    pub principal: Principal,
    pub tenant_id: Uuid,
    pub expire_time: DateTime<Utc>,
    pub is_force_change_password: bool,
    pub impersonator_user_id: Option<Uuid>,
}

impl Identity {
    /// The hot path: whether a session token is valid now. An unknown, malformed, expired or ended
    /// token is `None`, not an error. A malformed one costs no database query.
    pub async fn validate_session(&self, token: &str) -> Result<Option<SessionValidity>> {
        let Some(token) = SessionToken::parse(token) else {
            return Ok(None);
        };
        let hash = token.hash();
        let lookup = match self.validation_cache.get(hash.as_bytes()) {
            Some(cached) => cached,
            None => {
                let generation = self.validation_cache.generation();
                let Some(lookup) = self.lookup_session(&hash).await? else {
                    return Ok(None);
                };
                self.validation_cache
                    .insert(hash.as_bytes().to_vec(), Arc::clone(&lookup), generation);
                lookup
            }
        };
        let now = self.clock.now();
        if !self.is_live(&lookup, now) {
            return Ok(None);
        }
        self.last_use.touch(lookup.session.session_id, now);
        let (principal, is_force_change_password) = match &lookup.user {
            Some(user) => (
                Principal::User {
                    user_id: user.user_id,
                    user_name: user.user_name.clone(),
                },
                must_change_password(lookup.session.kind, user, lookup.password_expiry_days, now),
            ),
            None => (
                Principal::ServiceAccount {
                    service_account_id: lookup.session.service_account_id.unwrap_or_default(),
                    name: lookup.session.service_account_name.clone().unwrap_or_default(),
                },
                false,
            ),
        };
        Ok(Some(SessionValidity {
            session_id: lookup.session.session_id,
            principal,
            tenant_id: lookup.session.tenant_id,
            expire_time: lookup.session.expire_time,
            is_force_change_password,
            impersonator_user_id: lookup.session.impersonator_user_id,
        }))
    }

    /// The session whose token hashes to `hash`, with what validating it needs. Lookups made at
    /// the same time share queries (see [`super::coalesced_reads`]).
    pub(crate) async fn lookup_session(&self, hash: &TokenHash) -> Result<Option<Arc<SessionLookup>>> {
        let store = &self.store;
        let read = |hashes: Vec<[u8; 32]>| async move {
            let found = store.lookup_sessions(&hashes).await?;
            Ok::<_, crate::store::StoreError>(
                found
                    .into_iter()
                    .filter_map(|lookup| {
                        Some((lookup.session.token_hash.as_slice().try_into().ok()?, Arc::new(lookup)))
                    })
                    .collect(),
            )
        };
        Ok(self.session_lookups.get(hash.0, read).await?)
    }

    /// "Who am I": the caller's user, the name of the tenant they act in, and their current
    /// session (none when the caller uses an access token directly).
    pub async fn current_user(&self, caller: &Caller) -> Result<(UserView, String, Option<SessionView>)> {
        caller.require(Need::WhoAmI)?;
        let session = match caller.session_id {
            Some(id) => Some(self.store.get_session(id).await?.ok_or(Error::SessionInvalid)?),
            None => None,
        };
        Ok((
            caller.user.clone().into(),
            caller.tenant_name.clone(),
            session.map(|s| self.view(s, caller)),
        ))
    }

    /// The caller's open sessions, oldest first.
    pub async fn list_my_sessions(
        &self,
        caller: &Caller,
        page: PageRequest,
    ) -> Result<(Vec<SessionView>, Option<PageToken>)> {
        caller.require(Need::ReadOwn)?;
        let rows = self
            .store
            .list_sessions(SessionsOf::User(caller.user_id()), false, page)
            .await?;
        let (rows, next) = page.finish(rows, |s| s.session_id);
        Ok((rows.into_iter().map(|s| self.view(s, caller)).collect(), next))
    }

    /// Ends one of the caller's sessions. Someone else's session is answered as not found.
    pub async fn revoke_my_session(&self, caller: &Caller, session_id: Uuid, meta: &RequestMeta) -> Result<()> {
        if Some(session_id) == caller.session_id {
            caller.require(Need::LeaveOwnSession)?;
        } else {
            caller.require(Need::ChangeOwn)?;
        }
        // Someone acting as the caller: the caller may end it, and both tenants hear of it.
        if let Some(impersonated) = self.impersonated_session_of(caller, session_id).await? {
            return self
                .end_impersonated_session(caller, &impersonated, "revoked", meta)
                .await;
        }
        let now = self.clock.now();
        let audit = Audit::new("session.revoked", now, meta)
            .tenant(caller.tenant_id)
            .actor(caller.user_id())
            .subject(caller.user_id())
            .session(session_id)
            .build();
        let _invalidate = self.invalidate_validations();
        if !self.store.end_session(session_id, caller.user_id(), &audit).await? {
            return Err(Error::NotFound("session"));
        }
        Ok(())
    }

    /// Ends every session of the caller but the one making this call.
    pub async fn revoke_my_other_sessions(&self, caller: &Caller, meta: &RequestMeta) -> Result<u64> {
        caller.require(Need::ChangeOwn)?;
        let now = self.clock.now();
        let mut audit = Audit::new("session.revoked_others", now, meta)
            .tenant(caller.tenant_id)
            .actor(caller.user_id())
            .subject(caller.user_id());
        if let Some(current) = caller.session_id {
            audit = audit.session(current);
        }
        let _invalidate = self.invalidate_validations();
        let ended = self
            .store
            .end_user_sessions(caller.user_id(), caller.session_id, &audit.build())
            .await?;
        Ok(ended)
    }

    /// A session as its owner sees it, with uses not yet written counted.
    pub(crate) fn view(&self, record: SessionRecord, caller: &Caller) -> SessionView {
        let last_use_time = self
            .last_use
            .pending(record.session_id)
            .map_or(record.last_use_time, |p| p.max(record.last_use_time));
        let current = Some(record.session_id) == caller.session_id;
        SessionView::new(record, last_use_time, current)
    }
}
