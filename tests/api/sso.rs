//! Single sign-on against a real OpenID Provider (panva's oidc-provider, started per test): the
//! whole code flow, each way it fails, how users are found, linked or created, the provider
//! rotating its keys, and logging out through the browser.

use identityd::grpc::pb;
use tonic::Code;

use crate::support::app::{TestApp, TestEnv, assert_error, bearer};
use crate::support::calls::{browser_logout, cheap_hashing, sso_failure_reasons};
use crate::support::oidc_browser::{Browser, Callback};
use crate::support::oidc_provider::{
    CLIENT_ID, CLIENT_SECRET, OTHER_REDIRECT_URI, OidcProvider, POST_LOGOUT_REDIRECT_URI, REDIRECT_URI,
};
use crate::support::traced_server::TracedServer;

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        a_user_signs_in_through_the_provider_and_is_created_then_linked,
        every_failure_answers_sso_failed_and_is_audited,
        a_verified_email_links_an_existing_user_and_an_unverified_one_does_not,
        a_provider_that_rotated_its_keys_is_still_trusted,
        a_browser_logout_of_an_sso_session_is_sent_to_the_provider,
        the_client_secret_and_the_id_token_are_never_stored_answered_or_audited_in_plaintext,
        no_sso_secret_reaches_a_log_line,
        a_user_access_token_signs_in_through_login_sso,
    ]
}

/// The tenant's provider settings for `op`.
fn settings(tenant_id: &str, op: &OidcProvider, create_users: bool) -> pb::IdentityProvider {
    pb::IdentityProvider {
        tenant_id: tenant_id.into(),
        issuer_url: op.issuer(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        scopes: vec!["email".into(), "profile".into()],
        allowed_redirect_uris: vec![REDIRECT_URI.into(), OTHER_REDIRECT_URI.into()],
        link_by_verified_email: true,
        create_users,
        default_roles: vec![pb::Role::TenantAdmin as i32],
        post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI.into(),
        ..Default::default()
    }
}

async fn configure(app: &TestApp, provider: pb::IdentityProvider) {
    let request = pb::CreateIdentityProviderRequest {
        identity_provider: Some(provider),
    };
    app.admin
        .clone()
        .create_identity_provider(bearer(request, &app.admin_token))
        .await
        .expect("create the identity provider");
}

async fn start(app: &TestApp, redirect_uri: &str) -> Result<pb::StartSsoResponse, tonic::Status> {
    let request = pb::StartSsoRequest {
        tenant_id: app.admin_tenant_id.clone(),
        redirect_uri: redirect_uri.into(),
    };
    Ok(app.login.clone().start_sso(request).await?.into_inner())
}

async fn finish(app: &TestApp, back: &Callback) -> Result<pb::LoginSsoResponse, tonic::Status> {
    let request = pb::LoginSsoRequest {
        code: back.code.clone(),
        state: back.state.clone(),
        iss: back.iss.clone(),
        ..Default::default()
    };
    Ok(app.login.clone().login_sso(request).await?.into_inner())
}

/// StartSso, and the browser through the provider's pages as `account` back to REDIRECT_URI.
async fn come_back(app: &TestApp, account: &str) -> Callback {
    let started = start(app, REDIRECT_URI).await.expect("StartSso");
    let back = Browser::new()
        .sign_in(&started.authorization_url, account, REDIRECT_URI)
        .await;
    assert_eq!(back.state, started.state, "the provider returns the state");
    back
}

/// StartSso, the browser through the provider's pages as `account`, and LoginSso.
async fn sign_in(app: &TestApp, account: &str) -> Result<pb::LoginSsoResponse, tonic::Status> {
    finish(app, &come_back(app, account).await).await
}

async fn a_user_signs_in_through_the_provider_and_is_created_then_linked(env: TestEnv) {
    let op = OidcProvider::start();
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    configure(&app, settings(&app.admin_tenant_id, &op, true)).await;

    let started = start(&app, REDIRECT_URI).await.unwrap();
    let url = reqwest::Url::parse(&started.authorization_url).unwrap();
    assert!(started.authorization_url.starts_with(&format!("{}/auth?", op.issuer())));
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["redirect_uri"], REDIRECT_URI);
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["state"], started.state);
    assert!(!query["nonce"].is_empty() && !query["code_challenge"].is_empty());
    assert_eq!(query["scope"], "openid email profile");

    let back = Browser::new()
        .sign_in(&started.authorization_url, "alice", REDIRECT_URI)
        .await;
    assert_eq!(back.iss, op.issuer(), "the provider says who it is (RFC 9207)");
    let first = finish(&app, &back).await.expect("LoginSso");
    let user = first.user.clone().unwrap();
    assert_eq!(user.user_name, "alice", "created at first sign-in");
    assert_eq!(user.email, "alice@example.com");
    assert_eq!(
        user.roles,
        [pb::Role::TenantAdmin as i32],
        "with the provider's default roles"
    );
    assert_eq!(first.organization_id, app.admin_tenant_id);
    let session = first.session.clone().unwrap();
    assert_eq!(session.kind, pb::SessionKind::Sso as i32);
    assert!(
        !first.session_jwt.is_empty(),
        "an SSO login answers a session JWT like any login"
    );
    assert!(app.validate(&first.session_token).await.valid);

    // The attempt is used once: the same answer again is refused.
    let replayed = finish(&app, &back).await.unwrap_err();
    assert_error(&replayed, Code::Unauthenticated, "SSO_FAILED");

    // The next sign-in of the same subject finds the linked user.
    let second = sign_in(&app, "alice").await.expect("a second sign-in");
    assert_eq!(second.user.unwrap().user_id, user.user_id);
    assert_eq!(sso_failure_reasons(&app).await, ["state_unknown"]);
    app.finish().await;
}

