//! The server's limits: calls in flight, and the caller's own deadline (`grpc-timeout`).

use std::time::Duration;

use identityd::grpc::error::reason;
use identityd::grpc::pb;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_types::StatusExt;

use crate::support::app::{TestApp, TestEnv, assert_error};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        a_call_beyond_the_in_flight_limit_is_refused_at_once,
        the_callers_deadline_ends_a_call_the_server_would_wait_on,
    ]
}

async fn a_call_beyond_the_in_flight_limit_is_refused_at_once(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |config| config.max_in_flight = 1).await;
    // A reflection stream is a call the test holds open: once its first answer has arrived, the
    // server has counted it, and it stays in flight until the test ends its requests.
    let (requests, held) = tokio::sync::mpsc::channel(1);
    let mut reflection = ServerReflectionClient::new(app.channel.clone());
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    requests.send(ask).await.unwrap();
    let mut answers = reflection
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(held))
        .await
        .expect("the held call starts")
        .into_inner();
    answers.message().await.unwrap().expect("a first answer");

    let refused = app
        .sessions
        .clone()
        .validate_session(pb::ValidateSessionRequest::default())
        .await
        .unwrap_err();
    assert_error(&refused, Code::ResourceExhausted, reason::TOO_MANY_CALLS);
    let info = refused.get_details_error_info().unwrap();
    assert_eq!(info.metadata.get("max_in_flight").map(String::as_str), Some("1"));
    assert!(
        refused.get_details_retry_info().is_some(),
        "the caller is told when to retry"
    );
    // Probes are never refused.
    let health = HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("a health check at the limit");
    assert_eq!(health.into_inner().status, ServingStatus::Serving as i32);

    // The held call ends (its status reaches the client only after its place was given back),
    // and calls are taken again.
    drop(requests);
    while answers.message().await.expect("the held call ends cleanly").is_some() {}
    assert!(!app.validate("idsess_none").await.valid, "answered again, not refused");
    app.finish().await;
}

async fn the_callers_deadline_ends_a_call_the_server_would_wait_on(env: TestEnv) {
    // The server's own limit is far away: only the caller's deadline can end the call in time.
    let app = TestApp::spawn_with(&env, |config| config.request_timeout = Duration::from_secs(3600)).await;
    // Plain HTTP/2, as tonic's client would enforce the deadline itself: a unary call whose
    // request message never comes, so that its handler waits for it until the server ends it.
    let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::post(format!(
        "http://{}/identity.v1.SessionService/ValidateSession",
        app.addr
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("grpc-timeout", "200m")
    .body(NeverEnding)
    .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(60), sender.send_request(request))
        .await
        .expect("the call ends at the caller's deadline, not the server's")
        .unwrap();
    // tonic's server answers a passed deadline with CANCELLED, "Timeout expired" (the caller's
    // own client has given up by then and reports DEADLINE_EXCEEDED itself).
    let headers = response.headers();
    assert_eq!(
        headers.get("grpc-status").unwrap(),
        &(Code::Cancelled as i32).to_string(),
        "{response:?}"
    );
    assert_eq!(
        headers.get("grpc-message").unwrap(),
        "Timeout%20expired",
        "{response:?}"
    );
    app.finish().await;
}

/// A request body that never sends anything and never ends.
struct NeverEnding;

impl http_body::Body for NeverEnding {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Pending
    }
}
