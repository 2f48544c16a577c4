//! What a session tells about its client, administrators' view of a user's sessions, and the sweep
//! that deletes sessions past their retention.

use chrono::Duration;
use identityd::grpc::pb;
use identityd::grpc::pb::login_service_client::LoginServiceClient;
use tonic::Code;
use tonic::transport::Endpoint;

use crate::support::app::{ADMIN_PASSWORD, ADMIN_USER, TestApp, TestEnv, assert_error, bearer, violated_fields};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        sessions_show_their_client_to_their_owner_only,
        a_long_user_agent_is_cut_and_a_bad_device_name_refused,
        administrators_list_a_users_sessions,
        administrators_revoke_one_or_all_of_a_users_sessions,
        revocations_are_audited_in_the_users_tenant,
        the_sweep_deletes_only_sessions_past_their_retention,
    ]
}

const PASSWORD: &str = "a password for sessions";

/// A login client that sends `user_agent` (tonic adds its own name after it).
async fn login_client(app: &TestApp, user_agent: &str) -> LoginServiceClient<tonic::transport::Channel> {
    let channel = Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .user_agent(user_agent)
        .unwrap()
        .connect()
        .await
        .expect("connect");
    LoginServiceClient::new(channel)
}

async fn login_with_device(
    client: &mut LoginServiceClient<tonic::transport::Channel>,
    user_name: &str,
    device_name: &str,
) -> Result<pb::LoginResponse, tonic::Status> {
    let request = pb::LoginRequest {
        user_name: user_name.into(),
        password: PASSWORD.into(),
        device_name: device_name.into(),
        ..Default::default()
    };
    Ok(client.login(request).await?.into_inner())
}

async fn sessions_show_their_client_to_their_owner_only(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    app.create_user(&app.admin_tenant_id, "ann@example.com", PASSWORD, &[])
        .await;
    app.create_user(&app.admin_tenant_id, "bob@example.com", PASSWORD, &[])
        .await;
    let mut firefox = login_client(&app, "Mozilla/5.0 Firefox/130.0").await;
    let laptop = login_with_device(&mut firefox, "ann@example.com", "Ann's laptop")
        .await
        .unwrap();
    let session = laptop.session.as_ref().unwrap();
    assert!(
        session.user_agent.starts_with("Mozilla/5.0 Firefox/130.0"),
        "{session:?}"
    );
    assert_eq!(session.device_name, "Ann's laptop");
    assert!(session.peer_address.starts_with("127.0.0.1:"), "{session:?}");

    let phone = app.login_ok("ann@example.com", PASSWORD).await;
    let mine = app.my_sessions(&phone.session_token).await.unwrap();
    assert_eq!(mine.len(), 2);
    let listed = mine.iter().find(|s| s.session_id == session.session_id).unwrap();
    assert_eq!(listed.device_name, "Ann's laptop");
    assert_eq!(listed.user_agent, session.user_agent);
    assert_eq!(listed.peer_address, session.peer_address);
    assert!(listed.last_use_time.is_some());
    let other = mine.iter().find(|s| s.current).unwrap();
    assert_eq!(other.device_name, "", "no device name given");
    assert!(other.user_agent.starts_with("tonic/"), "{other:?}");

    let bob = app.login_ok("bob@example.com", PASSWORD).await;
    let theirs = app.my_sessions(&bob.session_token).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert!(theirs.iter().all(|s| s.device_name.is_empty()), "{theirs:?}");
    app.finish().await;
}

async fn a_long_user_agent_is_cut_and_a_bad_device_name_refused(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    app.create_user(&app.admin_tenant_id, "ann@example.com", PASSWORD, &[])
        .await;
    let mut client = login_client(&app, &format!("Huge/1.0 {}", "x".repeat(5000))).await;
    let login = login_with_device(&mut client, "ann@example.com", "").await.unwrap();
    let ua = login.session.unwrap().user_agent;
    assert_eq!(ua.chars().count(), 256);
    assert!(ua.starts_with("Huge/1.0 xxx"));
    assert!(
        !app.db
            .rows_as_text("sessions")
            .await
            .iter()
            .any(|row| row.contains(&"x".repeat(257)))
    );

    for bad in ["tab\u{0007}bell", "zero\u{200B}width", &"d".repeat(101)] {
        let status = login_with_device(&mut client, "ann@example.com", bad)
            .await
            .unwrap_err();
        assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&status), ["device_name"]);
    }
    app.finish().await;
}

