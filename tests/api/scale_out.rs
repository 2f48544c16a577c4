//! Several instances over one Postgres: revocations pushed from one to the others.

use std::time::{Duration, Instant};

use identityd::core::Identity;
use identityd::grpc::pb;
use identityd::grpc::pb::session_service_client::SessionServiceClient;
use sqlx::Connection;
use tonic::transport::Channel;

use crate::support::app::{ADMIN_PASSWORD, ADMIN_USER, TestApp, TestEnv, bearer};
use crate::support::calls::cheap_hashing;

pub fn postgres_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        an_instance_that_cannot_listen_learns_of_revocations_by_polling,
        a_lost_listening_connection_is_replaced,
    ]
}

/// Run alone, after the others.
pub fn exclusive_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![a_logout_on_one_instance_is_refused_on_another_within_10ms_p99]
}

/// Logouts measured: enough for a p99 that is not the maximum of a handful.
const ROUNDS: usize = 300;

/// Waits until `identity` has revocations pushed to it.
pub(crate) async fn until_pushed(identity: &Identity) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !identity.revocations_are_pushed() {
        assert!(Instant::now() < deadline, "the instance never listened for revocations");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn is_valid(client: &mut SessionServiceClient<Channel>, token: &str) -> bool {
    client
        .validate_session(pb::ValidateSessionRequest {
            session_token: token.into(),
        })
        .await
        .expect("ValidateSession answers")
        .into_inner()
        .valid
}

/// Logs in on `app`, caches the session on `other`, logs out on `app`, and returns how long after
/// the logout's answer `other` first refused the session.
async fn one_revocation(app: &TestApp, other: &mut SessionServiceClient<Channel>, deadline: Duration) -> Duration {
    let token = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await.session_token;
    assert!(
        is_valid(other, &token).await,
        "valid, and now cached, on the other instance"
    );
    app.login
        .clone()
        .logout(bearer(pb::LogoutRequest::default(), &token))
        .await
        .expect("logout");
    let start = Instant::now();
    while is_valid(other, &token).await {
        assert!(
            start.elapsed() < deadline,
            "the logout never reached the other instance"
        );
    }
    start.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The functional bound of pushed revocations: a logout answered on one instance is refused on
/// another within 10 ms at the 99th percentile. Measured from the logout's answer to the first
/// refusal, validating on the other instance back to back; the cache lifetime is an hour, so only
/// the pushed notice can make it forget.
async fn a_logout_on_one_instance_is_refused_on_another_within_10ms_p99(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| {
        cheap_hashing(c);
        c.validation_cache_ttl = Duration::from_secs(3600);
    })
    .await;
    let (mut other, instance) = app.second_instance().await;
    until_pushed(&app.identity).await;
    until_pushed(&instance.identity).await;
    let mut delays = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        delays.push(one_revocation(&app, &mut other, Duration::from_secs(5)).await);
    }
    delays.sort();
    let (p50, p90, p99, max) = (
        percentile(&delays, 50.0),
        percentile(&delays, 90.0),
        percentile(&delays, 99.0),
        delays[ROUNDS - 1],
    );
    eprintln!("revocation propagation over {ROUNDS} logouts: p50 {p50:?}, p90 {p90:?}, p99 {p99:?}, max {max:?}");
    assert!(
        instance.identity.revocations_are_pushed(),
        "still pushed: the poll did not do the work"
    );
    assert!(
        p99 <= Duration::from_millis(10),
        "p99 {p99:?} over the 10 ms bound (p50 {p50:?})"
    );
    instance.stop().await;
    app.finish().await;
}

/// With no listening connection (its URL leads nowhere), the poll still carries revocations.
async fn an_instance_that_cannot_listen_learns_of_revocations_by_polling(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| {
        cheap_hashing(c);
        c.validation_cache_ttl = Duration::from_secs(3600);
    })
    .await;
    let nowhere = format!("postgres://postgres@127.0.0.1:{}/postgres", closed_port());
    let (mut other, instance) = app
        .second_instance_with(|c| c.database_listen_url = Some(nowhere.into()))
        .await;
    for _ in 0..3 {
        one_revocation(&app, &mut other, Duration::from_secs(10)).await;
    }
    assert!(!instance.identity.revocations_are_pushed());
    instance.stop().await;
    app.finish().await;
}

/// When the server ends the listening connection, the instance listens again on a new one, and
/// revocations are pushed to it again.
async fn a_lost_listening_connection_is_replaced(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |c| {
        cheap_hashing(c);
        c.validation_cache_ttl = Duration::from_secs(3600);
    })
    .await;
    let (mut other, instance) = app.second_instance().await;
    until_pushed(&instance.identity).await;
    let mut db = sqlx::PgConnection::connect(&app.db.url).await.expect("connect");
    let before = listeners(&mut db).await;
    assert_eq!(before.len(), 2, "one listening connection per instance");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'")
        .execute(&mut db)
        .await
        .expect("end the listening connections");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = listeners(&mut db).await;
        if now.len() == 2 && now.iter().all(|pid| !before.contains(pid)) {
            break;
        }
        assert!(Instant::now() < deadline, "the instances did not listen again: {now:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    until_pushed(&instance.identity).await;
    one_revocation(&app, &mut other, Duration::from_secs(10)).await;
    db.close().await.ok();
    instance.stop().await;
    app.finish().await;
}

/// The backends listening on the test database.
async fn listeners(db: &mut sqlx::PgConnection) -> Vec<i32> {
    let sql =
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%' ORDER BY pid";
    sqlx::query_scalar::<_, i32>(sql)
        .fetch_all(db)
        .await
        .expect("list listeners")
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    listener.local_addr().expect("its address").port()
}
