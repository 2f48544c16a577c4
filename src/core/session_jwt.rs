//! Session JWTs: a short-lived, signed statement of a session that other services verify
//! offline, with only the public keys of [`Identity::jwks`].
//!
//! Claims: `iss` and `aud` as configured, `sub` the user, `sid` the session, `tid` the tenant
//! the session acts in, `iat`, `exp` (the JWT lifetime, never past the session's own end), `jti`
//! unique per JWT, and for a proxy or customer-support session the RFC 8693 actor claim `act`
//! naming the real user (`{"sub": "<impersonator user id>"}`). Signed ES256 with the key the
//! rotation has active ([`super::signing_keys`]).
//!
//! A JWT is a statement made at one time: it stays valid until its `exp` even if the session
//! ends before, which is why its lifetime is short. Services that must know at once call
//! ValidateSession instead.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit::RequestMeta;
use super::authorization::Need;
use super::signing_keys::{KeyRotation, SigningKeys};
use super::{Caller, Error, Identity, Result};
use crate::auth::{Es256Signer, KeyEncryptionKey};
use crate::store::SessionRecord;

/// What session JWTs say and how long they and their keys last.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// The `iss` claim.
    pub issuer: String,
    /// The `aud` claim.
    pub audience: String,
    /// How long a JWT is valid after it is issued (at most until its session ends).
    pub lifetime: Duration,
    /// How long each signing key signs before the next one takes over.
    pub key_signing_period: Duration,
    /// How long before it signs a key is published in the JWKS: verifiers must refresh their copy
    /// at least this often.
    pub key_publish_ahead: Duration,
    /// Seals the signing keys in the store.
    pub key_encryption_key: KeyEncryptionKey,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            issuer: "identityd".into(),
            audience: "identityd".into(),
            lifetime: Duration::minutes(10),
            key_signing_period: Duration::days(7),
            key_publish_ahead: Duration::hours(1),
            key_encryption_key: KeyEncryptionKey::generate(),
        }
    }
}

/// Issues and checks session JWTs.
pub(crate) struct SessionJwts {
    issuer: String,
    audience: String,
    lifetime: Duration,
    keys: SigningKeys,
}

impl SessionJwts {
    pub(crate) fn new(settings: JwtSettings) -> Self {
        let rotation = KeyRotation {
            signing_period: settings.key_signing_period,
            publish_ahead: settings.key_publish_ahead,
            // Until the last JWT the key signed expires, and verifiers have had time to see that
            // the key is gone (they refresh at least every publish_ahead).
            keep_after_retire: settings.lifetime + settings.key_publish_ahead,
        };
        Self {
            issuer: settings.issuer,
            audience: settings.audience,
            lifetime: settings.lifetime,
            keys: SigningKeys::new(settings.key_encryption_key, rotation),
        }
    }
}

/// A session JWT as issued. It is a bearer credential for as long as it lasts: shown once, never
/// logged.
#[derive(Clone)]
pub struct SessionJwt {
    pub token: String,
    pub expire_time: DateTime<Utc>,
}

impl std::fmt::Debug for SessionJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionJwt")
            .field("expire_time", &self.expire_time)
            .finish_non_exhaustive()
    }
}

/// One public key of the JWKS: an EC P-256 key for ES256 signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    pub key_id: String,
    /// The public point's coordinates, base64url (RFC 7518 §6.2.1).
    pub x: String,
    pub y: String,
}

/// What a verifier needs: the public keys, and the issuer and audience to expect.
#[derive(Debug, Clone)]
pub struct JwksView {
    pub keys: Vec<PublicJwk>,
    pub issuer: String,
    pub audience: String,
}

impl JwksView {
    /// The keys as an RFC 7517 JWK Set document, as JOSE libraries read it.
    pub fn to_json(&self) -> String {
        let keys: Vec<_> = self
            .keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kty": "EC", "crv": "P-256", "x": k.x, "y": k.y,
                    "kid": k.key_id, "use": "sig", "alg": "ES256",
                })
            })
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }
}

/// RFC 8693 §4.1: who acts for the subject.
#[derive(Debug, Serialize, Deserialize)]
struct Actor {
    sub: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    sid: String,
    tid: String,
    iat: i64,
    exp: i64,
    jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    act: Option<Actor>,
}

