use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::admin_http::{self, AdminState};
use crate::auth::PasswordHasher;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, DatabasePooler};
use crate::core::{FailureLimit, Identity, Settings};
use crate::grpc::DrainDeadline;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{PgRevocationFeed, Store};
use crate::{first_admin, grpc, tls};

/// How often the database is pinged to keep the health status true.
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// How often the store is asked which sessions ended (on any instance), for the validation cache,
/// while they are not pushed.
const REVOCATION_POLL: Duration = Duration::from_millis(50);

/// After the drain deadline, how long the calls told to end may take to be gone, before their
/// connections are closed (and again, before the server stops without waiting for them).
const END_WAIT: Duration = Duration::from_secs(2);
/// How long a stopping process waits for its database connections to close.
const STORE_CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Password-hashing memory (19 MiB per worker) is given back after this long without a hash.
const HASH_MEMORY_IDLE: Duration = Duration::from_secs(10);

/// A built server: the database reached and migrated, the port bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    /// The admin listener and its Prometheus handle, when an admin address is configured.
    admin: Option<(TcpListener, PrometheusHandle)>,
    identity: Identity,
    config: Config,
}

/// Opens the store a configuration names, applies its migrations and computes name keys again if
/// a migration asks for it. The URL's scheme picks the store: `postgres://` (or `postgresql://`),
/// `sqlite://PATH` or `sqlite::memory:`.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.effective_database_url();
    let store: Arc<dyn Store> = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let read_urls: Vec<String> = config
            .database_read_urls
            .iter()
            .map(|u| u.expose_secret().to_owned())
            .collect();
        let transaction_pooler = config.database_pooler == DatabasePooler::Transaction;
        let store = PostgresStore::connect_lazy_with_standbys(
            &url,
            &read_urls,
            config.read_max_lag,
            config.db_max_connections,
            transaction_pooler,
            config.db_statement_timeout,
        )?;
        match config.direct_database_url()? {
            Some(direct) if transaction_pooler => PostgresStore::migrate_through(&direct).await?,
            _ => store.migrate().await?,
        }
        Arc::new(store)
    } else if url.starts_with("sqlite:") {
        let mut store = SqliteStore::open(&url, config.db_max_connections, config.sqlite_busy_timeout).await?;
        store.migrate().await?;
        Arc::new(store)
    } else {
        // Only the scheme is named: the rest of a URL may hold a password.
        let scheme = url.split(':').next().unwrap_or_default();
        anyhow::bail!(
            "unsupported database URL scheme {scheme:?}: use postgres://USER@HOST/DB, sqlite://PATH or sqlite::memory:"
        )
    };
    match store.rekey_names(crate::domain::name_key).await {
        Ok(0) => {}
        Ok(changed) => tracing::info!(changed, "stored name keys computed again under the current name rules"),
        Err(crate::store::StoreError::UniqueViolation { field }) => anyhow::bail!(
            "two stored values of {field} are now the same name (they differ only in case, width or \
             invisible characters); rename one with the previous version of identityd, then start again"
        ),
        Err(e) => return Err(anyhow::Error::new(e).context("computing stored name keys again")),
    }
    Ok(store)
}

