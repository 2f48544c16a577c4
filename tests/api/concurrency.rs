use std::collections::HashSet;

use identityd::grpc::pb;

use crate::support::app::{ADMIN_PASSWORD, ADMIN_USER, TestApp, TestEnv};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        concurrent_logins_and_validations_all_succeed,
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
