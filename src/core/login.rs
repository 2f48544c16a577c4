use uuid::Uuid;

use super::audit::{Audit, RequestMeta};
use super::authorization::Need;
use super::passwords::must_change_password;
use super::session_details::session_details;
use super::session_jwt::SessionJwt;
use super::views::{SessionView, TenantRef, UserView};
use super::{Caller, Error, Identity, Result};
use crate::auth::{AccessTokenSecret, SessionToken};
use crate::domain::{Password, SessionKind, UserName};
use crate::store::{AccessTokenLookup, LinkedIdentityRecord, SessionRecord, SsoSignIn, UserRecord};

/// What a successful login hands back: the user, their tenant, the new session and its token.
#[derive(Debug)]
pub struct LoginOutcome {
    pub user: UserView,
    /// The tenant the session acts in.
    pub tenant: TenantRef,
    pub session: SessionView,
    /// The bearer secret; returned to the caller this once and never stored.
    pub token: SessionToken,
    /// The session was opened with a password that must be changed: it outlived the tenant's
    /// password-expiry policy, or an administrator set it. The session may only change it.
    pub is_force_change_password: bool,
    /// A JWT of the new session, for services that verify offline; none while the password must
    /// be changed, as the session may then do almost nothing.
    pub jwt: Option<SessionJwt>,
}

/// A user about to get a session, with what the session and the login's answer need of their
/// tenant.
pub(crate) struct SigningIn {
    pub(crate) user: UserRecord,
    pub(crate) tenant: TenantRef,
    /// The tenant's password-expiry policy, in days (`None` for never).
    pub(crate) password_expiry_days: Option<i32>,
}

/// What a single sign-on login writes with its session.
pub(crate) struct SsoSession {
    /// The provider's issuer, for the audit event.
    pub(crate) issuer: String,
    /// The ID token, sealed and kept for the provider's logout.
    pub(crate) id_token: secrecy::SecretString,
    /// The link the sign-in makes, if it is the subject's first.
    pub(crate) link: Option<LinkedIdentityRecord>,
    /// The user is new: created with the session.
    pub(crate) new_user: bool,
}

/// Parses the user name and password of a sign-in, naming every bad field at once, as CreateUser
/// does.
pub(crate) fn parse_credentials(user_name: &str, password: &str) -> Result<(UserName, Password)> {
    match (
        UserName::parse("user_name", user_name),
        Password::for_login("password", password),
    ) {
        (Ok(name), Ok(password)) => Ok((name, password)),
        (name, password) => Err(Error::InvalidArgument(
            name.err().into_iter().chain(password.err()).collect(),
        )),
    }
}

