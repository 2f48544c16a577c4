//! identityd as a SAML 2.0 service provider for one tenant's identity provider, over the
//! `saml-rs` library (XML signatures by `bergshamra`, pure Rust): our metadata, the AuthnRequest
//! StartSso sends, the checks of the Response LoginSso is given, and the LogoutRequest of a
//! browser logout. It knows nothing of the store: the caller keeps the request ids and the
//! assertion ids this answers.
//!
//! What a response must pass, in order: [`screen_saml_response`] (size, base64, no DOCTYPE,
//! exactly one assertion); then the library's checks — an XML signature by one of the provider's
//! certificates over the Response or the Assertion (the Assertion itself when the provider
//! requires it), RSA with SHA-256 or stronger and exclusive canonicalisation only (no SHA-1), the
//! claims read from the signed element only (signature wrapping), the Issuer, Destination, bearer
//! Recipient, Audience, NotBefore/NotOnOrAfter with the provider's skew, and InResponseTo against
//! the request StartSso made (or none, for an IdP-initiated response the provider allows).

use std::time::{Duration, SystemTime};

use saml_rs::{
    AcsEndpoint, AssertionSignaturePolicy, BrowserInput, ClockSkew, EntityId, FormField, IdpDescriptor, LogoutSigning,
    LogoutSubject, MetadataTrustPolicy, NameId, NameIdFormat, PendingAuthnRequest, PendingSnapshot, RelayStateParam,
    ReplayCache, ReplayKey, ReplayPolicy, Saml, SamlError, SamlValidationContext, SessionIndex, Sp, SpConfig,
    SpValidationPolicy, SsoResponse, StartSlo, StartSso, XmlSignatureProfile,
};

use crate::domain::{SamlResponseRefusal, SamlSettings, screen_saml_response};

/// The HTTP-POST binding's keyword in the library's pending-request snapshots.
const POST: &str = "post";

/// Why a SAML step failed: the audit event's reason, and what the library said.
#[derive(Debug)]
pub struct SamlFailure {
    pub reason: &'static str,
    pub detail: String,
}

impl From<SamlResponseRefusal> for SamlFailure {
    fn from(r: SamlResponseRefusal) -> Self {
        Self {
            reason: r.reason(),
            detail: String::new(),
        }
    }
}

impl From<SamlError> for SamlFailure {
    fn from(e: SamlError) -> Self {
        use SamlError as E;
        let reason = match &e {
            E::IssuerMismatch { .. } | E::UnmatchIssuer => "issuer_mismatch",
            E::DestinationMismatch { .. } | E::UnmatchDestination => "destination_mismatch",
            E::AudienceMismatch { .. } | E::UnmatchAudience => "audience_mismatch",
            E::InResponseToMismatch { .. } | E::InvalidInResponseTo => "in_response_to_mismatch",
            E::RelayStateMismatch { .. } => "relay_state_mismatch",
            E::TimeWindowInvalid { .. } | E::ExpiredSession => "saml_time_window",
            E::SubjectConfirmationInvalid { .. } | E::SubjectUnconfirmed => "subject_confirmation_invalid",
            E::ReplayDetected { .. } => "saml_replayed",
            E::StatusNotSuccess { .. } | E::FailedStatus { .. } => "saml_status_not_success",
            E::SignatureMissing | E::AssertionSignatureRequired => "signature_missing",
            E::PotentialWrappingAttack | E::SignedReferenceMismatch | E::ReferenceResolution { .. } => {
                "signature_wrapping"
            }
            E::SignatureVerification { .. }
            | E::FailedToVerifySignature
            | E::NoTrustedCertificate
            | E::CertificateMismatch
            | E::UnmatchCertificate
            | E::AlgorithmUnsupported => "signature_invalid",
            _ => "saml_response_invalid",
        };
        Self {
            reason,
            detail: e.to_string().chars().take(300).collect(),
        }
    }
}

/// What StartSso sends the browser to.
#[derive(Debug)]
pub struct AuthnRequestStart {
    /// The provider's single sign-on URL with SAMLRequest and RelayState (HTTP-Redirect).
    pub url: String,
    /// The AuthnRequest's ID: the InResponseTo of the response that answers it.
    pub request_id: String,
}

