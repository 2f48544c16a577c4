//! Single sign-on with a SAML 2.0 identity provider whose responses xmlsec1 signs: the provider's
//! settings and our metadata, a good sign-in (user created, then linked), each way a response is
//! refused (unsigned, wrongly signed, SHA-1, out of its time window, for someone else, for no
//! request, replayed, the XSW1–XSW8 signature-wrapping shapes, DTDs and oversized documents), and
//! the browser logout through the provider's single logout URL.

use std::time::Instant;

use chrono::Duration;
use identityd::clock::Clock;
use identityd::grpc::pb;
use tonic::Code;

use crate::support::app::{TestApp, TestEnv, assert_error, bearer};
use crate::support::calls::{browser_logout, cheap_hashing, sso_failure_reasons};
use crate::support::saml_idp::{
    ACS_URL, IDP_ENTITY_ID, Key, ResponseSpec, SLO_URL, SP_ENTITY_ID, SSO_URL, Signed, encode, idp_certificate,
    inflate, other_certificate, request_id,
};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        a_saml_provider_is_configured_and_our_metadata_served,
        bad_saml_settings_name_every_field,
        a_signed_response_signs_a_user_in_who_is_created_then_linked,
        every_bad_response_answers_sso_failed_and_is_audited,
        signature_wrapping_shapes_are_refused,
        dtds_and_oversized_responses_are_refused_before_parsing,
        idp_initiated_responses_need_the_providers_consent_and_are_used_once,
        a_browser_logout_of_a_saml_session_is_sent_to_the_provider,
    ]
}

fn saml_settings(allow_idp_initiated: bool) -> pb::SamlProvider {
    pb::SamlProvider {
        idp_entity_id: IDP_ENTITY_ID.into(),
        sso_url: SSO_URL.into(),
        slo_url: SLO_URL.into(),
        signing_certificates: vec![other_certificate(), idp_certificate()],
        sp_entity_id: SP_ENTITY_ID.into(),
        acs_url: ACS_URL.into(),
        allow_idp_initiated,
        require_signed_assertion: false,
        clock_skew_seconds: 30,
        email_attribute: "email".into(),
        first_name_attribute: "givenName".into(),
        last_name_attribute: "sn".into(),
    }
}

async fn configure(app: &TestApp, saml: pb::SamlProvider) -> Result<pb::IdentityProvider, tonic::Status> {
    let request = pb::CreateIdentityProviderRequest {
        identity_provider: Some(pb::IdentityProvider {
            tenant_id: app.admin_tenant_id.clone(),
            create_users: true,
            link_by_verified_email: true,
            default_roles: vec![pb::Role::TenantAdmin as i32],
            saml: Some(saml),
            ..Default::default()
        }),
    };
    Ok(app
        .admin
        .clone()
        .create_identity_provider(bearer(request, &app.admin_token))
        .await?
        .into_inner()
        .identity_provider
        .expect("a provider"))
}

/// StartSso: the redirect URL, its RelayState, and the AuthnRequest's id.
async fn start(app: &TestApp) -> (String, String, String) {
    let started = app
        .login
        .clone()
        .start_sso(pb::StartSsoRequest {
            tenant_id: app.admin_tenant_id.clone(),
            redirect_uri: ACS_URL.into(),
        })
        .await
        .expect("StartSso")
        .into_inner();
    let id = request_id(&started.authorization_url);
    (started.authorization_url, started.state, id)
}

async fn finish(app: &TestApp, saml_response: String, state: &str) -> Result<pb::LoginSsoResponse, tonic::Status> {
    let request = pb::LoginSsoRequest {
        saml_response,
        state: state.into(),
        ..Default::default()
    };
    Ok(app.login.clone().login_sso(request).await?.into_inner())
}

/// StartSso, then a response from `spec` (answering that request) signed as said, to LoginSso.
async fn sign_in_with(
    app: &TestApp,
    change: impl FnOnce(&mut ResponseSpec),
    signed: Signed,
    key: Key,
) -> Result<pb::LoginSsoResponse, tonic::Status> {
    let (_, state, id) = start(app).await;
    let mut spec = ResponseSpec::new(app.clock.now(), &id, "alice@example.com");
    change(&mut spec);
    finish(app, spec.signed(signed, key), &state).await
}

fn sso_failed(result: Result<pb::LoginSsoResponse, tonic::Status>) {
    assert_error(&result.expect_err("refused"), Code::Unauthenticated, "SSO_FAILED");
}