/// Builds the core from a configuration and an opened store.
pub fn build_identity(config: &Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> anyhow::Result<Identity> {
    let hasher = PasswordHasher::new(config.hashing())?;
    let settings = Settings {
        sessions: config.sessions()?,
        max_access_tokens_per_user: config.max_access_tokens_per_user,
        validation_cache_ttl: config.validation_cache_ttl,
        session_lookups_in_flight: config
            .session_lookups_in_flight
            .map_or_else(crate::core::default_session_lookups_in_flight, |n| n as usize),
        token_login_failures: FailureLimit {
            failures: config.token_login_failures,
            window: config.token_login_failure_window,
        },
        password_login_failures: FailureLimit {
            failures: config.password_login_failures,
            window: config.password_login_failure_window,
        },
        jwt: config.jwt()?,
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
        // Opens the signing key in force (making the first one on a new database), so that a
        // key-encryption key other than the one the keys were sealed with stops the start here,
        // not every login after it.
        identity
            .jwks()
            .await
            .map_err(|e| anyhow::Error::new(e).context("loading the session-JWT signing keys"))?;
        first_admin::create_at_first_start(&identity, &config).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let admin = match config.admin_addr {
            Some(address) => Some((admin_http::bind(address).await?, crate::telemetry::metrics::install()?)),
            None => None,
        };
        Ok(Self {
            listener,
            local_addr,
            admin,
            identity,
            config,
        })
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the admin listener listens on, if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The core, for embedding programs and tests that need to seed data.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Serves until `shutdown` completes, then stops taking calls, reports NOT_SERVING, and lets the
    /// calls in flight finish for up to the shutdown grace; the connections of calls still open
    /// then (streams) are cut. Last, pending last-use times and failed-login counts are written.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Self {
            listener,
            local_addr,
            admin,
            identity,
            config,
        } = self;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        // Every service is known from the first call on, NOT_SERVING until the database first
        // answers: a Watch that came before the first probe would otherwise be refused NOT_FOUND.
        // Readiness (`/readyz`) starts the same way.
        set_every_status(&reporter, ServingStatus::NotServing).await;
        let (ready, ready_now) = tokio::sync::watch::channel(false);
        let store = identity.store().clone();
        let health_task = tokio::spawn(watch_health(store, reporter.clone(), ready.clone()));
        let admin_task = admin.map(|(listener, metrics)| {
            let store = identity.store().clone();
            let state = AdminState {
                metrics,
                ready: ready_now,
                before_scrape: Arc::new(move || store.report_pool_usage()),
            };
            tracing::info!(address = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()), "serving the admin endpoints");
            tokio::spawn(admin_http::serve(listener, state))
        });
        let flusher = identity.clone();
        let revocation_task = tokio::spawn({
            let identity = identity.clone();
            async move {
                let mut tick = tokio::time::interval(REVOCATION_POLL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    identity.poll_revocations_unless_pushed().await;
                }
            }
        });
        // On Postgres, revocations are pushed over a connection of its own, straight to the server.
        let push_task = config.revocation_listen_url().map(|url| {
            let identity = identity.clone();
            tokio::spawn(async move {
                match PgRevocationFeed::new(&url) {
                    Ok(feed) => identity.follow_pushed_revocations(feed).await,
                    Err(e) => tracing::error!(error = %e, "cannot listen for pushed revocations; polling for them"),
                }
            })
        });
        let standby_task = tokio::spawn({
            let store = identity.store().clone();
            async move { store.watch_standbys().await }
        });
        let flush_task = tokio::spawn({
            let (identity, interval) = (identity.clone(), config.last_use_flush_interval);
            async move {
                let mut tick = tokio::time::interval(interval);
                loop {
                    tick.tick().await;
                    identity.flush_last_use().await;
                    identity.flush_failed_logins().await;
                    identity.forget_old_login_failures();
                    identity.release_idle_memory(HASH_MEMORY_IDLE);
                }
            }
        });
        let sweep_task = tokio::spawn({
            let (identity, interval) = (identity.clone(), config.session_sweep_interval);
            async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    identity.sweep_old_sessions().await;
                }
            }
        });
        // Both reflection versions, since clients still differ in which one they ask.
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        // Every connection and streaming response can be ended, for when the drain deadline passes.
        let deadline = DrainDeadline::new();
        let tls = match config.tls() {
            Some(settings) => {
                let certificate = Arc::new(tls::ReloadingCertificate::load(&settings.certificate, &settings.key)?);
                let server = tls::server_config(&settings, certificate.clone(), cfg!(feature = "rest"))?;
                Some((tokio_rustls::TlsAcceptor::from(Arc::new(server)), certificate))
            }
            None => None,
        };
        let tls_on = tls.is_some();
        let incoming = tls::accept(listener, tls).map({
            let deadline = deadline.clone();
            move |accepted| accepted.map(|connection| deadline.connection(connection))
        });
        let (drain, draining) = tokio::sync::oneshot::channel::<()>();
        let routes = served_routes(identity, &config);
        tracing::info!(address = %local_addr, rest = cfg!(feature = "rest"), tls = tls_on, "serving gRPC");
        let keepalive = Some(config.http2_keepalive_interval).filter(|interval| !interval.is_zero());
        let mut builder = Server::builder()
            // HTTP/1.1 for the REST layer; gRPC stays on HTTP/2.
            .accept_http1(cfg!(feature = "rest"))
            // The shorter of this and the call's own `grpc-timeout`.
            .timeout(config.request_timeout)
            .max_concurrent_streams(config.max_concurrent_streams)
            .http2_keepalive_interval(keepalive)
            .http2_keepalive_timeout(Some(config.http2_keepalive_timeout));
        if let Some(limit) = config.max_calls_per_connection {
            builder = builder.concurrency_limit_per_connection(limit);
        }
        let server = builder
            .layer(grpc::RpcTelemetryLayer)
            .layer(grpc::InFlightLimitLayer::new(config.max_in_flight))
            .layer(deadline.layer())
            .layer(grpc::DecodeErrorLayer::new(config.max_request_bytes))
            .add_routes(routes)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = draining.await;
            });
        let mut server = std::pin::pin!(server);
        let result = tokio::select! {
            result = &mut server => result,
            () = shutdown => {
                let grace = config.shutdown_grace;
                tracing::info!(?grace, "shutdown requested: draining calls in flight");
                // Health watchers learn first, so that load balancers stop sending calls here.
                health_task.abort();
                ready.send_replace(false);
                set_every_status(&reporter, ServingStatus::NotServing).await;
                let _ = drain.send(());
                match tokio::time::timeout(grace, &mut server).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(?grace, "calls still open at the drain deadline: ending them");
                        deadline.end_streams();
                        match tokio::time::timeout(END_WAIT, &mut server).await {
                            Ok(result) => result,
                            Err(_) => {
                                tracing::warn!("calls still open after being ended: closing their connections");
                                deadline.cut_connections();
                                tokio::time::timeout(END_WAIT, server).await.unwrap_or_else(|_| {
                                    tracing::error!("connections still open after being closed; stopping without them");
                                    Ok(())
                                })
                            }
                        }
                    }
                }
            }
        };
        health_task.abort();
        if let Some(task) = admin_task {
            task.abort();
        }
        flush_task.abort();
        sweep_task.abort();
        revocation_task.abort();
        standby_task.abort();
        if let Some(task) = push_task {
            task.abort();
        }
        flusher.flush_last_use().await;
        flusher.flush_all_failed_logins().await;
        tracing::info!("stopped");
        result.context("serving gRPC")
    }
}