/// The request a response should answer, as StartSso stored it.
#[derive(Debug)]
pub struct ExpectedRequest<'a> {
    pub request_id: &'a str,
    pub relay_state: &'a str,
}

/// What a verified assertion says, read from the signed element only.
#[derive(Debug)]
pub struct VerifiedAssertion {
    /// The provider's entity id.
    pub issuer: String,
    pub name_id: String,
    /// The NameID's Format URI, when given.
    pub name_id_format: Option<String>,
    pub session_indexes: Vec<String>,
    /// Each attribute's name and values.
    pub attributes: Vec<(String, Vec<String>)>,
    /// The response's and the assertions' ids ("kind:id"), each with how long it must be kept
    /// for replays to be refused.
    pub replay_keys: Vec<(String, SystemTime)>,
}

impl VerifiedAssertion {
    /// The first value of an attribute, when the attribute is named and present.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        if name.is_empty() {
            return None;
        }
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, values)| values.first())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The replay cache the library fills: it only collects the keys, which the caller then stores
/// in the database (so that every instance refuses a replay).
#[derive(Default)]
struct CollectedKeys(Vec<(String, SystemTime)>);

impl ReplayCache for CollectedKeys {
    fn check_and_store(&mut self, key: ReplayKey, expires_at: SystemTime) -> Result<(), SamlError> {
        self.0.push((key.cache_key(), expires_at));
        Ok(())
    }
}

/// The service provider for one provider's settings.
pub struct SamlServiceProvider<'a> {
    settings: &'a SamlSettings,
    sp: Saml<Sp>,
    idp: IdpDescriptor,
}

impl<'a> SamlServiceProvider<'a> {
    /// Builds the service provider and reads the provider's side from the settings.
    pub fn new(settings: &'a SamlSettings) -> Result<Self, SamlFailure> {
        let sp_policy = SpValidationPolicy {
            assertions: if settings.require_signed_assertion {
                AssertionSignaturePolicy::RequireSigned
            } else {
                AssertionSignaturePolicy::AllowUnsignedForCompatibility
            },
            xml_signatures: XmlSignatureProfile::StrictRsaSha2,
            ..SpValidationPolicy::recommended()
        };
        let config = SpConfig::builder(EntityId::try_new(settings.sp_entity_id.clone())?)
            .acs_endpoint(AcsEndpoint::post(settings.acs_url.clone())?)
            .validation(sp_policy)
            .build()?;
        let sp = Saml::sp(config)?;
        let idp = IdpDescriptor::from_metadata_xml_for(
            EntityId::try_new(settings.idp_entity_id.clone())?,
            &idp_metadata(settings),
            // The metadata is made here from what an administrator configured, not fetched.
            MetadataTrustPolicy::UnsignedForCompatibility,
        )?;
        Ok(Self { settings, sp, idp })
    }

    /// Our metadata: the EntityDescriptor of identityd at this provider.
    pub fn metadata_xml(&self) -> String {
        self.sp.metadata_xml().to_owned()
    }

    /// An AuthnRequest for the HTTP-Redirect binding, carrying `relay_state`.
    pub fn authn_request(&self, relay_state: &str) -> Result<AuthnRequestStart, SamlFailure> {
        let relay = RelayStateParam::try_from_option(Some(relay_state.to_owned()))?;
        let started = self.sp.start_sso(&self.idp, StartSso::redirect().relay_state(relay))?;
        Ok(AuthnRequestStart {
            url: started.outbound.redirect_url()?.to_owned(),
            request_id: started.pending.request_id().as_str().to_owned(),
        })
    }

