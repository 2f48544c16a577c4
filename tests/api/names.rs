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