async fn list_user_sessions(
    app: &TestApp,
    token: &str,
    user_id: &str,
    include_ended: bool,
) -> Result<Vec<pb::Session>, tonic::Status> {
    let request = pb::ListUserSessionsRequest {
        user_id: user_id.into(),
        include_ended,
        ..Default::default()
    };
    let response = app.admin.clone().list_user_sessions(bearer(request, token)).await?;
    Ok(response.into_inner().sessions)
}

async fn revoke_user_sessions(
    app: &TestApp,
    token: &str,
    user_id: &str,
    session_id: &str,
) -> Result<i32, tonic::Status> {
    let request = pb::RevokeUserSessionsRequest {
        user_id: user_id.into(),
        session_id: session_id.into(),
    };
    let response = app.admin.clone().revoke_user_sessions(bearer(request, token)).await?;
    Ok(response.into_inner().revoked_count)
}

async fn administrators_list_a_users_sessions(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let ann = app
        .create_user(&app.admin_tenant_id, "ann@example.com", PASSWORD, &[])
        .await;
    let mut client = login_client(&app, "Safari/17").await;
    let first = login_with_device(&mut client, "ann@example.com", "iPad").await.unwrap();
    let second = app.login_ok("ann@example.com", PASSWORD).await;
    app.login
        .clone()
        .logout(bearer(pb::LogoutRequest::default(), &second.session_token))
        .await
        .unwrap();

    let open = list_user_sessions(&app, &app.admin_token, &ann.user_id, false)
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].session_id, first.session.as_ref().unwrap().session_id);
    assert_eq!(open[0].device_name, "iPad");
    assert!(open[0].user_agent.starts_with("Safari/17"));
    assert!(!open[0].current);
    let all = list_user_sessions(&app, &app.admin_token, &ann.user_id, true)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[1].end_time.is_some());

    // A tenant administrator of another tenant does not find her; she may list her own.
    let elsewhere = app.create_tenant("Elsewhere").await;
    app.create_user(
        &elsewhere.tenant_id,
        "eve@example.com",
        PASSWORD,
        &[pb::Role::TenantAdmin],
    )
    .await;
    let eve = app.login_ok("eve@example.com", PASSWORD).await.session_token;
    let status = list_user_sessions(&app, &eve, &ann.user_id, false).await.unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    let own = list_user_sessions(&app, &first.session_token, &ann.user_id, false)
        .await
        .unwrap();
    assert_eq!(own.len(), 1);
    assert!(own[0].current);
    app.finish().await;
}

async fn administrators_revoke_one_or_all_of_a_users_sessions(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let ann = app
        .create_user(&app.admin_tenant_id, "ann@example.com", PASSWORD, &[])
        .await;
    let a = app.login_ok("ann@example.com", PASSWORD).await;
    let b = app.login_ok("ann@example.com", PASSWORD).await;
    let c = app.login_ok("ann@example.com", PASSWORD).await;

    let revoked = revoke_user_sessions(&app, &app.admin_token, &ann.user_id, &a.session.unwrap().session_id)
        .await
        .unwrap();
    assert_eq!(revoked, 1);
    assert!(!app.validate(&a.session_token).await.valid);
    assert!(app.validate(&b.session_token).await.valid);

    // A session that is not hers, or already ended, is not found.
    let admins = app.validate(&app.admin_token).await.session_id;
    let status = revoke_user_sessions(&app, &app.admin_token, &ann.user_id, &admins)
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    assert!(app.validate(&app.admin_token).await.valid);

    // A plain user may not end another's sessions, nor their own this way.
    let status = revoke_user_sessions(&app, &b.session_token, &ann.user_id, "")
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");

    let revoked = revoke_user_sessions(&app, &app.admin_token, &ann.user_id, "")
        .await
        .unwrap();
    assert_eq!(revoked, 2);
    assert!(!app.validate(&b.session_token).await.valid);
    assert!(!app.validate(&c.session_token).await.valid);
    assert!(
        app.validate(&app.admin_token).await.valid,
        "the administrator's own stays open"
    );
    assert_eq!(
        revoke_user_sessions(&app, &app.admin_token, &ann.user_id, "")
            .await
            .unwrap(),
        0
    );
    app.finish().await;
}

