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

mod access_tokens;
mod admin;
mod authorization;
mod concurrency;
mod disk_faults;
mod errors;
mod failed_logins;
mod faults;
mod health;
mod identity_providers;
mod impersonation;
mod limits;
mod login;
mod names;
mod observability;
mod passwords;
mod pooler;
mod races;
#[cfg(feature = "rest")]
mod rest;
mod roles;
mod saml;
mod scale_out;
mod service_account_sessions;
mod session_jwts;
mod sessions;
mod shutdown;
mod sso;
mod standbys;
mod startup;
mod tls;
mod user_sessions;

use std::future::Future;
use std::pin::Pin;

use libtest_mimic::{Arguments, Trial};
use support::app::TestEnv;
use support::db::StoreKind;
use support::postgres::TestPostgres;

type TestFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type TestFn = fn(TestEnv) -> TestFuture;
/// Tests with their full names (`module::test`).
type NamedTests = Vec<(String, TestFn)>;

/// Every test with its name, for one store: those that may run in parallel, and those that must
/// run alone.
fn all_tests(store: StoreKind) -> (NamedTests, NamedTests) {
    let mut exclusive_modules = vec![("login", login::exclusive_tests())];
    if store == StoreKind::Postgres {
        // A latency bound: measured alone, not against the rest of the suite for the cores.
        exclusive_modules.push(("scale_out", scale_out::exclusive_tests()));
    }
    let exclusive = named(exclusive_modules);
    let mut modules: Vec<(&str, Vec<(&str, TestFn)>)> = vec![
        ("health", health::tests()),
        ("login", login::tests()),
        ("sessions", sessions::tests()),
        ("session_jwts", session_jwts::tests()),
        ("identity_providers", identity_providers::tests()),
        ("admin", admin::tests()),
        ("access_tokens", access_tokens::tests()),
        ("authorization", authorization::tests()),
        ("races", races::tests()),
        ("roles", roles::tests()),
        ("concurrency", concurrency::tests()),
        ("errors", errors::tests()),
        ("names", names::tests()),
        ("passwords", passwords::tests()),
        ("shutdown", shutdown::tests()),
        ("failed_logins", failed_logins::tests()),
        ("service_account_sessions", service_account_sessions::tests()),
        ("user_sessions", user_sessions::tests()),
        ("impersonation", impersonation::tests()),
        ("sso", sso::tests()),
        ("saml", saml::tests()),
        ("observability", observability::tests()),
        ("limits", limits::tests()),
    ];
    #[cfg(feature = "rest")]
    modules.push(("rest", rest::tests()));
    match store {
        StoreKind::Postgres => {
            modules.push(("health", health::postgres_tests()));
            modules.push(("access_tokens", access_tokens::postgres_tests()));
            modules.push(("failed_logins", failed_logins::postgres_tests()));
            modules.push(("errors", errors::postgres_tests()));
            modules.push(("shutdown", shutdown::postgres_tests()));
            modules.push(("scale_out", scale_out::postgres_tests()));
            modules.push(("standbys", standbys::postgres_tests()));
            modules.push(("observability", observability::postgres_tests()));
            modules.push(("faults", faults::postgres_tests()));
            modules.push(("pooler", pooler::postgres_tests()));
        }
        StoreKind::Sqlite => {
            modules.push(("startup", startup::tests()));
            modules.push(("errors", errors::sqlite_tests()));
            modules.push(("health", health::sqlite_tests()));
            modules.push(("observability", observability::sqlite_tests()));
            modules.push(("tls", tls::sqlite_tests()));
            modules.push(("disk_faults", disk_faults::sqlite_tests()));
            modules.push(("shutdown", shutdown::sqlite_tests()));
        }
    }
    (named(modules), exclusive)
}

fn named(modules: Vec<(&str, Vec<(&'static str, TestFn)>)>) -> NamedTests {
    modules
        .into_iter()
        .flat_map(|(module, tests)| tests.into_iter().map(move |(name, f)| (format!("{module}::{name}"), f)))
        .collect()
}

fn trial(store: StoreKind, env: &TestEnv, name: &str, test: TestFn) -> Trial {
    let env = env.clone();
    Trial::test(format!("{}::{name}", store.name()), move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(test(env));
        Ok(())
    })
}

fn main() {
    let args = Arguments::from_args();
    if std::env::var_os("TEST_LOG").is_some() {
        std::mem::forget(identityd::telemetry::init(identityd::telemetry::LogFormat::Text));
    }
    let mut postgres = TestPostgres::start();
    eprintln!(
        "integration tests run on every store: postgres ({}) and sqlite (a file per test)",
        postgres.describe()
    );
    let (mut parallel, mut exclusive) = (Vec::new(), Vec::new());
    for store in [StoreKind::Postgres, StoreKind::Sqlite] {
        let env = TestEnv {
            store,
            postgres_base_url: postgres.base_url().to_owned(),
        };
        let (shared, alone) = all_tests(store);
        parallel.extend(shared.into_iter().map(|(name, test)| trial(store, &env, &name, test)));
        exclusive.extend(alone.into_iter().map(|(name, test)| trial(store, &env, &name, test)));
    }
    let parallel_run = libtest_mimic::run(&args, parallel);
    let exclusive_run = libtest_mimic::run(
        &Arguments {
            test_threads: Some(1),
            ..args
        },
        exclusive,
    );
    postgres.stop();
    let passed = parallel_run.num_passed + exclusive_run.num_passed;
    let failed = parallel_run.num_failed + exclusive_run.num_failed;
    println!("integration: {passed} passed, {failed} failed");
    if parallel_run.has_failed() || exclusive_run.has_failed() {
        std::process::exit(101);
    }
}
