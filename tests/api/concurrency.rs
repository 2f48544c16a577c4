use std::collections::HashSet;

use identityd::grpc::pb;

use crate::support::app::{ADMIN_PASSWORD, ADMIN_USER, TestApp, TestEnv};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        concurrent_logins_and_validations_all_succeed,
        concurrent_uncached_validations_each_answer_for_their_own_token,
        users_and_sessions_survive_a_restart,
        a_full_hashing_queue_answers_resource_exhausted,
    ]
}

async fn concurrent_logins_and_validations_all_succeed(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let logins: Vec<_> = (0..50)
        .map(|_| {
            let mut client = app.login.clone();
            let request = pb::LoginRequest {
                user_name: ADMIN_USER.into(),
                password: ADMIN_PASSWORD.into(),
                token: String::new(),
                device_name: String::new(),
            };
            tokio::spawn(async move { client.login(request).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for login in logins {
        let response = login.await.unwrap().expect("every concurrent login succeeds");
        tokens.push(response.into_inner().session_token);
    }
    assert_eq!(
        tokens.iter().collect::<HashSet<_>>().len(),
        50,
        "fifty distinct sessions"
    );

    let validations: Vec<_> = (0..500)
        .map(|i| {
            let mut client = app.sessions.clone();
            let token = tokens[i % tokens.len()].clone();
            tokio::spawn(async move {
                client
                    .validate_session(pb::ValidateSessionRequest { session_token: token })
                    .await
            })
        })
        .collect();
    for validation in validations {
        let response = validation.await.unwrap().expect("every concurrent validation succeeds");
        assert!(response.into_inner().valid);
    }
    assert_eq!(app.db.count("sessions").await, 51, "the harness's session and fifty");
    app.finish().await;
}

/// With the validation cache off, every validation reads the store, and lookups made at the same
/// time share queries: each still answers for its own token — its own session and user, ended
/// sessions invalid, unknown tokens invalid.
async fn concurrent_uncached_validations_each_answer_for_their_own_token(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| c.validation_cache_ttl = std::time::Duration::ZERO).await;
    app.create_user(&app.admin_tenant_id, "jim@example.com", "his own password", &[])
        .await;
    let mut sessions = Vec::new();
    for i in 0..24 {
        let (user, password) = match i % 2 {
            0 => (ADMIN_USER, ADMIN_PASSWORD),
            _ => ("jim@example.com", "his own password"),
        };
        let login = app.login_ok(user, password).await;
        let who = app.validate(&login.session_token).await;
        sessions.push((login.session_token, who.session_id, who.user_id, user));
    }
    // Every third session ends; the answers for those must say invalid.
    for (token, ..) in sessions.iter().step_by(3) {
        app.login
            .clone()
            .logout(crate::support::app::bearer(pb::LogoutRequest::default(), token))
            .await
            .expect("logout");
    }
    // Well-formed tokens no session has: a valid token with the first character of its body
    // changed (the last carries padding bits a decoder checks).
    let unknown: Vec<String> = sessions
        .iter()
        .take(6)
        .map(|(token, ..)| {
            let (prefix, body) = token.split_at("idsess_".len());
            let first = if body.starts_with('A') { 'B' } else { 'A' };
            format!("{prefix}{first}{}", &body[1..])
        })
        .collect();
    let calls: Vec<_> = (0..600)
        .map(|i| {
            let mut client = app.sessions.clone();
            let token = match i % 5 {
                4 => unknown[i % unknown.len()].clone(),
                _ => sessions[i % sessions.len()].0.clone(),
            };
            tokio::spawn(async move {
                let answer = client
                    .validate_session(pb::ValidateSessionRequest {
                        session_token: token.clone(),
                    })
                    .await;
                (token, answer)
            })
        })
        .collect();
    let (mut valid, mut invalid) = (0, 0);
    for call in calls {
        let (token, answer) = call.await.unwrap();
        let answer = answer.expect("every validation is answered").into_inner();
        match sessions.iter().enumerate().find(|(_, s)| s.0 == token) {
            Some((i, (_, session_id, user_id, user_name))) if i % 3 != 0 => {
                assert!(answer.valid, "session {i} is open");
                assert_eq!(&answer.session_id, session_id, "session {i}");
                assert_eq!(&answer.user_id, user_id, "session {i}");
                assert_eq!(&answer.user_name, user_name, "session {i}");
                valid += 1;
            }
            _ => {
                assert!(!answer.valid, "an ended or unknown session is invalid");
                assert!(answer.session_id.is_empty() && answer.user_id.is_empty());
                invalid += 1;
            }
        }
    }
    assert_eq!((valid, invalid), (320, 280), "open, and ended or unknown");
    app.finish().await;
}

async fn users_and_sessions_survive_a_restart(env: TestEnv) {
    let mut app = TestApp::spawn(&env).await;
    let jim = app
        .create_user(&app.admin_tenant_id, "jim@example.com", "his own password", &[])
        .await;
    let session = app.login_ok("jim@example.com", "his own password").await;
    app.restart().await;
    let v = app.validate(&session.session_token).await;
    assert!(v.valid, "the session outlives the process");
    assert_eq!(v.user_id, jim.user_id);
    app.login_ok("jim@example.com", "his own password").await;
    app.finish().await;
}

async fn a_full_hashing_queue_answers_resource_exhausted(env: TestEnv) {
    // One hashing worker and no queue: logins arriving while a hash runs are refused at once.
    let app = TestApp::spawn_with(&env, |c| {
        c.hashing_concurrency = Some(1);
        c.hashing_queue = 0;
    })
    .await;
    let logins: Vec<_> = (0..10)
        .map(|_| {
            let mut client = app.login.clone();
            let request = pb::LoginRequest {
                user_name: ADMIN_USER.into(),
                password: ADMIN_PASSWORD.into(),
                token: String::new(),
                device_name: String::new(),
            };
            tokio::spawn(async move { client.login(request).await })
        })
        .collect();
    let (mut succeeded, mut refused) = (0, 0);
    for login in logins {
        match login.await.unwrap() {
            Ok(_) => succeeded += 1,
            Err(status) => {
                crate::support::app::assert_error(&status, tonic::Code::ResourceExhausted, "OVERLOADED");
                refused += 1;
            }
        }
    }
    assert!(
        succeeded >= 1 && refused >= 1,
        "{succeeded} succeeded, {refused} refused"
    );
    app.finish().await;
}
