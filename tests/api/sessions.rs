use chrono::Duration;
use identityd::grpc::pb;
use tonic::Code;

use crate::support::app::{ADMIN_PASSWORD, ADMIN_USER, TestApp, TestEnv, assert_error, bearer};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        a_fresh_session_is_valid_and_says_whose_it_is,
        unknown_malformed_and_logged_out_tokens_are_invalid_not_errors,
        sessions_end_at_their_absolute_lifetime,
        idle_sessions_end_and_use_keeps_them_alive,
        validation_does_not_write_last_use_until_the_flush,
        who_am_i_needs_a_valid_bearer,
        logout_ends_the_session,
        logout_of_someone_elses_session_is_not_found,
        users_list_and_revoke_their_own_sessions,
        validations_are_answered_from_the_cache,
        cached_validations_see_local_revocations_at_once,
        revocations_on_one_instance_reach_another_through_the_store,
    ]
}

async fn a_fresh_session_is_valid_and_says_whose_it_is(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let v = app.validate(&login.session_token).await;
    assert!(v.valid);
    let session = login.session.unwrap();
    assert_eq!(v.session_id, session.session_id);
    assert_eq!(v.user_id, app.admin_user_id);
    assert_eq!(v.tenant_id, app.admin_tenant_id);
    assert_eq!(v.user_name, ADMIN_USER);
    assert_eq!(v.expire_time, session.expire_time);
    app.finish().await;
}

async fn unknown_malformed_and_logged_out_tokens_are_invalid_not_errors(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let mut changed = login.session_token.clone().into_bytes();
    let last = changed.len() - 1;
    changed[last] = if changed[last] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(changed).unwrap();
    for token in ["", "garbage", "idsess_short", changed.as_str()] {
        let v = app.validate(token).await;
        assert!(!v.valid, "{token:?} is not valid");
        assert!(v.user_id.is_empty(), "an invalid answer names nobody");
    }
    app.login
        .clone()
        .logout(bearer(pb::LogoutRequest::default(), &login.session_token))
        .await
        .expect("logout");
    assert!(!app.validate(&login.session_token).await.valid);
    app.finish().await;
}

async fn sessions_end_at_their_absolute_lifetime(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| {
        c.session_lifetime = std::time::Duration::from_secs(3600);
        c.session_idle_timeout = std::time::Duration::from_secs(3600);
    })
    .await;
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    for _ in 0..3 {
        app.clock.advance(Duration::minutes(19));
        assert!(app.validate(&login.session_token).await.valid);
    }
    app.clock.advance(Duration::minutes(3));
    assert!(
        !app.validate(&login.session_token).await.valid,
        "61 minutes after login, used all along"
    );
    app.finish().await;
}

async fn idle_sessions_end_and_use_keeps_them_alive(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| c.session_idle_timeout = std::time::Duration::from_secs(600)).await;
    let kept = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let idle = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    app.clock.advance(Duration::minutes(9));
    assert!(app.validate(&kept.session_token).await.valid);
    app.clock.advance(Duration::minutes(2));
    assert!(app.validate(&kept.session_token).await.valid, "used 2 minutes ago");
    assert!(!app.validate(&idle.session_token).await.valid, "unused for 11 minutes");
    let status = app
        .sessions
        .clone()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &idle.session_token))
        .await
        .unwrap_err();
    assert_error(&status, Code::Unauthenticated, "SESSION_INVALID");
    app.finish().await;
}

async fn validation_does_not_write_last_use_until_the_flush(env: TestEnv) {
    let mut app = TestApp::spawn_with(&env, |c| {
        c.last_use_flush_interval = std::time::Duration::from_secs(3600)
    })
    .await;
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let session_id: uuid::Uuid = login.session.unwrap().session_id.parse().unwrap();
    let before = app.db.session_last_use(session_id).await;
    app.clock.advance(Duration::minutes(5));
    for _ in 0..20 {
        assert!(app.validate(&login.session_token).await.valid);
    }
    let who = app
        .sessions
        .clone()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &login.session_token))
        .await
        .unwrap()
        .into_inner();
    let shown = who.session.unwrap().last_use_time.unwrap();
    assert_eq!(
        shown.seconds,
        (before + Duration::minutes(5)).timestamp(),
        "the service knows the last use"
    );
    assert_eq!(
        app.db.session_last_use(session_id).await,
        before,
        "no write per validation"
    );
    app.stop().await;
    assert_eq!(
        app.db.session_last_use(session_id).await,
        before + Duration::minutes(5),
        "written at shutdown"
    );
    app.finish().await;
}

