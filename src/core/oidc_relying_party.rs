//! The OpenID Connect relying party: discovery, the authorization URL, the code exchange and the
//! ID-token checks, all through the `openidconnect` crate. Providers' discovery documents and key
//! sets are cached per issuer; a key set is fetched again when an ID token names a key it lacks
//! (the provider rotated its keys).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use std::str::FromStr;

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJsonWebKeySet, CoreTokenResponse};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl, LogoutRequest, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope,
    SignatureVerificationError, TokenResponse,
};
use secrecy::{ExposeSecret, SecretString};

/// How long a provider's discovery document and key set are used before they are fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// How long one request to a provider may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a step with the provider failed: said in the audit event, never to the caller. It names no
/// code, token or secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RelyingPartyError {
    #[error("the provider's discovery document could not be fetched or read: {0}")]
    Discovery(String),
    #[error("the provider's key set could not be fetched or read: {0}")]
    Jwks(String),
    #[error("the provider refused the code or could not be asked: {0}")]
    TokenRequest(String),
    #[error("the provider's token response has no ID token")]
    NoIdToken,
    #[error("the ID token does not verify: {0}")]
    IdToken(String),
    #[error("the configured URLs are not valid: {0}")]
    Configuration(String),
}

impl RelyingPartyError {
    /// A short stable word for the audit event.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Discovery(_) => "discovery_failed",
            Self::Jwks(_) => "jwks_failed",
            Self::TokenRequest(_) => "code_refused",
            Self::NoIdToken => "no_id_token",
            Self::IdToken(_) => "id_token_invalid",
            Self::Configuration(_) => "configuration_invalid",
        }
    }
}

/// What the relying party needs of a tenant's provider settings.
pub(crate) struct ProviderClient<'a> {
    pub issuer_url: &'a str,
    pub client_id: &'a str,
    pub client_secret: Option<SecretString>,
    pub scopes: Vec<String>,
}

/// The browser's way to the provider, and what finishing it needs.
pub(crate) struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// What a verified ID token says about the user.
#[derive(Debug)]
pub(crate) struct VerifiedIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub preferred_username: Option<String>,
    /// The user's first and last names, when the provider says (SAML attributes).
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// The ID token as received, kept for `id_token_hint` at logout (for SAML: what a
    /// LogoutRequest names, see `saml_sso`).
    pub id_token: SecretString,
}

struct CachedMetadata {
    metadata: ProviderMetadataWithLogout,
    fetched: Instant,
}

/// The relying party: an HTTP client that follows no redirects (a redirect could point it at an
/// internal address) and gives up after a timeout, and the providers' cached metadata.
#[derive(Clone)]
pub(crate) struct RelyingParty {
    http: openidconnect::reqwest::Client,
    metadata: Arc<Mutex<HashMap<String, Arc<CachedMetadata>>>>,
}