    /// Checks a response as the browser posted it (base64), answering what its signed assertion
    /// says. `expected` is the request it must answer; `None` accepts only an unsolicited one.
    pub fn verify(
        &self,
        encoded: &str,
        expected: Option<&ExpectedRequest<'_>>,
        now: SystemTime,
    ) -> Result<VerifiedAssertion, SamlFailure> {
        screen_saml_response(encoded)?;
        let skew_ms = i64::from(self.settings.clock_skew_seconds) * 1000;
        let mut keys = CollectedKeys::default();
        let validation = SamlValidationContext::new(now, ReplayPolicy::RequireCache(&mut keys))
            // The library adds the first to NotBefore and the second to NotOnOrAfter.
            .with_clock_skew(ClockSkew::from_millis(-skew_ms, skew_ms));
        let mut fields = vec![FormField::new("SAMLResponse", encoded)];
        let session = match expected {
            Some(expected) => {
                fields.push(FormField::new("RelayState", expected.relay_state));
                let snapshot = PendingSnapshot::<saml_rs::AuthnRequest>::authn_request(
                    expected.request_id,
                    RelayStateParam::try_from_option(Some(expected.relay_state.to_owned()))?,
                    self.settings.idp_entity_id.clone(),
                    POST,
                    self.settings.acs_url.clone(),
                    POST,
                );
                let pending = PendingAuthnRequest::from_snapshot(snapshot)?;
                self.sp.finish_sso(
                    &self.idp,
                    &pending,
                    BrowserInput::<SsoResponse>::post(fields),
                    validation,
                )?
            }
            None => self
                .sp
                .accept_unsolicited_sso(&self.idp, BrowserInput::<SsoResponse>::post(fields), validation)?,
        };
        let name_id = session.name_id();
        Ok(VerifiedAssertion {
            issuer: session.issuer().as_str().to_owned(),
            name_id: name_id.value().to_owned(),
            name_id_format: name_id.format().map(|f| f.as_uri().to_owned()),
            session_indexes: session
                .authn_sessions()
                .iter()
                .filter_map(|s| s.session_index())
                .map(|i| i.as_str().to_owned())
                .collect(),
            attributes: session
                .attributes()
                .as_slice()
                .iter()
                .map(|a| {
                    (
                        a.name().to_owned(),
                        a.values().iter().map(|v| v.as_str().to_owned()).collect(),
                    )
                })
                .collect(),
            replay_keys: keys.0,
        })
    }

    /// A LogoutRequest for the provider's single logout URL (HTTP-Redirect), for the subject and
    /// session indexes an assertion named; `None` when the provider has no such URL.
    pub fn logout_request(
        &self,
        name_id: &str,
        name_id_format: Option<&str>,
        session_indexes: &[String],
    ) -> Result<Option<String>, SamlFailure> {
        if self.settings.slo_url.is_empty() {
            return Ok(None);
        }
        let format = name_id_format.map(|f| NameIdFormat::Custom(f.to_owned()));
        let indexes = session_indexes
            .iter()
            .map(|i| SessionIndex::try_new(i.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let subject = LogoutSubject::new(NameId::new(name_id, format), indexes);
        let options = StartSlo::redirect().signing(LogoutSigning::DoNotSignForCompatibility);
        let started = self.sp.start_slo(&self.idp, subject, options)?;
        Ok(Some(started.outbound.redirect_url()?.to_owned()))
    }
}

/// How long the longest-lived replay key of a response must be kept.
pub fn replay_deadline(keys: &[(String, SystemTime)], fallback: SystemTime) -> SystemTime {
    keys.iter().map(|(_, t)| *t).max().unwrap_or(fallback)
}

/// The provider's metadata, made from the settings: its entity id, signing certificates, single
/// sign-on and single logout URLs (HTTP-Redirect).
fn idp_metadata(s: &SamlSettings) -> String {
    let mut xml = format!(
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" \
         xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{}\">\
         <md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">",
        escape(&s.idp_entity_id)
    );
    for body in s.certificate_bodies() {
        xml.push_str(&format!(
            "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}\
             </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        ));
    }
    if !s.slo_url.is_empty() {
        xml.push_str(&format!(
            "<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" \
             Location=\"{}\"/>",
            escape(&s.slo_url)
        ));
    }
    xml.push_str(&format!(
        "<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" \
         Location=\"{}\"/></md:IDPSSODescriptor></md:EntityDescriptor>",
        escape(&s.sso_url)
    ));
    xml
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A lifetime for a replay key when the library names none (it always does for a bearer
/// assertion it accepted).
pub const REPLAY_FALLBACK: Duration = Duration::from_secs(3600);