/// The JWS compact serialization (RFC 7515 §7.1) of `claims`: header, claims and signature,
/// each base64url without padding, joined by dots.
fn compact_jws(header: &Header, claims: &Claims, signer: &Es256Signer) -> anyhow::Result<String> {
    let part = |json: Vec<u8>| URL_SAFE_NO_PAD.encode(json);
    let message = format!(
        "{}.{}",
        part(serde_json::to_vec(header)?),
        part(serde_json::to_vec(claims)?)
    );
    let signature = part(signer.sign(message.as_bytes())?);
    Ok(format!("{message}.{signature}"))
}

impl Identity {
    /// Signs a JWT for a user's session opened or used at `now`.
    pub(crate) async fn issue_session_jwt(&self, session: &SessionRecord, now: DateTime<Utc>) -> Result<SessionJwt> {
        let jwts = &self.session_jwts;
        let user_id = session
            .user_id
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("a service-account session has no session JWT")))?;
        let expire_time = (now + jwts.lifetime).min(session.expire_time);
        let claims = Claims {
            iss: jwts.issuer.clone(),
            aud: jwts.audience.clone(),
            sub: user_id.to_string(),
            sid: session.session_id.to_string(),
            tid: session.tenant_id.to_string(),
            iat: now.timestamp(),
            exp: expire_time.timestamp(),
            jti: Uuid::now_v7().to_string(),
            act: session.impersonator_user_id.map(|id| Actor { sub: id.to_string() }),
        };
        let keys = jwts.keys.at(self.store.as_ref(), now).await?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(keys.active.key_id.clone());
        header.typ = Some("JWT".into());
        let token = compact_jws(&header, &claims, &keys.active.signer)
            .map_err(|e| Error::Internal(e.context("signing a session JWT")))?;
        Ok(SessionJwt { token, expire_time })
    }

    /// The public keys verifiers need (every key published now), with the issuer and audience
    /// session JWTs carry.
    pub async fn jwks(&self) -> Result<JwksView> {
        let jwts = &self.session_jwts;
        let keys = jwts.keys.at(self.store.as_ref(), self.clock.now()).await?;
        Ok(JwksView {
            keys: keys
                .published
                .iter()
                .map(|k| PublicJwk {
                    key_id: k.key_id.clone(),
                    x: k.x.clone(),
                    y: k.y.clone(),
                })
                .collect(),
            issuer: jwts.issuer.clone(),
            audience: jwts.audience.clone(),
        })
    }

    /// A fresh JWT for the caller's session. The caller authenticated with that session's token,
    /// so an ended or expired session gets none.
    pub async fn refresh_session_jwt(&self, caller: &Caller) -> Result<SessionJwt> {
        caller.require(Need::ReadOwn)?;
        let session_id = caller.require_session()?;
        let session = self.store.get_session(session_id).await?.ok_or(Error::SessionInvalid)?;
        let now = self.clock.now();
        if session.end_time.is_some() || session.expire_time <= now {
            return Err(Error::SessionInvalid);
        }
        self.issue_session_jwt(&session, now).await
    }

    /// Ends the session a JWT names, which must be one of the caller's. The JWT must be signed by
    /// a key still published and carry our issuer and audience; an expired one is accepted, as
    /// ending a session is no use of it.
    pub async fn logout_by_jwt(&self, caller: &Caller, jwt: &str, meta: &RequestMeta) -> Result<Uuid> {
        let session_id = self.session_of_jwt(jwt).await?;
        self.logout(caller, Some(session_id), meta).await?;
        Ok(session_id)
    }

    /// The session a JWT of ours names; [`Error::JwtInvalid`] for anything else.
    async fn session_of_jwt(&self, jwt: &str) -> Result<Uuid> {
        let jwts = &self.session_jwts;
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| Error::JwtInvalid)?;
        let keys = jwts.keys.at(self.store.as_ref(), self.clock.now()).await?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| keys.published(kid))
            .ok_or(Error::JwtInvalid)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&jwts.issuer]);
        validation.set_audience(&[&jwts.audience]);
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(jwt, &key.key, &validation).map_err(|_| Error::JwtInvalid)?;
        Uuid::parse_str(&data.claims.sid).map_err(|_| Error::JwtInvalid)
    }
}
