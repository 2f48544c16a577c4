use chrono::Duration;
use identityd::grpc::pb;
use tonic::Code;

use crate::support::app::{ADMIN_USER, TestApp, TestEnv, assert_already_exists, assert_error, bearer, violated_fields};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        a_created_token_is_shown_once_and_stored_only_as_a_hash,
        a_token_logs_in_and_lists_its_sessions,
        a_token_works_directly_as_the_bearer,
        revoking_a_token_ends_its_sessions,
        rotation_replaces_the_secret,
        expired_tokens_say_so,
        lifetimes_stay_within_the_tenant_cap,
        names_are_unique_per_user_and_can_be_changed,
        tokens_are_visible_to_their_owner_and_administrators_only,
        disabled_users_tokens_do_not_work,
        live_tokens_per_user_are_capped,
        token_lists_page_and_show_last_use,
        token_actions_are_audited,
        a_token_reads_but_changes_nothing,
        rotation_ends_the_sessions_opened_with_the_token,
        sessions_name_the_token_they_were_opened_with,
    ]
}

/// Tests that need a database server that can be taken away.
pub fn postgres_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![a_mistyped_token_is_refused_without_the_database]
}

async fn create(
    app: &TestApp,
    token: &str,
    name: &str,
    days: Option<i32>,
) -> Result<pb::CreateUserAccessTokenResponse, tonic::Status> {
    let request = pb::CreateUserAccessTokenRequest {
        user_access_token_name: name.into(),
        description: format!("{name} description"),
        expiration_days: days,
    };
    app.tokens()
        .create_user_access_token(bearer(request, token))
        .await
        .map(|r| r.into_inner())
}

async fn token_login(app: &TestApp, secret: &str) -> Result<pb::LoginResponse, tonic::Status> {
    let request = pb::LoginRequest {
        token: secret.into(),
        ..Default::default()
    };
    app.login.clone().login(request).await.map(|r| r.into_inner())
}

async fn get(app: &TestApp, token: &str, name: &str, user_name: &str) -> Result<pb::UserAccessToken, tonic::Status> {
    let request = pb::GetUserAccessTokenRequest {
        user_access_token_name: name.into(),
        user_name: user_name.into(),
    };
    app.tokens()
        .get_user_access_token(bearer(request, token))
        .await
        .map(|r| r.into_inner().user_access_token.unwrap())
}

async fn revoke(app: &TestApp, token: &str, name: &str) -> Result<(), tonic::Status> {
    let request = pb::DeleteUserAccessTokenRequest {
        user_access_token_name: name.into(),
    };
    app.tokens()
        .delete_user_access_token(bearer(request, token))
        .await
        .map(|_| ())
}

async fn rotate(app: &TestApp, token: &str, name: &str) -> Result<pb::RotateUserAccessTokenResponse, tonic::Status> {
    let request = pb::RotateUserAccessTokenRequest {
        user_access_token_name: name.into(),
    };
    app.tokens()
        .rotate_user_access_token(bearer(request, token))
        .await
        .map(|r| r.into_inner())
}

