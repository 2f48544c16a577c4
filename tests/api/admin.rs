use identityd::grpc::pb;
use tonic::Code;

use crate::support::app::{ADMIN_USER, TestApp, TestEnv, assert_already_exists, assert_error, bearer, violated_fields};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        only_system_administrators_create_tenants,
        user_names_are_unique_across_tenants,
        bad_user_input_writes_nothing,
        tenants_are_invisible_across_the_boundary,
        users_are_listed_page_by_page,
        users_update_their_profile_through_a_mask,
        disabling_a_user_ends_their_sessions_and_logins,
        roles_are_granted_only_by_their_holders,
        tenant_policies_and_served_tenants_are_updated,
        service_accounts_are_created_and_listed,
        audit_events_are_filtered,
        bootstrap_happens_once,
    ]
}

async fn only_system_administrators_create_tenants(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let tenant = app.create_tenant("Acme").await;
    assert_eq!(
        tenant.password_expiry,
        pb::PasswordExpiry::Days90 as i32,
        "default policy is 90 days"
    );
    app.create_user(
        &tenant.tenant_id,
        "boss@acme.com",
        "the chief's pass phrase",
        &[pb::Role::TenantAdmin],
    )
    .await;
    let boss = app.login_ok("boss@acme.com", "the chief's pass phrase").await;
    let request = pb::CreateTenantRequest {
        tenant: Some(pb::Tenant {
            name: "Other".into(),
            ..Default::default()
        }),
    };
    let status = app
        .admin
        .clone()
        .create_tenant(bearer(request.clone(), &boss.session_token))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    let status = app.admin.clone().create_tenant(request).await.unwrap_err();
    assert_error(&status, Code::Unauthenticated, "MISSING_CREDENTIALS");
    let duplicate = pb::CreateTenantRequest {
        tenant: Some(pb::Tenant {
            name: "ACME".into(),
            ..Default::default()
        }),
    };
    let status = app
        .admin
        .clone()
        .create_tenant(bearer(duplicate, &app.admin_token))
        .await
        .unwrap_err();
    assert_already_exists(&status, "tenant.name");
    app.finish().await;
}

async fn user_names_are_unique_across_tenants(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let acme = app.create_tenant("Acme").await;
    app.create_user(&acme.tenant_id, "jim@acme.com", "his own password", &[])
        .await;
    let request = pb::CreateUserRequest {
        user: Some(pb::User {
            tenant_id: app.admin_tenant_id.clone(),
            user_name: "JIM@acme.com".into(),
            ..Default::default()
        }),
        password: "another password".into(),
    };
    let status = app
        .admin
        .clone()
        .create_user(bearer(request, &app.admin_token))
        .await
        .unwrap_err();
    assert_already_exists(&status, "user.user_name");
    app.finish().await;
}

async fn bad_user_input_writes_nothing(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let request = pb::CreateUserRequest {
        user: Some(pb::User {
            tenant_id: app.admin_tenant_id.clone(),
            user_name: "".into(),
            email: "not-an-address".into(),
            time_zone: "Mars/Olympus".into(),
            roles: vec![99],
            ..Default::default()
        }),
        password: "short".into(),
    };
    let status = app
        .admin
        .clone()
        .create_user(bearer(request.clone(), &app.admin_token))
        .await
        .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&status),
        ["user.roles"],
        "unknown enum values are refused first"
    );
    let mut request = request;
    request.user.as_mut().unwrap().roles.clear();
    let status = app
        .admin
        .clone()
        .create_user(bearer(request, &app.admin_token))
        .await
        .unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["password", "user.email", "user.time_zone", "user.user_name"]);
    assert_eq!(app.db.count("users").await, 1, "only the administrator");
    let bad_tenant = pb::CreateUserRequest {
        user: Some(pb::User {
            tenant_id: "nope".into(),
            user_name: "x@example.com".into(),
            ..Default::default()
        }),
        password: "a long password".into(),
    };
    let status = app
        .admin
        .clone()
        .create_user(bearer(bad_tenant, &app.admin_token))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["user.tenant_id"]);
    app.finish().await;
}

