//! Session JWTs: on every login answer, verifiable offline with only GetJwks's answer, refreshed
//! with a session token, used to log out; signing keys rotated by the clock and sealed at rest.

use chrono::Duration;
use identityd::grpc::pb;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tonic::Code;

use crate::support::app::{
    ADMIN_PASSWORD, ADMIN_USER, TEST_KEY_ENCRYPTION_KEY, TestApp, TestEnv, assert_error, bearer,
};
use crate::support::calls::cheap_hashing;

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        a_login_answers_a_jwt_that_verifies_offline_with_only_the_jwks,
        an_impersonated_sessions_jwt_names_the_real_user_as_actor,
        a_fresh_jwt_is_had_for_a_live_session_and_never_for_an_ended_one,
        logout_by_jwt_ends_the_session_the_jwt_names,
        logout_refuses_a_jwt_not_signed_by_us_or_of_another_issuer,
        signing_keys_are_published_before_they_sign_and_kept_after_they_retire,
        signing_keys_are_sealed_at_rest_and_survive_a_restart,
    ]
}

async fn jwks(app: &TestApp) -> pb::GetJwksResponse {
    app.sessions
        .clone()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .expect("GetJwks")
        .into_inner()
}

/// Verifies a JWT as a service elsewhere would: a generic JOSE library given only GetJwks's JSON,
/// issuer and audience. Answers the claims.
fn verify_offline(jwks: &pb::GetJwksResponse, jwt: &str) -> Value {
    let set: JwkSet = serde_json::from_str(&jwks.jwks_json).expect("a JWK Set document");
    let kid = jsonwebtoken::decode_header(jwt).unwrap().kid.expect("a kid");
    let jwk = set.find(&kid).unwrap_or_else(|| panic!("key {kid} is not in the JWKS"));
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[&jwks.issuer]);
    validation.set_audience(&[&jwks.audience]);
    jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .expect("the JWT verifies")
        .claims
}

fn kid(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap()
}

fn key_ids(jwks: &pb::GetJwksResponse) -> Vec<String> {
    jwks.keys.iter().map(|k| k.kid.clone()).collect()
}

async fn a_login_answers_a_jwt_that_verifies_offline_with_only_the_jwks(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let jwks = jwks(&app).await;
    assert_eq!(jwks.keys.len(), 1);
    let key = &jwks.keys[0];
    assert_eq!(
        (key.kty.as_str(), key.crv.as_str(), key.alg.as_str()),
        ("EC", "P-256", "ES256")
    );

    let claims = verify_offline(&jwks, &login.session_jwt);
    let session = login.session.unwrap();
    assert_eq!(claims["sub"], login.user.unwrap().user_id);
    assert_eq!(claims["sid"], session.session_id);
    assert_eq!(claims["tid"], login.organization_id);
    assert_eq!(claims["iss"], "identityd");
    assert_eq!(claims["aud"], "identityd");
    assert_eq!(claims["iat"], app.clock_now().timestamp());
    assert_eq!(claims["exp"], (app.clock_now() + Duration::minutes(10)).timestamp());
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(claims.get("act").is_none(), "nobody acts for the user");

    // Every JWT is its own: another login's differs in sid and jti.
    let other = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let other_claims = verify_offline(&jwks, &other.session_jwt);
    assert_ne!(other_claims["sid"], claims["sid"]);
    assert_ne!(other_claims["jti"], claims["jti"]);
    app.finish().await;
}

async fn an_impersonated_sessions_jwt_names_the_real_user_as_actor(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let user = app
        .create_user(&app.admin_tenant_id, "worker@example.com", "a password for work", &[])
        .await;
    let request = pb::ProxyLoginRequest {
        user_name: ADMIN_USER.into(),
        password: ADMIN_PASSWORD.into(),
        proxy_user_id: user.user_id.clone(),
    };
    let proxy = app.login.clone().proxy_login(request).await.unwrap().into_inner();
    let claims = verify_offline(&jwks(&app).await, &proxy.session_jwt);
    assert_eq!(claims["sub"], user.user_id);
    assert_eq!(claims["act"]["sub"], app.admin_user_id);

    // Switching back answers a JWT of the real user's session, with nobody acting.
    let back = app
        .login
        .clone()
        .switch_back(bearer(pb::SwitchBackRequest {}, &proxy.session_token))
        .await
        .unwrap()
        .into_inner();
    let claims = verify_offline(&jwks(&app).await, &back.session_jwt);
    assert_eq!(claims["sub"], app.admin_user_id);
    assert_eq!(claims["sid"], back.session.unwrap().session_id);
    assert!(claims.get("act").is_none());
    app.finish().await;
}

