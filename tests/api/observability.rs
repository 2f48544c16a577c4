//! The admin listener (metrics, liveness, readiness) and what every call carries back: its
//! request id.
//!
//! The metrics recorder is global to the process and the suite runs servers in parallel, so the
//! tests assert that a counter moved by at least what they did, never by exactly that.

use std::collections::HashMap;

use identityd::grpc::pb;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::app::{ADMIN_PASSWORD, ADMIN_USER, TestApp, TestEnv, bearer};
use crate::support::calls::cheap_hashing;

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        metrics_count_calls_by_method_and_code,
        the_probes_answer_and_unknown_paths_do_not,
        a_request_id_is_echoed_or_made,
    ]
}

/// Tests that take the database away.
pub fn postgres_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![readyz_follows_the_database_server]
}

/// Tests that take the database file away.
pub fn sqlite_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![readyz_follows_the_database_file]
}

async fn spawn_with_admin(env: &TestEnv) -> TestApp {
    TestApp::spawn_with(env, |config| {
        cheap_hashing(config);
        config.admin_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await
}

/// GETs a path of the admin listener: its status and body.
async fn admin_get(app: &TestApp, path: &str) -> (u16, String) {
    let address = app.admin_addr.expect("an admin listener");
    let response = reqwest::get(format!("http://{address}{path}"))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (response.status().as_u16(), response.text().await.unwrap())
}

/// One scrape: every sample by its metric name and labels (`name{a="x",b="y"}` with the labels
/// sorted), so that a test can name a series whatever order the exporter writes labels in.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    async fn take(app: &TestApp) -> Scrape {
        let (status, body) = admin_get(app, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        let mut samples = HashMap::new();
        for line in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let key = match series.split_once('{') {
                Some((name, labels)) => {
                    let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                    labels.sort_unstable();
                    format!("{name}{{{}}}", labels.join(","))
                }
                None => series.to_owned(),
            };
            samples.insert(key, value.parse().unwrap_or(f64::NAN));
        }
        Scrape(samples)
    }

    /// The value of a series (0 when it is not there yet); `labels` sorted by name.
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    fn has(&self, series: &str) -> bool {
        self.0.contains_key(series)
    }
}

const VALIDATE_OK: &str =
    r#"identityd_rpc_requests_total{code="OK",method="ValidateSession",service="identity.v1.SessionService"}"#;
const LOGIN_UNAUTHENTICATED: &str =
    r#"identityd_rpc_requests_total{code="UNAUTHENTICATED",method="Login",service="identity.v1.LoginService"}"#;
const LOGOUT_OK: &str = r#"identityd_rpc_requests_total{code="OK",method="Logout",service="identity.v1.LoginService"}"#;
const VALIDATE_LATENCY_COUNT: &str =
    r#"identityd_rpc_duration_seconds_count{code="OK",method="ValidateSession",service="identity.v1.SessionService"}"#;
const PASSWORD_SESSIONS: &str = r#"identityd_sessions_opened_total{kind="password"}"#;