async fn revocations_are_audited_in_the_users_tenant(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let elsewhere = app.create_tenant("Elsewhere").await;
    let ann = app
        .create_user(&elsewhere.tenant_id, "ann@example.com", PASSWORD, &[])
        .await;
    let login = app.login_ok("ann@example.com", PASSWORD).await;
    let session_id = login.session.unwrap().session_id;
    revoke_user_sessions(&app, &app.admin_token, &ann.user_id, &session_id)
        .await
        .unwrap();
    revoke_user_sessions(&app, &app.admin_token, &ann.user_id, "")
        .await
        .unwrap();
    let request = pb::ListAuditEventsRequest {
        tenant_id: elsewhere.tenant_id.clone(),
        user_id: ann.user_id.clone(),
        ..Default::default()
    };
    let events = app
        .admin
        .clone()
        .list_audit_events(bearer(request, &app.admin_token))
        .await
        .unwrap()
        .into_inner()
        .audit_events;
    let revocations: Vec<_> = events
        .iter()
        .filter(|e| e.action.starts_with("session.revoked"))
        .collect();
    assert_eq!(revocations.len(), 2, "{events:?}");
    for e in &revocations {
        assert_eq!(
            e.tenant_id, elsewhere.tenant_id,
            "in the user's tenant, not the administrator's"
        );
        assert_eq!(e.subject_user_id, ann.user_id);
        assert_eq!(e.actor_user_id, app.admin_user_id);
    }
    assert_eq!(revocations[0].action, "session.revoked");
    assert_eq!(revocations[0].session_id, session_id);
    assert_eq!(revocations[1].action, "session.revoked_all");
    app.finish().await;
}

async fn the_sweep_deletes_only_sessions_past_their_retention(env: TestEnv) {
    // Batches of one, so that the sweep must repeat.
    let app = TestApp::spawn_with(&env, |c| c.session_sweep_batch = 1).await;
    let ann = app
        .create_user(&app.admin_tenant_id, "ann@example.com", PASSWORD, &[])
        .await;
    let logout = |token: String| {
        let mut login = app.login.clone();
        async move {
            login
                .logout(bearer(pb::LogoutRequest::default(), &token))
                .await
                .unwrap();
        }
    };
    let ids = |sessions: Vec<pb::Session>| sessions.into_iter().map(|s| s.session_id).collect::<Vec<_>>();
    let id = |login: &pb::LoginResponse| login.session.as_ref().unwrap().session_id.clone();

    // Day 0: one session ended at once, one left to expire 12 hours later.
    let ended_early = app.login_ok("ann@example.com", PASSWORD).await;
    logout(ended_early.session_token.clone()).await;
    let expired_early = app.login_ok("ann@example.com", PASSWORD).await;
    // Day 20: one ended, one left to expire.
    app.clock.advance(Duration::days(20));
    let ended_late = app.login_ok("ann@example.com", PASSWORD).await;
    logout(ended_late.session_token.clone()).await;
    let expired_late = app.login_ok("ann@example.com", PASSWORD).await;
    // Day 31: one open.
    app.clock.advance(Duration::days(11));
    let open = app.login_ok("ann@example.com", PASSWORD).await;
    let admin = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await.session_token;
    let before = ids(list_user_sessions(&app, &admin, &ann.user_id, true).await.unwrap());
    assert_eq!(before.len(), 5);

    // Two sweeps at once, as on two instances: between them they delete each old session once.
    // The bootstrap administrator's first session expired on day 0.5 as well.
    let (one, two) = tokio::join!(app.identity.sweep_old_sessions(), app.identity.sweep_old_sessions());
    assert_eq!(one + two, 3);
    let after = ids(list_user_sessions(&app, &admin, &ann.user_id, true).await.unwrap());
    assert_eq!(after, [id(&ended_late), id(&expired_late), id(&open)]);
    assert!(!after.contains(&id(&ended_early)) && !after.contains(&id(&expired_early)));
    assert_eq!(app.identity.sweep_old_sessions().await, 0, "nothing more to delete");
    assert!(app.validate(&open.session_token).await.valid);
    app.finish().await;
}
