//! Each tenant's OpenID Connect identity provider: what administrators configure for single
//! sign-on. The client secret is write-only: sealed under the key-encryption key before it is
//! stored, and never answered, logged or put in an audit event.

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::audit::{Audit, RequestMeta};
use super::authorization::Need;
use super::saml_service_provider::SamlServiceProvider;
use super::{Caller, Error, Identity, Result};
use crate::domain::{PageRequest, PageToken, ProviderSettings, Roles, client_secret};
use crate::store::IdentityProviderRecord;

/// A tenant's identity provider as callers see it: everything but the client secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProviderView {
    pub tenant_id: Uuid,
    pub settings: ProviderSettings,
    /// Whether a client secret is set (it is never answered).
    pub has_client_secret: bool,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

/// The settings to give a provider; `None` leaves one as it is (on create: empty or off).
#[derive(Debug, Clone, Default)]
pub struct ProviderPatch {
    pub issuer_url: Option<String>,
    pub client_id: Option<String>,
    /// The new client secret; empty for none (a public client).
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub redirect_uris: Option<Vec<String>>,
    pub link_by_verified_email: Option<bool>,
    pub create_users: Option<bool>,
    pub default_roles: Option<Roles>,
    pub post_logout_redirect_uri: Option<String>,
    /// `Some(Some(_))` makes it a SAML provider with these settings, `Some(None)` an OpenID
    /// Connect one again.
    pub saml: Option<Option<crate::domain::SamlSettings>>,
}

/// The field prefix violations are named under.
const FIELD: &str = "identity_provider";

impl ProviderPatch {
    fn apply(self, mut to: ProviderSettings) -> ProviderSettings {
        if let Some(v) = self.issuer_url {
            to.issuer_url = v;
        }
        if let Some(v) = self.client_id {
            to.client_id = v;
        }
        if let Some(v) = self.scopes {
            to.scopes = v;
        }
        if let Some(v) = self.redirect_uris {
            to.redirect_uris = v;
        }
        if let Some(v) = self.link_by_verified_email {
            to.link_by_verified_email = v;
        }
        if let Some(v) = self.create_users {
            to.create_users = v;
        }
        if let Some(v) = self.default_roles {
            to.default_roles = v;
        }
        if let Some(v) = self.post_logout_redirect_uri {
            to.post_logout_redirect_uri = v;
        }
        if let Some(v) = self.saml {
            to.saml = v;
        }
        to
    }
}

/// What a record holds, as settings.
pub(crate) fn settings_of(record: &IdentityProviderRecord) -> ProviderSettings {
    ProviderSettings {
        issuer_url: record.issuer_url.clone(),
        client_id: record.client_id.clone(),
        scopes: record
            .scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        redirect_uris: serde_json::from_str(&record.redirect_uris).unwrap_or_default(),
        link_by_verified_email: record.link_by_verified_email,
        create_users: record.create_users,
        default_roles: Roles::from_bits(record.default_roles),
        post_logout_redirect_uri: record.post_logout_redirect_uri.clone(),
        saml: record.saml_settings.as_deref().and_then(|json| {
            serde_json::from_str(json)
                .inspect_err(|e| {
                    // Written by this service from checked settings: unreadable means a fault.
                    tracing::error!(tenant_id = %record.tenant_id, error = %e, "a stored SAML provider's settings cannot be read");
                })
                .ok()
        }),
    }
}

fn view(record: IdentityProviderRecord) -> IdentityProviderView {
    IdentityProviderView {
        tenant_id: record.tenant_id,
        settings: settings_of(&record),
        has_client_secret: record.client_secret_sealed.is_some(),
        create_time: record.create_time,
        update_time: record.update_time,
    }
}

/// What the client secret of a tenant's provider is sealed with, beside the key: the tenant, so
/// that a sealed secret copied to another tenant's row does not open.
pub(crate) fn secret_context(tenant_id: Uuid) -> Vec<u8> {
    [b"identity_provider:".as_slice(), tenant_id.as_bytes()].concat()
}

