//! The settings of a tenant's SAML 2.0 identity provider, parsed once at the edge, and the first
//! look at a SAML response from a browser: its size, its base64, and an XML shape with no DTD and
//! exactly one assertion, before any XML signature code sees it.

use base64::Engine;
use quick_xml::Reader;
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};

use super::FieldViolation;

/// Most signing certificates a provider may list (the current one and those rotating in or out).
const MAX_CERTIFICATES: usize = 5;
/// Longest URL or entity id accepted.
const MAX_URL: usize = 2048;
/// Longest PEM certificate accepted.
const MAX_CERTIFICATE: usize = 16 * 1024;
/// Longest attribute name accepted.
const MAX_ATTRIBUTE: usize = 256;
/// The most clock skew an administrator may allow, in seconds.
pub const MAX_CLOCK_SKEW_SECONDS: u32 = 300;
/// The longest SAML response accepted, as sent (base64): checked before decoding anything.
pub const MAX_SAML_RESPONSE: usize = 48 * 1024;

/// A SAML provider's settings as a caller sets them; every field checked. Stored as JSON: a field
/// added later reads as its default from a document written before it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SamlSettings {
    /// The identity provider's entity id: the `Issuer` of its responses.
    pub idp_entity_id: String,
    /// The provider's single sign-on URL (HTTP-Redirect binding): where StartSso sends browsers.
    pub sso_url: String,
    /// The provider's single logout URL (HTTP-Redirect binding); empty for none.
    pub slo_url: String,
    /// The provider's signing certificates, PEM; a response signed with any one of them verifies.
    pub certificates: Vec<String>,
    /// Our entity id at this provider: the audience its assertions must name.
    pub sp_entity_id: String,
    /// Our assertion consumer URL (HTTP-POST binding): the `Destination` and `Recipient` the
    /// provider's responses must name.
    pub acs_url: String,
    /// Accept responses no StartSso asked for (IdP-initiated sign-in).
    pub allow_idp_initiated: bool,
    /// Require the assertion itself to be signed; otherwise a signed response will do.
    pub require_signed_assertion: bool,
    /// How far the provider's clock may be from ours, in seconds (0 to 300).
    pub clock_skew_seconds: u32,
    /// The attribute holding the user's email; empty for none.
    pub email_attribute: String,
    /// The attribute holding the user's first name; empty for none.
    pub first_name_attribute: String,
    /// The attribute holding the user's last name; empty for none.
    pub last_name_attribute: String,
}

impl SamlSettings {
    /// Checks every field (named under `prefix`, as in `identity_provider.saml.sso_url`), naming
    /// every bad one at once.
    pub fn check(mut self, prefix: &str) -> Result<Self, Vec<FieldViolation>> {
        let field = |name: &str| format!("{prefix}.{name}");
        let mut bad = Vec::new();
        for (name, value) in [
            ("idp_entity_id", &self.idp_entity_id),
            ("sp_entity_id", &self.sp_entity_id),
        ] {
            if value.is_empty() || value.len() > MAX_URL || value.chars().any(|c| c.is_control() || c.is_whitespace()) {
                bad.push(FieldViolation::new(
                    field(name),
                    format!("must be an entity id: 1 to {MAX_URL} characters, no spaces or control characters"),
                ));
            }
        }
        for (name, value, optional) in [
            ("sso_url", &self.sso_url, false),
            ("slo_url", &self.slo_url, true),
            ("acs_url", &self.acs_url, false),
        ] {
            if optional && value.is_empty() {
                continue;
            }
            if let Err(why) = endpoint_url(value) {
                bad.push(FieldViolation::new(field(name), why));
            }
        }
        if self.certificates.is_empty() || self.certificates.len() > MAX_CERTIFICATES {
            bad.push(FieldViolation::new(
                field("signing_certificates"),
                format!("must list 1 to {MAX_CERTIFICATES} PEM certificates the provider signs with"),
            ));
        }
        let mut certificates = Vec::with_capacity(self.certificates.len());
        for (i, pem) in self.certificates.iter().enumerate() {
            match certificate_body(pem) {
                Ok(body) => certificates.push(pem_of(&body)),
                Err(why) => bad.push(FieldViolation::new(
                    field("signing_certificates"),
                    format!("certificate {i}: {why}"),
                )),
            }
        }
        self.certificates = certificates;
        if self.clock_skew_seconds > MAX_CLOCK_SKEW_SECONDS {
            bad.push(FieldViolation::new(
                field("clock_skew_seconds"),
                format!("must be 0 to {MAX_CLOCK_SKEW_SECONDS} seconds"),
            ));
        }
        for (name, value) in [
            ("email_attribute", &self.email_attribute),
            ("first_name_attribute", &self.first_name_attribute),
            ("last_name_attribute", &self.last_name_attribute),
        ] {
            if value.len() > MAX_ATTRIBUTE || value.chars().any(char::is_control) {
                bad.push(FieldViolation::new(
                    field(name),
                    format!("must be an attribute name of at most {MAX_ATTRIBUTE} characters"),
                ));
            }
        }
        if bad.is_empty() { Ok(self) } else { Err(bad) }
    }

    /// The base64 DER of each signing certificate, as metadata's `X509Certificate` holds it.
    pub fn certificate_bodies(&self) -> Vec<String> {
        self.certificates
            .iter()
            .filter_map(|pem| certificate_body(pem).ok())
            .collect()
    }
}