async fn tenants_are_invisible_across_the_boundary(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let acme = app.create_tenant("Acme").await;
    let globex = app.create_tenant("Globex").await;
    app.create_user(
        &acme.tenant_id,
        "boss@acme.com",
        "the chief's pass phrase",
        &[pb::Role::TenantAdmin],
    )
    .await;
    let worker = app
        .create_user(&acme.tenant_id, "worker@acme.com", "a staff pass phrase", &[])
        .await;
    let other = app
        .create_user(
            &globex.tenant_id,
            "boss@globex.com",
            "globex password",
            &[pb::Role::TenantAdmin],
        )
        .await;
    let boss = app
        .login_ok("boss@acme.com", "the chief's pass phrase")
        .await
        .session_token;
    let worker_token = app
        .login_ok("worker@acme.com", "a staff pass phrase")
        .await
        .session_token;

    let get = |token: String, user_id: String| {
        let mut admin = app.admin.clone();
        async move { admin.get_user(bearer(pb::GetUserRequest { user_id }, &token)).await }
    };
    assert!(get(boss.clone(), worker.user_id.clone()).await.is_ok(), "own tenant");
    let status = get(boss.clone(), other.user_id.clone()).await.unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    let unknown = get(boss.clone(), uuid::Uuid::now_v7().to_string()).await.unwrap_err();
    assert_eq!(
        unknown.message(),
        status.message(),
        "another tenant's user looks like no user"
    );
    let status = get(worker_token.clone(), other.user_id.clone()).await.unwrap_err();
    assert_error(&status, Code::NotFound, "NOT_FOUND");
    assert!(
        get(worker_token.clone(), worker.user_id.clone()).await.is_ok(),
        "anyone reads themself"
    );
    let list = pb::ListUsersRequest {
        tenant_id: acme.tenant_id.clone(),
        ..Default::default()
    };
    let status = app
        .admin
        .clone()
        .list_users(bearer(list, &worker_token))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    let tenant = app
        .admin
        .clone()
        .get_tenant(bearer(
            pb::GetTenantRequest {
                tenant_id: globex.tenant_id.clone(),
            },
            &boss,
        ))
        .await
        .unwrap_err();
    assert_error(&tenant, Code::NotFound, "NOT_FOUND");
    app.finish().await;
}

async fn users_are_listed_page_by_page(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    for i in 0..4 {
        app.create_user(
            &app.admin_tenant_id,
            &format!("user{i}@example.com"),
            "a long password",
            &[],
        )
        .await;
    }
    let mut names = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let request = pb::ListUsersRequest {
            tenant_id: app.admin_tenant_id.clone(),
            page_size: 2,
            page_token,
        };
        let page = app
            .admin
            .clone()
            .list_users(bearer(request, &app.admin_token))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        names.extend(page.users.into_iter().map(|u| u.user_name));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(
        names,
        [
            ADMIN_USER,
            "user0@example.com",
            "user1@example.com",
            "user2@example.com",
            "user3@example.com"
        ],
        "creation order"
    );
    let bad = pb::ListUsersRequest {
        tenant_id: app.admin_tenant_id.clone(),
        page_size: 2,
        page_token: "???".into(),
    };
    let status = app
        .admin
        .clone()
        .list_users(bearer(bad, &app.admin_token))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["page_token"]);
    app.finish().await;
}