/// The identity services, and with the `rest` feature the REST routes beside them.
fn served_routes(identity: Identity, config: &Config) -> tonic::service::Routes {
    #[cfg(feature = "rest")]
    {
        let grpc = grpc::routes(identity.clone(), config.max_request_bytes);
        let cookies = crate::rest::CookieSettings::new(config.rest_cookie_name.clone(), config.rest_cookie_secure);
        let rest = crate::rest::router(identity, grpc.clone(), cookies, config.max_request_bytes);
        tonic::service::Routes::from(grpc.into_axum_router().merge(rest))
    }
    #[cfg(not(feature = "rest"))]
    grpc::routes(identity, config.max_request_bytes)
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

/// Keeps every service's health status in step with the database: SERVING while it answers,
/// NOT_SERVING while it does not.
async fn watch_health(store: Arc<dyn Store>, reporter: HealthReporter, ready: tokio::sync::watch::Sender<bool>) {
    let mut last = None;
    let mut tick = tokio::time::interval(HEALTH_PROBE_INTERVAL);
    loop {
        tick.tick().await;
        let started = std::time::Instant::now();
        let status = match store.ping().await {
            Ok(()) => {
                crate::telemetry::metrics::db_ping(started.elapsed());
                ServingStatus::Serving
            }
            Err(e) => {
                tracing::warn!(error = %e, "database unreachable");
                ServingStatus::NotServing
            }
        };
        if last != Some(status) {
            // Readiness first: whoever sees the health status change finds /readyz agreeing.
            ready.send_replace(status == ServingStatus::Serving);
            set_every_status(&reporter, status).await;
            last = Some(status);
        }
    }
}

/// Sets the health status of every service and of the server as a whole (the empty name).
async fn set_every_status(reporter: &HealthReporter, status: ServingStatus) {
    for service in grpc::SERVICE_NAMES.iter().chain(std::iter::once(&"")) {
        reporter.set_service_status(*service, status).await;
    }
}

/// Closes the database's connections as the process ends ([`Store::close`]): on a SQLite file,
/// this leaves every commit in the database file itself, with no write-ahead log beside it, so
/// that a stopped service's file can be copied alone. Waits at most [`STORE_CLOSE_WAIT`] for
/// connections still in use.
pub async fn close_store(store: &dyn Store) {
    match tokio::time::timeout(STORE_CLOSE_WAIT, store.close()).await {
        Ok(()) => tracing::info!("database connections closed"),
        Err(_) => {
            tracing::warn!(wait = ?STORE_CLOSE_WAIT, "database connections still in use; stopping without closing them")
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
}
