//! The password life cycle: proving a password (with brute-force lockout), a user changing their
//! own, an administrator setting one, unlocking an account, and when a password must be changed.
//!
//! A password change ends every other session of the user (ASVS 5.0 V7) and keeps their user
//! access tokens: a token is a credential of its own, revoked on its own.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::audit::{Audit, RequestMeta};
use super::authorization::Need;
use super::login_failures::ClientAddress;
use super::views::UserView;
use super::{Caller, Error, Identity, Result};
use crate::domain::{
    LockoutPolicy, MAX_CONSECUTIVE_FAILURES, NewPassword, Password, PasswordExpiry, PasswordRules, SessionKind,
    UserName,
};
use crate::store::{PasswordChange, PasswordRehash, TenantRecord, UserGuard, UserRecord, UserSigningIn};

/// Whether a session of `kind` for `user` counts as opened with a password that must now be
/// changed: an administrator set it, or it outlived the user's tenant's expiry policy
/// (`password_expiry_days`). Only password sessions: a session opened with a user access token or
/// through single sign-on did not use the password.
pub(crate) fn must_change_password(
    kind: SessionKind,
    user: &UserRecord,
    password_expiry_days: Option<i32>,
    now: DateTime<Utc>,
) -> bool {
    kind == SessionKind::Password
        && (user.force_change_password
            || PasswordExpiry::from_days(password_expiry_days)
                .unwrap_or_default()
                .is_expired(user.password_change_time, now))
}

/// Whether an account refuses password logins at `now`: a temporary lock, or the most
/// consecutive failures, which only an administrator clears.
pub(crate) fn is_locked(user: &UserRecord, now: DateTime<Utc>) -> bool {
    user.failed_login_count >= MAX_CONSECUTIVE_FAILURES || user.locked_until.is_some_and(|until| until > now)
}

/// The rules a tenant's new passwords must meet.
pub(crate) fn password_rules(tenant: &TenantRecord) -> PasswordRules {
    PasswordRules::from_stored(tenant.min_password_length)
}

/// A tenant's lockout settings.
pub(crate) fn lockout_policy(tenant: &TenantRecord) -> LockoutPolicy {
    LockoutPolicy::from_stored(
        tenant.lockout_failures,
        tenant.lockout_seconds,
        tenant.max_lockout_seconds,
    )
}

/// The names a user's password must not be made of.
fn own_names(user: &UserRecord) -> [&str; 4] {
    [
        &user.user_name,
        &user.profile.email,
        &user.profile.first_name,
        &user.profile.last_name,
    ]
}

impl Identity {
    /// Proves a user's password: what Login and ChangePassword share.
    ///
    /// An address that failed too often lately is refused at once, before any hashing
    /// ([`Error::TooManyFailedLogins`]). Otherwise every failure — unknown user, disabled user,
    /// locked account, wrong password — costs one password check and answers
    /// [`Error::InvalidCredentials`] with the same message: a locked account's password is
    /// checked too, and the answer is the same whether it was right or not. A wrong password
    /// counts against the account, and the failure that reaches the tenant's threshold locks it.
    pub(crate) async fn prove_password(
        &self,
        name: &UserName,
        password: &Password,
        meta: &RequestMeta,
    ) -> Result<UserSigningIn> {
        let client = ClientAddress::of(meta);
        let throttle = &self.password_login_failures;
        throttle
            .check(&client)
            .map_err(|retry_after| Error::TooManyFailedLogins { retry_after })?;
        let found = self.store.find_user_signing_in(&name.key()).await?;
        let user = found.as_ref().map(|f| &f.user);
        let usable = user.filter(|u| !u.disabled);
        let verified = self
            .hasher
            .verify(password, usable.map(|u| u.password_hash.as_str()))
            .await?;
        let now = self.clock.now();
        let locked = usable.is_some_and(|u| is_locked(u, now));
        if let (true, false, Some(found)) = (verified, locked, found.as_ref().filter(|f| !f.user.disabled)) {
            return Ok(found.clone());
        }
        throttle.record_failure(&client);
        let failure = match user {
            None => "unknown_user",
            Some(u) if u.disabled => "user_disabled",
            Some(_) if locked => "locked",
            Some(_) => "wrong_password",
        };
        let mut audit = Audit::new("login.failed", now, meta)
            .detail("user_name", name.as_str())
            .detail("failure", failure);
        if let Some(u) = user {
            audit = audit.subject(u.user_id).tenant(u.tenant_id);
        }
        self.count_failure(found.as_ref(), audit.build(), meta).await?;
        tracing::info!(failure, "login failed");
        Err(Error::InvalidCredentials)
    }