impl Identity {
    /// Sets up a tenant's identity provider; a tenant has at most one.
    pub async fn create_identity_provider(
        &self,
        caller: &Caller,
        tenant_id: Uuid,
        patch: ProviderPatch,
        meta: &RequestMeta,
    ) -> Result<IdentityProviderView> {
        caller.require(Need::ConfigureSignIn(tenant_id))?;
        let secret = patch.client_secret.clone().unwrap_or_default();
        let settings = self.checked(caller, &secret, patch.apply(ProviderSettings::empty()))?;
        if self.store.get_tenant(tenant_id).await?.is_none() {
            return Err(Error::NotFound("tenant"));
        }
        let now = self.clock.now();
        let record = self.record(tenant_id, &settings, self.seal_secret(tenant_id, &secret), now, now);
        let audit = provider_audit("identity_provider.created", now, meta, caller, tenant_id, &settings);
        self.store
            .insert_identity_provider(&record, &audit)
            .await
            .map_err(|e| match Error::from(e) {
                Error::AlreadyExists { .. } => Error::AlreadyExists {
                    field: format!("{FIELD}.tenant_id"),
                },
                other => other,
            })?;
        tracing::info!(tenant_id = %tenant_id, issuer = %settings.issuer_url, "identity provider created");
        Ok(view(record))
    }

    /// A tenant's identity provider.
    pub async fn get_identity_provider(&self, caller: &Caller, tenant_id: Uuid) -> Result<IdentityProviderView> {
        caller.require(Need::ReadTenant(tenant_id, "identity provider"))?;
        let record = self.store.get_identity_provider(tenant_id).await?;
        record.map(view).ok_or(Error::NotFound("identity provider"))
    }

    /// Every tenant's identity provider, in tenant-id order: for system administrators.
    pub async fn list_identity_providers(
        &self,
        caller: &Caller,
        page: PageRequest,
    ) -> Result<(Vec<IdentityProviderView>, Option<PageToken>)> {
        caller.require(Need::ReadAllTenants)?;
        let rows = self.store.list_identity_providers(page).await?;
        let (rows, next) = page.finish(rows, |p| p.tenant_id);
        Ok((rows.into_iter().map(view).collect(), next))
    }

    /// Changes the settings a patch names of a tenant's identity provider.
    pub async fn update_identity_provider(
        &self,
        caller: &Caller,
        tenant_id: Uuid,
        patch: ProviderPatch,
        meta: &RequestMeta,
    ) -> Result<IdentityProviderView> {
        caller.require(Need::ConfigureSignIn(tenant_id))?;
        let current = self
            .store
            .get_identity_provider(tenant_id)
            .await?
            .ok_or(Error::NotFound("identity provider"))?;
        let new_secret = patch.client_secret.clone();
        let settings = self.checked(
            caller,
            new_secret.as_deref().unwrap_or_default(),
            patch.apply(settings_of(&current)),
        )?;
        let sealed = match &new_secret {
            None => current.client_secret_sealed.clone(),
            Some(secret) => self.seal_secret(tenant_id, secret),
        };
        let now = self.clock.now().max(current.update_time);
        let record = self.record(tenant_id, &settings, sealed, current.create_time, now);
        let mut audit = provider_audit("identity_provider.updated", now, meta, caller, tenant_id, &settings);
        if new_secret.is_some() {
            audit.details.insert("client_secret".into(), "changed".into());
        }
        let updated = self
            .store
            .update_identity_provider(&record, current.update_time, &audit)
            .await?
            .ok_or(Error::ConcurrentChange("identity provider"))?;
        Ok(view(updated))
    }

    /// Removes a tenant's identity provider: its users can no longer sign in through it.
    pub async fn delete_identity_provider(&self, caller: &Caller, tenant_id: Uuid, meta: &RequestMeta) -> Result<()> {
        caller.require(Need::ConfigureSignIn(tenant_id))?;
        let now = self.clock.now();
        let audit = Audit::new("identity_provider.deleted", now, meta)
            .tenant(tenant_id)
            .actor(caller.user_id())
            .build();
        if !self.store.delete_identity_provider(tenant_id, &audit).await? {
            return Err(Error::NotFound("identity provider"));
        }
        Ok(())
    }

