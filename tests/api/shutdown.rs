//! Stopping: calls in flight finish, streams still open at the drain deadline are cut, pending
//! last-use times are written, and a SQLite file holds every commit once the process has ended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use identityd::clock::SystemClock;
use identityd::config::Config;
use identityd::startup::{build_identity, open_store};

use identityd::grpc::pb;
use tonic::Streaming;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use tonic_types::StatusExt;

use crate::support::app::{ADMIN_PASSWORD, ADMIN_USER, TEST_KEY_ENCRYPTION_KEY, TestApp, TestEnv, assert_error};
use crate::support::server_process::ServerProcess;

pub fn tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![open_streams_are_cut_at_the_drain_deadline]
}

/// Tests of the binary over a SQLite file.
pub fn sqlite_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![a_stopped_service_leaves_every_commit_in_the_database_file]
}

/// Tests that hold a call in flight with a lock that Postgres shows waiting.
pub fn postgres_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        a_call_in_flight_finishes_during_the_drain,
        a_call_still_running_at_the_deadline_is_cut
    ]
}

/// Opens a health watch of the whole server and waits for its first answer, so that the stream is
/// known to be open on the server.
async fn open_health_watch(app: &TestApp) -> Streaming<HealthCheckResponse> {
    let mut updates = HealthClient::new(app.channel.clone())
        .watch(HealthCheckRequest { service: String::new() })
        .await
        .expect("watch")
        .into_inner();
    tokio::time::timeout(Duration::from_secs(10), updates.message())
        .await
        .expect("a first health status")
        .expect("health stream")
        .expect("a first health status");
    updates
}

/// Reads a health watch until it says NOT_SERVING, which the server does when it starts draining.
async fn until_not_serving(updates: &mut Streaming<HealthCheckResponse>) {
    let wait = async {
        while let Some(update) = updates.message().await.expect("health stream") {
            if update.status == ServingStatus::NotServing as i32 {
                return;
            }
        }
        panic!("the health stream ended before NOT_SERVING");
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("NOT_SERVING when the drain starts");
}

async fn open_streams_are_cut_at_the_drain_deadline(env: TestEnv) {
    const GRACE: Duration = Duration::from_secs(1);
    let mut app = TestApp::spawn_with(&env, |c| {
        c.shutdown_grace = GRACE;
        c.last_use_flush_interval = Duration::from_secs(3600);
    })
    .await;
    let login = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await;
    let session_id: uuid::Uuid = login.session.unwrap().session_id.parse().unwrap();
    let before = app.db.session_last_use(session_id).await;
    app.clock.advance(chrono::Duration::minutes(5));
    assert!(
        app.validate(&login.session_token).await.valid,
        "a use noted, not yet written"
    );
    let mut updates = open_health_watch(&app).await;

    let started = Instant::now();
    tokio::time::timeout(GRACE + Duration::from_secs(10), app.stop())
        .await
        .expect("the server stops although a stream is open (and stop checks that it ran cleanly)");
    let took = started.elapsed();
    assert!(
        took >= GRACE,
        "the open stream was given the grace first: stopped after {took:?}"
    );

    // The watcher was told, then its stream was cut.
    until_not_serving(&mut updates).await;
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match updates.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without a status saying why"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream is ended, not left hanging");
    assert_error(&end, tonic::Code::Unavailable, "SHUTTING_DOWN");
    assert!(end.get_details_retry_info().is_some(), "told to call again: {end:?}");
    assert_eq!(
        app.db.session_last_use(session_id).await,
        before + chrono::Duration::minutes(5),
        "the last use noted before the shutdown is written"
    );
    app.finish().await;
}

