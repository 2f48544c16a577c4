//! The load generator's command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use identityd::config::parse_duration;

/// identityd-load: drives a running identityd with the generated gRPC clients and reports
/// throughput and latency; seeds databases; measures the hashing ceiling and the start-up time.
#[derive(Debug, Parser)]
#[command(name = "identityd-load", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one scenario against a server.
    Run(Box<RunArgs>),
    /// Create N users and M sessions in a database quickly, and write session tokens to a file.
    Seed(SeedArgs),
    /// Hashes per second with all cores at the configured argon2id parameters.
    HashCeiling(HashCeilingArgs),
    /// Time from process start to SERVING, and resident memory once idle.
    Startup(StartupArgs),
    /// Session JWTs verified offline per second, with only the JWKS, on every core.
    JwtVerify(JwtVerifyArgs),
}

/// What a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// The standard health Check on the same server: the ceiling of the RPC stack.
    Health,
    /// ValidateSession over a pool of live sessions.
    Validate,
    /// GetCurrentUser with a session as the bearer.
    Whoami,
    /// Login with a user name and password.
    LoginPassword,
    /// Login with a user access token.
    LoginToken,
    /// 90% validate, 8% whoami, 2% password logins.
    Mixed,
    /// The REST layer's AgileApps `GET /networking/rest/user/isSessionValid` over the same pool of
    /// sessions, each as a bearer token, on HTTP/1.1 keep-alive connections (one per caller).
    RestValidate,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Health => "health",
            Scenario::Validate => "validate",
            Scenario::Whoami => "whoami",
            Scenario::LoginPassword => "login-password",
            Scenario::LoginToken => "login-token",
            Scenario::Mixed => "mixed",
            Scenario::RestValidate => "rest-validate",
        }
    }

    /// Whether the scenario needs a pool of live session tokens.
    pub fn needs_sessions(self) -> bool {
        matches!(
            self,
            Scenario::Validate | Scenario::Whoami | Scenario::Mixed | Scenario::RestValidate
        )
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The server, as an http:// URL; several replicas of it comma-separated, and the connections
    /// are spread over them in turn.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub target: String,
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// Callers: the calls in flight at once (closed load), or at most (open load, with --rate).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// An open load: this many calls per second are due, whatever the answers, and each call's
    /// latency counts from when it was due (so time spent waiting for a free caller counts).
    /// Without it, each caller sends its next call when its last one is answered.
    #[arg(long, value_parser = parse_rate, conflicts_with = "requests")]
    pub rate: Option<f64>,
    /// HTTP/2 connections the calls share.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// How long to measure (after the warm-up), e.g. 10s.
    #[arg(long, value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,
    /// How many requests to measure, instead of a duration.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Calls made before measuring starts, for as long as this, e.g. 2s.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub warmup: Duration,
    /// The user that logs in (scenarios that log in, and to open the session pool).
    #[arg(long, default_value = "admin")]
    pub user: String,
    #[arg(long, env = "IDENTITYD_LOAD_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Live sessions to spread validations over, opened at start by logging in.
    #[arg(long, default_value_t = 64)]
    pub sessions: usize,
    /// Read session tokens from this file (one per line, as `seed` writes them) instead of logging in.
    #[arg(long)]
    pub tokens_file: Option<PathBuf>,
    /// Extra callers doing password logins during the whole measurement (a login storm).
    #[arg(long, default_value_t = 0)]
    pub storm: usize,
    /// A mass revocation during the measurement: this user (e.g. one `seed --users 1` made, with
    /// all its sessions) logs in before the run and, --revoke-after into the measurement, ends
    /// every other session it has at once (RevokeMyOtherSessions).
    #[arg(long)]
    pub revoke_user: Option<String>,
    /// That user's password.
    #[arg(long, env = "IDENTITYD_LOAD_REVOKE_PASSWORD", hide_env_values = true, default_value = crate::seed::SEED_PASSWORD)]
    pub revoke_password: String,
    /// The server the revocation is sent to (default: --target). Another instance over the same
    /// database makes the measured one learn of it through its revocation poll, as in a deployment.
    #[arg(long)]
    pub revoke_target: Option<String>,
    /// How far into the measurement the revocation is made, e.g. 1s.
    #[arg(long, value_parser = parse_duration, default_value = "1s", requires = "revoke_user")]
    pub revoke_after: Duration,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Sample this process's resident memory at the end of the run.
    #[arg(long)]
    pub pid: Option<u32>,
}

impl RunArgs {
    /// The measurement lasts this long when neither a duration nor a request count is given.
    pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
}

/// A rate of calls per second: a finite number above zero.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("{text:?} is not a rate of calls per second above zero")),
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// postgres://… or sqlite://PATH; migrations are applied first.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Write the kept sessions' tokens here, one per line.
    #[arg(long)]
    pub tokens_out: Option<PathBuf>,
    /// Write the seeded users' names here, one per line (session `i` belongs to user `i % users`).
    #[arg(long)]
    pub users_out: Option<PathBuf>,
    /// How many sessions' tokens to keep: the first ones, or a random sample with `--keep-random`.
    #[arg(long, default_value_t = 10_000)]
    pub keep_tokens: usize,
    /// Keep the tokens of `keep_tokens` sessions chosen at random among all those seeded (each
    /// as likely as any other), in random order, instead of the first ones.
    #[arg(long)]
    pub keep_random: bool,
    /// How long ago the sessions were opened (each lasts 12 hours), e.g. `40d` for sessions long
    /// expired, which the service's retention sweep deletes. 0 (the default): opened now, live.
    #[arg(long, default_value = "0s", value_parser = identityd::config::parse_duration_or_zero)]
    pub age: Duration,
}

