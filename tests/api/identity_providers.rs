//! Each tenant's OpenID Connect identity provider: set up, read, changed and removed by its
//! administrators, its client secret write-only and sealed at rest.

use identityd::grpc::pb;
use tonic::Code;

use crate::support::app::{TestApp, TestEnv, assert_already_exists, assert_error, bearer, violated_fields};
use crate::support::calls::cheap_hashing;

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        a_provider_is_set_up_read_changed_and_removed,
        the_client_secret_is_never_answered_stored_or_audited_in_plaintext,
        bad_provider_settings_name_every_field,
        new_users_get_only_roles_their_administrator_holds,
    ]
}

const SECRET: &str = "the-client-secret-nobody-may-read-back";

fn provider(tenant_id: &str) -> pb::IdentityProvider {
    pb::IdentityProvider {
        tenant_id: tenant_id.into(),
        issuer_url: "https://idp.example.com/realms/acme".into(),
        client_id: "identityd".into(),
        client_secret: SECRET.into(),
        scopes: vec!["email".into(), "profile".into()],
        allowed_redirect_uris: vec!["https://app.example.com/sso/callback".into()],
        link_by_verified_email: true,
        post_logout_redirect_uri: "https://app.example.com/".into(),
        ..Default::default()
    }
}

async fn create(app: &TestApp, token: &str, p: pb::IdentityProvider) -> Result<pb::IdentityProvider, tonic::Status> {
    let request = pb::CreateIdentityProviderRequest {
        identity_provider: Some(p),
    };
    let created = app
        .admin
        .clone()
        .create_identity_provider(bearer(request, token))
        .await?;
    Ok(created.into_inner().identity_provider.unwrap())
}

async fn get(app: &TestApp, tenant_id: &str) -> Result<pb::IdentityProvider, tonic::Status> {
    let request = pb::GetIdentityProviderRequest {
        tenant_id: tenant_id.into(),
    };
    let got = app
        .admin
        .clone()
        .get_identity_provider(bearer(request, &app.admin_token))
        .await?;
    Ok(got.into_inner().identity_provider.unwrap())
}