async fn a_fresh_jwt_is_had_for_a_live_session_and_never_for_an_ended_one(env: TestEnv) {
    // No idle timeout to speak of: the session is used twice across its whole lifetime.
    let app = TestApp::spawn_with(&env, |c| {
        c.session_idle_timeout = std::time::Duration::from_secs(13 * 3600)
    })
    .await;
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    app.clock.advance(Duration::minutes(8));
    let refreshed = app
        .sessions
        .clone()
        .refresh_session_jwt(bearer(pb::RefreshSessionJwtRequest {}, &login.session_token))
        .await
        .unwrap()
        .into_inner();
    let jwks = jwks(&app).await;
    let first = verify_offline(&jwks, &login.session_jwt);
    let fresh = verify_offline(&jwks, &refreshed.session_jwt);
    assert_eq!(fresh["sid"], first["sid"]);
    assert_eq!(fresh["iat"], app.clock_now().timestamp());
    assert_eq!(fresh["exp"], refreshed.expire_time.unwrap().seconds);
    assert!(fresh["exp"].as_i64() > first["exp"].as_i64());

    // Never past the session's own end.
    app.clock
        .advance(Duration::hours(12) - Duration::minutes(8) - Duration::minutes(3));
    let late = app
        .sessions
        .clone()
        .refresh_session_jwt(bearer(pb::RefreshSessionJwtRequest {}, &login.session_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        late.expire_time.unwrap().seconds,
        login.session.unwrap().expire_time.unwrap().seconds
    );

    app.login
        .clone()
        .logout(bearer(pb::LogoutRequest::default(), &login.session_token))
        .await
        .unwrap();
    let ended = app
        .sessions
        .clone()
        .refresh_session_jwt(bearer(pb::RefreshSessionJwtRequest {}, &login.session_token))
        .await
        .unwrap_err();
    assert_error(&ended, Code::Unauthenticated, "SESSION_INVALID");
    app.finish().await;
}

async fn logout_by_jwt_ends_the_session_the_jwt_names(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let here = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let there = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    app.create_user(
        &app.admin_tenant_id,
        "someone@example.com",
        "a long enough phrase for a peer",
        &[],
    )
    .await;
    let someone = app
        .login_ok("someone@example.com", "a long enough phrase for a peer")
        .await;

    // Someone else's session, named by its JWT, is not the caller's to end.
    let request = pb::LogoutRequest {
        jwt_token: someone.session_jwt.clone(),
        ..Default::default()
    };
    let status = app
        .login
        .clone()
        .logout(bearer(request, &here.session_token))
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    assert!(app.validate(&someone.session_token).await.valid);

    // An expired JWT still names its session.
    app.clock.advance(Duration::minutes(30));
    let request = pb::LogoutRequest {
        jwt_token: there.session_jwt.clone(),
        ..Default::default()
    };
    app.login
        .clone()
        .logout(bearer(request, &here.session_token))
        .await
        .unwrap();
    assert!(
        !app.validate(&there.session_token).await.valid,
        "the session the JWT named ended"
    );
    assert!(
        app.validate(&here.session_token).await.valid,
        "the caller's own stays open"
    );

    let both = pb::LogoutRequest {
        session_id: here.session.unwrap().session_id,
        jwt_token: here.session_jwt.clone(),
        ..Default::default()
    };
    let status = app
        .login
        .clone()
        .logout(bearer(both, &here.session_token))
        .await
        .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    app.finish().await;
}

async fn logout_refuses_a_jwt_not_signed_by_us_or_of_another_issuer(env: TestEnv) {
    let mut app = TestApp::spawn(&env).await;
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let logout_with = |jwt: String| {
        let request = pb::LogoutRequest {
            jwt_token: jwt,
            ..Default::default()
        };
        let mut client = app.login.clone();
        let token = login.session_token.clone();
        async move { client.logout(bearer(request, &token)).await }
    };

    // Our claims and key id, signed with a key of someone else's.
    let claims = verify_offline(&jwks(&app).await, &login.session_jwt);
    let foreign = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let der = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&foreign).unwrap();
    let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
    header.kid = Some(kid(&login.session_jwt));
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()),
    )
    .unwrap();
    for bad in [forged, "not a JWT".to_owned(), {
        // A signature changed in one place.
        let mut jwt = login.session_jwt.clone();
        let last = jwt.pop().unwrap();
        jwt.push(if last == 'A' { 'B' } else { 'A' });
        jwt
    }] {
        let status = logout_with(bad).await.unwrap_err();
        assert_error(&status, Code::Unauthenticated, "JWT_INVALID");
    }
    assert!(app.validate(&login.session_token).await.valid);

    // The same keys, another issuer: the JWT issued before is no longer ours.
    app.config.jwt_issuer = "https://identity.example.com".into();
    app.restart().await;
    let request = pb::LogoutRequest {
        jwt_token: login.session_jwt.clone(),
        ..Default::default()
    };
    let status = app
        .login
        .clone()
        .logout(bearer(request, &login.session_token))
        .await
        .unwrap_err();
    assert_error(&status, Code::Unauthenticated, "JWT_INVALID");
    let fresh = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(
        kid(&fresh.session_jwt),
        kid(&login.session_jwt),
        "the keys are the same"
    );
    assert_eq!(
        verify_offline(&jwks(&app).await, &fresh.session_jwt)["iss"],
        "https://identity.example.com"
    );
    app.finish().await;
}

