//! Failed user-access-token logins: limited per client address, audited in summaries.

use std::net::IpAddr;
use std::time::Duration;

use identityd::auth::AccessTokenSecret;
use identityd::grpc::pb;
use identityd::grpc::pb::login_service_client::LoginServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::support::app::{ADMIN_PASSWORD, ADMIN_USER, TestApp, TestEnv, assert_error, bearer};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        forged_tokens_from_one_address_are_refused_after_the_limit,
        forged_bearer_tokens_count_as_failed_logins,
        failed_token_logins_are_audited_in_summaries_that_add_up,
    ]
}

/// Tests that need a database server that can be taken away.
pub fn postgres_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![a_throttled_address_is_refused_without_the_database]
}

const LIMIT: u32 = 5;
const WINDOW: Duration = Duration::from_secs(60);

async fn spawn(env: &TestEnv) -> TestApp {
    TestApp::spawn_with(env, |c| {
        c.token_login_failures = LIMIT;
        c.token_login_failure_window = WINDOW;
    })
    .await
}

/// A well-formed token (its checksum is right) that the server never issued.
fn forged() -> String {
    AccessTokenSecret::mint().expose().to_owned()
}

async fn token_login(client: &LoginServiceClient<Channel>, token: &str) -> Result<pb::LoginResponse, Status> {
    let request = pb::LoginRequest {
        token: token.into(),
        ..Default::default()
    };
    client.clone().login(request).await.map(|r| r.into_inner())
}

async fn real_token(app: &TestApp) -> String {
    let request = pb::CreateUserAccessTokenRequest {
        user_access_token_name: "ci".into(),
        description: String::new(),
        expiration_days: None,
    };
    app.tokens()
        .create_user_access_token(bearer(request, &app.admin_token))
        .await
        .expect("create a token")
        .into_inner()
        .token
}

fn advance(app: &TestApp, by: Duration) {
    app.clock.advance(chrono::Duration::from_std(by).unwrap());
}

