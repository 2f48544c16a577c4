//! Single sign-on with a tenant's OpenID Connect provider: StartSso stores an attempt and answers
//! the provider's authorization URL; LoginSso takes the attempt out (once), trades the code for a
//! verified ID token, finds or creates the user and opens an SSO session. Every failure answers
//! [`Error::SsoFailed`] and records `login.sso_failed` saying why.

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::admin::user_record;
use super::audit::{Audit, RequestMeta};
use super::identity_providers::settings_of;
use super::login::{LoginOutcome, SigningIn, SsoSession};
use super::oidc_relying_party::{ProviderClient, RelyingPartyError, VerifiedIdentity};
use super::views::TenantRef;
use super::{Error, Identity, Result};
use crate::domain::{Password, SessionKind, UserName, UserProfile};
use crate::store::{IdentityProviderRecord, LinkedIdentityRecord, SsoAttemptRecord, UserSigningIn};

/// How long a sign-in attempt may be finished after it began.
pub(super) const ATTEMPT_LIFETIME: Duration = Duration::minutes(10);

/// Where to send the browser to sign in.
#[derive(Debug)]
pub struct SsoStart {
    pub authorization_url: String,
    pub state: String,
}

/// What the provider sent back to the redirect URI.
#[derive(Debug, Default)]
pub struct SsoCallback<'a> {
    pub code: &'a str,
    pub state: &'a str,
    /// The `iss` parameter (RFC 9207), when the provider sent one.
    pub iss: &'a str,
    /// The redirect URI the code came to, when the caller says; must be the attempt's.
    pub redirect_uri: &'a str,
}

/// Why a sign-in failed: the audit event's `reason`, and a detail for some.
pub(super) struct Failure {
    reason: &'static str,
    detail: Option<String>,
    tenant_id: Option<Uuid>,
}

impl Failure {
    pub(super) fn new(reason: &'static str) -> Self {
        Self {
            reason,
            detail: None,
            tenant_id: None,
        }
    }

    pub(super) fn tenant(mut self, id: Uuid) -> Self {
        self.tenant_id = Some(id);
        self
    }

    pub(super) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl From<RelyingPartyError> for Failure {
    fn from(e: RelyingPartyError) -> Self {
        Failure::new(e.kind()).detail(e.to_string())
    }
}

/// Either a failure to audit, or another error (the store) that answers as itself.
pub(super) enum Step {
    Failed(Failure),
    Error(Error),
}

impl From<Failure> for Step {
    fn from(f: Failure) -> Self {
        Self::Failed(f)
    }
}

impl From<Error> for Step {
    fn from(e: Error) -> Self {
        Self::Error(e)
    }
}

impl From<crate::store::StoreError> for Step {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Error(e.into())
    }
}

pub(super) fn state_hash(state: &str) -> Vec<u8> {
    Sha256::digest(state.as_bytes()).to_vec()
}

fn pkce_context(state_hash: &[u8]) -> Vec<u8> {
    [b"sso_attempt:".as_slice(), state_hash].concat()
}

pub(crate) fn id_token_context(session_id: Uuid) -> Vec<u8> {
    [b"sso_session:".as_slice(), session_id.as_bytes()].concat()
}

impl Identity {
    /// Begins single sign-on with a tenant's provider: stores the attempt (bound to the tenant
    /// and the redirect URI, for ten minutes, used once) and answers the provider's URL.
    pub async fn start_sso(&self, tenant_id: &str, redirect_uri: &str, meta: &RequestMeta) -> Result<SsoStart> {
        let tenant_id =
            Uuid::parse_str(tenant_id).map_err(|_| Error::invalid("tenant_id", "must be a tenant id (a UUID)"))?;
        if redirect_uri.is_empty() {
            return Err(Error::invalid("redirect_uri", "must be given"));
        }
        match self.begin_sso(tenant_id, redirect_uri).await {
            Ok(start) => Ok(start),
            Err(Step::Error(e)) => Err(e),
            Err(Step::Failed(failure)) => Err(self.sso_failed("start", failure.tenant(tenant_id), meta).await),
        }
    }