#[derive(Debug, Clone, clap::Args)]
pub struct HashCeilingArgs {
    /// How long to hash, e.g. 5s.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub duration: Duration,
    /// Threads hashing at once (default: the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// argon2id memory in KiB, passes and lanes (defaults: the service's).
    #[arg(long, default_value_t = 19456)]
    pub memory_kib: u32,
    #[arg(long, default_value_t = 2)]
    pub iterations: u32,
    #[arg(long, default_value_t = 1)]
    pub parallelism: u32,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StartupArgs {
    /// The identityd binary to start.
    #[arg(long, default_value = "target/release/identityd")]
    pub binary: PathBuf,
    /// The database it starts on (an empty one: the time includes its migrations).
    #[arg(long, default_value = "sqlite::memory:")]
    pub database_url: String,
    /// How long to leave it idle before reading its resident memory, e.g. 3s.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub idle: Duration,
}

#[derive(Debug, Clone, clap::Args)]
pub struct JwtVerifyArgs {
    /// The server, as an http:// URL: one login and one GetJwks, then no further calls.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub target: String,
    #[arg(long, default_value = "admin")]
    pub user: String,
    #[arg(long, env = "IDENTITYD_LOAD_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// How long to verify, e.g. 10s.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Threads verifying at once (default: the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("identityd-load").chain(args.iter().copied()))
    }

    #[test]
    fn run_arguments_parse_with_defaults() {
        let Command::Run(run) = parse(&["run", "--scenario", "validate"]).unwrap().command else {
            panic!()
        };
        assert_eq!(run.scenario, Scenario::Validate);
        assert_eq!(
            (run.concurrency, run.connections, run.sessions, run.storm),
            (64, 4, 64, 0)
        );
        assert_eq!(run.warmup, Duration::from_secs(2));
        assert_eq!((run.duration, run.requests, run.rate), (None, None, None));
        assert_eq!((run.revoke_user, run.revoke_target), (None, None));
        assert_eq!(run.target, "http://127.0.0.1:50051");
    }

    #[test]
    fn run_arguments_parse_every_option() {
        let cli = parse(&[
            "run",
            "--scenario",
            "login-password",
            "--target",
            "http://10.0.0.1:9",
            "--concurrency",
            "8",
            "--connections",
            "2",
            "--duration",
            "15s",
            "--warmup",
            "1m",
            "--storm",
            "3",
            "--json",
            "out.json",
            "--rate",
            "2500.5",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else { panic!() };
        assert_eq!(run.scenario, Scenario::LoginPassword);
        assert_eq!(run.duration, Some(Duration::from_secs(15)));
        assert_eq!(run.warmup, Duration::from_secs(60));
        assert_eq!((run.concurrency, run.connections, run.storm), (8, 2, 3));
        assert_eq!(run.json.as_deref(), Some(std::path::Path::new("out.json")));
        assert_eq!(run.rate, Some(2500.5));
    }

    #[test]
    fn a_mass_revocation_parses_with_its_defaults() {
        let cli = parse(&[
            "run",
            "--scenario",
            "validate",
            "--revoke-user",
            "load-1@example.com",
            "--revoke-target",
            "http://127.0.0.1:9",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else { panic!() };
        assert_eq!(run.revoke_user.as_deref(), Some("load-1@example.com"));
        assert_eq!(run.revoke_target.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(run.revoke_after, Duration::from_secs(1));
        assert_eq!(run.revoke_password, crate::seed::SEED_PASSWORD, "a seeded user's");
    }

    #[test]
    fn bad_run_arguments_are_refused() {
        assert!(parse(&["run"]).is_err(), "a scenario is required");
        assert!(parse(&["run", "--scenario", "nope"]).is_err());
        assert!(parse(&["run", "--scenario", "health", "--duration", "5s", "--requests", "9"]).is_err());
        assert!(parse(&["run", "--scenario", "health", "--duration", "soon"]).is_err());
        assert!(parse(&["run", "--scenario", "health", "--concurrency", "-1"]).is_err());
        for rate in ["0", "-5", "NaN", "inf", "fast"] {
            assert!(
                parse(&["run", "--scenario", "health", "--rate", rate]).is_err(),
                "rate {rate}"
            );
        }
        assert!(
            parse(&["run", "--scenario", "health", "--rate", "100", "--requests", "9"]).is_err(),
            "an open load runs for a duration"
        );
        assert!(
            parse(&["run", "--scenario", "validate", "--revoke-after", "2s"]).is_err(),
            "a revocation needs its user"
        );
    }

    #[test]
    fn scenario_names_match_the_command_line() {
        for scenario in Scenario::value_variants() {
            let value = scenario.to_possible_value().unwrap();
            assert_eq!(value.get_name(), scenario.name());
        }
    }
}
