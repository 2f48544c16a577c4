//! `identityd-load seed` writes its rows with its own batched SQL, beside the service's store.
//! These tests keep that SQL honest: on each store they seed a small fresh database (the seeding
//! applies the service's own migrations first), start the real service over it, and show that a
//! seeded user logs in with the seed password and that the kept session tokens validate. If the
//! seed SQL and the migrations drift apart, the seeding fails or these checks do.

// The integration suite's Postgres server: `DATABASE_URL`, or a throwaway cluster.
#[path = "../../tests/api/support/postgres.rs"]
mod postgres;

use std::path::PathBuf;

use identityd::config::Config;
use identityd::grpc::pb;
use identityd::grpc::pb::login_service_client::LoginServiceClient;
use identityd::grpc::pb::session_service_client::SessionServiceClient;
use identityd::startup::Application;
use identityd_load::cli::SeedArgs;
use identityd_load::seed::{SEED_PASSWORD, seed};
use sqlx::Connection;
use tonic::Code;
use tonic::transport::Channel;

use postgres::{TestPostgres, database_url};

#[tokio::test]
async fn a_seeded_sqlite_database_serves_seeded_logins_and_sessions() {
    let dir = TempDir(std::env::temp_dir().join(format!("identityd-seed-test-{}", uuid::Uuid::now_v7().simple())));
    check_seeded_database(&format!("sqlite://{}", dir.0.join("identityd.db").display())).await;
}

#[tokio::test]
async fn a_seeded_postgres_database_serves_seeded_logins_and_sessions() {
    let mut server = TestPostgres::start();
    eprintln!("postgres: {}", server.describe());
    let name = format!("identityd_seed_test_{}", uuid::Uuid::now_v7().simple());
    let mut maintenance = sqlx::PgConnection::connect(server.base_url())
        .await
        .expect("connect to Postgres");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut maintenance)
        .await
        .expect("create the database");
    check_seeded_database(&database_url(server.base_url(), &name)).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .execute(&mut maintenance)
        .await
        .expect("drop the database");
    maintenance.close().await.ok();
    server.stop();
}

/// Seeds an empty database, serves it, and checks what the seeding promises.
async fn check_seeded_database(url: &str) {
    let args = SeedArgs {
        database_url: url.to_owned(),
        users: 3,
        sessions: 8,
        tokens_out: None,
        users_out: None,
        keep_tokens: 5,
        keep_random: false,
        age: std::time::Duration::ZERO,
    };
    let seeded = seed(&args).await.expect("seed the database");
    assert_eq!((seeded.user_names.len(), seeded.tokens.len()), (3, 5));
    assert_eq!(seeded.kept, [0, 1, 2, 3, 4], "the first sessions' tokens");
    // A second tenant, whose kept tokens are a random sample of its sessions.
    let sampled = seed(&SeedArgs {
        sessions: 200,
        keep_tokens: 20,
        keep_random: true,
        ..args.clone()
    })
    .await
    .expect("seed a second tenant");
    let mut kept = sampled.kept.clone();
    kept.sort_unstable();
    kept.dedup();
    assert_eq!(kept.len(), 20, "20 different sessions: {:?}", sampled.kept);
    assert!(kept.iter().all(|&i| i < 200), "{kept:?}");
    assert_ne!(kept, (0..20).collect::<Vec<_>>(), "drawn from all 200, not the first");

    let app = Application::build(Config::for_database(url))
        .await
        .expect("start the service over the seeded database");
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let (mut login, mut sessions) = (
        LoginServiceClient::new(channel.clone()),
        SessionServiceClient::new(channel),
    );

    let user = &seeded.user_names[1];
    let logged_in = login
        .login(pb::LoginRequest {
            user_name: user.clone(),
            password: SEED_PASSWORD.to_owned(),
            token: String::new(),
            device_name: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("a seeded user logs in with the seed password: {e:?}"))
        .into_inner();
    assert_eq!(logged_in.user.expect("the user").user_name, *user);
    assert!(!logged_in.is_force_change_password, "a seeded password is current");
    let wrong = login
        .login(pb::LoginRequest {
            user_name: user.clone(),
            password: format!("{SEED_PASSWORD}-not"),
            token: String::new(),
            device_name: String::new(),
        })
        .await
        .expect_err("another password is refused");
    assert_eq!(wrong.code(), Code::Unauthenticated);

    let mut tenants = Vec::new();
    for seeded in [&seeded, &sampled] {
        for (token, &i) in seeded.tokens.iter().zip(&seeded.kept) {
            let answer = sessions
                .validate_session(pb::ValidateSessionRequest {
                    session_token: token.clone(),
                })
                .await
                .expect("ValidateSession answers")
                .into_inner();
            assert!(answer.valid, "kept session {i} is valid");
            assert_eq!(answer.user_name, seeded.user_names[i % 3], "and belongs to its user");
            tenants.push(answer.tenant_id);
        }
    }
    assert!(
        tenants[..5].iter().all(|t| *t == logged_in.organization_id),
        "the first seeding's sessions are in its tenant"
    );
    assert!(
        tenants[5..]
            .iter()
            .all(|t| *t != logged_in.organization_id && *t == tenants[5]),
        "the second's in another, its own"
    );
    let unknown = sessions
        .validate_session(pb::ValidateSessionRequest {
            session_token: format!("{}x", seeded.tokens[0]),
        })
        .await
        .expect("ValidateSession answers")
        .into_inner();
    assert!(!unknown.valid, "a token that was never issued is not valid");

    let _ = stop.send(());
    server.await.expect("server task").expect("the service stops cleanly");
}

/// A directory removed when the test ends, passed or failed.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