impl RelyingParty {
    pub(crate) fn new() -> Self {
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            http,
            metadata: Arc::default(),
        }
    }

    /// The provider's discovery document (with its key set), from the cache while it is fresh.
    async fn metadata(&self, issuer_url: &str) -> Result<Arc<CachedMetadata>, RelyingPartyError> {
        if let Some(cached) = self.cached(issuer_url) {
            return Ok(cached);
        }
        let issuer =
            IssuerUrl::new(issuer_url.to_owned()).map_err(|e| RelyingPartyError::Configuration(e.to_string()))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| RelyingPartyError::Discovery(error_chain(&e)))?;
        Ok(self.remember(issuer_url, metadata))
    }

    fn cached(&self, issuer_url: &str) -> Option<Arc<CachedMetadata>> {
        let cache = self.metadata.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(issuer_url)
            .filter(|c| c.fetched.elapsed() < METADATA_TTL)
            .cloned()
    }

    fn remember(&self, issuer_url: &str, metadata: ProviderMetadataWithLogout) -> Arc<CachedMetadata> {
        let cached = Arc::new(CachedMetadata {
            metadata,
            fetched: Instant::now(),
        });
        let mut cache = self.metadata.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(issuer_url.to_owned(), cached.clone());
        cached
    }

    /// The provider's logout URL for a session signed in with `id_token`: its end-session
    /// endpoint with `id_token_hint`, `client_id` and, when set, `post_logout_redirect_uri`.
    /// `None` when the provider has no end-session endpoint.
    pub(crate) async fn logout_url(
        &self,
        issuer_url: &str,
        client_id: &str,
        id_token: &SecretString,
        post_logout_redirect_uri: &str,
    ) -> Result<Option<String>, RelyingPartyError> {
        let cached = self.metadata(issuer_url).await?;
        let Some(endpoint) = cached.metadata.additional_metadata().end_session_endpoint.clone() else {
            return Ok(None);
        };
        let id_token =
            CoreIdToken::from_str(id_token.expose_secret()).map_err(|e| RelyingPartyError::IdToken(e.to_string()))?;
        let mut request = LogoutRequest::from(endpoint)
            .set_id_token_hint(&id_token)
            .set_client_id(ClientId::new(client_id.to_owned()));
        if !post_logout_redirect_uri.is_empty() {
            let uri = PostLogoutRedirectUrl::new(post_logout_redirect_uri.to_owned())
                .map_err(|e| RelyingPartyError::Configuration(e.to_string()))?;
            request = request.set_post_logout_redirect_uri(uri);
        }
        Ok(Some(request.http_get_url().to_string()))
    }

    /// The provider's authorization URL for a new attempt: a fresh state, nonce and PKCE (S256)
    /// challenge.
    pub(crate) async fn authorize(
        &self,
        provider: ProviderClient<'_>,
        redirect_uri: &str,
    ) -> Result<Authorization, RelyingPartyError> {
        let cached = self.metadata(provider.issuer_url).await?;
        let client = client_for(&cached.metadata, &provider, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in provider.scopes.iter().filter(|s| s.as_str() != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Authorization {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Trades the code for tokens and verifies the ID token (signature, issuer, audience, expiry
    /// on `now`, nonce).
    pub(crate) async fn finish(
        &self,
        provider: ProviderClient<'_>,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: String,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedIdentity, RelyingPartyError> {
        let cached = self.metadata(provider.issuer_url).await?;
        let client = client_for(&cached.metadata, &provider, redirect_uri)?;
        let response: CoreTokenResponse = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| RelyingPartyError::Configuration(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| RelyingPartyError::TokenRequest(error_chain(&e)))?;
        let id_token = response.id_token().ok_or(RelyingPartyError::NoIdToken)?;
        let nonce = Nonce::new(nonce.to_owned());
        let verify = |client: &Client| {
            let verifier = client.id_token_verifier().set_time_fn(move || now);
            id_token.claims(&verifier, &nonce).map(|claims| VerifiedIdentity {
                issuer: claims.issuer().to_string(),
                subject: claims.subject().to_string(),
                email: claims.email().map(|e| e.to_string()),
                email_verified: claims.email_verified().unwrap_or(false),
                preferred_username: claims.preferred_username().map(|u| u.to_string()),
                given_name: None,
                family_name: None,
                id_token: id_token.to_string().into(),
            })
        };
        let verified = match verify(&client) {
            Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
                // The provider signs with a key our cached set lacks: it rotated. Fetch the set
                // again, once, and keep it for the next sign-ins.
                let jwks = CoreJsonWebKeySet::fetch_async(cached.metadata.jwks_uri(), &self.http)
                    .await
                    .map_err(|e| RelyingPartyError::Jwks(error_chain(&e)))?;
                let metadata = cached.metadata.clone().set_jwks(jwks);
                let refreshed = self.remember(provider.issuer_url, metadata);
                verify(&client_for(&refreshed.metadata, &provider, redirect_uri)?)
            }
            other => other,
        };
        verified.map_err(|e| RelyingPartyError::IdToken(e.to_string()))
    }
}

type Client = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    openidconnect::core::CoreAuthDisplay,
    openidconnect::core::CoreGenderClaim,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJsonWebKey,
    openidconnect::core::CoreAuthPrompt,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    CoreTokenResponse,
    openidconnect::core::CoreTokenIntrospectionResponse,
    openidconnect::core::CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

fn client_for(
    metadata: &ProviderMetadataWithLogout,
    provider: &ProviderClient<'_>,
    redirect_uri: &str,
) -> Result<Client, RelyingPartyError> {
    let redirect =
        RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| RelyingPartyError::Configuration(e.to_string()))?;
    Ok(CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(provider.client_id.to_owned()),
        provider
            .client_secret
            .as_ref()
            .map(|s| ClientSecret::new(s.expose_secret().to_owned())),
    )
    .set_redirect_uri(redirect))
}

/// An error and its causes on one line: what the provider or the network said, for the audit
/// event. The crate's errors carry no request body, so no code or secret.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(500).collect()
}