async fn users_update_their_profile_through_a_mask(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let user = app
        .create_user(&app.admin_tenant_id, "jim@example.com", "his own password", &[])
        .await;
    let token = app.login_ok("jim@example.com", "his own password").await.session_token;
    let change = pb::User {
        user_id: user.user_id.clone(),
        first_name: "James".into(),
        last_name: "ignored, not in the mask".into(),
        time_zone: "Europe/Paris".into(),
        ..Default::default()
    };
    let mask = prost_types::FieldMask {
        paths: vec!["first_name".into(), "time_zone".into()],
    };
    let request = pb::UpdateUserRequest {
        user: Some(change.clone()),
        update_mask: Some(mask),
    };
    let updated = app
        .admin
        .clone()
        .update_user(bearer(request, &token))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(updated.first_name, "James");
    assert_eq!(updated.last_name, "User");
    assert_eq!(updated.time_zone, "Europe/Paris");
    let fetched = app
        .admin
        .clone()
        .get_user(bearer(
            pb::GetUserRequest {
                user_id: user.user_id.clone(),
            },
            &app.admin_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(fetched, updated, "what was returned is what was stored");
    let bad_mask = prost_types::FieldMask {
        paths: vec!["user_name".into()],
    };
    let request = pb::UpdateUserRequest {
        user: Some(change),
        update_mask: Some(bad_mask),
    };
    let status = app
        .admin
        .clone()
        .update_user(bearer(request, &token))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["update_mask"]);
    app.finish().await;
}

async fn disabling_a_user_ends_their_sessions_and_logins(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let user = app
        .create_user(&app.admin_tenant_id, "jim@example.com", "his own password", &[])
        .await;
    let token = app.login_ok("jim@example.com", "his own password").await.session_token;
    let disabled = app
        .admin
        .clone()
        .disable_user(bearer(
            pb::DisableUserRequest {
                user_id: user.user_id.clone(),
            },
            &app.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(disabled.user.unwrap().disabled);
    assert!(!app.validate(&token).await.valid);
    assert_error(
        &app.login("jim@example.com", "his own password").await.unwrap_err(),
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    app.admin
        .clone()
        .enable_user(bearer(
            pb::EnableUserRequest {
                user_id: user.user_id.clone(),
            },
            &app.admin_token,
        ))
        .await
        .unwrap();
    assert!(!app.validate(&token).await.valid, "ended sessions stay ended");
    app.login_ok("jim@example.com", "his own password").await;
    let myself = pb::DisableUserRequest {
        user_id: app.admin_user_id.clone(),
    };
    let status = app
        .admin
        .clone()
        .disable_user(bearer(myself, &app.admin_token))
        .await
        .unwrap_err();
    assert_error(&status, Code::FailedPrecondition, "FAILED_PRECONDITION");
    app.finish().await;
}

async fn roles_are_granted_only_by_their_holders(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let acme = app.create_tenant("Acme").await;
    app.create_user(
        &acme.tenant_id,
        "boss@acme.com",
        "the chief's pass phrase",
        &[pb::Role::TenantAdmin],
    )
    .await;
    let worker = app
        .create_user(&acme.tenant_id, "worker@acme.com", "a staff pass phrase", &[])
        .await;
    let boss = app
        .login_ok("boss@acme.com", "the chief's pass phrase")
        .await
        .session_token;
    let grant = |roles: Vec<pb::Role>, token: String| {
        let mut admin = app.admin.clone();
        let request = pb::SetUserRolesRequest {
            user_id: worker.user_id.clone(),
            roles: roles.into_iter().map(|r| r as i32).collect(),
        };
        async move { admin.set_user_roles(bearer(request, &token)).await }
    };
    let status = grant(vec![pb::Role::SystemAdmin], boss.clone()).await.unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    // A tenant administrator grants only roles they hold themselves.
    let status = grant(vec![pb::Role::ProxyLogin], boss.clone()).await.unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    let user = grant(vec![pb::Role::TenantAdmin], boss.clone())
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.roles, [pb::Role::TenantAdmin as i32]);
    // A system administrator holds every role.
    let user = grant(vec![pb::Role::ProxyLogin], app.admin_token.clone())
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.roles, [pb::Role::ProxyLogin as i32]);
    let user = grant(vec![pb::Role::SystemAdmin], app.admin_token.clone())
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.roles, [pb::Role::SystemAdmin as i32]);
    app.finish().await;
}

async fn tenant_policies_and_served_tenants_are_updated(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let support = app.create_tenant("Support").await;
    let client = app.create_tenant("Client").await;
    let update = |tenant: pb::Tenant, paths: &[&str]| {
        let mut admin = app.admin.clone();
        let mask = prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        };
        let request = bearer(
            pb::UpdateTenantRequest {
                tenant: Some(tenant),
                update_mask: Some(mask),
            },
            &app.admin_token,
        );
        async move { admin.update_tenant(request).await }
    };
    let changed = pb::Tenant {
        tenant_id: support.tenant_id.clone(),
        name: "Support Desk".into(),
        password_expiry: pb::PasswordExpiry::Never as i32,
        served_tenant_ids: vec![client.tenant_id.clone()],
        max_access_token_days: 30,
        ..Default::default()
    };
    let updated = update(
        changed.clone(),
        &["name", "password_expiry", "served_tenant_ids", "max_access_token_days"],
    )
    .await
    .unwrap()
    .into_inner()
    .tenant
    .unwrap();
    assert_eq!(updated.name, "Support Desk");
    assert_eq!(updated.password_expiry, pb::PasswordExpiry::Never as i32);
    assert_eq!(updated.served_tenant_ids, vec![client.tenant_id]);
    assert_eq!(updated.max_access_token_days, 30);
    let fetched = app
        .admin
        .clone()
        .get_tenant(bearer(
            pb::GetTenantRequest {
                tenant_id: support.tenant_id.clone(),
            },
            &app.admin_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(fetched, updated);
    let bad_enum = pb::Tenant {
        password_expiry: 42,
        ..changed.clone()
    };
    let status = update(bad_enum, &["password_expiry"]).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["tenant.password_expiry"]);
    let unknown_served = pb::Tenant {
        served_tenant_ids: vec![uuid::Uuid::now_v7().to_string()],
        ..changed.clone()
    };
    let status = update(unknown_served, &["served_tenant_ids"]).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["tenant.served_tenant_ids"]);
    let no_mask = app
        .admin
        .clone()
        .update_tenant(bearer(
            pb::UpdateTenantRequest {
                tenant: Some(changed),
                update_mask: None,
            },
            &app.admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&no_mask), ["update_mask"]);
    app.finish().await;
}

