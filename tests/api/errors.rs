//! How requests that never reach a use case are answered: undecodable and oversized messages, bad
//! bearer metadata, and a database that cannot serve right now.

use std::time::Duration;

use bytes::{Buf, BufMut};
use http::uri::PathAndQuery;
use identityd::auth::AccessTokenSecret;
use identityd::grpc::pb;
use tonic::client::Grpc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::support::app::{ADMIN_PASSWORD, ADMIN_USER, TestApp, TestEnv, assert_error, bearer};

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        undecodable_messages_are_invalid_argument,
        oversized_messages_are_resource_exhausted,
        a_bad_bearer_is_an_invalid_session,
        authorization_must_be_one_bearer_token,
    ]
}

/// Tests of SQLite's single writer.
pub fn sqlite_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![a_busy_sqlite_database_answers_unavailable]
}

/// Tests of a database server's connection pool.
pub fn postgres_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![an_exhausted_connection_pool_answers_unavailable]
}

/// Sends and receives message bytes as they are, so that a test can send what no generated client
/// would.
#[derive(Clone, Copy)]
struct RawBytes;

impl Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> Self::Encoder {
        RawBytes
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawBytes
    }
}

impl Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = src.chunk().to_vec();
        src.advance(bytes.len());
        Ok(Some(bytes))
    }
}

/// Calls `method` (`/package.Service/Method`) with `message` as its request message's bytes.
async fn call_raw(channel: &Channel, method: &'static str, message: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = Grpc::new(channel.clone());
    grpc.ready().await.expect("channel ready");
    grpc.unary(Request::new(message), PathAndQuery::from_static(method), RawBytes)
        .await
        .map(|r| r.into_inner())
}

async fn undecodable_messages_are_invalid_argument(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    for (what, bytes) in [
        ("a field tag of zero", vec![0x00, 0x01]),
        ("a length past the end", vec![0x0a, 0x05, b'a']),
        ("a user name that is not UTF-8", vec![0x0a, 0x02, 0xff, 0xfe]),
        ("a wire type that does not exist", vec![0x0f]),
    ] {
        for method in [
            "/identity.v1.LoginService/Login",
            "/identity.v1.SessionService/ValidateSession",
            "/grpc.health.v1.Health/Check",
        ] {
            let status = call_raw(&app.channel, method, bytes.clone()).await.unwrap_err();
            assert_error(&status, Code::InvalidArgument, "MALFORMED_MESSAGE");
            assert!(status.message().contains("protobuf"), "{what} to {method}: {status:?}");
        }
    }
    // The same channel still serves well-formed calls.
    let valid = pb::LoginRequest {
        user_name: ADMIN_USER.into(),
        password: ADMIN_PASSWORD.into(),
        token: String::new(),
        device_name: String::new(),
    };
    let encoded = prost::Message::encode_to_vec(&valid);
    call_raw(&app.channel, "/identity.v1.LoginService/Login", encoded)
        .await
        .expect("a valid message in raw bytes is answered");
    app.finish().await;
}

async fn oversized_messages_are_resource_exhausted(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| c.max_request_bytes = 4096).await;
    let status = app.login(ADMIN_USER, &"x".repeat(5000)).await.unwrap_err();
    assert_error(&status, Code::ResourceExhausted, "MESSAGE_TOO_LARGE");
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.metadata["max_bytes"], "4096");
    assert!(
        status.message().contains("4096"),
        "says the limit: {}",
        status.message()
    );
    assert!(
        status.get_details_retry_info().is_none(),
        "retrying the same message cannot help"
    );
    let raw = call_raw(
        &app.channel,
        "/identity.v1.SessionService/ValidateSession",
        vec![0; 5000],
    )
    .await
    .unwrap_err();
    assert_error(&raw, Code::ResourceExhausted, "MESSAGE_TOO_LARGE");
    assert!(
        !app.validate(&"x".repeat(4000)).await.valid,
        "a message under the limit is answered by the call itself"
    );
    app.finish().await;
}

async fn who_am_i(app: &TestApp, request: Request<pb::GetCurrentUserRequest>) -> Result<pb::User, Status> {
    app.sessions
        .clone()
        .get_current_user(request)
        .await
        .map(|r| r.into_inner().user.unwrap())
}