async fn a_created_token_is_shown_once_and_stored_only_as_a_hash(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let created = create(&app, &app.admin_token, "ci", Some(30)).await.unwrap();
    let secret = created.token.clone();
    assert!(secret.starts_with("idat_"), "a recognisable prefix: {secret}");
    let shown = created.user_access_token.unwrap();
    assert_eq!(shown.name, "ci");
    assert_eq!(shown.user_name, ADMIN_USER);
    assert!(
        shown.hint.starts_with("idat_") && shown.hint.chars().count() <= 10,
        "a short hint: {}",
        shown.hint
    );
    let body = &secret["idat_".len()..];
    assert!(
        shown.hint.ends_with(&body[body.len() - 10..body.len() - 6]),
        "the hint ends like the secret's body"
    );
    let expires = shown.expire_time.unwrap().seconds - shown.create_time.unwrap().seconds;
    assert_eq!(expires, 30 * 86_400);

    let fetched = get(&app, &app.admin_token, "ci", "").await.unwrap();
    assert_eq!(fetched, shown, "get shows what create showed, without the secret");
    let listed = app
        .tokens()
        .list_user_access_tokens(bearer(pb::ListUserAccessTokensRequest::default(), &app.admin_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.user_access_tokens, [shown]);
    assert!(
        !format!("{listed:?}{fetched:?}").contains(body),
        "no read returns the secret"
    );

    token_login(&app, &secret).await.unwrap();
    for table in app.db.tables().await {
        for row in app.db.rows_as_text(&table).await {
            assert!(!row.contains(body), "the secret is in a row of {table}: {row}");
        }
    }
    app.finish().await;
}

async fn a_token_logs_in_and_lists_its_sessions(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let secret = create(&app, &app.admin_token, "deploy", None).await.unwrap().token;
    let first = token_login(&app, &secret).await.unwrap();
    let second = token_login(&app, &secret).await.unwrap();
    let session = first.session.clone().unwrap();
    assert_eq!(session.kind, pb::SessionKind::AccessToken as i32);
    assert_eq!(session.user_access_token_name, "deploy");
    assert_eq!(first.user.unwrap().user_name, ADMIN_USER);
    assert!(app.validate(&first.session_token).await.valid);
    app.login
        .clone()
        .logout(bearer(pb::LogoutRequest::default(), &second.session_token))
        .await
        .unwrap();

    let list = |include_ended: bool| {
        let mut tokens = app.tokens();
        let request = pb::ListUserAccessTokenSessionsRequest {
            user_access_token_name: "deploy".into(),
            include_ended,
            ..Default::default()
        };
        let request = bearer(request, &app.admin_token);
        async move {
            tokens
                .list_user_access_token_sessions(request)
                .await
                .unwrap()
                .into_inner()
                .sessions
        }
    };
    let open = list(false).await;
    let open_ids: Vec<&str> = open.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(open_ids, [session.session_id.as_str()]);
    let all = list(true).await;
    assert_eq!(all.len(), 2);
    assert!(all[1].end_time.is_some(), "the ended session shows when it ended");
    assert!(all.iter().all(|s| s.create_time.is_some() && s.last_use_time.is_some()));
    app.finish().await;
}

async fn a_token_works_directly_as_the_bearer(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let secret = create(&app, &app.admin_token, "script", None).await.unwrap().token;
    let who = app
        .sessions
        .clone()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &secret))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(who.user.unwrap().user_name, ADMIN_USER);
    assert!(who.session.is_none(), "a token used directly opens no session");
    let users = pb::ListUsersRequest {
        tenant_id: app.admin_tenant_id.clone(),
        ..Default::default()
    };
    app.admin
        .clone()
        .list_users(bearer(users, &secret))
        .await
        .expect("acts as its user");
    let logout = app
        .login
        .clone()
        .logout(bearer(pb::LogoutRequest::default(), &secret))
        .await
        .unwrap_err();
    assert_error(&logout, Code::FailedPrecondition, "FAILED_PRECONDITION");
    assert_eq!(app.db.count("sessions").await, 1, "only the harness's own session");
    app.finish().await;
}

async fn revoking_a_token_ends_its_sessions(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let secret = create(&app, &app.admin_token, "ci", None).await.unwrap().token;
    let a = token_login(&app, &secret).await.unwrap().session_token;
    let b = token_login(&app, &secret).await.unwrap().session_token;
    revoke(&app, &app.admin_token, "ci").await.unwrap();
    assert!(!app.validate(&a).await.valid);
    assert!(!app.validate(&b).await.valid);
    assert!(app.validate(&app.admin_token).await.valid, "the password session stays");
    assert_error(
        &token_login(&app, &secret).await.unwrap_err(),
        Code::Unauthenticated,
        "TOKEN_REVOKED",
    );
    let direct = app
        .sessions
        .clone()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &secret))
        .await
        .unwrap_err();
    assert_error(&direct, Code::Unauthenticated, "TOKEN_REVOKED");
    let shown = get(&app, &app.admin_token, "ci", "").await.unwrap();
    assert!(shown.revoked && shown.revoke_time.is_some());
    assert_error(
        &revoke(&app, &app.admin_token, "ci").await.unwrap_err(),
        Code::NotFound,
        "NOT_FOUND",
    );
    create(&app, &app.admin_token, "ci", None)
        .await
        .expect("a revoked token's name may be used again");
    app.finish().await;
}

