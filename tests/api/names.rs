//! Names that a person cannot tell apart name one thing, and names hide no invisible characters.

use identityd::grpc::pb;
use tonic::Code;

use crate::support::app::{
    ADMIN_PASSWORD, ADMIN_USER, TestApp, TestEnv, assert_already_exists, assert_error, bearer, violated_fields,
};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        user_names_that_look_alike_are_taken,
        invisible_characters_in_user_names_are_refused,
        login_matches_other_widths_and_cases_of_a_name,
        bidirectional_overrides_are_refused_in_names_and_descriptions,
        keys_stored_under_earlier_rules_are_computed_again_at_start,
        names_that_became_one_name_stop_the_start,
    ]
}

async fn create_user(app: &TestApp, user_name: &str) -> Result<pb::User, tonic::Status> {
    let request = pb::CreateUserRequest {
        user: Some(pb::User {
            tenant_id: app.admin_tenant_id.clone(),
            user_name: user_name.into(),
            ..Default::default()
        }),
        password: "a long enough password".into(),
    };
    app.admin
        .clone()
        .create_user(bearer(request, &app.admin_token))
        .await
        .map(|r| r.into_inner().user.unwrap())
}

async fn user_names_that_look_alike_are_taken(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    assert_eq!(ADMIN_USER, "admin@example.com");
    let fullwidth_a = create_user(&app, "\u{ff41}dmin@example.com").await.unwrap_err();
    assert_already_exists(&fullwidth_a, "user.user_name");
    let composed = create_user(&app, "caf\u{e9}@example.com").await.unwrap();
    assert_eq!(composed.user_name, "caf\u{e9}@example.com", "kept as written");
    let decomposed = create_user(&app, "cafe\u{301}@example.com").await.unwrap_err();
    assert_already_exists(&decomposed, "user.user_name");
    let sharp_s = create_user(&app, "stra\u{df}e@example.com").await.unwrap();
    assert_eq!(sharp_s.user_name, "stra\u{df}e@example.com");
    assert_already_exists(
        &create_user(&app, "STRASSE@example.com").await.unwrap_err(),
        "user.user_name",
    );
    app.finish().await;
}

async fn invisible_characters_in_user_names_are_refused(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    for name in [
        "admin\u{200b}@example.com", // zero-width space
        "ad\u{ad}min@example.com",   // soft hyphen
        "\u{202e}moc.elpmaxe@nimda", // right-to-left override
        "admin\u{e000}@example.com", // private use
        "admin\u{378}@example.com",  // unassigned
    ] {
        let status = create_user(&app, name).await.unwrap_err();
        assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&status), ["user.user_name"], "{name:?}");
    }
    assert_eq!(app.db.count("users").await, 1, "only the administrator");
    app.finish().await;
}

async fn login_matches_other_widths_and_cases_of_a_name(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    for name in [
        "\u{ff21}\u{ff24}\u{ff2d}\u{ff29}\u{ff2e}@example.com", // fullwidth ADMIN
        "\u{ff41}dmin@EXAMPLE.com",
        "ADMIN@EXAMPLE.COM",
    ] {
        let login = app.login_ok(name, ADMIN_PASSWORD).await;
        assert_eq!(login.user.unwrap().user_id, app.admin_user_id, "{name:?}");
    }
    app.finish().await;
}

async fn bidirectional_overrides_are_refused_in_names_and_descriptions(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let tenant = pb::CreateTenantRequest {
        tenant: Some(pb::Tenant {
            name: "Acme\u{202e}cmE".into(),
            ..Default::default()
        }),
    };
    let status = app
        .admin
        .clone()
        .create_tenant(bearer(tenant, &app.admin_token))
        .await
        .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["tenant.name"]);

    let token = |name: &str, description: &str| {
        let request = pb::CreateUserAccessTokenRequest {
            user_access_token_name: name.into(),
            description: description.into(),
            expiration_days: None,
        };
        let mut tokens = app.tokens();
        let request = bearer(request, &app.admin_token);
        async move { tokens.create_user_access_token(request).await }
    };
    let status = token("ci\u{2067}x", "").await.unwrap_err();
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["user_access_token_name"]);
    let status = token("ci", "deploys \u{202e}nur\u{202c}").await.unwrap_err();
    assert_eq!(violated_fields(&status), ["description"]);
    token("ci", "deploys\n\tthe site")
        .await
        .expect("a description keeps its lines and tabs");
    app.finish().await;
}

/// Marks the stored keys as computed by an earlier rule, as the migration that changes the rule does.
async fn mark_keys_stale(app: &TestApp) {
    app.db
        .execute(
            "INSERT INTO pending_rekeys (key_function) VALUES ('nfkc_casefold')",
            &[],
        )
        .await;
}

async fn keys_stored_under_earlier_rules_are_computed_again_at_start(env: TestEnv) {
    let mut app = TestApp::spawn(&env).await;
    create_user(&app, "Straße@example.com").await.unwrap();
    // As the earlier rule (lower case) keyed it: "STRASSE" would not find it.
    let sql = "UPDATE users SET user_name_key = $1 WHERE user_name = $2";
    app.db.execute(sql, &["straße@example.com", "Straße@example.com"]).await;
    mark_keys_stale(&app).await;
    let before = app
        .login("STRASSE@example.com", "a long enough password")
        .await
        .unwrap_err();
    assert_error(&before, Code::Unauthenticated, "INVALID_CREDENTIALS");
    app.restart().await;
    app.login_ok("STRASSE@example.com", "a long enough password").await;
    app.login_ok("straße@example.com", "a long enough password").await;
    assert_eq!(app.db.count("pending_rekeys").await, 0, "done once");
    app.finish().await;
}

async fn names_that_became_one_name_stop_the_start(env: TestEnv) {
    let mut app = TestApp::spawn(&env).await;
    create_user(&app, "admin2@example.com").await.unwrap();
    create_user(&app, "other@example.com").await.unwrap();
    // A name the earlier rule told apart from "admin2" (fullwidth letters), stored as it kept it.
    let sql = "UPDATE users SET user_name = $1, user_name_key = $1 WHERE user_name = $2";
    app.db
        .execute(sql, &["ａｄｍｉｎ２@example.com", "other@example.com"])
        .await;
    mark_keys_stale(&app).await;
    app.stop().await;
    let error = identityd::startup::Application::build(app.config.clone())
        .await
        .err()
        .expect("the start is refused");
    assert!(format!("{error:#}").contains("user.user_name"), "{error:#}");
    assert_eq!(app.db.count("pending_rekeys").await, 1, "nothing was changed");
    app.finish().await;
}
