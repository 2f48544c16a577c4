use clap::{Parser, Subcommand};
use identityd::config::Config;
use identityd::startup::{Application, build_identity, close_store, open_store, shutdown_signal};
use identityd::telemetry;
use secrecy::{ExposeSecret, SecretString};

/// identityd: logins, sessions and access tokens over gRPC.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Create the first tenant and its administrator, if the database has no tenant yet.
    Bootstrap {
        /// Name of the first tenant.
        #[arg(long)]
        tenant: String,
        /// The administrator's user name.
        #[arg(long)]
        user: String,
        /// The administrator's password.
        #[arg(long, env = "IDENTITYD_ADMIN_PASSWORD", hide_env_values = true)]
        password: SecretString,
        /// The administrator's e-mail address.
        #[arg(long, default_value = "")]
        email: String,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain on one line; a backtrace helps nobody who mistyped a URL.
            eprintln!("identityd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let _telemetry = telemetry::init(cli.config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(cli.config).await?;
            let store = app.identity().store().clone();
            let served = app.run_until(shutdown_signal()).await;
            close_store(store.as_ref()).await;
            served
        }
        Command::Migrate => {
            let store = open_store(&cli.config).await?;
            tracing::info!("migrations applied");
            close_store(store.as_ref()).await;
            Ok(())
        }
        Command::Bootstrap {
            tenant,
            user,
            password,
            email,
        } => {
            let store = open_store(&cli.config).await?;
            let identity = build_identity(
                &cli.config,
                store.clone(),
                std::sync::Arc::new(identityd::clock::SystemClock),
            )?;
            let request = identityd::core::BootstrapRequest {
                tenant_name: tenant,
                user_name: user,
                password: password.expose_secret().to_owned(),
                email,
            };
            let created = identity.bootstrap(&request).await;
            close_store(store.as_ref()).await;
            if created.map_err(|e| anyhow::anyhow!("{e}"))? {
                println!(
                    "created tenant {:?} and administrator {:?}",
                    request.tenant_name, request.user_name
                );
            } else {
                println!("the database already has a tenant; nothing was changed");
            }
            Ok(())
        }
    }
}