    /// Records a failed password proof, counting it against the account it names when that is
    /// enabled and not locked, and locks the account when the count reaches the tenant's
    /// threshold (for good at the most consecutive failures), recording `login.locked`.
    ///
    /// Every failure — unknown user, disabled user, locked account, wrong password — runs the
    /// same statements (the count's update matches no row when it is not to count; the lockout
    /// policy came with the user, in the lookup every failure made), so that the database's work
    /// does not tell them apart. Only the failure that locks an account writes once more.
    async fn count_failure(
        &self,
        found: Option<&UserSigningIn>,
        failed: crate::domain::AuditEvent,
        meta: &RequestMeta,
    ) -> Result<()> {
        let now = failed.time;
        let user = found.map(|f| &f.user);
        let counted = user.filter(|u| !u.disabled).map(|u| u.user_id);
        let failures = self
            .store
            .record_login_failure(counted, MAX_CONSECUTIVE_FAILURES, &failed)
            .await?;
        let policy = found.map_or_else(LockoutPolicy::default, |f| {
            LockoutPolicy::from_stored(f.lockout_failures, f.lockout_seconds, f.max_lockout_seconds)
        });
        let (Some(user), Some(failures)) = (user, failures) else {
            return Ok(()); // nothing counted: no account, disabled, or locked meanwhile
        };
        let locked = Audit::new("login.locked", now, meta)
            .tenant(user.tenant_id)
            .subject(user.user_id)
            .detail("failures", failures.to_string());
        if failures >= MAX_CONSECUTIVE_FAILURES {
            let audit = locked.detail("locked_until", "unlocked by an administrator").build();
            self.store.insert_audit(&audit).await?;
            tracing::warn!(user_id = %user.user_id, failures, "account locked until an administrator unlocks it");
            return Ok(());
        }
        if let Some(lock) = policy.lock_after(failures) {
            let until = now + lock;
            let audit = locked.detail("locked_until", until.to_rfc3339()).build();
            self.store.lock_user(user.user_id, until, &audit).await?;
            tracing::warn!(user_id = %user.user_id, failures, %until, "account locked after failed logins");
        }
        Ok(())
    }

    /// After a password login succeeded: clears the account's failure count and lock, and hashes
    /// the password again when its stored hash was made with other argon2 parameters, so that a
    /// raised cost reaches every user who logs in. A rehash refused for a full hashing queue waits
    /// for the next login.
    pub(crate) async fn password_login_succeeded(&self, user: &UserRecord, password: &Password) -> Result<()> {
        let reset = user.failed_login_count > 0 || user.locked_until.is_some();
        let rehash = if self.hasher.is_current(&user.password_hash) {
            None
        } else {
            match self.hasher.hash(password).await {
                Ok(new_hash) => Some(PasswordRehash {
                    old_hash: user.password_hash.clone(),
                    new_hash,
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "password not hashed again with the current parameters; next login");
                    None
                }
            }
        };
        if reset || rehash.is_some() {
            self.store
                .record_login_success(user.user_id, reset, rehash.as_ref())
                .await?;
        }
        Ok(())
    }