async fn rotation_replaces_the_secret(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let created = create(&app, &app.admin_token, "ci", Some(10)).await.unwrap();
    let rotated = rotate(&app, &app.admin_token, "ci").await.unwrap();
    assert_ne!(rotated.token, created.token);
    let (before, after) = (created.user_access_token.unwrap(), rotated.user_access_token.unwrap());
    assert_eq!(
        (after.name.as_str(), after.expire_time),
        ("ci", before.expire_time),
        "same name and settings"
    );
    let old = token_login(&app, &created.token).await.unwrap_err();
    assert_error(&old, Code::Unauthenticated, "INVALID_CREDENTIALS");
    token_login(&app, &rotated.token).await.expect("the new secret works");
    app.finish().await;
}

async fn expired_tokens_say_so(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let secret = create(&app, &app.admin_token, "short", Some(1)).await.unwrap().token;
    let session = token_login(&app, &secret).await.unwrap();
    let expire = session.session.unwrap().expire_time.unwrap();
    assert!(
        expire.seconds <= app.clock_now().timestamp() + 86_400,
        "a session never outlives its token"
    );
    app.clock.advance(Duration::hours(23));
    token_login(&app, &secret)
        .await
        .expect("still valid an hour before expiry");
    app.clock.advance(Duration::hours(1));
    assert_error(
        &token_login(&app, &secret).await.unwrap_err(),
        Code::Unauthenticated,
        "TOKEN_EXPIRED",
    );
    let direct = app
        .sessions
        .clone()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &secret))
        .await
        .unwrap_err();
    assert_error(&direct, Code::Unauthenticated, "TOKEN_EXPIRED");
    app.finish().await;
}

async fn lifetimes_stay_within_the_tenant_cap(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let never = create(&app, &app.admin_token, "forever", None).await.unwrap();
    assert!(
        never.user_access_token.unwrap().expire_time.is_none(),
        "no cap, no days: never expires"
    );
    let tenant = pb::Tenant {
        tenant_id: app.admin_tenant_id.clone(),
        max_access_token_days: 30,
        ..Default::default()
    };
    let mask = prost_types::FieldMask {
        paths: vec!["max_access_token_days".into()],
    };
    let request = pb::UpdateTenantRequest {
        tenant: Some(tenant),
        update_mask: Some(mask),
    };
    app.admin
        .clone()
        .update_tenant(bearer(request, &app.admin_token))
        .await
        .unwrap();
    let too_long = create(&app, &app.admin_token, "long", Some(31)).await.unwrap_err();
    assert_error(&too_long, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&too_long), ["expiration_days"]);
    assert!(
        too_long.message().contains("30"),
        "names the cap: {}",
        too_long.message()
    );
    let defaulted = create(&app, &app.admin_token, "default", None)
        .await
        .unwrap()
        .user_access_token
        .unwrap();
    assert_eq!(
        defaulted.expire_time.unwrap().seconds - defaulted.create_time.unwrap().seconds,
        30 * 86_400
    );
    let zero = create(&app, &app.admin_token, "zero", Some(0)).await.unwrap_err();
    assert_eq!(violated_fields(&zero), ["expiration_days"]);
    let empty = create(&app, &app.admin_token, " ", None).await.unwrap_err();
    assert_eq!(violated_fields(&empty), ["user_access_token_name"]);
    app.finish().await;
}

