//! identityd-load: the load generator and benchmark probes (see BENCHMARKS.md).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match identityd_load::main(identityd_load::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("identityd-load: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
