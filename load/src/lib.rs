//! The load generator behind `identityd-load`: scenarios driven through the generated clients,
//! database seeding, and the measurements that serve as ceilings. See BENCHMARKS.md.

/// The command line: subcommands and their arguments.
pub mod cli;
/// Offline session-JWT verification, beside ValidateSession.
pub mod jwt;
/// Measurements that need no load: the hashing ceiling, start-up time and idle memory.
pub mod probes;
/// Running a scenario against a server through the generated clients.
pub mod run;
/// Filling a database with users and live sessions in large batches.
pub mod seed;
/// Latency samples and the report a run prints.
pub mod stats;

use cli::{Cli, Command};

/// Runs a parsed command line, printing a human summary and, where asked, JSON.
pub async fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let json = args.json.clone();
            let outcome = run::run(*args).await?;
            println!("{}", outcome.report.line());
            if let Some(storm) = &outcome.storm {
                println!("{}", storm.line());
            }
            if let Some(revocation) = &outcome.revocation {
                println!("{}", revocation.line());
            }
            if let Some(kib) = outcome.server_rss_kib {
                println!("server resident memory: {:.1} MiB", kib as f64 / 1024.0);
            }
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&outcome)?)?;
            }
        }
        Command::Seed(args) => {
            let start = std::time::Instant::now();
            let seeded = seed::seed(&args).await?;
            println!(
                "seeded {} users and {} sessions in {:.1} s (password {:?}); kept {} tokens",
                seeded.user_names.len(),
                args.sessions,
                start.elapsed().as_secs_f64(),
                seed::SEED_PASSWORD,
                seeded.tokens.len()
            );
        }
        Command::HashCeiling(args) => {
            let ceiling = probes::hash_ceiling(&args).await?;
            println!("{}", serde_json::to_string(&ceiling)?);
        }
        Command::Startup(args) => {
            let startup = probes::startup(&args).await?;
            println!("{}", serde_json::to_string(&startup)?);
        }
        Command::JwtVerify(args) => {
            let rate = jwt::jwt_verify(&args).await?;
            println!("{}", serde_json::to_string(&rate)?);
        }
    }
    Ok(())
}