async fn a_bad_bearer_is_an_invalid_session(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let create = |name: &str, session: &str| {
        let request = pb::CreateUserAccessTokenRequest {
            user_access_token_name: name.into(),
            ..Default::default()
        };
        let mut tokens = app.tokens();
        let request = bearer(request, session);
        async move {
            tokens
                .create_user_access_token(request)
                .await
                .unwrap()
                .into_inner()
                .token
        }
    };
    let secret = create("ci", &app.admin_token).await;
    let mut mistyped = secret.clone().into_bytes();
    mistyped[10] = if mistyped[10] == b'a' { b'b' } else { b'a' };
    let mistyped = String::from_utf8(mistyped).unwrap();
    let unknown = AccessTokenSecret::mint().expose().to_owned();
    let jim = app
        .create_user(&app.admin_tenant_id, "jim@example.com", "his own password", &[])
        .await;
    let jim_session = app.login_ok("jim@example.com", "his own password").await.session_token;
    let disabled = create("jim's", &jim_session).await;
    app.admin
        .clone()
        .disable_user(bearer(
            pb::DisableUserRequest { user_id: jim.user_id },
            &app.admin_token,
        ))
        .await
        .unwrap();
    for (what, token) in [
        ("a mistyped token", mistyped.as_str()),
        ("an unknown token", unknown.as_str()),
        ("a disabled user's token", disabled.as_str()),
        (
            "an unknown session token",
            "idsess_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
    ] {
        let status = who_am_i(&app, bearer(pb::GetCurrentUserRequest {}, token))
            .await
            .unwrap_err();
        assert_error(&status, Code::Unauthenticated, "SESSION_INVALID");
        assert!(!status.message().contains("password"), "{what}: {}", status.message());
    }
    who_am_i(&app, bearer(pb::GetCurrentUserRequest {}, &secret))
        .await
        .expect("the real token is a good bearer");
    app.finish().await;
}

async fn authorization_must_be_one_bearer_token(env: TestEnv) {
    let app = TestApp::spawn(&env).await;
    let with = |values: &[&str]| {
        let mut request = Request::new(pb::GetCurrentUserRequest {});
        for value in values {
            let value: MetadataValue<_> = value.parse().unwrap();
            request.metadata_mut().append("authorization", value);
        }
        request
    };
    let session = format!("Bearer {}", app.admin_token);
    let twice = who_am_i(&app, with(&[&session, &session])).await.unwrap_err();
    assert_error(&twice, Code::Unauthenticated, "AMBIGUOUS_CREDENTIALS");
    assert!(twice.message().contains("more than one"), "{}", twice.message());
    for value in [
        "Basic YWRtaW46c2VjcmV0",
        "Bearer",
        "Bearer   ",
        app.admin_token.as_str(),
    ] {
        let status = who_am_i(&app, with(&[value])).await.unwrap_err();
        assert_error(&status, Code::Unauthenticated, "MISSING_CREDENTIALS");
        assert!(
            status.message().contains("Bearer <token>"),
            "says what is expected: {}",
            status.message()
        );
    }
    let no_header = who_am_i(&app, with(&[])).await.unwrap_err();
    assert_error(&no_header, Code::Unauthenticated, "MISSING_CREDENTIALS");
    let lower_case = format!("bearer {}", app.admin_token);
    who_am_i(&app, with(&[&lower_case]))
        .await
        .expect("the scheme is matched in any case");
    app.finish().await;
}

/// UNAVAILABLE with `STORE_UNAVAILABLE`, and a `RetryInfo` saying when to try again.
fn assert_retryable(status: &Status) {
    assert_error(status, Code::Unavailable, "STORE_UNAVAILABLE");
    let retry = status
        .get_details_retry_info()
        .unwrap_or_else(|| panic!("no RetryInfo in {status:?}"));
    assert!(retry.retry_delay.is_some_and(|d| d > Duration::ZERO), "{retry:?}");
}

async fn a_busy_sqlite_database_answers_unavailable(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| c.sqlite_busy_timeout = Duration::from_millis(100)).await;
    // Another process writing holds the database's one write lock.
    let lock = app.db.hold_sqlite_write_lock().await;
    let status = app.login(ADMIN_USER, ADMIN_PASSWORD).await.unwrap_err();
    assert_retryable(&status);
    lock.release().await;
    app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    app.finish().await;
}

async fn an_exhausted_connection_pool_answers_unavailable(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| c.db_max_connections = 1).await;
    // One call holds the pool's only connection, waiting on a lock; the next gets none in time.
    let lock = app.db.lock_postgres_table("users").await;
    let mut login = app.login.clone();
    let waiting = tokio::spawn(async move {
        let request = pb::LoginRequest {
            user_name: ADMIN_USER.into(),
            password: ADMIN_PASSWORD.into(),
            token: String::new(),
            device_name: String::new(),
        };
        login.login(request).await
    });
    app.db.wait_for_lock_waiters(1).await;
    let validate = pb::ValidateSessionRequest {
        session_token: app.admin_token.clone(),
    };
    let status = app.sessions.clone().validate_session(validate).await.unwrap_err();
    assert_retryable(&status);
    lock.release().await;
    waiting
        .await
        .unwrap()
        .expect("the waiting call goes through once the lock is gone");
    app.finish().await;
}
