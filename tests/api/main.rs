//! The integration suite: every test starts the real server on port 0 over a fresh database and
//! talks to it through the generated clients.
//!
//! A custom main (libtest-mimic) owns the Postgres server for the whole run: the one `DATABASE_URL`
//! names, or a throwaway cluster started here and removed when the run ends.

/// Lists a module's tests by name; each is an `async fn(TestEnv)`.
macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), (|env| Box::pin($name(env))) as $crate::TestFn)),*]
    };
}

mod support;

mod admin;
mod health;
mod login;
mod sessions;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use libtest_mimic::{Arguments, Trial};
use support::app::TestEnv;
use support::postgres::TestPostgres;

type TestFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type TestFn = fn(TestEnv) -> TestFuture;

fn all_tests() -> Vec<(String, TestFn)> {
    let modules: [(&str, Vec<(&str, TestFn)>); 4] = [
        ("health", health::tests()),
        ("login", login::tests()),
        ("sessions", sessions::tests()),
        ("admin", admin::tests()),
    ];
    modules
        .into_iter()
        .flat_map(|(module, tests)| tests.into_iter().map(move |(name, f)| (format!("{module}::{name}"), f)))
        .collect()
}

fn main() {
    let args = Arguments::from_args();
    if std::env::var_os("TEST_LOG").is_some() {
        identityd::telemetry::init(identityd::telemetry::LogFormat::Text);
    }
    let mut postgres = TestPostgres::start();
    eprintln!("integration tests against Postgres: {}", postgres.describe());
    let env = TestEnv {
        postgres_base_url: postgres.base_url().to_owned(),
    };
    let env = Arc::new(env);
    let trials = all_tests()
        .into_iter()
        .map(|(name, test)| {
            let env = env.clone();
            Trial::test(format!("postgres::{name}"), move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(test(TestEnv::clone(&env)));
                Ok(())
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    postgres.stop();
    conclusion.exit();
}