async fn update(app: &TestApp, p: pb::IdentityProvider, paths: &[&str]) -> Result<pb::IdentityProvider, tonic::Status> {
    let request = pb::UpdateIdentityProviderRequest {
        identity_provider: Some(p),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    let updated = app
        .admin
        .clone()
        .update_identity_provider(bearer(request, &app.admin_token))
        .await?;
    Ok(updated.into_inner().identity_provider.unwrap())
}

async fn a_provider_is_set_up_read_changed_and_removed(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let tenant = app.admin_tenant_id.clone();
    let created = create(&app, &app.admin_token, provider(&tenant)).await.unwrap();
    assert_eq!(created.tenant_id, tenant);
    assert_eq!(
        created.scopes,
        ["openid", "email", "profile"],
        "openid is always asked for, first"
    );
    assert!(created.has_client_secret);
    assert_eq!(get(&app, &tenant).await.unwrap(), created);

    let again = create(&app, &app.admin_token, provider(&tenant)).await.unwrap_err();
    assert_already_exists(&again, "identity_provider.tenant_id");

    let list = app
        .admin
        .clone()
        .list_identity_providers(bearer(pb::ListIdentityProvidersRequest::default(), &app.admin_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.identity_providers, std::slice::from_ref(&created));

    // Only the fields the mask names change; the secret stays unless named.
    app.clock.advance(chrono::Duration::seconds(1));
    let changed = pb::IdentityProvider {
        client_id: "another-client".into(),
        create_users: true,
        issuer_url: "https://ignored.example.com".into(),
        ..provider(&tenant)
    };
    let updated = update(&app, changed.clone(), &["client_id", "create_users"])
        .await
        .unwrap();
    assert_eq!(updated.client_id, "another-client");
    assert!(updated.create_users);
    assert_eq!(updated.issuer_url, created.issuer_url);
    assert!(updated.has_client_secret);
    assert!(updated.update_time.unwrap().seconds > created.update_time.unwrap().seconds);
    let public = pb::IdentityProvider {
        client_secret: String::new(),
        ..changed
    };
    let public = update(&app, public, &["client_secret"]).await.unwrap();
    assert!(!public.has_client_secret, "an empty secret makes a public client");

    let bad_path = update(&app, provider(&tenant), &["tenant_id"]).await.unwrap_err();
    assert_error(&bad_path, Code::InvalidArgument, "INVALID_ARGUMENT");

    let request = pb::DeleteIdentityProviderRequest {
        tenant_id: tenant.clone(),
    };
    app.admin
        .clone()
        .delete_identity_provider(bearer(request.clone(), &app.admin_token))
        .await
        .unwrap();
    assert_error(&get(&app, &tenant).await.unwrap_err(), Code::NotFound, "NOT_FOUND");
    let twice = app
        .admin
        .clone()
        .delete_identity_provider(bearer(request, &app.admin_token))
        .await
        .unwrap_err();
    assert_error(&twice, Code::NotFound, "NOT_FOUND");
    app.finish().await;
}

async fn the_client_secret_is_never_answered_stored_or_audited_in_plaintext(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let tenant = app.admin_tenant_id.clone();
    let created = create(&app, &app.admin_token, provider(&tenant)).await.unwrap();
    assert_eq!(created.client_secret, "");
    assert_eq!(get(&app, &tenant).await.unwrap().client_secret, "");
    let rotated = pb::IdentityProvider {
        client_secret: format!("{SECRET}-2"),
        ..provider(&tenant)
    };
    update(&app, rotated, &["client_secret"]).await.unwrap();

    for table in app.db.tables().await {
        for row in app.db.rows_as_text(&table).await {
            assert!(
                !row.contains(SECRET),
                "the client secret is in plaintext in {table}: {row}"
            );
            let hex: String = SECRET.bytes().map(|b| format!("{b:02x}")).collect();
            assert!(
                !row.to_lowercase().contains(&hex),
                "the client secret is in {table} as hex"
            );
        }
    }
    let audit = app
        .admin
        .clone()
        .list_audit_events(bearer(pb::ListAuditEventsRequest::default(), &app.admin_token))
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<_> = audit.audit_events.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"identity_provider.created") && actions.contains(&"identity_provider.updated"));
    assert!(!format!("{:?}", audit.audit_events).contains(SECRET));
    app.finish().await;
}

async fn bad_provider_settings_name_every_field(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let bad = pb::IdentityProvider {
        issuer_url: "http://idp.example.com".into(),
        client_id: String::new(),
        scopes: vec!["two words".into()],
        allowed_redirect_uris: vec![],
        ..provider(&app.admin_tenant_id)
    };
    let status = create(&app, &app.admin_token, bad).await.unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&status),
        [
            "identity_provider.issuer_url",
            "identity_provider.client_id",
            "identity_provider.scopes",
            "identity_provider.allowed_redirect_uris"
        ]
    );
    let unknown_tenant = create(&app, &app.admin_token, provider(&uuid::Uuid::now_v7().to_string()))
        .await
        .unwrap_err();
    assert_error(&unknown_tenant, Code::NotFound, "NOT_FOUND");
    app.finish().await;
}

async fn new_users_get_only_roles_their_administrator_holds(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let tenant = app.create_tenant("Acme").await;
    app.create_user(
        &tenant.tenant_id,
        "boss@acme.example",
        "a long enough phrase to administer",
        &[pb::Role::TenantAdmin],
    )
    .await;
    let boss = app
        .login_ok("boss@acme.example", "a long enough phrase to administer")
        .await;
    let greedy = pb::IdentityProvider {
        create_users: true,
        default_roles: vec![pb::Role::SystemAdmin as i32],
        ..provider(&tenant.tenant_id)
    };
    let status = create(&app, &boss.session_token, greedy).await.unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    let modest = pb::IdentityProvider {
        create_users: true,
        default_roles: vec![pb::Role::TenantAdmin as i32],
        ..provider(&tenant.tenant_id)
    };
    let created = create(&app, &boss.session_token, modest).await.unwrap();
    assert_eq!(created.default_roles, [pb::Role::TenantAdmin as i32]);
    app.finish().await;
}
