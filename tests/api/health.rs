use identityd::grpc::SERVICE_NAMES;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::support::app::{TestApp, TestEnv, watch_health_until};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![every_service_reports_serving, reflection_lists_every_service]
}

/// Tests of the embedded database's file.
pub fn sqlite_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![health_notices_a_database_file_taken_away]
}

/// Tests that only make sense with a database server that can go away.
pub fn postgres_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![health_follows_the_database]
}

async fn every_service_reports_serving(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let mut health = HealthClient::new(app.channel.clone());
    for service in SERVICE_NAMES.iter().chain(&[""]) {
        watch_health_until(&mut health, service, ServingStatus::Serving).await;
    }
    app.finish().await;
}

async fn health_follows_the_database(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let mut health = HealthClient::new(app.channel.clone());
    watch_health_until(&mut health, "identity.v1.SessionService", ServingStatus::Serving).await;
    // Take the database away under the running server.
    app.db.refuse_connections(&env.postgres_base_url, true).await;
    watch_health_until(&mut health, "identity.v1.SessionService", ServingStatus::NotServing).await;
    let status = app
        .login(crate::support::app::ADMIN_USER, "whatever")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    app.db.refuse_connections(&env.postgres_base_url, false).await;
    watch_health_until(&mut health, "identity.v1.SessionService", ServingStatus::Serving).await;
    // Calls succeed again once it is back, although the connections from before the outage died.
    app.login_ok(crate::support::app::ADMIN_USER, crate::support::app::ADMIN_PASSWORD)
        .await;
    app.finish().await;
}

async fn health_notices_a_database_file_taken_away(env: TestEnv) {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(&env).await;
    let path = std::path::PathBuf::from(app.db.url.trim_start_matches("sqlite://"));
    let aside = path.with_extension("aside");
    let mut health = HealthClient::new(app.channel.clone());
    let service = "identity.v1.SessionService";
    watch_health_until(&mut health, service, ServingStatus::Serving).await;
    // Open connections would go on writing into a deleted or replaced file, losing every write:
    // the server must say it is not serving.
    let set_mode = |mode| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    set_mode(0o444);
    watch_health_until(&mut health, service, ServingStatus::NotServing).await;
    set_mode(0o644);
    watch_health_until(&mut health, service, ServingStatus::Serving).await;
    std::fs::rename(&path, &aside).unwrap();
    watch_health_until(&mut health, service, ServingStatus::NotServing).await;
    std::fs::rename(&aside, &path).unwrap();
    watch_health_until(&mut health, service, ServingStatus::Serving).await;
    app.finish().await;
}

async fn reflection_lists_every_service(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let mut reflection = ServerReflectionClient::new(app.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().expect("a response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for wanted in SERVICE_NAMES
        .iter()
        .chain(&["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"])
    {
        assert!(names.iter().any(|n| n == wanted), "{wanted} missing from {names:?}");
    }
    app.finish().await;
}