async fn a_saml_provider_is_configured_and_our_metadata_served(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let metadata = |tenant_id: String| {
        let mut login = app.login.clone();
        async move { login.get_saml_metadata(pb::GetSamlMetadataRequest { tenant_id }).await }
    };
    let status = metadata(app.admin_tenant_id.clone()).await.unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");

    let created = configure(&app, saml_settings(false)).await.expect("a SAML provider");
    let saml = created.saml.expect("answered as a SAML provider");
    assert_eq!(saml.idp_entity_id, IDP_ENTITY_ID);
    assert_eq!(saml.signing_certificates.len(), 2);
    assert!(created.issuer_url.is_empty() && !created.has_client_secret);

    let read = app
        .admin
        .clone()
        .get_identity_provider(bearer(
            pb::GetIdentityProviderRequest {
                tenant_id: app.admin_tenant_id.clone(),
            },
            &app.admin_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .identity_provider
        .unwrap();
    assert_eq!(read.saml.unwrap().acs_url, ACS_URL);

    let xml = metadata(app.admin_tenant_id.clone())
        .await
        .expect("our metadata")
        .into_inner()
        .metadata_xml;
    assert!(xml.contains(&format!("entityID=\"{SP_ENTITY_ID}\"")), "{xml}");
    assert!(xml.contains(&format!("Location=\"{ACS_URL}\"")), "{xml}");
    assert!(xml.contains("SPSSODescriptor"), "{xml}");

    // An update that names "saml" changes it.
    let mut changed = saml_settings(true);
    changed.signing_certificates = vec![idp_certificate()];
    let updated = app
        .admin
        .clone()
        .update_identity_provider(bearer(
            pb::UpdateIdentityProviderRequest {
                identity_provider: Some(pb::IdentityProvider {
                    tenant_id: app.admin_tenant_id.clone(),
                    saml: Some(changed),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["saml".into()],
                }),
            },
            &app.admin_token,
        ))
        .await
        .expect("an update")
        .into_inner()
        .identity_provider
        .unwrap();
    let saml = updated.saml.unwrap();
    assert!(saml.allow_idp_initiated);
    assert_eq!(saml.signing_certificates.len(), 1);

    let status = metadata("not a tenant".into()).await.unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    app.finish().await;
}

async fn bad_saml_settings_name_every_field(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let bad = pb::SamlProvider {
        idp_entity_id: String::new(),
        sso_url: "http://idp.example.com/sso".into(),
        signing_certificates: vec!["not a certificate".into()],
        clock_skew_seconds: 3600,
        ..saml_settings(false)
    };
    let status = configure(&app, bad).await.unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    let details = tonic_types::StatusExt::get_error_details(&status);
    let fields: Vec<_> = details
        .bad_request()
        .expect("field violations")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(
        fields,
        [
            "identity_provider.saml.idp_entity_id",
            "identity_provider.saml.sso_url",
            "identity_provider.saml.signing_certificates",
            "identity_provider.saml.clock_skew_seconds",
        ]
    );
    // DER, but no certificate.
    let not_a_certificate = pb::SamlProvider {
        signing_certificates: vec!["-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----".into()],
        ..saml_settings(false)
    };
    let status = configure(&app, not_a_certificate).await.unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert!(status.message().contains("X.509"), "{}", status.message());
    app.finish().await;
}

async fn a_signed_response_signs_a_user_in_who_is_created_then_linked(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    configure(&app, saml_settings(false)).await.unwrap();

    let (url, state, id) = start(&app).await;
    assert!(url.starts_with(&format!("{SSO_URL}?")), "{url}");
    let query: std::collections::HashMap<_, _> =
        reqwest::Url::parse(&url).unwrap().query_pairs().into_owned().collect();
    assert_eq!(query["RelayState"], state);
    let request = inflate(&query["SAMLRequest"]);
    assert!(
        request.contains("AuthnRequest") && request.contains(ACS_URL),
        "{request}"
    );
    assert!(request.contains(SP_ENTITY_ID), "{request}");

    let spec = ResponseSpec::new(app.clock.now(), &id, "alice@example.com");
    let first = finish(&app, spec.signed(Signed::Assertion, Key::Idp), &state)
        .await
        .expect("a signed assertion signs in");
    let user = first.user.unwrap();
    assert_eq!(user.user_name, "alice@example.com", "created, named after the email");
    assert_eq!(user.email, "alice@example.com");
    assert_eq!(
        (user.first_name.as_str(), user.last_name.as_str()),
        ("Alice", "Liddell")
    );
    assert_eq!(user.roles, [pb::Role::TenantAdmin as i32]);
    assert_eq!(first.session.unwrap().kind, pb::SessionKind::Sso as i32);
    assert!(app.validate(&first.session_token).await.valid);

    // The request is answered once: the same response with its RelayState again is refused.
    sso_failed(finish(&app, spec.signed(Signed::Assertion, Key::Idp), &state).await);

    // A signed response (its assertion unsigned) signs the same, linked user in.
    let second = sign_in_with(&app, |_| {}, Signed::Response, Key::Idp)
        .await
        .expect("a signed response signs in");
    assert_eq!(second.user.unwrap().user_id, user.user_id);
    // So does one signed with the certificate rotating in.
    let third = sign_in_with(&app, |_| {}, Signed::Assertion, Key::Other)
        .await
        .expect("the next certificate is trusted too");
    assert_eq!(third.user.unwrap().user_id, user.user_id);
    assert_eq!(sso_failure_reasons(&app).await, ["state_unknown"]);
    app.finish().await;
}

async fn every_bad_response_answers_sso_failed_and_is_audited(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    configure(&app, saml_settings(false)).await.unwrap();
    let same = |_: &mut ResponseSpec| {};

    sso_failed(sign_in_with(&app, same, Signed::Nothing, Key::Idp).await);
    sso_failed(sign_in_with(&app, same, Signed::Assertion, Key::Untrusted).await);
    sso_failed(sign_in_with(&app, same, Signed::Assertion, Key::IdpSha1).await);
    let expired = |s: &mut ResponseSpec| {
        s.issue_instant -= Duration::minutes(20);
        s.not_before -= Duration::minutes(20);
        s.not_on_or_after -= Duration::minutes(20);
    };
    sso_failed(sign_in_with(&app, expired, Signed::Assertion, Key::Idp).await);
    let early = |s: &mut ResponseSpec| s.not_before += Duration::minutes(2);
    sso_failed(sign_in_with(&app, early, Signed::Assertion, Key::Idp).await);
    let audience = |s: &mut ResponseSpec| s.audience = "https://other-sp.example.com".into();
    sso_failed(sign_in_with(&app, audience, Signed::Assertion, Key::Idp).await);
    let recipient = |s: &mut ResponseSpec| s.recipient = "https://evil.example.com/acs".into();
    sso_failed(sign_in_with(&app, recipient, Signed::Assertion, Key::Idp).await);
    let destination = |s: &mut ResponseSpec| s.destination = "https://evil.example.com/acs".into();
    sso_failed(sign_in_with(&app, destination, Signed::Response, Key::Idp).await);
    let unknown_request = |s: &mut ResponseSpec| s.in_response_to = "_a-request-nobody-made".into();
    sso_failed(sign_in_with(&app, unknown_request, Signed::Assertion, Key::Idp).await);
    let issuer = |s: &mut ResponseSpec| s.issuer = "https://evil.example.com/idp".into();
    sso_failed(sign_in_with(&app, issuer, Signed::Assertion, Key::Idp).await);

    // A signed assertion whose subject was changed afterwards.
    let (_, state, id) = start(&app).await;
    let spec = ResponseSpec::new(app.clock.now(), &id, "alice@example.com");
    let tampered = spec
        .signed_xml(Signed::Assertion, Key::Idp)
        .replace(">alice@example.com</saml:NameID>", ">mallory@example.com</saml:NameID>");
    sso_failed(finish(&app, encode(&tampered), &state).await);

    // A comment inside the signed NameID: signed as "alice@example.com.evil.com" (exclusive
    // canonicalisation drops comments), which a careless reader would take as the first text.
    let (_, state, id) = start(&app).await;
    let mut spec = ResponseSpec::new(app.clock.now(), &id, "alice@example.com<!---->.evil.com");
    spec.email = "alice@example.com".into();
    sso_failed(finish(&app, spec.signed(Signed::Assertion, Key::Idp), &state).await);

    // A SAML request's RelayState with an OpenID Connect code.
    let (_, state, _) = start(&app).await;
    let request = pb::LoginSsoRequest {
        code: "a code".into(),
        state,
        ..Default::default()
    };
    sso_failed(app.login.clone().login_sso(request).await.map(|r| r.into_inner()));

    // A RelayState StartSso never gave.
    let spec = ResponseSpec::new(app.clock.now(), "_x", "alice@example.com");
    sso_failed(finish(&app, spec.signed(Signed::Assertion, Key::Idp), "unknown").await);

    assert_eq!(
        sso_failure_reasons(&app).await,
        [
            "signature_missing",
            "signature_invalid",
            "signature_invalid",
            // Expired: the bearer confirmation's NotOnOrAfter is checked first.
            "subject_confirmation_invalid",
            "saml_time_window",
            "audience_mismatch",
            "subject_confirmation_invalid",
            "destination_mismatch",
            "in_response_to_mismatch",
            "issuer_mismatch",
            "signature_invalid",
            "saml_response_comment",
            "not_an_oidc_provider",
            "state_unknown",
        ]
    );
    app.finish().await;
}

/// The classic signature-wrapping shapes (XSW1–XSW8, after Somorovsky et al.) and one of XSW1
/// with a single assertion, built from a
/// genuinely signed response: in each, an evil assertion or response (another user) sits where a
/// careless reader would take it, and the signed original is moved where the signature still
/// verifies.
async fn signature_wrapping_shapes_are_refused(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    configure(&app, saml_settings(false)).await.unwrap();
    let mut shapes = Vec::new();
    for shape in 1..=9 {
        let (_, state, id) = start(&app).await;
        let spec = ResponseSpec::new(app.clock.now(), &id, "alice@example.com");
        let signed = if shape <= 2 || shape == 9 {
            Signed::Response
        } else {
            Signed::Assertion
        };
        let xml = spec.signed_xml(signed, Key::Idp);
        let wrapped = xsw(shape, &xml, &spec);
        assert_ne!(wrapped, xml, "XSW{shape} changed the response");
        shapes.push((shape, finish(&app, encode(&wrapped), &state).await));
    }
    for (shape, result) in shapes {
        match result {
            Ok(login) => panic!("XSW{shape} signed in {:?}", login.user.map(|u| u.user_name)),
            Err(status) => assert_error(&status, Code::Unauthenticated, "SSO_FAILED"),
        }
    }
    // Each shape with a second assertion is refused before the signature is looked at; the
    // last one, with a single assertion, by the signature checks themselves.
    let reasons = sso_failure_reasons(&app).await;
    assert_eq!(reasons[..8], ["saml_assertion_count"; 8], "{reasons:?}");
    assert_eq!(reasons.len(), 9, "{reasons:?}");
    assert_eq!(reasons[8], "signature_invalid", "{reasons:?}");
    app.finish().await;
}

/// One signature-wrapping shape of a signed response `xml`.
fn xsw(shape: u32, xml: &str, spec: &ResponseSpec) -> String {
    let body = xml.trim_start();
    let body = match body.strip_prefix("<?xml") {
        Some(rest) => &rest[rest.find("?>").unwrap() + 2..],
        None => body,
    }
    .trim();
    let assertion = element(body, "<saml:Assertion", "</saml:Assertion>");
    let signature = element(body, "<ds:Signature", "</ds:Signature>");
    let evil_assertion = |keep_signature: bool| {
        let mut evil = assertion
            .replace(&spec.assertion_id, "_evil")
            .replace("alice@example.com", "mallory@example.com");
        if !keep_signature {
            evil = evil.replace(element(&evil, "<ds:Signature", "</ds:Signature>"), "");
        }
        evil
    };
    match shape {
        // XSW1: an evil response (its own id, an evil assertion) whose signature holds the
        // signed original.
        1 => {
            let evil_response = body
                .replace(&spec.response_id, "_evilresponse")
                .replace(assertion, &evil_assertion(true))
                .replace(signature, "");
            let evil_signature = signature.replace("</ds:Signature>", &format!("{body}</ds:Signature>"));
            evil_response.replacen("</saml:Issuer>", &format!("</saml:Issuer>{evil_signature}"), 1)
        }
        // XSW2: as XSW1, the signed original beside the signature rather than inside it.
        2 => {
            let evil_response = body
                .replace(&spec.response_id, "_evilresponse")
                .replace(assertion, &evil_assertion(true))
                .replace(signature, "");
            evil_response.replacen("</saml:Issuer>", &format!("</saml:Issuer>{body}{signature}"), 1)
        }
        // XSW3: an evil assertion before the signed one.
        3 => body.replace(assertion, &format!("{}{assertion}", evil_assertion(false))),
        // XSW4: an evil assertion wrapping the signed one.
        4 => {
            let evil = evil_assertion(false);
            let evil = evil.replace("</saml:Assertion>", &format!("{assertion}</saml:Assertion>"));
            body.replace(assertion, &evil)
        }
        // XSW5: the signature moved onto an evil copy; the original (unsigned now) at the end.
        5 => {
            let evil = evil_assertion(false).replacen("</saml:Issuer>", &format!("</saml:Issuer>{signature}"), 1);
            let original = assertion.replace(signature, "");
            body.replace(assertion, &format!("{evil}{original}"))
        }
        // XSW6: the evil copy carries the signature, the original inside the signature.
        6 => {
            let inner = signature.replace(
                "</ds:Signature>",
                &format!(
                    "<ds:Object>{}</ds:Object></ds:Signature>",
                    assertion.replace(signature, "")
                ),
            );
            let evil = evil_assertion(false).replacen("</saml:Issuer>", &format!("</saml:Issuer>{inner}"), 1);
            body.replace(assertion, &evil)
        }
        // XSW7: the signed original hidden in Extensions, the evil assertion in its place.
        7 => {
            let extensions = format!("<samlp:Extensions>{assertion}</samlp:Extensions>");
            body.replace(assertion, &evil_assertion(false)).replacen(
                "</saml:Issuer>",
                &format!("</saml:Issuer>{extensions}"),
                1,
            )
        }
        // XSW8: the original inside an Object of the evil assertion's signature.
        8 => {
            let original = assertion.replace(signature, "");
            let inner = signature.replace(
                "</ds:Signature>",
                &format!("<ds:Object>{original}</ds:Object></ds:Signature>"),
            );
            let evil = evil_assertion(false).replacen("</saml:Issuer>", &format!("</saml:Issuer>{inner}"), 1);
            body.replace(assertion, &evil)
        }
        // XSW1 with a single assertion: an evil response with none of its own, the signed
        // original (and its one assertion) inside the signature, so that only the signature
        // checks can refuse it.
        _ => {
            let evil_response = body
                .replace(&spec.response_id, "_evilresponse")
                .replace(assertion, "")
                .replace(signature, "");
            let evil_signature = signature.replace(
                "</ds:Signature>",
                &format!("<ds:Object>{body}</ds:Object></ds:Signature>"),
            );
            evil_response.replacen("</saml:Issuer>", &format!("</saml:Issuer>{evil_signature}"), 1)
        }
    }
}

/// The first element of `xml` from `open` to the first `close` after it.
fn element<'a>(xml: &'a str, open: &str, close: &str) -> &'a str {
    let start = xml.find(open).unwrap_or_else(|| panic!("{open} in {xml}"));
    let end = start + xml[start..].find(close).expect("its end") + close.len();
    &xml[start..end]
}