async fn signing_keys_are_published_before_they_sign_and_kept_after_they_retire(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| {
        cheap_hashing(c);
        c.jwt_key_rotation = std::time::Duration::from_secs(24 * 3600);
        c.jwt_key_publish_ahead = std::time::Duration::from_secs(3600);
    })
    .await;
    let first = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let first_key = kid(&first.session_jwt);
    assert_eq!(key_ids(&jwks(&app).await), std::slice::from_ref(&first_key));

    // Just before the publication of the next key: nothing new.
    app.clock.advance(Duration::hours(23) - Duration::seconds(1));
    assert_eq!(key_ids(&jwks(&app).await), std::slice::from_ref(&first_key));

    // An hour before the first retires, the next is published, but does not sign yet.
    app.clock.advance(Duration::seconds(1));
    let set = jwks(&app).await;
    assert_eq!(set.keys.len(), 2);
    let next_key = set.keys[1].kid.clone();
    assert_eq!(key_ids(&set), [first_key.clone(), next_key.clone()]);
    let late = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(kid(&late.session_jwt), first_key);

    // When it retires, the next one signs; the first is still published for the JWTs it signed.
    app.clock.advance(Duration::hours(1));
    let after = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(kid(&after.session_jwt), next_key);
    let set = jwks(&app).await;
    assert_eq!(key_ids(&set), [first_key.clone(), next_key.clone()]);
    verify_offline(&set, &late.session_jwt);
    verify_offline(&set, &after.session_jwt);

    // Kept for the JWT lifetime plus the publication lead, then removed.
    app.clock.advance(Duration::minutes(70) - Duration::seconds(1));
    assert_eq!(jwks(&app).await.keys.len(), 2);
    app.clock.advance(Duration::seconds(1));
    assert_eq!(key_ids(&jwks(&app).await), [next_key]);
    assert_eq!(app.db.count("signing_keys").await, 1);
    app.finish().await;
}

async fn signing_keys_are_sealed_at_rest_and_survive_a_restart(env: TestEnv) {
    let mut app = TestApp::spawn(&env).await;
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let stored = app.db.signing_keys_as_stored().await;
    assert_eq!(stored.len(), 1);
    let (key_id, sealed) = &stored[0];
    assert_eq!(key_id, &kid(&login.session_jwt));
    assert!(
        p256::pkcs8::DecodePrivateKey::from_pkcs8_der(sealed.as_slice())
            .map(|_: p256::SecretKey| ())
            .is_err(),
        "the stored private key is not a usable key"
    );
    // It opens with the key-encryption key, and is the key the JWKS publishes.
    let kek = identityd::auth::KeyEncryptionKey::parse(TEST_KEY_ENCRYPTION_KEY).unwrap();
    let private = kek
        .open(sealed, key_id.as_bytes())
        .expect("sealed with the configured key");
    let secret: p256::SecretKey =
        p256::pkcs8::DecodePrivateKey::from_pkcs8_der(secrecy::ExposeSecret::expose_secret(&private).as_slice())
            .unwrap();
    let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    use base64::Engine;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(point.x().unwrap());
    assert_eq!(jwks(&app).await.keys[0].x, x);

    app.restart().await;
    let again = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(kid(&again.session_jwt), *key_id, "the same key signs after a restart");

    // Another key-encryption key cannot open the keys: the server does not start.
    let mut config = app.config.clone();
    config.key_encryption_key = Some("b3RoZXIga2V5cyBvcGVuIG5vdGhpbmcgaGVyZSwgbm8=".into());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let refused = identityd::startup::Application::build(config)
        .await
        .err()
        .expect("refused");
    assert!(format!("{refused:#}").contains("key-encryption key"), "{refused:#}");
    app.finish().await;
}