/// An https URL — or http on the loopback host, for a provider on the same machine — without a
/// fragment.
fn endpoint_url(raw: &str) -> Result<(), String> {
    if raw.is_empty() || raw.len() > MAX_URL {
        return Err(format!("must be a URL of 1 to {MAX_URL} characters"));
    }
    let uri = raw.parse::<http::Uri>().map_err(|_| "is not a URL".to_owned())?;
    let loopback = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback => {}
        _ => return Err("must be an https URL (http only on 127.0.0.1 or localhost)".into()),
    }
    if raw.contains('#') || raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must have no fragment, spaces or control characters".into());
    }
    Ok(())
}

/// The base64 body of one PEM certificate, checked to decode.
fn certificate_body(pem: &str) -> Result<String, &'static str> {
    if pem.len() > MAX_CERTIFICATE {
        return Err("too long for a certificate");
    }
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN CERTIFICATE-----")
        .and_then(|rest| rest.strip_suffix("-----END CERTIFICATE-----"))
        .ok_or("must be one PEM certificate (-----BEGIN CERTIFICATE-----)")?;
    let body: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&body)
        .map_err(|_| "is not base64 inside its PEM lines")?;
    use x509_cert::der::Decode;
    x509_cert::Certificate::from_der(&der).map_err(|_| "is not an X.509 certificate")?;
    Ok(body)
}

fn pem_of(body: &str) -> String {
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Why a SAML response was refused before its signature was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamlResponseRefusal {
    /// Longer than [`MAX_SAML_RESPONSE`].
    TooLarge,
    /// Not base64.
    NotBase64,
    /// Not well-formed XML, or not UTF-8.
    Malformed,
    /// A DOCTYPE (DTD, entities), which SAML never needs.
    Doctype,
    /// Not exactly one assertion.
    AssertionCount,
    /// A comment inside the document: canonicalisation drops comments, so a comment inside a
    /// signed value (`alice@example.com<!---->.evil.com`) would split what was signed from what
    /// a reader takes.
    Comment,
}

impl SamlResponseRefusal {
    /// The audit log's reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooLarge => "saml_response_too_large",
            Self::NotBase64 => "saml_response_not_base64",
            Self::Malformed => "saml_response_malformed",
            Self::Doctype => "saml_response_doctype",
            Self::AssertionCount => "saml_assertion_count",
            Self::Comment => "saml_response_comment",
        }
    }
}

/// Screens a SAML response as the browser posted it (base64): the size before decoding, then
/// the XML read once without expanding anything — a DOCTYPE is refused as soon as it is met, so a
/// billion-laughs or external-entity document costs nothing — and exactly one `Assertion` (or
/// `EncryptedAssertion`) element anywhere, which leaves no room for a second, unsigned one to be
/// read in place of the signed one; and no comment inside the document element. Answers the
/// decoded XML.
pub fn screen_saml_response(encoded: &str) -> Result<String, SamlResponseRefusal> {
    if encoded.len() > MAX_SAML_RESPONSE {
        return Err(SamlResponseRefusal::TooLarge);
    }
    let compact: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| SamlResponseRefusal::NotBase64)?;
    let xml = String::from_utf8(bytes).map_err(|_| SamlResponseRefusal::Malformed)?;
    let mut reader = Reader::from_str(&xml);
    let mut assertions = 0usize;
    let mut depth = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::DocType(_)) => return Err(SamlResponseRefusal::Doctype),
            Ok(Event::Start(e)) => {
                depth += 1;
                if depth > 64 {
                    return Err(SamlResponseRefusal::Malformed);
                }
                if is_assertion(e.local_name().into_inner()) {
                    assertions += 1;
                }
            }
            Ok(Event::Empty(e)) => {
                if is_assertion(e.local_name().into_inner()) {
                    assertions += 1;
                }
            }
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Comment(_)) if depth > 0 => return Err(SamlResponseRefusal::Comment),
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(_) => return Err(SamlResponseRefusal::Malformed),
        }
    }
    if assertions != 1 {
        return Err(SamlResponseRefusal::AssertionCount);
    }
    Ok(xml)
}

fn is_assertion(local_name: &str) -> bool {
    local_name == "Assertion" || local_name == "EncryptedAssertion"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(xml: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(xml)
    }

    #[test]
    fn a_doctype_is_refused_before_any_entity_is_expanded() {
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><Response><Assertion>&b;</Assertion></Response>"#;
        assert_eq!(screen_saml_response(&encode(laughs)), Err(SamlResponseRefusal::Doctype));
    }

    #[test]
    fn exactly_one_assertion_passes() {
        let one = r#"<p:Response xmlns:p="p"><a:Assertion xmlns:a="a"/></p:Response>"#;
        assert!(screen_saml_response(&encode(one)).is_ok());
        let two = r#"<Response><Assertion/><x><Assertion/></x></Response>"#;
        assert_eq!(
            screen_saml_response(&encode(two)),
            Err(SamlResponseRefusal::AssertionCount)
        );
        assert_eq!(
            screen_saml_response(&encode("<Response/>")),
            Err(SamlResponseRefusal::AssertionCount)
        );
    }

    #[test]
    fn a_comment_inside_the_document_is_refused() {
        let split = r#"<!-- a provider's banner --><Response><Assertion><NameID>alice@example.com<!---->.evil.com</NameID></Assertion></Response>"#;
        assert_eq!(screen_saml_response(&encode(split)), Err(SamlResponseRefusal::Comment));
        let before = r#"<!-- a provider's banner --><Response><Assertion/></Response>"#;
        assert!(screen_saml_response(&encode(before)).is_ok());
    }

    #[test]
    fn size_and_base64_are_checked_first() {
        let big = "A".repeat(MAX_SAML_RESPONSE + 1);
        assert_eq!(screen_saml_response(&big), Err(SamlResponseRefusal::TooLarge));
        assert_eq!(screen_saml_response("not base64!"), Err(SamlResponseRefusal::NotBase64));
    }
}