async fn dtds_and_oversized_responses_are_refused_before_parsing(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    configure(&app, saml_settings(false)).await.unwrap();
    let (_, state, id) = start(&app).await;
    let spec = ResponseSpec::new(app.clock.now(), &id, "alice@example.com");
    let signed = spec.signed_xml(Signed::Assertion, Key::Idp);
    let body = match signed.find("?>") {
        Some(end) if signed.starts_with("<?xml") => signed[end + 2..].to_owned(),
        _ => signed.clone(),
    };
    let mut laughs = String::from("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    laughs.push_str("<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">");
    for i in 2..=9 {
        let prev = format!("&lol{};", i - 1);
        laughs.push_str(&format!("<!ENTITY lol{i} \"{}\">", prev.repeat(10)));
    }
    laughs.push_str("]>");
    let laughs = format!(
        "{laughs}{}",
        body.replacen(">alice@example.com</saml:NameID>", ">&lol9;</saml:NameID>", 1)
    );
    let external = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>{}",
        body.replacen(">alice@example.com</saml:NameID>", ">&xxe;</saml:NameID>", 1)
    );
    for document in [laughs, external] {
        let began = Instant::now();
        sso_failed(finish(&app, encode(&document), &state).await);
        assert!(
            began.elapsed() < std::time::Duration::from_secs(1),
            "refused in {:?}",
            began.elapsed()
        );
    }

    // 5 MB: refused by its size, before base64 or XML (here by the server's message limit).
    let huge = "A".repeat(5 * 1024 * 1024);
    let began = Instant::now();
    let status = finish(&app, huge, &state).await.unwrap_err();
    assert_error(&status, Code::ResourceExhausted, "MESSAGE_TOO_LARGE");
    assert!(began.elapsed() < std::time::Duration::from_secs(2));
    // Just over the cap, under the server's message limit: the cap answers.
    let over = "A".repeat(identityd::domain::MAX_SAML_RESPONSE + 4);
    sso_failed(finish(&app, over, &state).await);

    let reasons = sso_failure_reasons(&app).await;
    assert_eq!(reasons[0], "saml_response_doctype", "{reasons:?}");
    assert_eq!(reasons[1], "saml_response_doctype", "{reasons:?}");
    assert_eq!(reasons.last().unwrap(), "saml_response_too_large", "{reasons:?}");
    app.finish().await;
}