async fn a_call_in_flight_finishes_during_the_drain(env: TestEnv) {
    const GRACE: Duration = Duration::from_secs(60);
    let mut app = TestApp::spawn_with(&env, |c| c.shutdown_grace = GRACE).await;
    let mut updates = open_health_watch(&app).await;
    // A login that waits on a lock in the database: in flight on the server, as Postgres shows.
    let lock = app.db.lock_postgres_table("users").await;
    let mut client = app.login.clone();
    let call = tokio::spawn(async move {
        let request = pb::LoginRequest {
            user_name: ADMIN_USER.into(),
            password: ADMIN_PASSWORD.into(),
            token: String::new(),
            device_name: String::new(),
        };
        client.login(request).await
    });
    app.db.wait_for_lock_waiters(1).await;

    let started = Instant::now();
    app.request_stop();
    until_not_serving(&mut updates).await;
    drop(updates); // the watch would otherwise hold the server for the whole grace
    lock.release().await;
    let answer = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the call in flight is answered")
        .unwrap();
    answer.expect("the call that was in flight when the drain began completes");
    tokio::time::timeout(Duration::from_secs(30), app.stop())
        .await
        .expect("the server stops once its last call is done");
    assert!(
        started.elapsed() < GRACE,
        "it did not wait for the deadline: {:?}",
        started.elapsed()
    );
    app.finish().await;
}

async fn a_call_still_running_at_the_deadline_is_cut(env: TestEnv) {
    const GRACE: Duration = Duration::from_secs(1);
    let mut app = TestApp::spawn_with(&env, |c| c.shutdown_grace = GRACE).await;
    // A login that waits on a lock in the database for longer than the grace.
    let lock = app.db.lock_postgres_table("users").await;
    let mut client = app.login.clone();
    let call = tokio::spawn(async move {
        let request = pb::LoginRequest {
            user_name: ADMIN_USER.into(),
            password: ADMIN_PASSWORD.into(),
            token: String::new(),
            device_name: String::new(),
        };
        client.login(request).await
    });
    app.db.wait_for_lock_waiters(1).await;
    let started = Instant::now();
    tokio::time::timeout(GRACE + Duration::from_secs(10), app.stop())
        .await
        .expect("the server stops although a call never finishes");
    assert!(started.elapsed() >= GRACE, "the call was given the grace first");
    let answer = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the client learns that its call is gone")
        .unwrap();
    assert!(answer.is_err(), "no answer can come from a stopped server: {answer:?}");
    lock.release().await;
    app.finish().await;
}

/// An operator who stops the service and copies its database file, as a backup or to move it,
/// gets every session opened before the stop: the process folds SQLite's write-ahead log into the
/// file as it ends, and leaves no log beside it.
async fn a_stopped_service_leaves_every_commit_in_the_database_file(env: TestEnv) {
    let mut app = TestApp::spawn(&env).await;
    app.stop().await;
    // The test's own connections closed too, so that the binary's are the file's last.
    app.identity.store().close().await;
    let file = std::path::PathBuf::from(app.db.url.strip_prefix("sqlite://").expect("a SQLite URL"));
    let log = std::path::PathBuf::from(format!("{}-wal", file.display()));

    let server = ServerProcess::start(&app.db.url, "info", &[]).await;
    app.talk_to(server.channel.clone());
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await.session_token);
    }
    assert!(log.exists(), "the running service writes through a write-ahead log");
    let written = server.stop();
    assert!(
        !log.exists(),
        "no write-ahead log is left beside the stopped service's file"
    );

    // The file alone, copied somewhere else, has the sessions.
    let copy_dir = file.parent().expect("a directory").join("copy");
    std::fs::create_dir_all(&copy_dir).expect("create the copy's directory");
    let copy = copy_dir.join("identityd.db");
    std::fs::copy(&file, &copy).expect("copy the database file");
    let mut config = Config::for_database(&format!("sqlite://{}", copy.display()));
    config.key_encryption_key = Some(TEST_KEY_ENCRYPTION_KEY.into());
    let store = open_store(&config).await.expect("open the copy");
    let identity = build_identity(&config, store.clone(), Arc::new(SystemClock)).expect("build over the copy");
    for token in &tokens {
        let validity = identity.validate_session(token).await.expect("validate on the copy");
        assert!(
            validity.is_some(),
            "a session opened before the stop is in the copied file"
        );
    }
    store.close().await;
    assert!(
        written.iter().any(|l| l.contains("database connections closed")),
        "the log says the database was closed:\n{}",
        written.join("\n")
    );
    app.finish().await;
}
