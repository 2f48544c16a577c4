//! Administrators' view of a user's sessions: list them, end one or all. The same tenant rules as
//! the other administrative calls; audit events go to the affected user's tenant, with the user as
//! their subject, so that the user's own trail shows who ended their sessions.

use uuid::Uuid;

use super::authorization::Need;
use super::views::SessionView;
use super::{Caller, Error, Identity, RequestMeta, Result};
use crate::domain::{PageRequest, PageToken};
use crate::store::{SessionsOf, UserRecord};

impl Identity {
    /// A user's sessions, oldest first: the open ones, and the ended ones too when `include_ended`
    /// (until the retention sweep deletes them). The user, or an administrator of their tenant who
    /// holds every role the user holds.
    pub async fn list_user_sessions(
        &self,
        caller: &Caller,
        user_id: Uuid,
        include_ended: bool,
        page: PageRequest,
    ) -> Result<(Vec<SessionView>, Option<PageToken>)> {
        let user = self.user_for_admin(user_id).await?;
        caller.require(Need::ReadCredentialsOf(&user))?;
        let rows = self
            .store
            .list_sessions(SessionsOf::User(user_id), include_ended, page)
            .await?;
        let (rows, next) = page.finish(rows, |s| s.session_id);
        Ok((rows.into_iter().map(|s| self.view(s, caller)).collect(), next))
    }

    /// Ends one open session of a user (`session_id`), or all of them (`None`); answers how many
    /// ended. An administrator of the user's tenant who holds every role the user holds.
    pub async fn revoke_user_sessions(
        &self,
        caller: &Caller,
        user_id: Uuid,
        session_id: Option<Uuid>,
        meta: &RequestMeta,
    ) -> Result<u64> {
        let user = self.user_for_admin(user_id).await?;
        caller.require(Need::ChangeUser(&user))?;
        let _invalidate = self.invalidate_validations();
        match session_id {
            Some(session_id) => {
                let audit = super::audit::Audit::new("session.revoked", self.clock.now(), meta)
                    .tenant(user.tenant_id)
                    .actor(caller.user_id())
                    .subject(user.user_id)
                    .session(session_id)
                    .build();
                if !self.store.end_session(session_id, user.user_id, &audit).await? {
                    return Err(Error::NotFound("session"));
                }
                Ok(1)
            }
            None => {
                let audit = super::audit::Audit::new("session.revoked_all", self.clock.now(), meta)
                    .tenant(user.tenant_id)
                    .actor(caller.user_id())
                    .subject(user.user_id)
                    .build();
                Ok(self.store.end_user_sessions(user.user_id, None, &audit).await?)
            }
        }
    }

    async fn user_for_admin(&self, user_id: Uuid) -> Result<UserRecord> {
        self.store.get_user(user_id).await?.ok_or(Error::NotFound("user"))
    }
}