async fn idp_initiated_responses_need_the_providers_consent_and_are_used_once(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    configure(&app, saml_settings(false)).await.unwrap();
    let unsolicited = |app: &TestApp| {
        let spec = ResponseSpec::new(app.clock.now(), "", "bob@example.com");
        spec.signed(Signed::Assertion, Key::Idp)
    };
    let idp_initiated = |saml_response: String| {
        let mut login = app.login.clone();
        let tenant_id = app.admin_tenant_id.clone();
        async move {
            login
                .login_sso(pb::LoginSsoRequest {
                    saml_response,
                    tenant_id,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner())
        }
    };
    sso_failed(idp_initiated(unsolicited(&app)).await);

    let mut allowing = saml_settings(true);
    allowing.require_signed_assertion = true;
    app.admin
        .clone()
        .delete_identity_provider(bearer(
            pb::DeleteIdentityProviderRequest {
                tenant_id: app.admin_tenant_id.clone(),
            },
            &app.admin_token,
        ))
        .await
        .unwrap();
    configure(&app, allowing).await.unwrap();
    let response = unsolicited(&app);
    let login = idp_initiated(response.clone()).await.expect("an IdP-initiated sign-in");
    assert_eq!(login.user.unwrap().user_name, "bob@example.com");
    // The same response again — its assertion id is kept until it expires — here and on another
    // instance over the same database.
    sso_failed(idp_initiated(response.clone()).await);
    let (_, instance) = app.second_instance().await;
    let other = pb::login_service_client::LoginServiceClient::new(instance.channel.clone())
        .login_sso(pb::LoginSsoRequest {
            saml_response: response,
            tenant_id: app.admin_tenant_id.clone(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner());
    sso_failed(other);
    instance.stop().await;
    // With the assertion required to be signed, a signed response alone does not do.
    let spec = ResponseSpec::new(app.clock.now(), "", "bob@example.com");
    sso_failed(idp_initiated(spec.signed(Signed::Response, Key::Idp)).await);
    // A response to a request, without its RelayState, is not an unsolicited one.
    let (_, _, id) = start(&app).await;
    let spec = ResponseSpec::new(app.clock.now(), &id, "bob@example.com");
    sso_failed(idp_initiated(spec.signed(Signed::Assertion, Key::Idp)).await);

    let reasons = sso_failure_reasons(&app).await;
    assert_eq!(reasons[0], "idp_initiated_not_allowed", "{reasons:?}");
    assert_eq!(reasons[1], "saml_replayed", "{reasons:?}");
    assert_eq!(reasons[2], "saml_replayed", "on the other instance too: {reasons:?}");
    assert_eq!(reasons[3], "signature_missing", "{reasons:?}");
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    app.finish().await;
}

async fn a_browser_logout_of_a_saml_session_is_sent_to_the_provider(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    configure(&app, saml_settings(false)).await.unwrap();
    let login = sign_in_with(&app, |_| {}, Signed::Assertion, Key::Idp)
        .await
        .expect("a sign-in");
    let (url, query) = browser_logout(&app, &login.session_token).await;
    assert!(url.starts_with(&format!("{SLO_URL}?")), "{url}");
    let request = inflate(&query["SAMLRequest"]);
    assert!(request.contains("LogoutRequest"), "{request}");
    assert!(request.contains(">alice@example.com<"), "names the subject: {request}");
    assert!(request.contains("SessionIndex"), "and the session: {request}");
    assert!(!app.validate(&login.session_token).await.valid);
    app.finish().await;
}
