use chrono::Duration;
use uuid::Uuid;

use super::audit::{Audit, RequestMeta};
use super::authorization::Need;
use super::views::{AccessTokenView, SessionView};
use super::{Caller, Error, Identity, Result};
use crate::auth::AccessTokenSecret;
use crate::domain::{AccessTokenName, PageRequest, PageToken, UserName, check_description};
use crate::store::{AccessTokenRecord, SessionsOf, TokenChanges, TokenRotation, UserRecord};

/// No token lives longer than this, whatever a tenant allows.
pub const MAX_EXPIRATION_DAYS: i32 = 3650;

/// A token to create for the caller.
#[derive(Debug, Clone, Default)]
pub struct NewAccessToken {
    pub name: String,
    pub description: String,
    /// Days until it expires; `None` means the tenant's cap, or never when the tenant sets none.
    pub expiration_days: Option<i32>,
}

impl Identity {
    /// Creates a token for the caller and returns its secret, this once.
    pub async fn create_access_token(
        &self,
        caller: &Caller,
        new: NewAccessToken,
        meta: &RequestMeta,
    ) -> Result<(AccessTokenView, AccessTokenSecret)> {
        caller.require(Need::MintOwnAccessToken)?;
        let name = AccessTokenName::parse("user_access_token_name", &new.name)?;
        check_description("description", &new.description)?;
        let tenant = self
            .store
            .get_tenant(caller.user.tenant_id)
            .await?
            .ok_or(Error::NotFound("tenant"))?;
        let days = expiration_days(new.expiration_days, tenant.max_access_token_days)?;
        let now = self.clock.now();
        let secret = AccessTokenSecret::mint();
        let record = AccessTokenRecord {
            token_id: Uuid::now_v7(),
            user_id: caller.user_id(),
            name: name.as_str().to_owned(),
            name_key: name.key(),
            description: new.description,
            token_hash: secret.hash().as_bytes().to_vec(),
            hint: secret.hint(),
            create_time: now,
            expire_time: days.map(|d| now + Duration::days(i64::from(d))),
            last_use_time: None,
            revoke_time: None,
        };
        let audit = self.token_audit(
            Audit::new("user_access_token.created", now, meta),
            caller,
            &caller.user,
            &record,
        );
        if !self
            .store
            .insert_access_token(&record, i64::from(self.max_access_tokens_per_user), &audit)
            .await?
        {
            return Err(Error::TokenLimitReached(self.max_access_tokens_per_user));
        }
        Ok((self.token_view(record, &caller.user), secret))
    }

    /// A token by name, of the caller or (for administrators) of another user of their tenant.
    pub async fn get_access_token(&self, caller: &Caller, name: &str, user_name: &str) -> Result<AccessTokenView> {
        let owner = self.token_owner(caller, user_name).await?;
        let record = self.find_token(&owner, name).await?;
        Ok(self.token_view(record, &owner))
    }

    /// A user's tokens, revoked ones included, oldest first.
    pub async fn list_access_tokens(
        &self,
        caller: &Caller,
        user_name: &str,
        page: PageRequest,
    ) -> Result<(Vec<AccessTokenView>, Option<PageToken>)> {
        let owner = self.token_owner(caller, user_name).await?;
        let rows = self.store.list_access_tokens(owner.user_id, page).await?;
        let (rows, next) = page.finish(rows, |t| t.token_id);
        Ok((rows.into_iter().map(|r| self.token_view(r, &owner)).collect(), next))
    }

