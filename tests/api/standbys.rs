//! Reads from a hot standby: a real streaming replica made with pg_basebackup, paused and stopped.

use std::time::{Duration, Instant};

use identityd::core::Identity;
use identityd::grpc::pb;
use identityd::grpc::pb::admin_service_client::AdminServiceClient;
use identityd::grpc::pb::login_service_client::LoginServiceClient;
use sqlx::Connection;
use tonic::transport::Channel;

use crate::support::app::{ADMIN_PASSWORD, ADMIN_USER, TestApp, TestEnv, bearer};
use crate::support::calls::cheap_hashing;
use crate::support::db::StoreKind;
use crate::support::postgres::ReplicatedPostgres;
use crate::support::server_process::ServerProcess;

pub fn postgres_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        reads_use_a_standby_until_it_lags_or_goes_away_and_never_miss_a_revocation,
        three_processes_behind_a_pooler_over_a_primary_and_a_standby_agree_on_every_session,
    ]
}

/// Waits until `identity` may read from `wanted` standbys.
async fn until_standbys(identity: &Identity, wanted: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while identity.store().usable_standbys() != wanted {
        assert!(
            Instant::now() < deadline,
            "never {wanted} usable standbys (now {})",
            identity.store().usable_standbys()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn user_names(channel: &Channel, token: &str, tenant_id: &str) -> Vec<String> {
    let request = pb::ListUsersRequest {
        tenant_id: tenant_id.into(),
        page_size: 100,
        page_token: String::new(),
    };
    AdminServiceClient::new(channel.clone())
        .list_users(bearer(request, token))
        .await
        .expect("list users")
        .into_inner()
        .users
        .into_iter()
        .map(|u| u.user_name)
        .collect()
}

async fn is_valid(channel: &Channel, token: &str) -> bool {
    identityd::grpc::pb::session_service_client::SessionServiceClient::new(channel.clone())
        .validate_session(pb::ValidateSessionRequest {
            session_token: token.into(),
        })
        .await
        .expect("ValidateSession answers")
        .into_inner()
        .valid
}

/// One instance writes (no standbys); two read through the standby, one tolerating 5 s of lag
/// and one 300 ms. With replay paused on the standby, the tolerant one's listing misses a user
/// made since (the documented staleness), while its validations still see a session made since
/// (unknown on the standby: read from the primary) and refuse one ended since (the pushed end
/// outweighs the standby's word); the strict one stops reading the standby. Once the standby is
/// stopped, the tolerant one reads the primary too.
async fn reads_use_a_standby_until_it_lags_or_goes_away_and_never_miss_a_revocation(env: TestEnv) {
    if env.store != StoreKind::Postgres {
        return;
    }
    let mut pair = tokio::task::spawn_blocking(ReplicatedPostgres::start)
        .await
        .expect("start a primary and its standby");
    let env = TestEnv {
        store: StoreKind::Postgres,
        postgres_base_url: pair.primary_base_url(),
    };
    let no_cache = |c: &mut identityd::config::Config| {
        cheap_hashing(c);
        c.validation_cache_ttl = Duration::ZERO;
    };
    let app = TestApp::spawn_with(&env, no_cache).await;
    let standby_url = pair.standby_url_of(&app.db.url);
    let reader = |max_lag: Duration| {
        let standby_url = standby_url.clone();
        move |c: &mut identityd::config::Config| {
            no_cache(c);
            c.database_read_urls = vec![standby_url.into()];
            c.read_max_lag = max_lag;
        }
    };
    let (_, tolerant) = app.second_instance_with(reader(Duration::from_secs(5))).await;
    let (_, strict) = app.second_instance_with(reader(Duration::from_millis(300))).await;
    until_standbys(&tolerant.identity, 1).await;
    until_standbys(&strict.identity, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tolerant.identity.revocations_are_pushed() {
        assert!(Instant::now() < deadline, "never listened for revocations");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (token, tenant) = (app.admin_token.clone(), app.admin_tenant_id.clone());
    let ending = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await.session_token;
    // Validated while the standby still follows: it knows the session.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_valid(&tolerant.channel, &ending).await {
        assert!(Instant::now() < deadline, "the session never validated");
    }

    let mut standby = sqlx::PgConnection::connect(&standby_url)
        .await
        .expect("connect to the standby");
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut standby)
        .await
        .expect("pause replay");
    // A pause is a request: wait until replay has stopped.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state: String = sqlx::query_scalar("SELECT pg_get_wal_replay_pause_state()")
            .fetch_one(&mut standby)
            .await
            .expect("read the pause state");
        if state == "paused" {
            break;
        }
        assert!(Instant::now() < deadline, "replay never paused ({state})");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    standby.close().await.ok();
    app.create_user(&tenant, "late@example.com", "a long enough password", &[])
        .await;
    let fresh = app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await.session_token;
    app.login
        .clone()
        .logout(bearer(pb::LogoutRequest::default(), &ending))
        .await
        .expect("logout");

    assert!(
        !user_names(&tolerant.channel, &token, &tenant)
            .await
            .contains(&"late@example.com".to_owned()),
        "listed from the paused standby, which lacks the new user"
    );
    assert!(
        is_valid(&tolerant.channel, &fresh).await,
        "a session the standby lacks is read from the primary"
    );
    let deadline = Instant::now() + Duration::from_secs(1);
    while is_valid(&tolerant.channel, &ending).await {
        assert!(Instant::now() < deadline, "the pushed logout never took effect");
    }
    for _ in 0..20 {
        assert!(
            !is_valid(&tolerant.channel, &ending).await,
            "the paused standby still has it open, but the pushed end wins"
        );
    }

    until_standbys(&strict.identity, 0).await;
    assert!(
        user_names(&strict.channel, &token, &tenant)
            .await
            .contains(&"late@example.com".to_owned()),
        "a standby further behind than the bound is not read"
    );

    tokio::task::block_in_place(|| pair.stop_standby());
    assert!(
        user_names(&tolerant.channel, &token, &tenant)
            .await
            .contains(&"late@example.com".to_owned()),
        "a standby that went away is not read"
    );
    until_standbys(&tolerant.identity, 0).await;
    assert!(is_valid(&tolerant.channel, &fresh).await);

    tolerant.stop().await;
    strict.stop().await;
    app.finish().await;
    tokio::task::spawn_blocking(move || drop(pair)).await.ok();
}

/// The production topology on one machine: three identityd processes, each reaching the primary
/// through pgbouncer in transaction mode (listening straight to it) and reading from the
/// standby, a client spreading calls over them. A session opened on any is valid on all, ended on
/// another is refused on all, and a user disabled on a third is refused on all.
async fn three_processes_behind_a_pooler_over_a_primary_and_a_standby_agree_on_every_session(env: TestEnv) {
    if env.store != StoreKind::Postgres {
        return;
    }
    let pair = tokio::task::spawn_blocking(ReplicatedPostgres::start)
        .await
        .expect("start a primary and its standby");
    let env = TestEnv {
        store: StoreKind::Postgres,
        postgres_base_url: pair.primary_base_url(),
    };
    let pgbouncer = crate::pooler::pgbouncer(&env).await;
    // The first instance, in this process, only sets the database up and administers it.
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    let standby_url = pair.standby_url_of(&app.db.url);
    let through_pgbouncer = pgbouncer.url_of(&app.db.url);
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let settings = [
            ("DATABASE_LISTEN_URL", app.db.url.as_str()),
            ("DATABASE_READ_URL", standby_url.as_str()),
            ("IDENTITYD_DATABASE_POOLER", "transaction"),
        ];
        let mut replica = ServerProcess::start(&through_pgbouncer, "info", &settings).await;
        replica.wait_for("listening for pushed revocations");
        replicas.push(replica);
    }
    let logins: Vec<_> = replicas
        .iter()
        .map(|r| LoginServiceClient::new(r.channel.clone()))
        .collect();
    let user = app
        .create_user(
            &app.admin_tenant_id,
            "spread@example.com",
            "a long enough password",
            &[],
        )
        .await;
    let login = pb::LoginRequest {
        user_name: "spread@example.com".into(),
        password: "a long enough password".into(),
        ..Default::default()
    };
    for round in 0..9 {
        let (opened_on, ended_on) = (round % 3, (round + 1) % 3);
        let token = logins[opened_on]
            .clone()
            .login(login.clone())
            .await
            .expect("login")
            .into_inner()
            .session_token;
        for replica in &replicas {
            assert!(
                is_valid(&replica.channel, &token).await,
                "opened on {opened_on}, valid everywhere"
            );
        }
        logins[ended_on]
            .clone()
            .logout(bearer(pb::LogoutRequest::default(), &token))
            .await
            .expect("logout");
        for (i, replica) in replicas.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while is_valid(&replica.channel, &token).await {
                assert!(Instant::now() < deadline, "ended on {ended_on}, still valid on {i}");
            }
        }
    }
    let token = logins[0]
        .clone()
        .login(login)
        .await
        .expect("login")
        .into_inner()
        .session_token;
    for replica in &replicas {
        assert!(is_valid(&replica.channel, &token).await);
    }
    AdminServiceClient::new(replicas[2].channel.clone())
        .disable_user(bearer(
            pb::DisableUserRequest {
                user_id: user.user_id.clone(),
            },
            &app.admin_token,
        ))
        .await
        .expect("disable the user");
    for (i, replica) in replicas.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(2);
        while is_valid(&replica.channel, &token).await {
            assert!(Instant::now() < deadline, "disabled on 2, still valid on {i}");
        }
    }
    for replica in replicas {
        let log = replica.stop();
        assert!(
            !log.iter().any(|l| l.contains("ERROR")),
            "a replica logged an error:\n{}",
            log.join("\n")
        );
    }
    app.finish().await;
    tokio::task::spawn_blocking(move || {
        drop(pgbouncer);
        drop(pair);
    })
    .await
    .ok();
}