    /// Checks the settings and the secret, and that the caller holds the roles new users would get.
    fn checked(&self, caller: &Caller, secret: &str, settings: ProviderSettings) -> Result<ProviderSettings> {
        let field = format!("{FIELD}.client_secret");
        let secret_ok = if settings.saml.is_some() && !secret.is_empty() {
            Err(crate::domain::FieldViolation::new(
                field,
                "must be empty for a SAML provider",
            ))
        } else {
            client_secret(&field, secret)
        };
        let settings = match (settings.check(FIELD), secret_ok) {
            (Ok(settings), Ok(())) => settings,
            (settings, secret) => {
                return Err(Error::InvalidArgument(
                    settings.err().into_iter().flatten().chain(secret.err()).collect(),
                ));
            }
        };
        // What the checks above cannot tell: whether the SAML library takes the certificates.
        if let Some(saml) = &settings.saml
            && let Err(e) = SamlServiceProvider::new(saml)
        {
            return Err(Error::InvalidArgument(vec![crate::domain::FieldViolation::new(
                format!("{FIELD}.saml"),
                format!("the SAML library refuses these settings: {}", e.detail),
            )]));
        }
        caller.require(Need::GrantRoles(settings.default_roles))?;
        Ok(settings)
    }

    fn seal_secret(&self, tenant_id: Uuid, secret: &str) -> Option<Vec<u8>> {
        (!secret.is_empty()).then(|| {
            self.key_encryption_key
                .seal(secret.as_bytes(), &secret_context(tenant_id))
        })
    }

    /// Opens the client secret of a tenant's provider, for the token request.
    pub(crate) fn client_secret_of(&self, record: &IdentityProviderRecord) -> Result<Option<secrecy::SecretString>> {
        let Some(sealed) = &record.client_secret_sealed else {
            return Ok(None);
        };
        let plain = self
            .key_encryption_key
            .open(sealed, &secret_context(record.tenant_id))
            .map_err(|e| {
                Error::Internal(anyhow::Error::new(e).context("opening an identity provider's client secret"))
            })?;
        let text = String::from_utf8(plain.expose_secret().clone())
            .map_err(|_| Error::Internal(anyhow::anyhow!("a client secret is not text")))?;
        Ok(Some(text.into()))
    }

    fn record(
        &self,
        tenant_id: Uuid,
        s: &ProviderSettings,
        client_secret_sealed: Option<Vec<u8>>,
        create_time: DateTime<Utc>,
        update_time: DateTime<Utc>,
    ) -> IdentityProviderRecord {
        IdentityProviderRecord {
            tenant_id,
            issuer_url: s.issuer_url.clone(),
            client_id: s.client_id.clone(),
            client_secret_sealed,
            scopes: s.scopes.join(" "),
            redirect_uris: serde_json::to_string(&s.redirect_uris).unwrap_or_else(|_| "[]".into()),
            link_by_verified_email: s.link_by_verified_email,
            create_users: s.create_users,
            default_roles: s.default_roles.bits(),
            post_logout_redirect_uri: s.post_logout_redirect_uri.clone(),
            create_time,
            update_time,
            saml_settings: s.saml.as_ref().and_then(|saml| serde_json::to_string(saml).ok()),
        }
    }
}

/// The audit event of a provider change: what it now says, never its secret.
fn provider_audit(
    action: &str,
    now: DateTime<Utc>,
    meta: &RequestMeta,
    caller: &Caller,
    tenant_id: Uuid,
    s: &ProviderSettings,
) -> crate::domain::AuditEvent {
    Audit::new(action, now, meta)
        .tenant(tenant_id)
        .actor(caller.user_id())
        .detail("protocol", if s.saml.is_some() { "saml" } else { "oidc" })
        .detail(
            "issuer_url",
            s.saml.as_ref().map_or(&s.issuer_url, |saml| &saml.idp_entity_id),
        )
        .detail("client_id", &s.client_id)
        .detail("link_by_verified_email", s.link_by_verified_email.to_string())
        .detail("create_users", s.create_users.to_string())
        .build()
}