    async fn begin_sso(&self, tenant_id: Uuid, redirect_uri: &str) -> Result<SsoStart, Step> {
        let provider = self
            .store
            .get_identity_provider(tenant_id)
            .await?
            .ok_or(Failure::new("no_provider"))?;
        if let Some(saml) = settings_of(&provider).saml {
            return self.begin_saml_sso(tenant_id, &saml, redirect_uri).await;
        }
        if !settings_of(&provider).redirect_uris.iter().any(|u| u == redirect_uri) {
            return Err(Failure::new("redirect_uri_not_allowed").detail(redirect_uri).into());
        }
        let client = self.provider_client(&provider)?;
        let authorization = self
            .relying_party
            .authorize(client, redirect_uri)
            .await
            .map_err(Failure::from)?;
        let now = self.clock.now();
        let hash = state_hash(&authorization.state);
        let attempt = SsoAttemptRecord {
            pkce_verifier_sealed: self
                .key_encryption_key
                .seal(authorization.pkce_verifier.as_bytes(), &pkce_context(&hash)),
            state_hash: hash,
            tenant_id,
            redirect_uri: redirect_uri.to_owned(),
            nonce: authorization.nonce,
            create_time: now,
            expire_time: now + ATTEMPT_LIFETIME,
        };
        self.store.insert_sso_attempt(&attempt).await?;
        Ok(SsoStart {
            authorization_url: authorization.url,
            state: authorization.state,
        })
    }

    /// Finishes single sign-on with what the provider sent back, and opens an SSO session.
    pub async fn login_sso(&self, callback: SsoCallback<'_>, meta: &RequestMeta) -> Result<LoginOutcome> {
        let mut missing = Vec::new();
        if callback.code.is_empty() {
            missing.push(crate::domain::FieldViolation::new("code", "must be given with state"));
        }
        if callback.state.is_empty() {
            missing.push(crate::domain::FieldViolation::new("state", "must be given with code"));
        }
        if !missing.is_empty() {
            return Err(Error::InvalidArgument(missing));
        }
        match self.finish_sso(&callback, meta).await {
            Ok(outcome) => Ok(outcome),
            Err(Step::Error(e)) => Err(e),
            Err(Step::Failed(failure)) => Err(self.sso_failed("login", failure, meta).await),
        }
    }