    /// Renames and describes one of the caller's live tokens. Only the fields given are written.
    pub async fn update_access_token(
        &self,
        caller: &Caller,
        name: &str,
        new_name: &str,
        description: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<AccessTokenView> {
        caller.require(Need::ChangeOwn)?;
        let record = self.find_live_token(&caller.user, name).await?;
        let new_name = match new_name {
            "" => None,
            raw => Some(AccessTokenName::parse("new_name", raw)?),
        };
        if let Some(description) = description {
            check_description("description", description)?;
        }
        let mut audit = Audit::new("user_access_token.updated", self.clock.now(), meta);
        if let Some(new_name) = &new_name {
            audit = audit.detail("new_name", new_name.as_str());
        }
        let audit = self.token_audit(audit, caller, &caller.user, &record);
        let changes = TokenChanges {
            token_id: record.token_id,
            name: new_name.map(|n| (n.as_str().to_owned(), n.key())),
            description: description.map(str::to_owned),
        };
        let updated = self
            .store
            .update_access_token(&changes, &audit)
            .await?
            .ok_or(Error::NotFound("user access token"))?;
        Ok(self.token_view(updated, &caller.user))
    }

    /// Gives one of the caller's live tokens a new secret. The old secret stops working at once,
    /// and every session opened with the token ends: rotation is how a leak is contained, and a
    /// session opened with the leaked secret would otherwise outlive it.
    pub async fn rotate_access_token(
        &self,
        caller: &Caller,
        name: &str,
        meta: &RequestMeta,
    ) -> Result<(AccessTokenView, AccessTokenSecret)> {
        caller.require(Need::MintOwnAccessToken)?;
        let record = self.find_live_token(&caller.user, name).await?;
        let now = self.clock.now();
        if record.expire_time.is_some_and(|end| now >= end) {
            return Err(Error::FailedPrecondition(
                "the token has expired: create a new one".into(),
            ));
        }
        let secret = AccessTokenSecret::mint();
        let audit = self.token_audit(
            Audit::new("user_access_token.rotated", now, meta),
            caller,
            &caller.user,
            &record,
        );
        let _invalidate = self.invalidate_validations();
        let rotation = TokenRotation {
            token_id: record.token_id,
            new_hash: secret.hash().as_bytes().to_vec(),
            hint: secret.hint(),
            old_hash: record.token_hash,
        };
        let rotated = self
            .store
            .rotate_access_token(&rotation, &audit)
            .await?
            .ok_or(Error::ConcurrentChange("user access token"))?;
        Ok((self.token_view(rotated, &caller.user), secret))
    }

    /// Revokes one of the caller's live tokens; every session opened with it ends at once.
    pub async fn revoke_access_token(&self, caller: &Caller, name: &str, meta: &RequestMeta) -> Result<()> {
        caller.require(Need::ChangeOwn)?;
        let record = self.find_live_token(&caller.user, name).await?;
        let now = self.clock.now();
        let audit = self.token_audit(
            Audit::new("user_access_token.revoked", now, meta),
            caller,
            &caller.user,
            &record,
        );
        let _invalidate = self.invalidate_validations();
        if !self.store.revoke_access_token(record.token_id, &audit).await? {
            return Err(Error::NotFound("user access token"));
        }
        Ok(())
    }

    /// The sessions opened with a token: open ones, and ended ones too when asked.
    pub async fn list_access_token_sessions(
        &self,
        caller: &Caller,
        name: &str,
        user_name: &str,
        include_ended: bool,
        page: PageRequest,
    ) -> Result<(Vec<SessionView>, Option<PageToken>)> {
        let owner = self.token_owner(caller, user_name).await?;
        let token = self.find_token(&owner, name).await?;
        let rows = self
            .store
            .list_sessions(SessionsOf::AccessToken(token.token_id), include_ended, page)
            .await?;
        let (rows, next) = page.finish(rows, |s| s.session_id);
        Ok((rows.into_iter().map(|s| self.view(s, caller)).collect(), next))
    }

    /// Whose tokens a call is about: the caller's when no user is named. A user of another tenant
    /// is answered as if they did not exist; another user of the same tenant needs an administrator.
    async fn token_owner(&self, caller: &Caller, user_name: &str) -> Result<UserRecord> {
        if user_name.trim().is_empty() {
            caller.require(Need::ReadOwn)?;
            return Ok(caller.user.clone());
        }
        let name = UserName::parse("user_name", user_name)?;
        let user = self
            .store
            .find_user_by_name(&name.key())
            .await?
            .ok_or(Error::NotFound("user"))?;
        caller.require(Need::ReadCredentialsOf(&user))?;
        Ok(user)
    }

    async fn find_token(&self, owner: &UserRecord, name: &str) -> Result<AccessTokenRecord> {
        let name = AccessTokenName::parse("user_access_token_name", name)?;
        self.store
            .find_access_token(owner.user_id, &name.key())
            .await?
            .ok_or(Error::NotFound("user access token"))
    }

    async fn find_live_token(&self, owner: &UserRecord, name: &str) -> Result<AccessTokenRecord> {
        let record = self.find_token(owner, name).await?;
        if record.revoke_time.is_some() {
            return Err(Error::NotFound("user access token"));
        }
        Ok(record)
    }

    fn token_view(&self, record: AccessTokenRecord, owner: &UserRecord) -> AccessTokenView {
        let pending = self.token_last_use.pending(record.token_id);
        let last_use_time = match (record.last_use_time, pending) {
            (Some(stored), Some(pending)) => Some(stored.max(pending)),
            (stored, pending) => stored.or(pending),
        };
        AccessTokenView {
            name: record.name,
            description: record.description,
            user_name: owner.user_name.clone(),
            create_time: record.create_time,
            expire_time: record.expire_time,
            last_use_time,
            revoke_time: record.revoke_time,
            hint: record.hint,
        }
    }

    /// Completes the audit event of a change to `owner`'s token.
    fn token_audit(
        &self,
        audit: Audit,
        caller: &Caller,
        owner: &UserRecord,
        record: &AccessTokenRecord,
    ) -> crate::domain::AuditEvent {
        let mut audit = audit
            .tenant(owner.tenant_id)
            .actor(caller.user_id())
            .subject(owner.user_id)
            .detail("user_access_token_name", &record.name);
        if let Some(session) = caller.session_id {
            audit = audit.session(session);
        }
        audit.build()
    }
}

/// The lifetime a new token gets: what was asked, within the tenant's cap (0 = no cap).
fn expiration_days(asked: Option<i32>, tenant_cap: i32) -> Result<Option<i32>> {
    let limit = if tenant_cap > 0 {
        tenant_cap.min(MAX_EXPIRATION_DAYS)
    } else {
        MAX_EXPIRATION_DAYS
    };
    match asked {
        None if tenant_cap > 0 => Ok(Some(limit)),
        None => Ok(None),
        Some(days) if (1..=limit).contains(&days) => Ok(Some(days)),
        Some(_) => {
            let why = if tenant_cap > 0 { " (your tenant's limit)" } else { "" };
            Err(Error::invalid(
                "expiration_days",
                format!("must be between 1 and {limit} days{why}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_days_respect_the_tenant_cap() {
        assert_eq!(expiration_days(None, 0).unwrap(), None, "no cap: never expires");
        assert_eq!(
            expiration_days(None, 30).unwrap(),
            Some(30),
            "omitted: the tenant's cap"
        );
        assert_eq!(expiration_days(Some(7), 30).unwrap(), Some(7));
        assert!(expiration_days(Some(31), 30).is_err());
        assert!(expiration_days(Some(0), 0).is_err());
        assert!(expiration_days(Some(MAX_EXPIRATION_DAYS + 1), 0).is_err());
        assert_eq!(
            expiration_days(Some(MAX_EXPIRATION_DAYS), 0).unwrap(),
            Some(MAX_EXPIRATION_DAYS)
        );
    }
}
