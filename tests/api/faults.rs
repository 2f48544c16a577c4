//! Faults of the database under a running server: Postgres restarted under load, and a statement
//! blocked past the statement timeout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Acquire, Connection};
use tokio::sync::Mutex;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::app::{ADMIN_PASSWORD, ADMIN_USER, TestApp, TestEnv};
use crate::support::calls::cheap_hashing;
use crate::support::db::StoreKind;
use crate::support::postgres::RestartablePostgres;

pub fn postgres_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        a_postgres_restart_under_load_loses_no_session,
        a_statement_blocked_past_the_timeout_answers_unavailable,
    ]
}

/// The deadline every call of the load sets; an answer must come within it, whatever the database does.
const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// What the load saw: the sessions whose login answered OK, and every failure's code.
#[derive(Default)]
struct Outcomes {
    opened: Vec<String>,
    failures: BTreeMap<String, usize>,
    answered: usize,
}

async fn a_postgres_restart_under_load_loses_no_session(_env: TestEnv) {
    let mut postgres = tokio::task::spawn_blocking(RestartablePostgres::start).await.unwrap();
    let env = TestEnv {
        store: StoreKind::Postgres,
        postgres_base_url: postgres.base_url(),
    };
    let app = TestApp::spawn_with(&env, cheap_hashing).await;
    app.health_until(ServingStatus::Serving).await;

    // Four callers logging in and validating what they opened, each call with a deadline, until
    // told to stop (and at most a bounded number of rounds).
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    // How many sessions have been opened so far, for the test to wait on.
    let (opened, mut opened_so_far) = tokio::sync::watch::channel(0usize);
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (login, sessions) = (app.login.clone(), app.sessions.clone());
            let (stop, outcomes, opened) = (stop.clone(), outcomes.clone(), opened.clone());
            tokio::spawn(async move {
                for _ in 0..20_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut request = tonic::Request::new(identityd::grpc::pb::LoginRequest {
                        user_name: ADMIN_USER.into(),
                        password: ADMIN_PASSWORD.into(),
                        ..Default::default()
                    });
                    request.set_timeout(CALL_DEADLINE);
                    let answer = tokio::time::timeout(CALL_DEADLINE * 2, login.clone().login(request))
                        .await
                        .expect("a login answered within its deadline");
                    let token = match answer {
                        Ok(answer) => Some(answer.into_inner().session_token),
                        Err(status) => {
                            let mut outcomes = outcomes.lock().await;
                            *outcomes.failures.entry(format!("{:?}", status.code())).or_default() += 1;
                            outcomes.answered += 1;
                            None
                        }
                    };
                    let Some(token) = token else { continue };
                    let mut request = tonic::Request::new(identityd::grpc::pb::ValidateSessionRequest {
                        session_token: token.clone(),
                    });
                    request.set_timeout(CALL_DEADLINE);
                    let validated = tokio::time::timeout(CALL_DEADLINE * 2, sessions.clone().validate_session(request))
                        .await
                        .expect("a validation answered within its deadline");
                    let mut outcomes = outcomes.lock().await;
                    outcomes.opened.push(token);
                    opened.send_replace(outcomes.opened.len());
                    outcomes.answered += 2;
                    if let Err(status) = validated {
                        *outcomes.failures.entry(format!("{:?}", status.code())).or_default() += 1;
                    }
                }
            })
        })
        .collect();
    // Some load before the restart, counted by the answers themselves.
    opened_so_far.wait_for(|n| *n >= 20).await.unwrap();
    let stopped_at = Instant::now();
    postgres = tokio::task::spawn_blocking(move || {
        postgres.stop();
        postgres
    })
    .await
    .unwrap();
    app.health_until(ServingStatus::NotServing).await;
    let noticed = stopped_at.elapsed();
    postgres = tokio::task::spawn_blocking(move || {
        postgres.start_again();
        postgres
    })
    .await
    .unwrap();
    let back_at = Instant::now();
    app.health_until(ServingStatus::Serving).await;
    let recovery = back_at.elapsed();
    // Load goes on after the recovery until more sessions have been opened.
    let before = *opened_so_far.borrow();
    opened_so_far.wait_for(|n| *n >= before + 20).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.expect("no caller panicked");
    }

    // Every session whose login answered OK is still there and valid.
    let outcomes = Arc::try_unwrap(outcomes).ok().unwrap().into_inner();
    let mut lost = 0;
    for token in &outcomes.opened {
        if !app.validate(token).await.valid {
            lost += 1;
        }
    }
    println!(
        "postgres restart under load: outage noticed in {:.2} s, SERVING {:.2} s after Postgres was back, \
         {} calls answered, {} sessions opened, {lost} lost, failures by code {:?}",
        noticed.as_secs_f64(),
        recovery.as_secs_f64(),
        outcomes.answered,
        outcomes.opened.len(),
        outcomes.failures,
    );
    assert_eq!(lost, 0, "every session whose login answered OK survives the restart");
    for code in outcomes.failures.keys() {
        assert_eq!(
            code,
            &format!("{:?}", Code::Unavailable),
            "the outage answers UNAVAILABLE, nothing else"
        );
    }
    app.finish().await;
    drop(postgres);
}

async fn a_statement_blocked_past_the_timeout_answers_unavailable(env: TestEnv) {
    let app = TestApp::spawn_with(&env, |config| {
        config.db_statement_timeout = Duration::from_millis(300);
        // Every validation reads the store, and only the statement timeout can end it early.
        config.validation_cache_ttl = Duration::ZERO;
        config.request_timeout = Duration::from_secs(3600);
    })
    .await;
    let token = app.admin_token.clone();
    assert!(app.validate(&token).await.valid);
    // Another client holds a lock no read of the sessions can pass.
    let mut locker = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    let mut lock = Connection::begin(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
        .execute(lock.acquire().await.unwrap())
        .await
        .unwrap();
    let blocked = tokio::time::timeout(
        Duration::from_secs(60),
        app.sessions
            .clone()
            .validate_session(identityd::grpc::pb::ValidateSessionRequest {
                session_token: token.clone(),
            }),
    )
    .await
    .expect("the statement is cancelled at its timeout, not left waiting")
    .unwrap_err();
    assert_eq!(blocked.code(), Code::Unavailable, "{blocked:?}");
    lock.rollback().await.unwrap();
    assert!(
        app.validate(&token).await.valid,
        "the connection went back to the pool and works"
    );
    app.finish().await;
}