    async fn finish_sso(&self, callback: &SsoCallback<'_>, meta: &RequestMeta) -> Result<LoginOutcome, Step> {
        let hash = state_hash(callback.state);
        let attempt = self
            .store
            .take_sso_attempt(&hash)
            .await?
            .ok_or(Failure::new("state_unknown"))?;
        let tenant_id = attempt.tenant_id;
        let now = self.clock.now();
        if now >= attempt.expire_time {
            return Err(Failure::new("state_expired").tenant(tenant_id).into());
        }
        if !callback.redirect_uri.is_empty() && callback.redirect_uri != attempt.redirect_uri {
            return Err(Failure::new("redirect_uri_mismatch").tenant(tenant_id).into());
        }
        let provider = self
            .store
            .get_identity_provider(tenant_id)
            .await?
            .ok_or(Failure::new("no_provider").tenant(tenant_id))?;
        // A SAML provider's request (its RelayState) finishes with a SAML response, not a code.
        if provider.saml_settings.is_some() {
            return Err(Failure::new("not_an_oidc_provider").tenant(tenant_id).into());
        }
        if !callback.iss.is_empty() && callback.iss != provider.issuer_url {
            return Err(Failure::new("issuer_mismatch")
                .tenant(tenant_id)
                .detail(callback.iss.chars().take(200).collect::<String>())
                .into());
        }
        let verifier = self
            .key_encryption_key
            .open(&attempt.pkce_verifier_sealed, &pkce_context(&hash))
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("opening a PKCE verifier")))?;
        let verifier = String::from_utf8(verifier.expose_secret().clone())
            .map_err(|_| Error::Internal(anyhow::anyhow!("a PKCE verifier is not text")))?;
        let client = self.provider_client(&provider)?;
        let identity = self
            .relying_party
            .finish(
                client,
                &attempt.redirect_uri,
                callback.code,
                verifier,
                &attempt.nonce,
                now,
            )
            .await
            .map_err(|e| Failure::from(e).tenant(tenant_id))?;
        self.sign_in_as(&provider, identity, now, meta).await
    }

    /// Opens an SSO session for the user a provider vouched for (found, linked or created).
    pub(super) async fn sign_in_as(
        &self,
        provider: &IdentityProviderRecord,
        identity: VerifiedIdentity,
        now: DateTime<Utc>,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome, Step> {
        let tenant_id = provider.tenant_id;
        let (found, link, new_user) = self.user_for(provider, &identity, now).await?;
        if found.user.disabled {
            return Err(Failure::new("user_disabled").tenant(tenant_id).into());
        }
        let signing_in = SigningIn {
            tenant: TenantRef {
                tenant_id,
                name: found.tenant_name,
            },
            password_expiry_days: found.password_expiry_days,
            user: found.user,
        };
        let sso = SsoSession {
            issuer: identity.issuer.clone(),
            id_token: identity.id_token,
            link,
            new_user,
        };
        match self
            .open_session_for(signing_in, SessionKind::Sso, None, Some(sso), meta)
            .await
        {
            Ok(outcome) => Ok(outcome),
            // Two first sign-ins of one subject at once: the other one linked it.
            Err(Error::AlreadyExists { field }) => Err(Failure::new("concurrent_first_sign_in")
                .tenant(tenant_id)
                .detail(field)
                .into()),
            Err(e) => Err(e.into()),
        }
    }

    /// The user an ID token signs in: linked by subject; else, when the tenant allows it, the one
    /// user whose email the provider says is verified (then linked); else, when the tenant allows
    /// it, a new user with the provider's default roles (then linked).
    async fn user_for(
        &self,
        provider: &IdentityProviderRecord,
        identity: &VerifiedIdentity,
        now: DateTime<Utc>,
    ) -> Result<(UserSigningIn, Option<LinkedIdentityRecord>, bool), Step> {
        let tenant_id = provider.tenant_id;
        if let Some(found) = self
            .store
            .find_linked_user(tenant_id, &identity.issuer, &identity.subject)
            .await?
        {
            return Ok((found, None, false));
        }
        let link = |user_id| LinkedIdentityRecord {
            tenant_id,
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            user_id,
            create_time: now,
        };
        if provider.link_by_verified_email
            && identity.email_verified
            && let Some(email) = identity.email.as_deref()
        {
            let mut matches = self.store.find_users_by_email(tenant_id, email).await?;
            if matches.len() == 1 {
                let found = matches.remove(0);
                let linked = link(found.user.user_id);
                return Ok((found, Some(linked), false));
            }
            if matches.len() > 1 {
                return Err(Failure::new("email_ambiguous").tenant(tenant_id).into());
            }
        }
        if !provider.create_users {
            let why = match (provider.link_by_verified_email, identity.email_verified) {
                (true, false) => "no_linked_user_email_unverified",
                _ => "no_linked_user",
            };
            return Err(Failure::new(why).tenant(tenant_id).into());
        }
        let tenant = self
            .store
            .get_tenant(tenant_id)
            .await?
            .ok_or(Failure::new("no_tenant").tenant(tenant_id))?;
        let candidate = identity
            .preferred_username
            .as_deref()
            .or(identity.email.as_deref())
            .unwrap_or(&identity.subject);
        let name = UserName::parse("user_name", candidate)
            .map_err(|v| Failure::new("user_name_invalid").tenant(tenant_id).detail(v.message))?;
        if self.store.find_user_by_name(&name.key()).await?.is_some() {
            return Err(Failure::new("user_name_taken").tenant(tenant_id).into());
        }
        let profile = UserProfile {
            email: identity
                .email
                .clone()
                .filter(|_| identity.email_verified)
                .unwrap_or_default(),
            first_name: identity.given_name.clone().unwrap_or_default(),
            last_name: identity.family_name.clone().unwrap_or_default(),
            ..UserProfile::default()
        };
        // A password nobody knows: the user signs in through the provider only, until an
        // administrator sets one.
        let mut random = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let unusable = Password::for_login("password", &hex(&random)).map_err(|v| Error::InvalidArgument(vec![v]))?;
        let hash = self.hasher.hash(&unusable).await.map_err(Error::from)?;
        let user = user_record(
            tenant_id,
            &name,
            profile,
            crate::domain::Roles::from_bits(provider.default_roles),
            hash,
            now,
        );
        let linked = link(user.user_id);
        let found = UserSigningIn {
            user,
            tenant_name: tenant.name,
            password_expiry_days: tenant.password_expiry_days,
            lockout_failures: tenant.lockout_failures,
            lockout_seconds: tenant.lockout_seconds,
            max_lockout_seconds: tenant.max_lockout_seconds,
        };
        Ok((found, Some(linked), true))
    }

    fn provider_client<'a>(&self, provider: &'a IdentityProviderRecord) -> Result<ProviderClient<'a>> {
        Ok(ProviderClient {
            issuer_url: &provider.issuer_url,
            client_id: &provider.client_id,
            client_secret: self.client_secret_of(provider)?,
            scopes: settings_of(provider).scopes,
        })
    }

    /// Records why single sign-on failed and answers [`Error::SsoFailed`]. The audit event names
    /// the step and the reason, never a code, token or secret.
    pub(super) async fn sso_failed(&self, step: &str, failure: Failure, meta: &RequestMeta) -> Error {
        let now = self.clock.now();
        let mut audit = Audit::new("login.sso_failed", now, meta)
            .detail("step", step)
            .detail("reason", failure.reason);
        if let Some(tenant_id) = failure.tenant_id {
            audit = audit.tenant(tenant_id);
        }
        if let Some(detail) = &failure.detail {
            audit = audit.detail("detail", detail);
        }
        tracing::warn!(
            step,
            reason = failure.reason,
            detail = failure.detail.as_deref(),
            "single sign-on failed"
        );
        if let Err(e) = self.store.insert_audit(&audit.build()).await {
            return e.into();
        }
        Error::SsoFailed
    }

    /// Where to send the browser to log out of the provider too, for an SSO session: the
    /// provider's end-session endpoint with the session's ID token as `id_token_hint` and the
    /// tenant's post-logout redirect URI. `None` for other sessions or a provider without one.
    pub async fn sso_logout_url(&self, tenant_id: Uuid, session_id: Uuid) -> Result<Option<String>> {
        let Some(sealed) = self.store.sso_id_token(session_id).await? else {
            return Ok(None);
        };
        let Some(provider) = self.store.get_identity_provider(tenant_id).await? else {
            return Ok(None);
        };
        if let Some(saml) = settings_of(&provider).saml {
            return self.saml_logout_url(&saml, session_id, &sealed);
        }
        let id_token = self
            .key_encryption_key
            .open(&sealed, &id_token_context(session_id))
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("opening an SSO session's ID token")))?;
        let id_token = SecretString::from(
            String::from_utf8(id_token.expose_secret().clone())
                .map_err(|_| Error::Internal(anyhow::anyhow!("an ID token is not text")))?,
        );
        match self
            .relying_party
            .logout_url(
                &provider.issuer_url,
                &provider.client_id,
                &id_token,
                &provider.post_logout_redirect_uri,
            )
            .await
        {
            Ok(url) => Ok(url),
            Err(e) => {
                // The session has ended; only the provider's own logout cannot be offered.
                tracing::warn!(error = %e, "cannot build the identity provider's logout URL");
                Ok(None)
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