impl Identity {
    /// Logs a user in with their user name and password and opens a session.
    ///
    /// Every failure — unknown user, disabled user, locked account, wrong password — costs one
    /// password check and answers [`Error::InvalidCredentials`], so neither the answer nor its
    /// timing says which user names exist or which accounts are locked (see
    /// [`Self::prove_password`]).
    pub async fn login_with_password(
        &self,
        user_name: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome> {
        let (name, password) = parse_credentials(user_name, password)?;
        let found = self.prove_password(&name, &password, meta).await?;
        self.password_login_succeeded(&found.user, &password).await?;
        let tenant = TenantRef {
            tenant_id: found.user.tenant_id,
            name: found.tenant_name,
        };
        let signing_in = SigningIn {
            user: found.user,
            tenant,
            password_expiry_days: found.password_expiry_days,
        };
        self.open_session_for(signing_in, SessionKind::Password, None, None, meta)
            .await
    }

    /// Logs in with a user access token and opens a session linked to it, which ends when the
    /// token is revoked and never outlives the token.
    pub async fn login_with_access_token(&self, token: &str, meta: &RequestMeta) -> Result<LoginOutcome> {
        // A malformed token (the checksum catches typos) costs nothing: not even an audit write,
        // so that garbage cannot be used to load the database.
        if AccessTokenSecret::parse(token).is_none() {
            return Err(Error::InvalidCredentials);
        }
        // Well-formed ones are easy to forge: an address that failed too often is refused here.
        self.admit_token_login(meta)?;
        let lookup = match self.use_access_token(token).await {
            Ok(lookup) => lookup,
            Err(e @ (Error::InvalidCredentials | Error::TokenExpired | Error::TokenRevoked)) => {
                self.token_login_failed(meta, &e).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let signing_in = SigningIn {
            user: lookup.user.clone(),
            tenant: TenantRef {
                tenant_id: lookup.user.tenant_id,
                name: lookup.tenant_name.clone(),
            },
            password_expiry_days: lookup.password_expiry_days,
        };
        self.open_session_for(signing_in, SessionKind::AccessToken, Some(&lookup), None, meta)
            .await
    }

    /// Opens a session of `kind` for a user whose tenant was read with them (so that a login makes
    /// no other read), and records `login.succeeded`. A single sign-on login also creates the
    /// user and the link it brings, and keeps the sealed ID token, in the same transaction.
    pub(crate) async fn open_session_for(
        &self,
        SigningIn {
            user,
            tenant,
            password_expiry_days,
        }: SigningIn,
        kind: SessionKind,
        access_token: Option<&AccessTokenLookup>,
        sso: Option<SsoSession>,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome> {
        let now = self.clock.now();
        let token = SessionToken::mint();
        let expire_time = access_token
            .and_then(|t| t.expire_time)
            .map_or(now + self.sessions.lifetime, |end| {
                end.min(now + self.sessions.lifetime)
            });
        let session = SessionRecord {
            user_id: Some(user.user_id),
            access_token_id: access_token.map(|t| t.token_id),
            access_token_name: access_token.map(|t| t.name.clone()),
            details: session_details(meta),
            ..SessionRecord::opened(
                token.hash().as_bytes().to_vec(),
                tenant.tenant_id,
                kind,
                now,
                expire_time,
            )
        };
        let mut audit = Audit::new("login.succeeded", now, meta)
            .tenant(tenant.tenant_id)
            .actor(user.user_id)
            .subject(user.user_id)
            .session(session.session_id)
            .detail("kind", kind.as_str());
        if let Some(token) = access_token {
            audit = audit.detail("user_access_token_name", &token.name);
        }
        if let Some(sso) = &sso {
            audit = audit.detail("issuer", &sso.issuer);
            if let Some(link) = &sso.link {
                audit = audit.detail("linked_subject", &link.subject);
            }
        }
        let audit = audit.build();
        let is_force_change_password = must_change_password(kind, &user, password_expiry_days, now);
        // Signed before the session is stored, so that a session is never opened without it.
        let jwt = match is_force_change_password {
            true => None,
            false => Some(self.issue_session_jwt(&session, now).await?),
        };
        match &sso {
            None => self.store.insert_session(&session, &audit).await?,
            Some(sso) => {
                let sealed = self.key_encryption_key.seal(
                    secrecy::ExposeSecret::expose_secret(&sso.id_token).as_bytes(),
                    &super::sso::id_token_context(session.session_id),
                );
                let mut audits = Vec::new();
                if sso.new_user {
                    audits.push(
                        Audit::new("user.created", now, meta)
                            .tenant(tenant.tenant_id)
                            .subject(user.user_id)
                            .detail("by", "single_sign_on")
                            .detail("issuer", &sso.issuer)
                            .build(),
                    );
                }
                audits.push(audit);
                let sign_in = SsoSignIn {
                    new_user: sso.new_user.then_some(&user),
                    link: sso.link.as_ref(),
                    session: &session,
                    id_token_sealed: &sealed,
                };
                self.store.open_sso_session(&sign_in, &audits).await?;
            }
        }
        tracing::info!(user_id = %user.user_id, session_id = %session.session_id, kind = kind.as_str(), "login succeeded");
        Ok(LoginOutcome {
            user: user.into(),
            tenant,
            session: SessionView::new(session, now, true),
            token,
            is_force_change_password,
            jwt,
        })
    }

    /// Ends one of the caller's own sessions: the one the call comes through when `session_id` is
    /// `None`. Anyone else's session is answered as not found.
    pub async fn logout(&self, caller: &Caller, session_id: Option<Uuid>, meta: &RequestMeta) -> Result<()> {
        let target = match session_id {
            None => caller.require_session()?,
            Some(id) => id,
        };
        caller.require(Need::LogOut {
            current: Some(target) == caller.session_id,
        })?;
        if let Some(impersonated) = self.impersonated_session_of(caller, target).await? {
            return self
                .end_impersonated_session(caller, &impersonated, "logout", meta)
                .await;
        }
        let now = self.clock.now();
        let audit = Audit::new("logout", now, meta)
            .tenant(caller.tenant_id)
            .actor(caller.user_id())
            .subject(caller.user_id())
            .session(target)
            .build();
        let _invalidate = self.invalidate_validations();
        if !self.store.end_session(target, caller.user_id(), &audit).await? {
            return Err(Error::NotFound("session"));
        }
        tracing::info!(session_id = %target, "logged out");
        Ok(())
    }
}
