//! Who may act on whom: nobody acts on a user holding a role they lack, grants a role they lack,
//! or leaves the service without an enabled system administrator; and a tenant administrator
//! learns nothing of other tenants.

use identityd::grpc::pb;
use tonic::Code;

use crate::support::app::{TestApp, TestEnv, assert_already_exists, assert_error, bearer};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        a_tenant_administrator_cannot_touch_a_system_administrator,
        the_last_enabled_system_administrator_stays,
        renaming_a_tenant_reveals_no_other_tenant,
    ]
}

const PASSWORD: &str = "a password for roles";

async fn a_tenant_administrator_cannot_touch_a_system_administrator(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    // The bootstrap administrator lives in an ordinary tenant; so does this tenant administrator.
    app.create_user(
        &app.admin_tenant_id,
        "boss@example.com",
        PASSWORD,
        &[pb::Role::TenantAdmin],
    )
    .await;
    let worker = app
        .create_user(&app.admin_tenant_id, "worker@example.com", PASSWORD, &[])
        .await;
    let boss_token = app.login_ok("boss@example.com", PASSWORD).await.session_token;
    let root = app.admin_user_id.clone();
    let before = app.get_user(&app.admin_token, &root).await.unwrap();
    let denied = |status: tonic::Status| assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    denied(app.set_disabled(&boss_token, &root, true).await.unwrap_err());
    denied(app.set_first_name(&boss_token, &root, "Mallory").await.unwrap_err());
    denied(app.set_roles(&boss_token, &root, &[]).await.unwrap_err());
    let tokens = pb::ListUserAccessTokensRequest {
        user_name: crate::support::app::ADMIN_USER.into(),
        ..Default::default()
    };
    denied(
        app.tokens()
            .list_user_access_tokens(bearer(tokens, &boss_token))
            .await
            .unwrap_err(),
    );
    // Nor grant a role the tenant administrator does not hold.
    denied(
        app.set_roles(&boss_token, &worker.user_id, &[pb::Role::ProxyLogin])
            .await
            .unwrap_err(),
    );
    // Reading the account is allowed: it is listed in the tenant anyway.
    app.get_user(&boss_token, &root).await.expect("read the account");
    // The system administrator is untouched and still signs in; the worker is still the boss's.
    assert!(app.validate(&app.admin_token).await.valid);
    assert_eq!(app.get_user(&app.admin_token, &root).await.unwrap(), before);
    app.set_first_name(&boss_token, &worker.user_id, "Wendy")
        .await
        .expect("the boss edits the worker");
    app.finish().await;
}

async fn the_last_enabled_system_administrator_stays(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let root = app.admin_user_id.clone();
    let last = app
        .set_roles(&app.admin_token, &root, &[pb::Role::TenantAdmin])
        .await
        .unwrap_err();
    assert_error(&last, Code::FailedPrecondition, "LAST_SYSTEM_ADMIN");
    let other = app
        .create_user(
            &app.admin_tenant_id,
            "second@example.com",
            PASSWORD,
            &[pb::Role::SystemAdmin],
        )
        .await;
    let second = app.login_ok("second@example.com", PASSWORD).await.session_token;
    // With a second one, either may step down or be disabled...
    app.set_disabled(&second, &root, true).await.expect("disable the first");
    // ...but not the second too: nobody would be left.
    let demote = app.set_roles(&second, &other.user_id, &[]).await.unwrap_err();
    assert_error(&demote, Code::FailedPrecondition, "LAST_SYSTEM_ADMIN");
    app.set_disabled(&second, &root, false)
        .await
        .expect("enable the first again");
    app.set_roles(&second, &other.user_id, &[])
        .await
        .expect("now the second may step down");
    app.finish().await;
}

async fn renaming_a_tenant_reveals_no_other_tenant(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let acme = app.create_tenant("Acme").await;
    app.create_tenant("Globex").await;
    app.create_user(&acme.tenant_id, "boss@acme.com", PASSWORD, &[pb::Role::TenantAdmin])
        .await;
    let boss = app.login_ok("boss@acme.com", PASSWORD).await.session_token;
    let rename = |name: &str| pb::Tenant {
        tenant_id: acme.tenant_id.clone(),
        name: name.into(),
        ..Default::default()
    };
    // A taken name and a free one get the same answer: renaming is for system administrators.
    for name in ["Globex", "Initech"] {
        let status = app.update_tenant(&boss, rename(name), &["name"]).await.unwrap_err();
        assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    }
    let policy = pb::Tenant {
        password_expiry: pb::PasswordExpiry::Days30 as i32,
        ..rename("")
    };
    app.update_tenant(&boss, policy, &["password_expiry"])
        .await
        .expect("policies are the boss's");
    let taken = app
        .update_tenant(&app.admin_token, rename("globex"), &["name"])
        .await
        .unwrap_err();
    assert_already_exists(&taken, "tenant.name");
    app.update_tenant(&app.admin_token, rename("Initech"), &["name"])
        .await
        .expect("a system administrator renames");
    app.finish().await;
}
