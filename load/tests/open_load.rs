//! `identityd-load run` against a real service (SQLite, in this process): an open load sends the
//! calls due in its window and counts every one of them, and failed calls are reported as errors,
//! never as throughput.

use std::path::PathBuf;

use clap::Parser;
use identityd::config::Config;
use identityd::startup::Application;
use identityd_load::cli::{Cli, Command, RunArgs};
use identityd_load::run::run;
use identityd_load::stats::Load;

/// A service over a fresh SQLite file, until the returned guard is dropped.
struct Service {
    target: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: TempDir,
}

impl Service {
    async fn start() -> Service {
        let dir = TempDir(std::env::temp_dir().join(format!("identityd-load-test-{}", uuid::Uuid::now_v7().simple())));
        std::fs::create_dir_all(&dir.0).expect("a temporary directory");
        let url = format!("sqlite://{}", dir.0.join("identityd.db").display());
        let app = Application::build(Config::for_database(&url))
            .await
            .expect("start the service");
        let target = format!("http://{}", app.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Service {
            target,
            stop: Some(stop),
            _dir: dir,
        }
    }

    fn args(&self, extra: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(
            ["identityd-load", "run", "--target", &self.target, "--connections", "1"]
                .into_iter()
                .chain(extra.iter().copied()),
        )
        .expect("arguments");
        let Command::Run(args) = cli.command else {
            panic!("a run")
        };
        *args
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_load_sends_and_counts_every_call_due_in_its_window() {
    let service = Service::start().await;
    let args = service.args(&[
        "--scenario",
        "health",
        "--rate",
        "200",
        "--warmup",
        "1s",
        "--duration",
        "1s",
        "--concurrency",
        "4",
    ]);
    let outcome = run(args).await.expect("the run");
    let report = outcome.report;
    assert_eq!(
        report.load,
        Load::Open {
            calls_per_second: 200.0
        }
    );
    assert_eq!(
        report.requests, 200,
        "one call every 5 ms for a second, each counted once"
    );
    assert_eq!(
        (report.failed, report.errors_per_second),
        (0, 0.0),
        "{:?}",
        report.errors
    );
    assert!(report.succeeded_per_second > 0.0);
    assert!(report.p50_ms <= report.p99_ms && report.p99_ms <= report.max_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_calls_are_an_error_rate_and_not_throughput() {
    let service = Service::start().await;
    // Tokens that were never issued: every validation answers "not valid", which the load
    // generator counts as a failure.
    let tokens = service._dir.0.join("tokens.txt");
    std::fs::write(&tokens, "not-a-session-1\nnot-a-session-2\n").expect("the tokens file");
    let tokens = tokens.display().to_string();
    let args = service.args(&[
        "--scenario",
        "validate",
        "--tokens-file",
        &tokens,
        "--requests",
        "50",
        "--warmup",
        "1s",
        "--concurrency",
        "2",
    ]);
    let report = run(args).await.expect("the run").report;
    assert_eq!(report.load, Load::Closed);
    assert_eq!((report.requests, report.failed), (50, 50));
    assert_eq!(report.succeeded_per_second, 0.0, "failures are not throughput");
    assert!(report.errors_per_second > 0.0);
    assert_eq!(report.errors.get("NotFound"), Some(&50));
    assert!(report.max_ms > 0.0, "the failed calls' latencies are counted");
}

/// A directory removed when the test ends, passed or failed.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
