//! Single sign-on with a tenant's SAML 2.0 identity provider: StartSso stores the AuthnRequest's
//! id under the RelayState (single use, ten minutes, as OpenID Connect's attempts) and answers the
//! provider's URL; LoginSso takes that request out, checks the response against it
//! ([`SamlServiceProvider::verify`]), records the response's and assertion's ids until they expire
//! (a replay to any instance is refused) and opens an SSO session for the user, found, linked or
//! created as with OpenID Connect. Every failure answers [`Error::SsoFailed`] and is audited.

use std::time::SystemTime;

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::RequestMeta;
use super::identity_providers::settings_of;
use super::login::LoginOutcome;
use super::oidc_relying_party::VerifiedIdentity;
use super::saml_service_provider::{
    ExpectedRequest, REPLAY_FALLBACK, SamlFailure, SamlServiceProvider, replay_deadline,
};
use super::sso::{ATTEMPT_LIFETIME, Failure, SsoStart, Step, id_token_context, state_hash};
use super::{Error, Identity, Result};
use crate::domain::{SamlSettings, screen_saml_response};
use crate::store::SsoAttemptRecord;

/// What a SAML session keeps (sealed, where an OpenID Connect session keeps its ID token) for the
/// LogoutRequest of a browser logout.
#[derive(Debug, Serialize, Deserialize)]
struct SamlSessionSubject {
    name_id: String,
    name_id_format: Option<String>,
    session_indexes: Vec<String>,
}

/// The prefix that tells a sealed SAML subject from a sealed ID token (which is a JWT).
const SAML_SUBJECT: &str = "saml:";

impl From<SamlFailure> for Failure {
    fn from(f: SamlFailure) -> Self {
        let failure = Failure::new(f.reason);
        if f.detail.is_empty() {
            failure
        } else {
            failure.detail(f.detail)
        }
    }
}

impl Identity {
    /// StartSso for a SAML provider: an AuthnRequest whose id is kept under a new RelayState.
    pub(super) async fn begin_saml_sso(
        &self,
        tenant_id: Uuid,
        saml: &SamlSettings,
        redirect_uri: &str,
    ) -> Result<SsoStart, Step> {
        if redirect_uri != saml.acs_url {
            return Err(Failure::new("redirect_uri_not_allowed").detail(redirect_uri).into());
        }
        let sp = SamlServiceProvider::new(saml).map_err(Failure::from)?;
        let mut random = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let relay_state: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let request = sp.authn_request(&relay_state).map_err(Failure::from)?;
        let now = self.clock.now();
        // The OpenID Connect attempt's columns, as a SAML request uses them: the nonce holds the
        // AuthnRequest's id, and there is no PKCE verifier.
        let attempt = SsoAttemptRecord {
            state_hash: state_hash(&relay_state),
            tenant_id,
            redirect_uri: saml.acs_url.clone(),
            nonce: request.request_id,
            pkce_verifier_sealed: Vec::new(),
            create_time: now,
            expire_time: now + ATTEMPT_LIFETIME,
        };
        self.store.insert_sso_attempt(&attempt).await?;
        Ok(SsoStart {
            authorization_url: request.url,
            state: relay_state,
        })
    }