async fn names_are_unique_per_user_and_can_be_changed(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    create(&app, &app.admin_token, "ci", None).await.unwrap();
    create(&app, &app.admin_token, "deploy", None).await.unwrap();
    let duplicate = create(&app, &app.admin_token, "CI", None).await.unwrap_err();
    assert_already_exists(&duplicate, "user_access_token_name");
    app.create_user(&app.admin_tenant_id, "jim@example.com", "his own password", &[])
        .await;
    let jim = app.login_ok("jim@example.com", "his own password").await.session_token;
    create(&app, &jim, "ci", None)
        .await
        .expect("another user may use the same name");

    let update = |name: &str, new_name: &str, description: Option<&str>| {
        let mut tokens = app.tokens();
        let request = pb::UpdateUserAccessTokenRequest {
            user_access_token_name: name.into(),
            new_name: new_name.into(),
            description: description.map(str::to_owned),
        };
        let request = bearer(request, &app.admin_token);
        async move {
            tokens
                .update_user_access_token(request)
                .await
                .map(|r| r.into_inner().user_access_token.unwrap())
        }
    };
    let renamed = update("ci", "builds", Some("nightly builds")).await.unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.description.as_str()),
        ("builds", "nightly builds")
    );
    let kept = update("builds", "", None).await.unwrap();
    assert_eq!(kept, renamed, "empty new name and no description change nothing");
    let clash = update("builds", "deploy", None).await.unwrap_err();
    assert_already_exists(&clash, "new_name");
    assert_error(
        &get(&app, &app.admin_token, "ci", "").await.unwrap_err(),
        Code::NotFound,
        "NOT_FOUND",
    );
    app.finish().await;
}

async fn tokens_are_visible_to_their_owner_and_administrators_only(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let acme = app.create_tenant("Acme").await;
    app.create_user(
        &acme.tenant_id,
        "boss@acme.com",
        "the chief's pass phrase",
        &[pb::Role::TenantAdmin],
    )
    .await;
    app.create_user(&acme.tenant_id, "jim@acme.com", "his own password", &[])
        .await;
    app.create_user(&acme.tenant_id, "ann@acme.com", "her own password", &[])
        .await;
    app.create_user(
        &app.admin_tenant_id,
        "eve@example.com",
        "her secret phrase",
        &[pb::Role::TenantAdmin],
    )
    .await;
    let boss = app
        .login_ok("boss@acme.com", "the chief's pass phrase")
        .await
        .session_token;
    let jim = app.login_ok("jim@acme.com", "his own password").await.session_token;
    let ann = app.login_ok("ann@acme.com", "her own password").await.session_token;
    let eve = app.login_ok("eve@example.com", "her secret phrase").await.session_token;
    create(&app, &jim, "ci", None).await.unwrap();

    assert_eq!(get(&app, &jim, "ci", "").await.unwrap().user_name, "jim@acme.com");
    assert_eq!(
        get(&app, &boss, "ci", "jim@acme.com").await.unwrap().user_name,
        "jim@acme.com"
    );
    let peer = get(&app, &ann, "ci", "jim@acme.com").await.unwrap_err();
    assert_error(&peer, Code::PermissionDenied, "PERMISSION_DENIED");
    let outsider = get(&app, &eve, "ci", "jim@acme.com").await.unwrap_err();
    let nobody = get(&app, &eve, "ci", "nobody@acme.com").await.unwrap_err();
    assert_error(&outsider, Code::NotFound, "NOT_FOUND");
    assert_eq!(
        outsider.message(),
        nobody.message(),
        "another tenant's user looks like no user"
    );
    let listed = app
        .tokens()
        .list_user_access_tokens(bearer(
            pb::ListUserAccessTokensRequest {
                user_name: "jim@acme.com".into(),
                ..Default::default()
            },
            &boss,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.user_access_tokens.len(), 1);
    app.finish().await;
}

async fn disabled_users_tokens_do_not_work(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let jim = app
        .create_user(&app.admin_tenant_id, "jim@example.com", "his own password", &[])
        .await;
    let jim_token = app.login_ok("jim@example.com", "his own password").await.session_token;
    let secret = create(&app, &jim_token, "ci", None).await.unwrap().token;
    let session = token_login(&app, &secret).await.unwrap().session_token;
    app.admin
        .clone()
        .disable_user(bearer(
            pb::DisableUserRequest { user_id: jim.user_id },
            &app.admin_token,
        ))
        .await
        .unwrap();
    assert!(!app.validate(&session).await.valid);
    assert_error(
        &token_login(&app, &secret).await.unwrap_err(),
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    app.finish().await;
}

async fn live_tokens_per_user_are_capped(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| c.max_access_tokens_per_user = 2).await;
    create(&app, &app.admin_token, "one", None).await.unwrap();
    create(&app, &app.admin_token, "two", None).await.unwrap();
    let third = create(&app, &app.admin_token, "three", None).await.unwrap_err();
    assert_error(&third, Code::ResourceExhausted, "TOKEN_LIMIT_REACHED");
    assert!(third.message().contains('2'), "says the limit: {}", third.message());
    revoke(&app, &app.admin_token, "one").await.unwrap();
    create(&app, &app.admin_token, "three", None)
        .await
        .expect("revoking frees a place");
    assert_eq!(
        app.db.count("user_access_tokens").await,
        3,
        "the refused creation wrote nothing"
    );
    app.finish().await;
}

async fn token_lists_page_and_show_last_use(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let secrets: Vec<String> = create_three(&app).await;
    app.clock.advance(Duration::minutes(5));
    token_login(&app, &secrets[1]).await.unwrap();
    let mut page_token = String::new();
    let mut seen = Vec::new();
    loop {
        let request = pb::ListUserAccessTokensRequest {
            page_size: 2,
            page_token,
            ..Default::default()
        };
        let page = app
            .tokens()
            .list_user_access_tokens(bearer(request, &app.admin_token))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.user_access_tokens);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let names: Vec<_> = seen.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["t0", "t1", "t2"], "creation order, across pages");
    assert!(seen[0].last_use_time.is_none());
    assert_eq!(seen[1].last_use_time.unwrap().seconds, app.clock_now().timestamp());
    app.finish().await;
}