async fn metrics_count_calls_by_method_and_code(env: TestEnv) {
    let app = spawn_with_admin(&env).await;
    let before = Scrape::take(&app).await;
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    for _ in 0..3 {
        assert!(app.validate(&login.session_token).await.valid);
    }
    let refused = app.login(ADMIN_USER, "not the password").await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    app.login
        .clone()
        .logout(bearer(pb::LogoutRequest::default(), &login.session_token))
        .await
        .expect("logout");
    let after = Scrape::take(&app).await;
    let moved = |series: &str| after.get(series) - before.get(series);
    assert!(
        moved(VALIDATE_OK) >= 3.0,
        "{VALIDATE_OK} moved by {}",
        moved(VALIDATE_OK)
    );
    assert!(
        moved(VALIDATE_LATENCY_COUNT) >= 3.0,
        "the latency histogram counts the calls too"
    );
    assert!(moved(LOGIN_UNAUTHENTICATED) >= 1.0, "{LOGIN_UNAUTHENTICATED}");
    assert!(moved(LOGOUT_OK) >= 1.0, "{LOGOUT_OK}");
    assert!(moved(PASSWORD_SESSIONS) >= 1.0, "a login opens a password session");
    assert!(moved("identityd_sessions_ended_total") >= 1.0, "a logout ends one");
    assert!(
        moved("identityd_db_statement_duration_seconds_count") >= 1.0,
        "the reads of a login are timed"
    );
    let validations = moved("identityd_validation_cache_hits_total") + moved("identityd_validation_cache_misses_total");
    assert!(validations >= 3.0, "every validation is a cache hit or a miss");
    // Two password hashes (the logins) went through the admission queue and are done.
    for gauge in ["identityd_hashing_admitted", "identityd_hashing_queued"] {
        assert!(after.has(gauge), "{gauge} is exported");
    }
    for series in [
        r#"identityd_db_pool_connections{pool="primary",state="idle"}"#,
        r#"identityd_db_pool_connections{pool="primary",state="in_use"}"#,
        r#"identityd_db_pool_max_connections{pool="primary"}"#,
        "identityd_db_ping_duration_seconds_count",
        "identityd_rpc_in_flight",
    ] {
        assert!(after.has(series), "{series} is exported");
    }
    assert!(after.get(r#"identityd_db_pool_max_connections{pool="primary"}"#) >= 1.0);
    // No label carries a secret or a user: the session token is nowhere in the exposition.
    let (_, body) = admin_get(&app, "/metrics").await;
    assert!(!body.contains(&login.session_token));
    assert!(!body.contains(ADMIN_USER));
    app.finish().await;
}

async fn the_probes_answer_and_unknown_paths_do_not(env: TestEnv) {
    let app = spawn_with_admin(&env).await;
    assert_eq!(admin_get(&app, "/healthz").await.0, 200);
    app.health_until(ServingStatus::Serving).await;
    assert_eq!(admin_get(&app, "/readyz").await.0, 200);
    assert_eq!(admin_get(&app, "/secrets").await.0, 404);
    app.finish().await;
}

async fn a_request_id_is_echoed_or_made(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let mut request = tonic::Request::new(pb::ValidateSessionRequest {
        session_token: "idsess_not-a-session".into(),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "req-42.a:b".parse().unwrap());
    let response = app.sessions.clone().validate_session(request).await.unwrap();
    assert_eq!(response.metadata().get("x-request-id").unwrap(), "req-42.a:b");
    // One that could be a secret is replaced by a fresh id, and so is a missing one.
    for given in [Some("idsess_looks-like-a-token"), None] {
        let mut request = tonic::Request::new(pb::ValidateSessionRequest::default());
        if let Some(given) = given {
            request.metadata_mut().insert("x-request-id", given.parse().unwrap());
        }
        let response = app.sessions.clone().validate_session(request).await.unwrap();
        let id = response
            .metadata()
            .get("x-request-id")
            .expect("a request id")
            .to_str()
            .unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{given:?} answered {id:?}");
    }
    // An error carries one too.
    let refused = app.login(ADMIN_USER, "wrong").await.unwrap_err();
    assert!(refused.metadata().get("x-request-id").is_some(), "{refused:?}");
    app.finish().await;
}

async fn readyz_follows_the_database_server(env: TestEnv) {
    let app = spawn_with_admin(&env).await;
    app.health_until(ServingStatus::Serving).await;
    assert_eq!(admin_get(&app, "/readyz").await.0, 200);
    app.db.refuse_connections(&env.postgres_base_url, true).await;
    // Readiness changes before the health status does, so once the watch says so, so does /readyz.
    app.health_until(ServingStatus::NotServing).await;
    assert_eq!(admin_get(&app, "/readyz").await.0, 503);
    assert_eq!(admin_get(&app, "/healthz").await.0, 200, "the process is still alive");
    app.db.refuse_connections(&env.postgres_base_url, false).await;
    app.health_until(ServingStatus::Serving).await;
    assert_eq!(admin_get(&app, "/readyz").await.0, 200);
    app.finish().await;
}

async fn readyz_follows_the_database_file(env: TestEnv) {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_with_admin(&env).await;
    let path = std::path::PathBuf::from(app.db.url.trim_start_matches("sqlite://"));
    let set_mode = |mode| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    app.health_until(ServingStatus::Serving).await;
    assert_eq!(admin_get(&app, "/readyz").await.0, 200);
    set_mode(0o444);
    app.health_until(ServingStatus::NotServing).await;
    assert_eq!(admin_get(&app, "/readyz").await.0, 503);
    set_mode(0o644);
    app.health_until(ServingStatus::Serving).await;
    assert_eq!(admin_get(&app, "/readyz").await.0, 200);
    app.finish().await;
}