    /// Changes a user's password, proven with the current one, as [`Self::prove_password`] proves
    /// it (same answers, same work, counted by the lockout). Every other open session of the user
    /// ends; the caller's own session (when `caller` came with one of that user's sessions) stays
    /// open, and the user's access tokens stay valid. The must-change mark, the failure count and
    /// any lock are cleared.
    pub async fn change_password(
        &self,
        caller: Option<&Caller>,
        user_name: &str,
        current_password: &str,
        new_password: &str,
        meta: &RequestMeta,
    ) -> Result<()> {
        if let Some(caller) = caller {
            caller.require(Need::ChangeOwnPassword)?;
        }
        // Every bad field at once; the new password's size is checked before any hashing, and its
        // rules once the user (their tenant and names) is known.
        let (name, current, new_size) = (
            UserName::parse("user_name", user_name),
            Password::for_login("current_password", current_password),
            Password::for_login("new_password", new_password),
        );
        let (Ok(name), Ok(current), Ok(_)) = (&name, &current, &new_size) else {
            let violations = [name.err(), current.err(), new_size.err()];
            return Err(Error::InvalidArgument(violations.into_iter().flatten().collect()));
        };
        let user = self.prove_password(name, current, meta).await?.user;
        let keep_session = match caller {
            None => None,
            Some(caller) if caller.user_id() == user.user_id => caller.session_id,
            Some(_) => {
                return Err(Error::FailedPrecondition(
                    "the authorization metadata names another user's session: send your own, or none".into(),
                ));
            }
        };
        let tenant = self
            .store
            .get_tenant(user.tenant_id)
            .await?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("user {} has no tenant", user.user_id)))?;
        let new = NewPassword::parse(
            "new_password",
            new_password,
            &password_rules(&tenant),
            &own_names(&user),
        )?;
        if new.password() == current {
            return Err(Error::invalid("new_password", "must differ from the current password"));
        }
        let new_hash = self.hasher.hash(new.password()).await?;
        let mut audit = Audit::new("user.password_changed", self.clock.now(), meta)
            .tenant(user.tenant_id)
            .actor(user.user_id)
            .subject(user.user_id);
        if let Some(kept) = keep_session {
            audit = audit.session(kept);
        }
        let change = PasswordChange {
            user_id: user.user_id,
            old_hash: user.password_hash,
            new_hash,
            keep_session,
        };
        let _invalidate = self.invalidate_validations();
        if !self.store.change_password(&change, &audit.build()).await? {
            return Err(Error::ConcurrentChange("password"));
        }
        tracing::info!(user_id = %change.user_id, "password changed");
        Ok(())
    }

    /// Sets a user's password as an administrator of their tenant who holds every role the user
    /// holds. Unless `force_change` is false the user must change it at their next login. Every
    /// session of the user ends (the caller's own too, when they set their own); the user's
    /// access tokens stay valid; a lock is cleared.
    pub async fn set_user_password(
        &self,
        caller: &Caller,
        user_id: Uuid,
        password: &str,
        force_change: bool,
        meta: &RequestMeta,
    ) -> Result<UserView> {
        Password::for_login("password", password)?;
        let user = self.store.get_user(user_id).await?.ok_or(Error::NotFound("user"))?;
        caller.require(Need::SetPasswordOf(&user))?;
        let tenant = self
            .store
            .get_tenant(user.tenant_id)
            .await?
            .ok_or(Error::NotFound("tenant"))?;
        let new = NewPassword::parse("password", password, &password_rules(&tenant), &own_names(&user))?;
        let password_hash = self.hasher.hash(new.password()).await?;
        let guard = UserGuard {
            user_id,
            roles: user.roles,
            keep_an_enabled_holder_of: None,
        };
        let audit = Audit::new("user.password_set", self.clock.now(), meta)
            .tenant(user.tenant_id)
            .actor(caller.user_id())
            .subject(user_id)
            .detail("force_change_password", force_change.to_string())
            .build();
        let _invalidate = self.invalidate_validations();
        let written = self
            .store
            .set_user_password(&guard, &password_hash, force_change, &audit)
            .await?;
        super::admin::user_written(written)
    }

    /// Clears a user's lock and failure count: an administrator of their tenant who holds every
    /// role the user holds.
    pub async fn unlock_user(&self, caller: &Caller, user_id: Uuid, meta: &RequestMeta) -> Result<UserView> {
        let user = self.store.get_user(user_id).await?.ok_or(Error::NotFound("user"))?;
        caller.require(Need::ChangeUser(&user))?;
        let guard = UserGuard {
            user_id,
            roles: user.roles,
            keep_an_enabled_holder_of: None,
        };
        let audit = Audit::new("user.unlocked", self.clock.now(), meta)
            .tenant(user.tenant_id)
            .actor(caller.user_id())
            .subject(user_id)
            .detail("failures", user.failed_login_count.to_string())
            .build();
        let written = self.store.unlock_user(&guard, &audit).await?;
        super::admin::user_written(written)
    }
}
