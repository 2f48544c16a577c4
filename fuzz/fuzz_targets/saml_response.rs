//! A SAML response as a browser posts it (base64), through everything LoginSso does before it
//! trusts it: the size cap, base64, the screen for DTDs and a single assertion, and the service
//! provider's checks (signature, wrapping, conditions). Refusals are fine; a panic or a hang is
//! not. Raw bytes are also base64-encoded so that the XML behind the screen gets fuzzed too.
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use base64::Engine;
use identityd::core::{ExpectedRequest, SamlServiceProvider};
use identityd::domain::{SamlSettings, screen_saml_response};
use libfuzzer_sys::fuzz_target;

fn settings() -> &'static SamlSettings {
    static SETTINGS: OnceLock<SamlSettings> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        SamlSettings {
            idp_entity_id: "https://idp.saml.test/metadata".into(),
            sso_url: "https://idp.saml.test/sso".into(),
            certificates: vec![include_str!("../../tests/api/fixtures/saml/idp-cert.pem").into()],
            sp_entity_id: "https://identityd.test/saml".into(),
            acs_url: "https://app.example.com/saml/acs".into(),
            clock_skew_seconds: 30,
            ..SamlSettings::default()
        }
        .check("saml")
        .expect("the fuzz target's settings")
    })
}

fuzz_target!(|input: (bool, &[u8])| {
    let (raw, bytes) = input;
    let encoded = if raw {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    };
    if screen_saml_response(&encoded).is_err() {
        return;
    }
    let sp = SamlServiceProvider::new(settings()).expect("the service provider");
    let expected = ExpectedRequest {
        request_id: "_request",
        relay_state: "relay",
    };
    let _ = sp.verify(&encoded, Some(&expected), SystemTime::now());
    let _ = sp.verify(&encoded, None, SystemTime::now());
});
