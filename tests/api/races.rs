//! Conflicting calls run at the same time, many times over: a security change always wins, and
//! no call writes back a field it did not mean to change.

use futures_util::future::join_all;
use identityd::grpc::pb;
use tonic::Code;

use crate::support::app::{TestApp, TestEnv, assert_error};
use crate::support::calls::cheap_hashing;

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        profile_updates_never_undo_a_disable,
        profile_updates_never_undo_a_role_change,
        concurrent_tenant_updates_keep_both_changes,
        a_rename_racing_a_rotation_keeps_the_new_secret,
        administrators_disabling_each_other_leave_one_enabled,
    ]
}

const ROUNDS: usize = 15;
const PASSWORD: &str = "a password for races";

async fn profile_updates_never_undo_a_disable(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let user = app
        .create_user(&app.admin_tenant_id, "ann@example.com", PASSWORD, &[])
        .await;
    for round in 0..ROUNDS {
        app.set_disabled(&app.admin_token, &user.user_id, false).await.unwrap();
        let own = app.login_ok("ann@example.com", PASSWORD).await.session_token;
        // Ann edits her own profile as fast as she can while an administrator disables her; her
        // edits may fail once her session ends, but none may enable her again.
        let names: Vec<String> = (0..8).map(|i| format!("Ann {round}.{i}")).collect();
        let edits = names.iter().map(|name| app.set_first_name(&own, &user.user_id, name));
        let (_, disabled) = tokio::join!(join_all(edits), app.set_disabled(&app.admin_token, &user.user_id, true));
        disabled.expect("the administrator disables Ann");
        let stored = app.get_user(&app.admin_token, &user.user_id).await.unwrap();
        assert!(
            stored.disabled,
            "round {round}: a profile edit enabled a disabled user again"
        );
        let login = app.login("ann@example.com", PASSWORD).await.unwrap_err();
        assert_error(&login, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    app.finish().await;
}

async fn profile_updates_never_undo_a_role_change(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let user = app
        .create_user(&app.admin_tenant_id, "bo@example.com", PASSWORD, &[])
        .await;
    for round in 0..ROUNDS {
        app.set_roles(&app.admin_token, &user.user_id, &[pb::Role::TenantAdmin])
            .await
            .unwrap();
        let own = app.login_ok("bo@example.com", PASSWORD).await.session_token;
        let names: Vec<String> = (0..8).map(|i| format!("Bo {round}.{i}")).collect();
        let edits = names.iter().map(|name| app.set_first_name(&own, &user.user_id, name));
        let (edited, demoted) = tokio::join!(join_all(edits), app.set_roles(&app.admin_token, &user.user_id, &[]));
        demoted.expect("the administrator removes the role");
        for result in edited {
            // An edit that read the roles before the change and wrote after is refused, not applied
            // over the new roles.
            if let Err(status) = result {
                assert_error(&status, Code::Aborted, "CONCURRENT_CHANGE");
            }
        }
        let stored = app.get_user(&app.admin_token, &user.user_id).await.unwrap();
        assert!(
            stored.roles.is_empty(),
            "round {round}: a profile edit restored a removed role"
        );
    }
    app.finish().await;
}

async fn concurrent_tenant_updates_keep_both_changes(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let acme = app.create_tenant("Acme").await;
    let policies = [pb::PasswordExpiry::Days30, pb::PasswordExpiry::Days60];
    for round in 0..ROUNDS {
        let expiry = policies[round % 2];
        let days = 10 + round as i32;
        let policy = pb::Tenant {
            tenant_id: acme.tenant_id.clone(),
            password_expiry: expiry as i32,
            ..Default::default()
        };
        let cap = pb::Tenant {
            tenant_id: acme.tenant_id.clone(),
            max_access_token_days: days,
            ..Default::default()
        };
        let (a, b) = tokio::join!(
            app.update_tenant(&app.admin_token, policy, &["password_expiry"]),
            app.update_tenant(&app.admin_token, cap, &["max_access_token_days"]),
        );
        a.unwrap();
        b.unwrap();
        let request = crate::support::app::bearer(
            pb::GetTenantRequest {
                tenant_id: acme.tenant_id.clone(),
            },
            &app.admin_token,
        );
        let stored = app
            .admin
            .clone()
            .get_tenant(request)
            .await
            .unwrap()
            .into_inner()
            .tenant
            .unwrap();
        assert_eq!(
            (stored.password_expiry, stored.max_access_token_days),
            (expiry as i32, days),
            "round {round}: one update undid the other"
        );
    }
    app.finish().await;
}

async fn a_rename_racing_a_rotation_keeps_the_new_secret(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let mut name = "ci".to_owned();
    let mut secret = app.create_token(&app.admin_token, &name).await.unwrap();
    for round in 0..ROUNDS {
        let new_name = format!("ci-{round}");
        let rename = pb::UpdateUserAccessTokenRequest {
            user_access_token_name: name.clone(),
            new_name: new_name.clone(),
            description: None,
        };
        let rotate = pb::RotateUserAccessTokenRequest {
            user_access_token_name: name.clone(),
        };
        let mut tokens = app.tokens();
        let mut other = app.tokens();
        let (renamed, rotated) = tokio::join!(
            tokens.update_user_access_token(crate::support::app::bearer(rename, &app.admin_token)),
            other.rotate_user_access_token(crate::support::app::bearer(rotate, &app.admin_token)),
        );
        if renamed.is_ok() {
            name = new_name;
        }
        if let Ok(rotated) = rotated {
            let old = app.token_login(&secret).await.unwrap_err();
            assert_error(&old, Code::Unauthenticated, "INVALID_CREDENTIALS");
            secret = rotated.into_inner().token;
        }
        app.token_login(&secret)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the newest secret must work: {e:?}"));
    }
    app.finish().await;
}

async fn administrators_disabling_each_other_leave_one_enabled(env: TestEnv) {
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let sysadmin = [pb::Role::SystemAdmin];
    let a = app
        .create_user(&app.admin_tenant_id, "a@example.com", PASSWORD, &sysadmin)
        .await;
    let b = app
        .create_user(&app.admin_tenant_id, "b@example.com", PASSWORD, &sysadmin)
        .await;
    let mut a_token = app.login_ok("a@example.com", PASSWORD).await.session_token;
    // A and B become the only enabled system administrators.
    app.set_disabled(&a_token, &app.admin_user_id, true).await.unwrap();
    for round in 0..ROUNDS {
        let b_token = app.login_ok("b@example.com", PASSWORD).await.session_token;
        let (a_did, b_did) = tokio::join!(
            app.set_disabled(&a_token, &b.user_id, true),
            app.set_disabled(&b_token, &a.user_id, true),
        );
        assert!(
            a_did.is_ok() != b_did.is_ok(),
            "round {round}: exactly one may succeed: {a_did:?} / {b_did:?}"
        );
        // The other is refused: as the last system administrator, or because its own session
        // ended when it was disabled first.
        let refused = a_did.as_ref().err().or(b_did.as_ref().err()).unwrap();
        let reason = tonic_types::StatusExt::get_details_error_info(refused).unwrap().reason;
        assert!(
            ["LAST_SYSTEM_ADMIN", "SESSION_INVALID"].contains(&reason.as_str()),
            "round {round}: {refused:?}"
        );
        let (survivor, survivor_token, loser) = if a_did.is_ok() {
            (&a, a_token.clone(), &b)
        } else {
            let token = b_token.clone();
            (&b, token, &a)
        };
        let stored = app.get_user(&survivor_token, &survivor.user_id).await.unwrap();
        assert!(
            !stored.disabled,
            "round {round}: no enabled system administrator is left"
        );
        app.set_disabled(&survivor_token, &loser.user_id, false).await.unwrap();
        a_token = app.login_ok("a@example.com", PASSWORD).await.session_token;
    }
    app.finish().await;
}