    /// LoginSso with a SAML response: `relay_state` names the request StartSso made; without it,
    /// `tenant_id` names the tenant whose provider sent an IdP-initiated response.
    pub async fn login_saml_sso(
        &self,
        saml_response: &str,
        relay_state: &str,
        tenant_id: &str,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome> {
        let tenant = match (relay_state.is_empty(), tenant_id.is_empty()) {
            (true, true) => {
                return Err(Error::invalid(
                    "state",
                    "give the RelayState posted with the SAML response, or tenant_id for an IdP-initiated one",
                ));
            }
            (true, false) => Some(
                Uuid::parse_str(tenant_id).map_err(|_| Error::invalid("tenant_id", "must be a tenant id (a UUID)"))?,
            ),
            (false, _) => None,
        };
        // Size, base64, DOCTYPE and assertion count first: such a response costs no database
        // work and leaves the request it claims to answer in place.
        if let Err(refusal) = screen_saml_response(saml_response) {
            let failure = Failure::from(SamlFailure::from(refusal));
            return Err(self.sso_failed("login", failure, meta).await);
        }
        match self.finish_saml_sso(saml_response, relay_state, tenant, meta).await {
            Ok(outcome) => Ok(outcome),
            Err(Step::Error(e)) => Err(e),
            Err(Step::Failed(failure)) => Err(self.sso_failed("login", failure, meta).await),
        }
    }

    async fn finish_saml_sso(
        &self,
        saml_response: &str,
        relay_state: &str,
        unsolicited_for: Option<Uuid>,
        meta: &RequestMeta,
    ) -> Result<LoginOutcome, Step> {
        let now = self.clock.now();
        let (tenant_id, request_id) = match unsolicited_for {
            Some(tenant_id) => (tenant_id, None),
            None => {
                let attempt = self
                    .store
                    .take_sso_attempt(&state_hash(relay_state))
                    .await?
                    .ok_or(Failure::new("state_unknown"))?;
                if now >= attempt.expire_time {
                    return Err(Failure::new("state_expired").tenant(attempt.tenant_id).into());
                }
                (attempt.tenant_id, Some(attempt.nonce))
            }
        };
        let provider = self
            .store
            .get_identity_provider(tenant_id)
            .await?
            .ok_or(Failure::new("no_provider").tenant(tenant_id))?;
        let saml = settings_of(&provider)
            .saml
            .ok_or(Failure::new("not_a_saml_provider").tenant(tenant_id))?;
        if request_id.is_none() && !saml.allow_idp_initiated {
            return Err(Failure::new("idp_initiated_not_allowed").tenant(tenant_id).into());
        }
        let sp = SamlServiceProvider::new(&saml).map_err(|f| Failure::from(f).tenant(tenant_id))?;
        let expected = request_id.as_deref().map(|request_id| ExpectedRequest {
            request_id,
            relay_state,
        });
        let verified = sp
            .verify(saml_response, expected.as_ref(), SystemTime::from(now))
            .map_err(|f| Failure::from(f).tenant(tenant_id))?;
        let fallback = SystemTime::from(now) + REPLAY_FALLBACK;
        let keep_until = chrono::DateTime::<chrono::Utc>::from(replay_deadline(&verified.replay_keys, fallback));
        for (key, _) in &verified.replay_keys {
            if !self
                .store
                .record_saml_assertion(tenant_id, key, keep_until, now)
                .await?
            {
                return Err(Failure::new("saml_replayed").tenant(tenant_id).into());
            }
        }
        let subject = SamlSessionSubject {
            name_id: verified.name_id.clone(),
            name_id_format: verified.name_id_format.clone(),
            session_indexes: verified.session_indexes.clone(),
        };
        let subject = serde_json::to_string(&subject)
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("writing a SAML session's subject")))?;
        let email = verified.attribute(&saml.email_attribute).map(str::to_owned);
        let identity = VerifiedIdentity {
            issuer: verified.issuer.clone(),
            subject: verified.name_id.clone(),
            // The provider signed the attribute: it vouches for the address.
            email_verified: email.is_some(),
            email,
            preferred_username: None,
            given_name: verified.attribute(&saml.first_name_attribute).map(str::to_owned),
            family_name: verified.attribute(&saml.last_name_attribute).map(str::to_owned),
            id_token: SecretString::from(format!("{SAML_SUBJECT}{subject}")),
        };
        self.sign_in_as(&provider, identity, now, meta).await
    }

    /// The provider's single logout URL with a LogoutRequest for a SAML session, from what the
    /// session kept; `None` when the provider has no single logout URL.
    pub(super) fn saml_logout_url(
        &self,
        saml: &SamlSettings,
        session_id: Uuid,
        sealed: &[u8],
    ) -> Result<Option<String>> {
        let opened = self
            .key_encryption_key
            .open(sealed, &id_token_context(session_id))
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("opening an SSO session's subject")))?;
        let text = String::from_utf8(opened.expose_secret().clone())
            .map_err(|_| Error::Internal(anyhow::anyhow!("an SSO session's subject is not text")))?;
        // A session opened while the provider spoke OpenID Connect has no SAML subject.
        let Some(subject) = text
            .strip_prefix(SAML_SUBJECT)
            .and_then(|json| serde_json::from_str::<SamlSessionSubject>(json).ok())
        else {
            return Ok(None);
        };
        let url = SamlServiceProvider::new(saml).and_then(|sp| {
            sp.logout_request(
                &subject.name_id,
                subject.name_id_format.as_deref(),
                &subject.session_indexes,
            )
        });
        match url {
            Ok(url) => Ok(url),
            Err(e) => {
                // The session has ended; only the provider's own logout cannot be offered.
                tracing::warn!(reason = e.reason, detail = %e.detail, "cannot build the SAML LogoutRequest");
                Ok(None)
            }
        }
    }

    /// identityd's SAML service-provider metadata for a tenant whose provider is a SAML one.
    pub async fn saml_metadata(&self, tenant_id: &str) -> Result<String> {
        let tenant_id =
            Uuid::parse_str(tenant_id).map_err(|_| Error::invalid("tenant_id", "must be a tenant id (a UUID)"))?;
        let saml = self
            .store
            .get_identity_provider(tenant_id)
            .await?
            .and_then(|provider| settings_of(&provider).saml)
            .ok_or(Error::NotFound("SAML identity provider"))?;
        let sp = SamlServiceProvider::new(&saml).map_err(|e| {
            Error::Internal(anyhow::anyhow!(
                "a stored SAML provider does not build: {}: {}",
                e.reason,
                e.detail
            ))
        })?;
        Ok(sp.metadata_xml())
    }
}
