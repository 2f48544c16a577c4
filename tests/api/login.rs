use std::time::Instant;

use rand::seq::SliceRandom;

use identityd::grpc::pb;
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::support::app::{
    ADMIN_PASSWORD, ADMIN_TENANT, ADMIN_USER, TestApp, TestEnv, assert_error, bearer, violated_fields,
};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        login_returns_the_profile_the_session_and_a_token,
        user_names_are_case_insensitive,
        failed_logins_are_indistinguishable,
        bad_login_input_is_refused_with_the_field_named,
        session_tokens_are_stored_only_as_hashes,
        logins_and_failures_are_audited,
        expired_passwords_force_a_change,
        an_empty_login_names_every_missing_field,
        a_saml_response_needs_its_relay_state_or_a_tenant,
    ]
}

/// Tests that measure time, run alone after the others so that no other test's work skews them.
pub fn exclusive_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![failed_logins_take_the_same_time]
}

async fn login_returns_the_profile_the_session_and_a_token(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let user = login.user.expect("user");
    assert_eq!(user.user_name, ADMIN_USER);
    assert_eq!(user.email, ADMIN_USER);
    assert_eq!(login.organization_name, ADMIN_TENANT);
    assert_eq!(login.organization_id, user.tenant_id);
    assert!(user.roles.contains(&(pb::Role::SystemAdmin as i32)));
    let session = login.session.expect("session");
    assert_eq!(session.user_id, user.user_id);
    assert_eq!(session.kind, pb::SessionKind::Password as i32);
    assert!(session.current);
    let (created, expires) = (session.create_time.unwrap(), session.expire_time.unwrap());
    assert_eq!(
        expires.seconds - created.seconds,
        12 * 3600,
        "default lifetime is 12 hours"
    );
    assert!(login.session_token.starts_with("idsess_"));
    assert!(login.session_token.len() >= 7 + 43, "at least 256 random bits");
    assert!(!login.is_force_change_password);
    app.finish().await;
}

async fn user_names_are_case_insensitive(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let login = app.login_ok(&ADMIN_USER.to_uppercase(), ADMIN_PASSWORD).await;
    assert_eq!(
        login.user.unwrap().user_name,
        ADMIN_USER,
        "the name is returned as it was created"
    );
    app.finish().await;
}

async fn failed_logins_are_indistinguishable(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let disabled = app
        .create_user(&app.admin_tenant_id, "gone@example.com", "a long password", &[])
        .await;
    app.admin
        .clone()
        .disable_user(bearer(
            pb::DisableUserRequest {
                user_id: disabled.user_id.clone(),
            },
            &app.admin_token,
        ))
        .await
        .expect("disable");

    let wrong_password = app.login(ADMIN_USER, "not the password").await.unwrap_err();
    let unknown_user = app.login("nobody@example.com", "not the password").await.unwrap_err();
    let disabled_user = app.login("gone@example.com", "a long password").await.unwrap_err();
    for status in [&wrong_password, &unknown_user, &disabled_user] {
        assert_error(status, Code::Unauthenticated, "INVALID_CREDENTIALS");
        assert_eq!(status.message(), wrong_password.message());
    }
    app.finish().await;
}

async fn failed_logins_take_the_same_time(env: TestEnv) {
    // No limit per address: every attempt here comes from the same one.
    let app = TestApp::spawn_with(&env, |c| c.password_login_failures = 0).await;
    // The wrong-password case stays unlocked through every round ...
    let patient = pb::Tenant {
        tenant_id: app.admin_tenant_id.clone(),
        lockout_failures: 100,
        ..Default::default()
    };
    app.update_tenant(&app.admin_token, patient, &["lockout_failures"])
        .await
        .unwrap();
    // ... and a user of a tenant with the default lockout is locked before they begin, then
    // offers the right password.
    let other = app.create_tenant("Other").await;
    app.create_user(&other.tenant_id, "locked@example.com", "a long password", &[])
        .await;
    for _ in 0..5 {
        app.login("locked@example.com", "not the password").await.unwrap_err();
    }
    let disabled = app
        .create_user(&app.admin_tenant_id, "gone@example.com", "a long password", &[])
        .await;
    app.admin
        .clone()
        .disable_user(bearer(
            pb::DisableUserRequest {
                user_id: disabled.user_id,
            },
            &app.admin_token,
        ))
        .await
        .expect("disable");
    let cases = [
        (ADMIN_USER, "not the password"),
        ("nobody@example.com", "not the password"),
        ("gone@example.com", "a long password"),
        ("locked@example.com", "a long password"),
    ];
    // Interleaved rounds in a shuffled order, so that no case always runs in the same place of a
    // round. Each time is compared with its own round's mean, so that the machine's load drifting
    // between rounds cancels out; the median of those ratios is taken per case. Two warm-up rounds.
    const ROUNDS: usize = 81;
    let mut ratios = vec![Vec::with_capacity(ROUNDS); cases.len()];
    let mut order: Vec<usize> = (0..cases.len()).collect();
    for round in 0..ROUNDS + 2 {
        order.shuffle(&mut rand::thread_rng());
        let mut times = vec![0f64; cases.len()];
        for &i in &order {
            let (user, password) = cases[i];
            let start = Instant::now();
            let status = app.login(user, password).await.unwrap_err();
            times[i] = start.elapsed().as_secs_f64();
            assert_eq!(status.code(), Code::Unauthenticated);
        }
        if round >= 2 {
            let mean = times.iter().sum::<f64>() / times.len() as f64;
            for (i, t) in times.iter().enumerate() {
                ratios[i].push(t / mean);
            }
        }
    }
    let medians: Vec<f64> = ratios
        .iter_mut()
        .map(|r| {
            r.sort_by(f64::total_cmp);
            r[r.len() / 2]
        })
        .collect();
    let (min, max) = medians
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), m| (lo.min(*m), hi.max(*m)));
    eprintln!(
        "failed-login time ÷ its round's mean, median (wrong password, unknown user, disabled user, locked account): {medians:?}"
    );
    assert!(
        max <= min * 1.10,
        "failed-login times differ by more than 10%: {medians:?}"
    );
    app.finish().await;
}