/// Creates tokens t0, t1 and t2 for the administrator and returns their secrets.
async fn create_three(app: &TestApp) -> Vec<String> {
    let mut secrets = Vec::new();
    for i in 0..3 {
        secrets.push(
            create(app, &app.admin_token, &format!("t{i}"), None)
                .await
                .unwrap()
                .token,
        );
    }
    secrets
}

async fn token_actions_are_audited(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let secret = create(&app, &app.admin_token, "ci", None).await.unwrap().token;
    token_login(&app, &secret).await.unwrap();
    let rename = pb::UpdateUserAccessTokenRequest {
        user_access_token_name: "ci".into(),
        new_name: "builds".into(),
        description: None,
    };
    app.tokens()
        .update_user_access_token(bearer(rename, &app.admin_token))
        .await
        .unwrap();
    let rotate = pb::RotateUserAccessTokenRequest {
        user_access_token_name: "builds".into(),
    };
    app.tokens()
        .rotate_user_access_token(bearer(rotate, &app.admin_token))
        .await
        .unwrap();
    revoke(&app, &app.admin_token, "builds").await.unwrap();
    let request = pb::ListAuditEventsRequest {
        user_id: app.admin_user_id.clone(),
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
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    let tail: Vec<_> = actions[actions.len() - 5..].to_vec();
    assert_eq!(
        tail,
        [
            "user_access_token.created",
            "login.succeeded",
            "user_access_token.updated",
            "user_access_token.rotated",
            "user_access_token.revoked"
        ]
    );
    let token_login_event = &events[events.len() - 4];
    assert_eq!(token_login_event.details["kind"], "access_token");
    assert_eq!(token_login_event.details["user_access_token_name"], "ci");
    app.finish().await;
}

async fn a_mistyped_token_is_refused_without_the_database(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let secret = create(&app, &app.admin_token, "ci", None).await.unwrap().token;
    let mut typo = secret.clone().into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    // With the database refusing connections, a query would answer UNAVAILABLE.
    app.db.refuse_connections(&env.postgres_base_url, true).await;
    assert_error(
        &token_login(&app, &typo).await.unwrap_err(),
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    assert_eq!(
        token_login(&app, &secret).await.unwrap_err().code(),
        Code::Unavailable,
        "the real token needs the database"
    );
    app.db.refuse_connections(&env.postgres_base_url, false).await;
    app.finish().await;
}

async fn a_token_reads_but_changes_nothing(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let secret = create(&app, &app.admin_token, "leaked", None).await.unwrap().token;
    let session = token_login(&app, &secret).await.unwrap().session_token;
    // Whether used directly or through a session opened with it, a leaked administrator's token
    // mints no credential, ends no other session and creates nothing.
    for bearer_token in [secret.as_str(), session.as_str()] {
        let refused = create(&app, bearer_token, "more", None).await.unwrap_err();
        assert_error(&refused, Code::PermissionDenied, "ACCESS_TOKEN_NOT_ALLOWED");
        let others = app
            .sessions
            .clone()
            .revoke_my_other_sessions(bearer(pb::RevokeMyOtherSessionsRequest {}, bearer_token))
            .await
            .unwrap_err();
        assert_error(&others, Code::PermissionDenied, "ACCESS_TOKEN_NOT_ALLOWED");
        let tenant = pb::CreateTenantRequest {
            tenant: Some(pb::Tenant {
                name: "Evil".into(),
                ..Default::default()
            }),
        };
        let created = app
            .admin
            .clone()
            .create_tenant(bearer(tenant, bearer_token))
            .await
            .unwrap_err();
        assert_error(&created, Code::PermissionDenied, "ACCESS_TOKEN_NOT_ALLOWED");
        let roles = app.set_roles(bearer_token, &app.admin_user_id, &[]).await.unwrap_err();
        assert_error(&roles, Code::PermissionDenied, "ACCESS_TOKEN_NOT_ALLOWED");
        // Reading works.
        get(&app, bearer_token, "leaked", "").await.expect("read its own token");
    }
    assert!(
        app.validate(&app.admin_token).await.valid,
        "the password session survives"
    );
    assert_eq!(app.db.count("user_access_tokens").await, 1);
    assert_eq!(app.db.count("tenants").await, 1);
    // Revoking the token ends the intrusion: nothing it made outlives it.
    revoke(&app, &app.admin_token, "leaked").await.unwrap();
    assert!(!app.validate(&session).await.valid);
    app.finish().await;
}

async fn rotation_ends_the_sessions_opened_with_the_token(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let secret = create(&app, &app.admin_token, "ci", None).await.unwrap().token;
    let opened = token_login(&app, &secret).await.unwrap().session_token;
    assert!(app.validate(&opened).await.valid);
    let rotated = rotate(&app, &app.admin_token, "ci").await.unwrap();
    assert!(
        !app.validate(&opened).await.valid,
        "a session opened with the rotated-out secret ends with it"
    );
    assert!(app.validate(&app.admin_token).await.valid, "other sessions stay");
    let fresh = token_login(&app, &rotated.token).await.unwrap().session_token;
    assert!(app.validate(&fresh).await.valid);
    app.finish().await;
}

async fn sessions_name_the_token_they_were_opened_with(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let secret = create(&app, &app.admin_token, "deploy", None).await.unwrap().token;
    let session = token_login(&app, &secret).await.unwrap().session_token;
    let who = app
        .sessions
        .clone()
        .get_current_user(bearer(pb::GetCurrentUserRequest {}, &session))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(who.session.unwrap().user_access_token_name, "deploy");
    let listed = app
        .sessions
        .clone()
        .list_my_sessions(bearer(pb::ListMySessionsRequest::default(), &app.admin_token))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    let names: Vec<&str> = listed.iter().map(|s| s.user_access_token_name.as_str()).collect();
    assert_eq!(names, ["", "deploy"], "the password session has none");
    app.finish().await;
}