async fn service_accounts_are_created_and_listed(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let create = |name: &str| {
        let mut admin = app.admin.clone();
        let request = pb::CreateServiceAccountRequest {
            tenant_id: app.admin_tenant_id.clone(),
            name: name.into(),
            description: "webhooks".into(),
        };
        let request = bearer(request, &app.admin_token);
        async move { admin.create_service_account(request).await }
    };
    let hooks = create("hooks").await.unwrap().into_inner().service_account.unwrap();
    assert_eq!(hooks.name, "hooks");
    assert_eq!(hooks.tenant_id, app.admin_tenant_id);
    create("builds").await.unwrap();
    let status = create("HOOKS").await.unwrap_err();
    assert_error(&status, Code::AlreadyExists, "ALREADY_EXISTS");
    let list = pb::ListServiceAccountsRequest {
        tenant_id: app.admin_tenant_id.clone(),
        ..Default::default()
    };
    let listed = app
        .admin
        .clone()
        .list_service_accounts(bearer(list, &app.admin_token))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = listed.service_accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["hooks", "builds"]);
    app.finish().await;
}

async fn audit_events_are_filtered(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let jim = app
        .create_user(&app.admin_tenant_id, "jim@example.com", "his own password", &[])
        .await;
    let start = app.clock_now();
    app.clock.advance(chrono::Duration::minutes(1));
    app.login_ok("jim@example.com", "his own password").await;
    app.login("jim@example.com", "wrong password").await.unwrap_err();
    let list = |request: pb::ListAuditEventsRequest| {
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
    let jims = list(pb::ListAuditEventsRequest {
        user_id: jim.user_id.clone(),
        ..Default::default()
    })
    .await;
    let actions: Vec<_> = jims.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["user.created", "login.succeeded", "login.failed"]);
    let later = list(pb::ListAuditEventsRequest {
        user_id: jim.user_id.clone(),
        start_time: Some(prost_types::Timestamp {
            seconds: start.timestamp() + 30,
            nanos: 0,
        }),
        ..Default::default()
    })
    .await;
    assert_eq!(later.len(), 2, "the creation came before the start time");
    let jim_token = app.login_ok("jim@example.com", "his own password").await.session_token;
    let status = app
        .admin
        .clone()
        .list_audit_events(bearer(pb::ListAuditEventsRequest::default(), &jim_token))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    app.finish().await;
}

async fn bootstrap_happens_once(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let request = identityd::core::BootstrapRequest {
        tenant_name: "Second".into(),
        user_name: "second@example.com".into(),
        password: "another long password".into(),
        email: String::new(),
    };
    let config = identityd::config::Config::for_database(&app.db.url);
    let store = identityd::startup::open_store(&config).await.unwrap();
    let identity =
        identityd::startup::build_identity(&config, store, std::sync::Arc::new(identityd::clock::SystemClock)).unwrap();
    assert!(
        !identity.bootstrap(&request).await.unwrap(),
        "the database already has a tenant"
    );
    app.login("second@example.com", "another long password")
        .await
        .unwrap_err();
    app.finish().await;
}