async fn bad_login_input_is_refused_with_the_field_named(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let empty_name = app.login("  ", "whatever").await.unwrap_err();
    assert_error(&empty_name, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&empty_name), ["user_name"]);
    let empty_password = app.login(ADMIN_USER, "").await.unwrap_err();
    assert_eq!(violated_fields(&empty_password), ["password"]);
    let long_name = app.login(&"x".repeat(300), "whatever").await.unwrap_err();
    assert_eq!(violated_fields(&long_name), ["user_name"]);
    assert!(
        long_name.message().contains("at most 255"),
        "says what to fix: {}",
        long_name.message()
    );
    let both = pb::LoginRequest {
        user_name: ADMIN_USER.into(),
        password: "x".into(),
        token: "y".into(),
        device_name: String::new(),
    };
    let both = app.login.clone().login(both).await.unwrap_err();
    assert_eq!(violated_fields(&both), ["token"]);
    app.finish().await;
}

async fn session_tokens_are_stored_only_as_hashes(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let session_id: uuid::Uuid = login.session.unwrap().session_id.parse().unwrap();
    let hash = app.db.session_token_hash(session_id).await;
    assert_eq!(hash, Sha256::digest(login.session_token.as_bytes()).to_vec());
    let secret_part = &login.session_token["idsess_".len()..];
    for table in ["sessions", "audit_events", "users", "tenants"] {
        let rows = app.db.rows_as_text(table).await;
        assert!(!rows.is_empty(), "{table} has rows to look through");
        assert!(
            rows.iter()
                .all(|row| !row.contains(secret_part) && !row.contains(ADMIN_PASSWORD)),
            "no secret in {table}"
        );
    }
    app.finish().await;
}

async fn logins_and_failures_are_audited(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    app.login(ADMIN_USER, "wrong password").await.unwrap_err();
    app.login("nobody@example.com", "wrong password").await.unwrap_err();
    let list = |action: &str| {
        let request = pb::ListAuditEventsRequest {
            action: action.into(),
            ..Default::default()
        };
        let mut admin = app.admin.clone();
        let request = bearer(request, &app.admin_token);
        async move {
            admin
                .list_audit_events(request)
                .await
                .unwrap()
                .into_inner()
                .audit_events
        }
    };
    let failed = list("login.failed").await;
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].subject_user_id, app.admin_user_id);
    assert_eq!(failed[0].details["failure"], "wrong_password");
    assert_eq!(failed[1].details["user_name"], "nobody@example.com");
    assert!(failed[1].subject_user_id.is_empty());
    assert!(failed.iter().all(|e| !e.peer_address.is_empty()));
    let succeeded = list("login.succeeded").await;
    assert_eq!(succeeded.len(), 1, "the harness's own admin login");
    assert!(!succeeded[0].session_id.is_empty());
    app.finish().await;
}

async fn expired_passwords_force_a_change(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let tenant = pb::Tenant {
        tenant_id: app.admin_tenant_id.clone(),
        password_expiry: pb::PasswordExpiry::Days15 as i32,
        ..Default::default()
    };
    let mask = prost_types::FieldMask {
        paths: vec!["password_expiry".into()],
    };
    app.admin
        .clone()
        .update_tenant(bearer(
            pb::UpdateTenantRequest {
                tenant: Some(tenant),
                update_mask: Some(mask),
            },
            &app.admin_token,
        ))
        .await
        .expect("update tenant");
    app.clock.advance(chrono::Duration::days(14));
    assert!(!app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await.is_force_change_password);
    app.clock.advance(chrono::Duration::days(2));
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    assert!(
        login.is_force_change_password,
        "16 days after the change, a 15-day policy forces a change"
    );
    assert!(app.validate(&login.session_token).await.is_force_change_password);
    app.finish().await;
}

async fn an_empty_login_names_every_missing_field(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let status = app.login.clone().login(pb::LoginRequest::default()).await.unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["user_name", "password"]);
    app.finish().await;
}

async fn a_saml_response_needs_its_relay_state_or_a_tenant(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let request = pb::LoginSsoRequest {
        saml_response: "PHNhbWxwOlJlc3BvbnNlLz4=".into(),
        ..Default::default()
    };
    let status = app.login.clone().login_sso(request).await.unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert!(status.message().contains("RelayState"), "{}", status.message());
    // With a RelayState nobody was given: the sign-in fails as any unknown state does.
    let request = pb::LoginSsoRequest {
        saml_response: "PHNhbWxwOlJlc3BvbnNlLz4=".into(),
        state: "unknown".into(),
        ..Default::default()
    };
    let status = app.login.clone().login_sso(request).await.unwrap_err();
    assert_error(&status, Code::Unauthenticated, "SSO_FAILED");
    app.finish().await;
}
