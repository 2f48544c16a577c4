//! A SAML identity provider for the tests, made of prepared XML signed by an independent
//! implementation: the `xmlsec1` command line (Debian's package, installed when missing and the
//! tests run as root) with the test key in tests/api/fixtures/saml. The project's own code never
//! signs what it then verifies.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};

pub const IDP_ENTITY_ID: &str = "https://idp.saml.test/metadata";
pub const SSO_URL: &str = "https://idp.saml.test/sso";
pub const SLO_URL: &str = "https://idp.saml.test/slo";
pub const SP_ENTITY_ID: &str = "https://identityd.test/saml";
pub const ACS_URL: &str = "https://app.example.com/saml/acs";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/fixtures/saml")
}

/// The provider's signing certificate (PEM).
pub fn idp_certificate() -> String {
    std::fs::read_to_string(fixtures().join("idp-cert.pem")).expect("the test IdP certificate")
}

/// Another key's certificate: one the tenant does not trust, or one rotating in.
pub fn other_certificate() -> String {
    std::fs::read_to_string(fixtures().join("other-cert.pem")).expect("the other certificate")
}

/// Installs xmlsec1 when it is missing (Debian, as root), once per run.
pub fn ensure_xmlsec1() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if Command::new("xmlsec1").arg("--version").output().is_ok() {
            return;
        }
        let status = Command::new("sh")
            .arg("-c")
            .arg("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xmlsec1 >/dev/null")
            .status()
            .expect("run apt-get");
        assert!(status.success(), "install xmlsec1 (apt-get install xmlsec1)");
    });
}

/// Which key signs, and with which algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// The provider's key, RSA-SHA256.
    Idp,
    /// The provider's key, RSA-SHA1 and a SHA-1 digest.
    IdpSha1,
    /// The key rotating in: the tenant lists its certificate too.
    Other,
    /// A key the tenant does not trust.
    Untrusted,
}

/// What is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    Assertion,
    Response,
    Nothing,
}

/// A response to prepare; every field is what the XML says.
#[derive(Debug, Clone)]
pub struct ResponseSpec {
    pub response_id: String,
    pub assertion_id: String,
    pub issuer: String,
    pub destination: String,
    pub recipient: String,
    pub audience: String,
    /// Empty for an unsolicited response.
    pub in_response_to: String,
    pub name_id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub session_index: String,
    pub issue_instant: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    pub not_on_or_after: DateTime<Utc>,
}

impl ResponseSpec {
    /// A good response at `now`, answering `in_response_to`.
    pub fn new(now: DateTime<Utc>, in_response_to: &str, name_id: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            response_id: format!("_r{id}"),
            assertion_id: format!("_a{id}"),
            issuer: IDP_ENTITY_ID.into(),
            destination: ACS_URL.into(),
            recipient: ACS_URL.into(),
            audience: SP_ENTITY_ID.into(),
            in_response_to: in_response_to.into(),
            name_id: name_id.into(),
            email: name_id.into(),
            first_name: "Alice".into(),
            last_name: "Liddell".into(),
            session_index: format!("_s{id}"),
            issue_instant: now,
            not_before: now - Duration::seconds(5),
            not_on_or_after: now + Duration::minutes(5),
        }
    }

    /// The XML, unsigned, with a signature template where `signed` says.
    pub fn xml(&self, signed: Signed, key: Key) -> String {
        let t = |d: DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Secs, true);
        let irt = |attr: &str| {
            if self.in_response_to.is_empty() {
                String::new()
            } else {
                format!(" {attr}=\"{}\"", self.in_response_to)
            }
        };
        let template = |id: &str| signature_template(id, key);
        format!(
            "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{rid}\" Version=\"2.0\" \
             IssueInstant=\"{issued}\" Destination=\"{destination}\"{irt_response}>\
             <saml:Issuer>{issuer}</saml:Issuer>{response_signature}\
             <samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>\
             <saml:Assertion ID=\"{aid}\" Version=\"2.0\" IssueInstant=\"{issued}\">\
             <saml:Issuer>{issuer}</saml:Issuer>{assertion_signature}\
             <saml:Subject><saml:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\">{name_id}</saml:NameID>\
             <saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">\
             <saml:SubjectConfirmationData{irt_data} NotOnOrAfter=\"{not_after}\" Recipient=\"{recipient}\"/>\
             </saml:SubjectConfirmation></saml:Subject>\
             <saml:Conditions NotBefore=\"{not_before}\" NotOnOrAfter=\"{not_after}\">\
             <saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>\
             <saml:AuthnStatement AuthnInstant=\"{issued}\" SessionIndex=\"{session_index}\"><saml:AuthnContext>\
             <saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>\
             </saml:AuthnContext></saml:AuthnStatement>\
             <saml:AttributeStatement>\
             <saml:Attribute Name=\"email\"><saml:AttributeValue>{email}</saml:AttributeValue></saml:Attribute>\
             <saml:Attribute Name=\"givenName\"><saml:AttributeValue>{first}</saml:AttributeValue></saml:Attribute>\
             <saml:Attribute Name=\"sn\"><saml:AttributeValue>{last}</saml:AttributeValue></saml:Attribute>\
             </saml:AttributeStatement></saml:Assertion></samlp:Response>",
            rid = self.response_id,
            aid = self.assertion_id,
            issued = t(self.issue_instant),
            destination = self.destination,
            irt_response = irt("InResponseTo"),
            irt_data = irt("InResponseTo"),
            issuer = self.issuer,
            response_signature = if signed == Signed::Response {
                template(&self.response_id)
            } else {
                String::new()
            },
            assertion_signature = if signed == Signed::Assertion {
                template(&self.assertion_id)
            } else {
                String::new()
            },
            name_id = self.name_id,
            not_after = t(self.not_on_or_after),
            not_before = t(self.not_before),
            recipient = self.recipient,
            audience = self.audience,
            session_index = self.session_index,
            email = self.email,
            first = self.first_name,
            last = self.last_name,
        )
    }

    /// The response signed by xmlsec1, as XML.
    pub fn signed_xml(&self, signed: Signed, key: Key) -> String {
        let xml = self.xml(signed, key);
        match signed {
            Signed::Nothing => xml,
            Signed::Assertion => sign(&xml, key, "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"),
            Signed::Response => sign(&xml, key, "urn:oasis:names:tc:SAML:2.0:protocol:Response"),
        }
    }

    /// The response signed by xmlsec1, base64 as a browser posts it.
    pub fn signed(&self, signed: Signed, key: Key) -> String {
        encode(&self.signed_xml(signed, key))
    }
}

