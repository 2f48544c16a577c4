//! identityd behind pgbouncer in transaction mode (`IDENTITYD_DATABASE_POOLER=transaction`): a
//! pooler that lends its one server connection to whichever client's transaction comes next.

use std::str::FromStr;

use identityd::config::DatabasePooler;
use identityd::store::postgres::BEGIN_BEHIND_POOLER;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::authorization::{Callers, assert_every_rpc_answers_as_the_rules_say};
use crate::support::app::{TestApp, TestEnv};
use crate::support::calls::cheap_hashing;
use crate::support::db::StoreKind;
use crate::support::pgbouncer::Pgbouncer;
use crate::support::postgres::database_url;

pub fn postgres_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        one_server_connection_shared_by_transactions_breaks_statements_kept_prepared,
        every_rpc_answers_as_the_rules_say_behind_a_transaction_pooler,
    ]
}

/// Starts pgbouncer in front of the test Postgres, lending one server connection per database.
pub(crate) async fn pgbouncer(env: &TestEnv) -> Pgbouncer {
    let base = env.postgres_base_url.clone();
    tokio::task::spawn_blocking(move || Pgbouncer::start(&base, 1))
        .await
        .expect("start pgbouncer")
}

/// Points `config` at its database through `pgbouncer`, in transaction-pooler mode, with the
/// listening connection and the migrations going straight to Postgres.
pub(crate) fn behind(pgbouncer: &Pgbouncer) -> impl FnOnce(&mut identityd::config::Config) + '_ {
    move |config| {
        let direct = config.effective_database_url();
        config.database_url = Some(pgbouncer.url_of(&direct).into());
        config.database_listen_url = Some(direct.into());
        config.database_pooler = DatabasePooler::Transaction;
    }
}

/// What the setting guards against, shown on the harness's pgbouncer. sqlx keeps a statement
/// prepared on its connection, under a name every connection uses alike (`sqlx_s_1`, …): through
/// the pooler, a second client's first statement lands on the server connection where the
/// first client's is still prepared, and clashes with it. Opened as identityd opens every
/// transaction behind a pooler, with nothing kept prepared, the same two clients both run.
async fn one_server_connection_shared_by_transactions_breaks_statements_kept_prepared(env: TestEnv) {
    if env.store != StoreKind::Postgres {
        return;
    }
    let pgbouncer = pgbouncer(&env).await;
    let url = pgbouncer.url_of(&database_url(&env.postgres_base_url, "postgres"));
    // pgbouncer refuses startup parameters it does not know; identityd sends none.
    let options = PgConnectOptions::from_str(&url).unwrap().extra_float_digits(None);

    let mut first = PgConnection::connect_with(&options).await.expect("connect");
    let mut second = PgConnection::connect_with(&options).await.expect("connect");
    let one: i32 = sqlx::query_scalar("SELECT $1::int4 + 1")
        .bind(0)
        .fetch_one(&mut first)
        .await
        .expect("the first client's statement");
    assert_eq!(one, 1);
    let clash = sqlx::query_scalar::<_, i32>("SELECT $1::int4 + 1")
        .bind(1)
        .fetch_one(&mut second)
        .await
        .expect_err("the second client's statement clashes with the first's, kept prepared");
    assert!(clash.to_string().contains("already exists"), "{clash}");
    first.close().await.ok();
    second.close().await.ok();

    let options = options.statement_cache_capacity(0);
    let mut clients = Vec::new();
    for _ in 0..2 {
        clients.push(PgConnection::connect_with(&options).await.expect("connect"));
    }
    for round in 0..3 {
        for client in &mut clients {
            let mut tx = client.begin_with(BEGIN_BEHIND_POOLER).await.expect("begin");
            let sum: i32 = sqlx::query_scalar("SELECT $1::int4 + $2::int4")
                .bind(round)
                .bind(1)
                .fetch_one(&mut *tx)
                .await
                .expect("a statement in a transaction of its own");
            assert_eq!(sum, round + 1);
            tx.commit().await.expect("commit");
        }
    }
    for client in clients {
        client.close().await.ok();
    }
}

/// The authorization matrix — every RPC, by password sessions of every rank, on every kind of
/// target, eight calls at a time — with every statement going through the pooler's one server
/// connection.
async fn every_rpc_answers_as_the_rules_say_behind_a_transaction_pooler(env: TestEnv) {
    if env.store != StoreKind::Postgres {
        return;
    }
    let pgbouncer = pgbouncer(&env).await;
    let app = TestApp::spawn_with(&env, |config| {
        cheap_hashing(config);
        behind(&pgbouncer)(config);
    })
    .await;
    assert_every_rpc_answers_as_the_rules_say(&app, Callers::PasswordSessions).await;
    app.finish().await;
    tokio::task::spawn_blocking(move || drop(pgbouncer)).await.ok();
}