async fn every_failure_answers_sso_failed_and_is_audited(env: TestEnv) {
    let op = OidcProvider::start();
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    configure(&app, settings(&app.admin_tenant_id, &op, true)).await;
    let sso_failed = |result: Result<pb::LoginSsoResponse, tonic::Status>| {
        assert_error(&result.unwrap_err(), Code::Unauthenticated, "SSO_FAILED");
    };

    // A redirect URI the tenant does not allow.
    let status = start(&app, "https://evil.example.com/callback").await.unwrap_err();
    assert_error(&status, Code::Unauthenticated, "SSO_FAILED");

    // A state nobody started.
    sso_failed(
        finish(
            &app,
            &Callback {
                code: "a-code".into(),
                state: "a-state-never-issued".into(),
                iss: String::new(),
            },
        )
        .await,
    );

    // The code came to another redirect URI than the attempt's.
    let back = come_back(&app, "alice").await;
    let request = pb::LoginSsoRequest {
        code: back.code.clone(),
        state: back.state.clone(),
        redirect_uri: OTHER_REDIRECT_URI.into(),
        ..Default::default()
    };
    sso_failed(app.login.clone().login_sso(request).await.map(|r| r.into_inner()));

    // Another issuer in the RFC 9207 parameter (a mix-up).
    let mut back = come_back(&app, "alice").await;
    back.iss = "https://other-idp.example.com".into();
    sso_failed(finish(&app, &back).await);

    // The ID token carries another nonce than the attempt's.
    let started = start(&app, REDIRECT_URI).await.unwrap();
    let mut url = reqwest::Url::parse(&started.authorization_url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .map(|(k, v)| match k.as_str() {
            "nonce" => (k, "a-nonce-we-never-made".into()),
            _ => (k, v),
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let back = Browser::new().sign_in(url.as_str(), "alice", REDIRECT_URI).await;
    sso_failed(finish(&app, &back).await);

    // A code the provider does not know.
    let mut back = come_back(&app, "alice").await;
    back.code = "a-code-the-provider-never-issued".into();
    sso_failed(finish(&app, &back).await);

    // A code that expired at the provider (its codes live 60 seconds).
    let back = come_back(&app, "alice").await;
    op.advance_clock(120).await;
    sso_failed(finish(&app, &back).await);

    // An attempt finished after its ten minutes.
    let back = come_back(&app, "alice").await;
    app.clock.advance(chrono::Duration::minutes(10));
    sso_failed(finish(&app, &back).await);

    assert_eq!(
        sso_failure_reasons(&app).await,
        [
            "redirect_uri_not_allowed",
            "state_unknown",
            "redirect_uri_mismatch",
            "issuer_mismatch",
            "id_token_invalid",
            "code_refused",
            "code_refused",
            "state_expired",
        ]
    );
    assert_eq!(app.db.count("linked_identities").await, 0, "no failure links anyone");
    app.finish().await;
}

async fn a_verified_email_links_an_existing_user_and_an_unverified_one_does_not(env: TestEnv) {
    let op = OidcProvider::start();
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    configure(&app, settings(&app.admin_tenant_id, &op, false)).await;
    let tenant = app.admin_tenant_id.clone();
    let password = "a long enough phrase to sign in with";
    let alice = app.create_user(&tenant, "alice@example.com", password, &[]).await;
    app.create_user(&tenant, "bob@example.com", "another long enough phrase to sign in", &[])
        .await;

    // alice's provider account says her email is verified: she is linked and signed in.
    let signed_in = sign_in(&app, "alice").await.expect("linked by verified email");
    assert_eq!(signed_in.user.unwrap().user_id, alice.user_id);
    assert_eq!(app.db.count("linked_identities").await, 1);

    // bob's says his is not: no link, and no user is created (the tenant does not allow it).
    let status = sign_in(&app, "bob").await.unwrap_err();
    assert_error(&status, Code::Unauthenticated, "SSO_FAILED");
    // carol matches nobody.
    let status = sign_in(&app, "carol").await.unwrap_err();
    assert_error(&status, Code::Unauthenticated, "SSO_FAILED");
    assert_eq!(app.db.count("linked_identities").await, 1);
    assert_eq!(
        sso_failure_reasons(&app).await,
        ["no_linked_user_email_unverified", "no_linked_user"]
    );

    // The next sign-in follows the link.
    let again = sign_in(&app, "alice").await.expect("linked by subject");
    assert_eq!(again.user.unwrap().user_id, alice.user_id);
    app.finish().await;
}

async fn a_provider_that_rotated_its_keys_is_still_trusted(env: TestEnv) {
    let mut op = OidcProvider::start();
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    configure(&app, settings(&app.admin_tenant_id, &op, true)).await;
    let first = sign_in(&app, "alice").await.expect("a sign-in that caches the key set");

    // Same issuer, new signing key: the cached key set lacks its kid and is fetched again.
    op.restart_with_new_key();
    let second = sign_in(&app, "alice").await.expect("a sign-in with the new key");
    assert_eq!(second.user.unwrap().user_id, first.user.unwrap().user_id);
    app.finish().await;
}

async fn a_browser_logout_of_an_sso_session_is_sent_to_the_provider(env: TestEnv) {
    let op = OidcProvider::start();
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    configure(&app, settings(&app.admin_tenant_id, &op, true)).await;
    let signed_in = sign_in(&app, "alice").await.unwrap();

    let (url, query) = browser_logout(&app, &signed_in.session_token).await;
    assert!(url.starts_with(&format!("{}/session/end?", op.issuer())));
    assert_eq!(query["post_logout_redirect_uri"], POST_LOGOUT_REDIRECT_URI);
    assert_eq!(query["client_id"], CLIENT_ID);
    let hint = &query["id_token_hint"];
    assert_eq!(hint.split('.').count(), 3, "the ID token the session was opened with");
    assert!(!app.validate(&signed_in.session_token).await.valid);

    // The provider accepts it: its logout page answers, not an error.
    let page = reqwest::get(url).await.expect("the provider's logout page");
    assert!(page.status().is_success(), "the provider answered {}", page.status());

    // A password session has no provider to go to.
    let password = app
        .login_ok(crate::support::app::ADMIN_USER, crate::support::app::ADMIN_PASSWORD)
        .await;
    let (url, _) = browser_logout(&app, &password.session_token).await;
    assert_eq!(url, "");
    app.finish().await;
}

async fn the_client_secret_and_the_id_token_are_never_stored_answered_or_audited_in_plaintext(env: TestEnv) {
    let op = OidcProvider::start();
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    configure(&app, settings(&app.admin_tenant_id, &op, true)).await;
    let signed_in = sign_in(&app, "alice").await.expect("a sign-in that uses the secret");
    let answered = format!("{signed_in:?}");
    assert!(!answered.contains(CLIENT_SECRET));
    let id_token_payload_marker = "alice@example.com\"";
    let hex: String = CLIENT_SECRET.bytes().map(|b| format!("{b:02x}")).collect();
    for table in app.db.tables().await {
        for row in app.db.rows_as_text(&table).await {
            assert!(!row.contains(CLIENT_SECRET), "the client secret is in {table}: {row}");
            assert!(
                !row.to_lowercase().contains(&hex),
                "the client secret is in {table} as hex"
            );
            assert!(!contains_jwt(&row), "a JWT is in {table} in plaintext: {row}");
            assert!(!row.contains(id_token_payload_marker) || table == "users");
        }
    }
    let audit = app
        .admin
        .clone()
        .list_audit_events(bearer(pb::ListAuditEventsRequest::default(), &app.admin_token))
        .await
        .unwrap()
        .into_inner();
    let audit = format!("{:?}", audit.audit_events);
    assert!(!audit.contains(CLIENT_SECRET) && !contains_jwt(&audit));
    app.finish().await;
}

/// Whether `text` holds a compact JWT: `eyJ` (a base64url JSON object) starting three or more
/// base64url segments joined by dots. "eyJ" alone is no sign: random base64 (a public key) may
/// hold it.
fn contains_jwt(text: &str) -> bool {
    text.match_indices("eyJ").any(|(at, _)| {
        let token: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        let segments: Vec<&str> = token.split('.').collect();
        segments.len() >= 3 && segments[..2].iter().all(|s| !s.is_empty())
    })
}

/// Runs the real binary with every log line on (`RUST_LOG=trace`) through configuring the provider,
/// a sign-in, a code the provider refuses and a browser logout, and looks for each secret of
/// them in every line: the client secret, the authorization code, the ID token, the session token
/// and the session JWT.
async fn no_sso_secret_reaches_a_log_line(env: TestEnv) {
    let op = OidcProvider::start();
    let mut app = TestApp::spawn_with(&env, cheap_hashing).await;
    let server = TracedServer::replace(&mut app).await;
    configure(&app, settings(&app.admin_tenant_id, &op, true)).await;

    let back = come_back(&app, "alice").await;
    let signed_in = finish(&app, &back).await.expect("a sign-in");
    let mut refused = come_back(&app, "alice").await;
    let refused_code = std::mem::replace(&mut refused.code, back.code.clone());
    assert_error(
        &finish(&app, &refused).await.unwrap_err(),
        Code::Unauthenticated,
        "SSO_FAILED",
    );
    let (_, query) = browser_logout(&app, &signed_in.session_token).await;
    let id_token = query
        .get("id_token_hint")
        .expect("the ID token as the logout hint")
        .clone();

    let log = server.stop();
    let secrets = [
        ("the client secret", CLIENT_SECRET),
        ("the authorization code", back.code.as_str()),
        ("an unused authorization code", refused_code.as_str()),
        ("the ID token", id_token.as_str()),
        ("the session token", signed_in.session_token.as_str()),
        ("the session JWT", signed_in.session_jwt.as_str()),
    ];
    for line in &log {
        for (what, secret) in secrets {
            assert!(!line.contains(secret), "{what} in a log line: {line}");
        }
    }
    app.finish().await;
}

async fn a_user_access_token_signs_in_through_login_sso(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let secret = app.create_token(&app.admin_token, "sso-token").await.unwrap();
    let request = pb::LoginSsoRequest {
        token: secret,
        ..Default::default()
    };
    let answer = app
        .login
        .clone()
        .login_sso(request)
        .await
        .expect("LoginSso with a token")
        .into_inner();
    assert_eq!(answer.session.unwrap().kind, pb::SessionKind::AccessToken as i32);
    assert!(app.validate(&answer.session_token).await.valid);
    let request = pb::LoginSsoRequest {
        token: "not-a-token".into(),
        ..Default::default()
    };
    let status = app.login.clone().login_sso(request).await.unwrap_err();
    assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    app.finish().await;
}