/// Base64, as the SAMLResponse form field carries XML.
pub fn encode(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml)
}

fn signature_template(reference: &str, key: Key) -> String {
    let (method, digest) = match key {
        Key::IdpSha1 => (
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            "http://www.w3.org/2000/09/xmldsig#sha1",
        ),
        _ => (
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            "http://www.w3.org/2001/04/xmlenc#sha256",
        ),
    };
    format!(
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>\
         <ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>\
         <ds:SignatureMethod Algorithm=\"{method}\"/><ds:Reference URI=\"#{reference}\"><ds:Transforms>\
         <ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
         <ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>\
         <ds:DigestMethod Algorithm=\"{digest}\"/><ds:DigestValue></ds:DigestValue></ds:Reference>\
         </ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data></ds:X509Data>\
         </ds:KeyInfo></ds:Signature>"
    )
}

/// Signs the template in `xml` with xmlsec1, the element with id attribute `ID` of `node` being
/// the one referenced.
fn sign(xml: &str, key: Key, node: &str) -> String {
    ensure_xmlsec1();
    let dir = std::env::temp_dir().join(format!("identityd-saml-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let input = dir.join("in.xml");
    let output = dir.join("out.xml");
    std::fs::write(&input, xml).expect("write the template");
    let name = match key {
        Key::Idp | Key::IdpSha1 => "idp",
        Key::Other => "other",
        Key::Untrusted => "untrusted",
    };
    let key_spec = format!(
        "{},{}",
        fixtures().join(format!("{name}-key.pem")).display(),
        fixtures().join(format!("{name}-cert.pem")).display()
    );
    let out = Command::new("xmlsec1")
        .args(["--sign", "--privkey-pem", &key_spec, "--id-attr:ID", node, "--output"])
        .arg(&output)
        .arg(&input)
        .output()
        .expect("run xmlsec1");
    assert!(
        out.status.success(),
        "xmlsec1 --sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed = std::fs::read_to_string(&output).expect("read the signed response");
    let _ = std::fs::remove_dir_all(&dir);
    signed
}

/// The ID of the AuthnRequest in a StartSso URL (HTTP-Redirect: SAMLRequest is base64 of raw
/// DEFLATE).
pub fn request_id(url: &str) -> String {
    let url = reqwest::Url::parse(url).expect("a URL");
    let request = url
        .query_pairs()
        .find(|(k, _)| k == "SAMLRequest")
        .map(|(_, v)| v.into_owned())
        .expect("a SAMLRequest parameter");
    let xml = inflate(&request);
    let start = xml.find(" ID=\"").expect("an ID attribute") + 5;
    let end = start + xml[start..].find('"').expect("the ID's end");
    xml[start..end].to_owned()
}

/// The XML of a redirect-binding message (base64 of raw DEFLATE).
pub fn inflate(encoded: &str) -> String {
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .read_to_string(&mut xml)
        .expect("raw DEFLATE");
    xml
}