async fn who_am_i_needs_a_valid_bearer(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let who = app
        .sessions
        .clone()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &app.admin_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(who.user.unwrap().user_name, ADMIN_USER);
    assert!(who.session.unwrap().current);
    let missing = app
        .sessions
        .clone()
        .get_current_user(pb::GetCurrentUserRequest {})
        .await
        .unwrap_err();
    assert_error(&missing, Code::Unauthenticated, "MISSING_CREDENTIALS");
    let garbage = app
        .sessions
        .clone()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, "idsess_nope"))
        .await
        .unwrap_err();
    assert_error(&garbage, Code::Unauthenticated, "SESSION_INVALID");
    app.finish().await;
}

async fn logout_ends_the_session(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let response = app
        .login
        .clone()
        .logout(bearer(
            pb::LogoutRequest {
                ui_logout: true,
                ..Default::default()
            },
            &login.session_token,
        ))
        .await
        .expect("logout")
        .into_inner();
    assert!(
        response.redirect_url.is_empty(),
        "a password session has no identity provider to return to"
    );
    let again = app
        .login
        .clone()
        .logout(bearer(pb::LogoutRequest::default(), &login.session_token))
        .await
        .unwrap_err();
    assert_error(&again, Code::Unauthenticated, "SESSION_INVALID");
    assert!(app.validate(&app.admin_token).await.valid, "other sessions stay");
    let request = pb::ListAuditEventsRequest {
        action: "logout".into(),
        ..Default::default()
    };
    let events = app
        .admin
        .clone()
        .list_audit_events(bearer(request, &app.admin_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(events.audit_events.len(), 1);
    assert_eq!(events.audit_events[0].session_id, login.session.unwrap().session_id);
    app.finish().await;
}

async fn logout_of_someone_elses_session_is_not_found(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    app.create_user(&app.admin_tenant_id, "bob@example.com", "the builder's secret", &[])
        .await;
    let bob = app.login_ok("bob@example.com", "the builder's secret").await;
    let admin_session = app.validate(&app.admin_token).await.session_id;
    let status = app
        .login
        .clone()
        .logout(bearer(
            pb::LogoutRequest {
                session_id: admin_session,
                ..Default::default()
            },
            &bob.session_token,
        ))
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    assert!(app.validate(&app.admin_token).await.valid);
    // Logout ends only the caller's own sessions, an administrator's too.
    let bob_session = bob.session.unwrap().session_id;
    let logout = |session_id: String, token: String| {
        let mut login = app.login.clone();
        async move {
            let request = pb::LogoutRequest {
                session_id,
                ..Default::default()
            };
            login.logout(bearer(request, &token)).await
        }
    };
    let status = logout(bob_session.clone(), app.admin_token.clone()).await.unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    assert!(app.validate(&bob.session_token).await.valid);
    // Bob ends his session from another of his sessions.
    let other = app.login_ok("bob@example.com", "the builder's secret").await;
    logout(bob_session, other.session_token.clone())
        .await
        .expect("bob ends his own session");
    assert!(!app.validate(&bob.session_token).await.valid);
    assert!(app.validate(&other.session_token).await.valid);
    let bad = app
        .login
        .clone()
        .logout(bearer(
            pb::LogoutRequest {
                session_id: "not-an-id".into(),
                ..Default::default()
            },
            &app.admin_token,
        ))
        .await
        .unwrap_err();
    assert_error(&bad, Code::InvalidArgument, "INVALID_ARGUMENT");
    app.finish().await;
}

async fn users_list_and_revoke_their_own_sessions(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let a = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let b = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let c = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let list = |token: String, page_token: String| {
        let mut sessions = app.sessions.clone();
        async move {
            sessions
                .list_my_sessions(bearer(
                    pb::ListMySessionsRequest {
                        page_size: 2,
                        page_token,
                    },
                    &token,
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = list(a.session_token.clone(), String::new()).await;
    assert_eq!(first.sessions.len(), 2);
    let second = list(a.session_token.clone(), first.next_page_token.clone()).await;
    assert_eq!(second.sessions.len(), 2, "four sessions: the harness's and three");
    assert!(second.next_page_token.is_empty());
    let current: Vec<bool> = first
        .sessions
        .iter()
        .chain(&second.sessions)
        .map(|s| s.current)
        .collect();
    assert_eq!(current.iter().filter(|c| **c).count(), 1);

    let b_id = b.session.unwrap().session_id;
    app.sessions
        .clone()
        .revoke_my_session(bearer(
            pb::RevokeMySessionRequest { session_id: b_id },
            &a.session_token,
        ))
        .await
        .unwrap();
    assert!(!app.validate(&b.session_token).await.valid);
    let revoked = app
        .sessions
        .clone()
        .revoke_my_other_sessions(bearer(pb::RevokeMyOtherSessionsRequest {}, &a.session_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.revoked_count, 2, "the harness's session and c");
    assert!(!app.validate(&c.session_token).await.valid);
    assert!(app.validate(&a.session_token).await.valid);
    app.finish().await;
}

/// Validates a session, ends it in the database behind the service's back (too long ago for the
/// revocation poll to see), and validates it again: only a cached answer can still say valid.
async fn validity_after_an_unseen_ending(app: &TestApp) -> bool {
    // A poll now, so that the cache is trusted (it is not before the first poll) and the
    // validation below is kept.
    app.identity.poll_revocations().await;
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    assert!(app.validate(&login.session_token).await.valid);
    let session_id = login.session.unwrap().session_id.parse().unwrap();
    let long_ago = app.clock_now() - Duration::days(1);
    app.db.end_session_behind_the_back(session_id, long_ago).await;
    app.validate(&login.session_token).await.valid
}

async fn validations_are_answered_from_the_cache(env: TestEnv) {
    let hour = std::time::Duration::from_secs(3600);
    let cached = TestApp::spawn_with(&env, |c| c.validation_cache_ttl = hour).await;
    assert!(
        validity_after_an_unseen_ending(&cached).await,
        "answered from memory, not from the store"
    );
    cached.finish().await;
    let uncached = TestApp::spawn_with(&env, |c| c.validation_cache_ttl = std::time::Duration::ZERO).await;
    assert!(
        !validity_after_an_unseen_ending(&uncached).await,
        "without the cache every validation reads the store"
    );
    uncached.finish().await;
}

async fn cached_validations_see_local_revocations_at_once(env: TestEnv) {
    // An hour-long cache lifetime: only the cache's own invalidation can explain a changed answer.
    let app = TestApp::spawn_with(&env, |c| c.validation_cache_ttl = std::time::Duration::from_secs(3600)).await;
    let jim = app
        .create_user(&app.admin_tenant_id, "jim@example.com", "his own password", &[])
        .await;
    let (a, b, c) = (
        app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await.session_token,
        app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await.session_token,
        app.login_ok("jim@example.com", "his own password").await.session_token,
    );
    for token in [&a, &b, &c] {
        assert!(app.validate(token).await.valid, "validated once, and cached");
    }
    app.login
        .clone()
        .logout(bearer(pb::LogoutRequest::default(), &a))
        .await
        .unwrap();
    assert!(!app.validate(&a).await.valid, "logout");
    app.sessions
        .clone()
        .revoke_my_other_sessions(bearer(pb::RevokeMyOtherSessionsRequest {}, &app.admin_token))
        .await
        .unwrap();
    assert!(!app.validate(&b).await.valid, "revoked by its owner");
    let disable = pb::DisableUserRequest { user_id: jim.user_id };
    app.admin
        .clone()
        .disable_user(bearer(disable, &app.admin_token))
        .await
        .unwrap();
    assert!(!app.validate(&c).await.valid, "user disabled");
    assert!(app.validate(&app.admin_token).await.valid);
    app.finish().await;
}

async fn revocations_on_one_instance_reach_another_through_the_store(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| c.validation_cache_ttl = std::time::Duration::from_secs(3600)).await;
    let (mut other, instance) = app.second_instance().await;
    let token = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await.session_token;
    let validate = |token: String| pb::ValidateSessionRequest { session_token: token };
    assert!(
        other
            .validate_session(validate(token.clone()))
            .await
            .unwrap()
            .into_inner()
            .valid,
        "cached there"
    );
    app.login
        .clone()
        .logout(bearer(pb::LogoutRequest::default(), &token))
        .await
        .unwrap();
    // The other instance learns of the logout from the store's record of ended sessions.
    let start = std::time::Instant::now();
    while other
        .validate_session(validate(token.clone()))
        .await
        .unwrap()
        .into_inner()
        .valid
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the logout never reached the other instance"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    eprintln!("the other instance saw the logout after {:?}", start.elapsed());
    instance.stop().await;
    app.finish().await;
}
