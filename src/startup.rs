use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::auth::PasswordHasher;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::core::{BootstrapRequest, FailureLimit, Identity, Settings};
use crate::grpc;
use crate::store::Store;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;

/// How often the database is pinged to keep the health status true.
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// How often the store is asked which sessions ended (on any instance), for the validation cache.
const REVOCATION_POLL: Duration = Duration::from_millis(50);

/// Password-hashing memory (19 MiB per worker) is given back after this long without a hash.
const HASH_MEMORY_IDLE: Duration = Duration::from_secs(10);

/// A built server: the database reached and migrated, the port bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    identity: Identity,
    config: Config,
}

/// Opens the store a configuration names and applies its migrations. The URL's scheme picks the
/// store: `postgres://` (or `postgresql://`), `sqlite://PATH` or `sqlite::memory:`.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.effective_database_url();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::connect_lazy(&url, config.db_max_connections)?;
        store.migrate().await?;
        Ok(Arc::new(store))
    } else if url.starts_with("sqlite:") {
        let store = SqliteStore::open(&url, config.db_max_connections).await?;
        store.migrate().await?;
        Ok(Arc::new(store))
    } else {
        // Only the scheme is named: the rest of a URL may hold a password.
        let scheme = url.split(':').next().unwrap_or_default();
        anyhow::bail!(
            "unsupported database URL scheme {scheme:?}: use postgres://USER@HOST/DB, sqlite://PATH or sqlite::memory:"
        )
    }
}

/// Builds the core from a configuration and an opened store.
pub fn build_identity(config: &Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> anyhow::Result<Identity> {
    let hasher = PasswordHasher::new(config.hashing())?;
    let settings = Settings {
        sessions: config.sessions()?,
        max_access_tokens_per_user: config.max_access_tokens_per_user,
        validation_cache_ttl: config.validation_cache_ttl,
        token_login_failures: FailureLimit {
            failures: config.token_login_failures,
            window: config.token_login_failure_window,
        },
    };
    Ok(Identity::new(store, hasher, clock, settings))
}

impl Application {
    /// Builds the application on the system clock.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Builds the application on a given clock (tests move time with a manual one).
    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = open_store(&config).await?;
        let identity = build_identity(&config, store, clock)?;
        bootstrap_at_start(&identity, &config).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            identity,
            config,
        })
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The core, for embedding programs and tests that need to seed data.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Serves until `shutdown` completes, then stops taking calls, lets those in flight finish, and
    /// writes pending last-use times and failed-login counts.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Self {
            listener,
            local_addr,
            identity,
            config,
        } = self;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let store = identity.store().clone();
        let health_task = tokio::spawn(watch_health(store, reporter));
        let flusher = identity.clone();
        let revocation_task = tokio::spawn({
            let identity = identity.clone();
            async move {
                let mut tick = tokio::time::interval(REVOCATION_POLL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    identity.poll_revocations().await;
                }
            }
        });
        let flush_task = tokio::spawn({
            let (identity, interval) = (identity.clone(), config.last_use_flush_interval);
            async move {
                let mut tick = tokio::time::interval(interval);
                loop {
                    tick.tick().await;
                    identity.flush_last_use().await;
                    identity.flush_failed_logins().await;
                    identity.release_idle_memory(HASH_MEMORY_IDLE);
                }
            }
        });
        // Both reflection versions, since clients still differ in which one they ask.
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tracing::info!(address = %local_addr, "serving gRPC");
        let result = Server::builder()
            .timeout(config.request_timeout)
            .add_routes(grpc::routes(identity, config.max_request_bytes))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        health_task.abort();
        flush_task.abort();
        revocation_task.abort();
        flusher.flush_last_use().await;
        flusher.flush_all_failed_logins().await;
        tracing::info!("stopped");
        result.context("serving gRPC")
    }
}

/// Reflection over our contract and the standard health and reflection services, so that
/// `grpcurl list` shows every service the server answers.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(grpc::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        // google.rpc error details, so that clients can decode ErrorInfo and BadRequest.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// Creates the first tenant and administrator on a first start: from the bootstrap variables when
/// they are set; on the zero-setup embedded store, with a generated password.
async fn bootstrap_at_start(identity: &Identity, config: &Config) -> anyhow::Result<()> {
    let Some(request) = bootstrap_from_config(config)? else {
        if config.database_url.is_none() {
            bootstrap_generated(identity, config).await?;
        }
        return Ok(());
    };
    if identity
        .bootstrap(&request)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap: {e}"))?
    {
        tracing::info!(tenant = %request.tenant_name, user = %request.user_name, "created the first tenant and administrator");
    }
    Ok(())
}

/// Creates the first administrator with a generated password if the database has no tenant,
/// and prints the credentials once, to standard output rather than to the logs.
async fn bootstrap_generated(identity: &Identity, config: &Config) -> anyhow::Result<()> {
    let password = crate::auth::generate_password();
    let request = BootstrapRequest {
        tenant_name: "Default".into(),
        user_name: "admin".into(),
        password: password.clone(),
        email: String::new(),
    };
    if identity
        .bootstrap(&request)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap: {e}"))?
    {
        println!(
            "identityd: created the first tenant \"Default\" and its administrator \"admin\" with the password {password}\n\
             identityd: it is shown only this once. Log in with:\n  \
             grpcurl -plaintext -d '{{\"user_name\": \"admin\", \"password\": \"{password}\"}}' {} identity.v1.LoginService/Login",
            config.listen
        );
    }
    Ok(())
}

fn bootstrap_from_config(config: &Config) -> anyhow::Result<Option<BootstrapRequest>> {
    match (
        &config.bootstrap_tenant,
        &config.bootstrap_user,
        &config.bootstrap_password,
    ) {
        (None, None, None) => Ok(None),
        (Some(tenant), Some(user), Some(password)) => Ok(Some(BootstrapRequest {
            tenant_name: tenant.clone(),
            user_name: user.clone(),
            password: password.expose_secret().to_owned(),
            email: String::new(),
        })),
        _ => anyhow::bail!(
            "to bootstrap, set all of IDENTITYD_BOOTSTRAP_TENANT, IDENTITYD_BOOTSTRAP_USER and IDENTITYD_BOOTSTRAP_PASSWORD"
        ),
    }
}

/// Keeps every service's health status in step with the database: SERVING while it answers,
/// NOT_SERVING while it does not.
async fn watch_health(store: Arc<dyn Store>, reporter: HealthReporter) {
    let mut last = None;
    let mut tick = tokio::time::interval(HEALTH_PROBE_INTERVAL);
    loop {
        tick.tick().await;
        let status = match store.ping().await {
            Ok(()) => ServingStatus::Serving,
            Err(e) => {
                tracing::warn!(error = %e, "database unreachable");
                ServingStatus::NotServing
            }
        };
        if last != Some(status) {
            for service in grpc::SERVICE_NAMES.iter().chain(std::iter::once(&"")) {
                reporter.set_service_status(*service, status).await;
            }
            last = Some(status);
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested: draining calls in flight");
}