async fn forged_tokens_from_one_address_are_refused_after_the_limit(env: TestEnv) {
    let app = spawn(&env).await;
    let real = real_token(&app).await;
    let here = app.login.clone();
    for _ in 0..LIMIT {
        let failed = token_login(&here, &forged()).await.unwrap_err();
        assert_error(&failed, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    for _ in 0..3 {
        let refused = token_login(&here, &forged()).await.unwrap_err();
        assert_error(&refused, Code::ResourceExhausted, "TOO_MANY_FAILED_LOGINS");
        let retry = refused.get_details_retry_info().expect("a RetryInfo");
        assert_eq!(
            retry.retry_delay,
            Some(WINDOW / LIMIT),
            "until one failure's share of the window is back (the clock stands still)"
        );
        let retry_infos = refused
            .get_error_details_vec()
            .into_iter()
            .filter(|d| matches!(d, tonic_types::ErrorDetail::RetryInfo(_)))
            .count();
        assert_eq!(retry_infos, 1, "one RetryInfo, so that clients agree on when to retry");
    }
    let refused = token_login(&here, &real).await.unwrap_err();
    assert_error(&refused, Code::ResourceExhausted, "TOO_MANY_FAILED_LOGINS");
    app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await; // password logins are not limited by this

    let elsewhere: IpAddr = "127.0.0.2".parse().unwrap();
    let there = app.login_from(elsewhere).await;
    token_login(&there, &real)
        .await
        .expect("another address logs in with the real token");
    let failed = token_login(&there, &forged()).await.unwrap_err();
    assert_error(&failed, Code::Unauthenticated, "INVALID_CREDENTIALS");

    advance(&app, WINDOW);
    token_login(&here, &real)
        .await
        .expect("after the window the real token works again from the first address");
    app.finish().await;
}

async fn a_throttled_address_is_refused_without_the_database(env: TestEnv) {
    let app = spawn(&env).await;
    let real = real_token(&app).await;
    let here = app.login.clone();
    for _ in 0..LIMIT {
        token_login(&here, &forged()).await.unwrap_err();
    }
    // With the database refusing connections, a lookup would answer UNAVAILABLE.
    app.db.refuse_connections(&env.postgres_base_url, true).await;
    let refused = token_login(&here, &forged()).await.unwrap_err();
    assert_error(&refused, Code::ResourceExhausted, "TOO_MANY_FAILED_LOGINS");
    let there = app.login_from("127.0.0.2".parse().unwrap()).await;
    assert_eq!(
        token_login(&there, &real).await.unwrap_err().code(),
        Code::Unavailable,
        "another address's login does ask the database"
    );
    app.db.refuse_connections(&env.postgres_base_url, false).await;
    app.finish().await;
}

async fn failed_events(app: &TestApp) -> Vec<pb::AuditEvent> {
    let request = pb::ListAuditEventsRequest {
        action: "login.failed".into(),
        page_size: 100,
        ..Default::default()
    };
    app.admin
        .clone()
        .list_audit_events(bearer(request, &app.admin_token))
        .await
        .expect("list audit events")
        .into_inner()
        .audit_events
}

/// The attempts the events stand for: a summary carries its count, any other event is one.
fn attempts(events: &[pb::AuditEvent]) -> u64 {
    events
        .iter()
        .map(|e| e.details.get("count").map_or(1, |n| n.parse::<u64>().expect("a count")))
        .sum()
}

async fn failed_token_logins_are_audited_in_summaries_that_add_up(env: TestEnv) {
    let mut app = spawn(&env).await;
    let here = app.login.clone();
    const BURST: u64 = 40;
    for _ in 0..BURST {
        token_login(&here, &forged()).await.unwrap_err();
    }
    let events = failed_events(&app).await;
    assert_eq!(
        events.len(),
        1,
        "the first failure is written at once, the rest counted: {events:?}"
    );
    assert_eq!(events[0].details["failure"], "INVALID_CREDENTIALS");
    assert!(
        !events[0].details.contains_key("count"),
        "written as one failure always was"
    );

    // Once the interval is over, the address's next failure writes the counts (unless the
    // periodic flush already has), and is written itself as the first of a new interval.
    advance(&app, WINDOW);
    let failed = token_login(&here, &forged()).await.unwrap_err();
    assert_error(&failed, Code::Unauthenticated, "INVALID_CREDENTIALS");
    let events = failed_events(&app).await;
    assert_eq!(attempts(&events), BURST + 1, "the counts add up: {events:?}");
    assert_eq!(
        events.len(),
        4,
        "two failures and two summaries, one per kind: {events:?}"
    );
    let summary = |failure: &str| {
        events
            .iter()
            .find(|e| e.details.get("failure").map(String::as_str) == Some(failure) && e.details.contains_key("count"))
            .unwrap_or_else(|| panic!("a summary of {failure} in {events:?}"))
    };
    assert_eq!(summary("INVALID_CREDENTIALS").details["count"], (LIMIT - 1).to_string());
    let refusals = summary("TOO_MANY_FAILED_LOGINS");
    assert_eq!(refusals.details["count"], (BURST - u64::from(LIMIT)).to_string());
    assert_eq!(refusals.peer_address, "127.0.0.1", "summed over the address's ports");
    assert!(refusals.details.contains_key("first_time"));

    // What is still counted when the server stops is written then.
    for _ in 0..3 {
        token_login(&here, &forged()).await.unwrap_err();
    }
    app.restart().await;
    let events = failed_events(&app).await;
    assert_eq!(attempts(&events), BURST + 4, "{events:?}");
    assert_eq!(events.len(), 5);
    app.finish().await;
}

async fn forged_bearer_tokens_count_as_failed_logins(env: TestEnv) {
    let app = spawn(&env).await;
    let who_am_i = |token: String| {
        let mut sessions = app.sessions.clone();
        async move {
            sessions
                .get_current_user(bearer(pb::GetCurrentUserRequest {}, &token))
                .await
        }
    };
    // Each forged bearer costs a lookup, so it counts as a failed token login does...
    for _ in 0..LIMIT {
        let failed = who_am_i(forged()).await.unwrap_err();
        assert_error(&failed, Code::Unauthenticated, "SESSION_INVALID");
    }
    // ...and once the address has failed too often, it is refused before any lookup, as a bearer
    // and at login alike.
    let refused = who_am_i(forged()).await.unwrap_err();
    assert_error(&refused, Code::ResourceExhausted, "TOO_MANY_FAILED_LOGINS");
    let login = token_login(&app.login, &forged()).await.unwrap_err();
    assert_error(&login, Code::ResourceExhausted, "TOO_MANY_FAILED_LOGINS");
    // Session tokens are not access tokens: the session keeps working.
    who_am_i(app.admin_token.clone())
        .await
        .expect("a session is not throttled");
    app.finish().await;
}
