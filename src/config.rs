use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use crate::auth::{HashingPriority, HashingSettings, KeyEncryptionKey};
use crate::core::{JwtSettings, SessionSettings};
use crate::telemetry::LogFormat;

/// What stands between identityd and Postgres (see [`Config::database_pooler`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DatabasePooler {
    None,
    Transaction,
}

/// Everything `identityd serve` can be told, from flags or the environment.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to serve gRPC on.
    #[arg(long, env = "IDENTITYD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// PEM file of the server's TLS certificate (then its chain). With `--tls-key`, the gRPC
    /// port speaks TLS only; both files are read again when they change, without a restart.
    /// Unset: plaintext.
    #[arg(long, env = "IDENTITYD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file of the TLS certificate's private key.
    #[arg(long, env = "IDENTITYD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM file of the CA certificates that sign clients' certificates: every client must then
    /// present one (mutual TLS). Unset: clients are not asked for a certificate.
    #[arg(long, env = "IDENTITYD_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Most calls in flight on this server at once (health checks excepted); a call beyond it is
    /// refused at once with RESOURCE_EXHAUSTED, `TOO_MANY_CALLS`. 0: no limit.
    #[arg(long, env = "IDENTITYD_MAX_IN_FLIGHT", default_value_t = 1000)]
    pub max_in_flight: usize,

    /// Most calls one connection may have running at once; more wait on that connection for one
    /// to finish. Unset: no limit beyond the streams limit.
    #[arg(long, env = "IDENTITYD_MAX_CALLS_PER_CONNECTION")]
    pub max_calls_per_connection: Option<usize>,

    /// Most HTTP/2 streams (calls) a client may open at once on one connection; a client beyond
    /// it waits for one to end.
    #[arg(long, env = "IDENTITYD_MAX_CONCURRENT_STREAMS", default_value_t = 200)]
    pub max_concurrent_streams: u32,

    /// How often an idle connection is pinged (HTTP/2 PING) to find dead peers. 0s: never.
    #[arg(long, env = "IDENTITYD_HTTP2_KEEPALIVE_INTERVAL", default_value = "60s", value_parser = parse_duration_or_zero)]
    pub http2_keepalive_interval: Duration,

    /// How long a keepalive ping may go unanswered before the connection is closed.
    #[arg(long, env = "IDENTITYD_HTTP2_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub http2_keepalive_timeout: Duration,

    /// Address of the admin listener (plain HTTP): `/metrics` in the Prometheus text format,
    /// `/healthz` and `/readyz` for orchestrators' probes. Unset: no admin listener, and no
    /// metrics are kept. Keep it off the network callers reach.
    #[arg(long, env = "IDENTITYD_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,

    /// Database URL: postgres://user:password@host/db, sqlite://PATH or sqlite::memory:.
    /// Unset: the embedded SQLite database in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,

    /// Postgres only: where the connection that listens for revocations pushed by other instances
    /// goes. It must reach Postgres directly, not through a pooler in transaction mode. Unset: the
    /// database URL.
    #[arg(long, env = "DATABASE_LISTEN_URL", hide_env_values = true)]
    pub database_listen_url: Option<SecretString>,

    /// Postgres only: what the database URL and the read URLs lead to. `none`: Postgres itself, or
    /// a pooler that keeps a client on one server connection for its whole session. `transaction`:
    /// a pooler that lends a server connection for one transaction at a time (pgbouncer's
    /// `pool_mode = transaction`); every statement then runs in a transaction, and none is kept
    /// prepared. Needs DATABASE_LISTEN_URL, a direct connection, for listening and migrations.
    #[arg(long, env = "IDENTITYD_DATABASE_POOLER", value_enum, default_value = "none")]
    pub database_pooler: DatabasePooler,

    /// Postgres only: hot standbys (streaming replicas of the primary) for the hot reads —
    /// ValidateSession's cache misses and the listings. Comma-separated, or the flag repeated.
    /// Unset: every read goes to the primary.
    #[arg(
        long = "database-read-url",
        env = "DATABASE_READ_URL",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub database_read_urls: Vec<SecretString>,

    /// Postgres only: a standby further behind the primary than this is not read from until it
    /// catches up; also how long after a change the hot reads go to the primary.
    #[arg(long, env = "IDENTITYD_READ_MAX_LAG", default_value = "1s", value_parser = parse_duration)]
    pub read_max_lag: Duration,

    /// Where the embedded SQLite database lives when no database URL is given.
    #[arg(long, env = "IDENTITYD_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Most connections the database pool opens.
    #[arg(long, env = "IDENTITYD_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// Session lookups (ValidateSession's cache misses, and every call's bearer check) that run at
    /// once (default: the number of cores). Lookups asked for while they all run wait, and the
    /// next query reads up to 64 of them together: fewer queries under load, none delayed when
    /// the database keeps up. More suits a database far from the service (long round trips).
    #[arg(long, env = "IDENTITYD_SESSION_LOOKUPS_IN_FLIGHT", value_parser = clap::value_parser!(u32).range(1..))]
    pub session_lookups_in_flight: Option<u32>,

    /// Postgres only: the longest a statement may run before Postgres cancels it (and the call
    /// answers UNAVAILABLE), so that a slow or blocked query cannot hold a pool connection for
    /// long. 0s: no limit. Behind a transaction pooler it cannot be sent at connect: set it on
    /// the database role instead (`ALTER ROLE … SET statement_timeout = '10s'`).
    #[arg(long, env = "IDENTITYD_DB_STATEMENT_TIMEOUT", default_value = "10s", value_parser = parse_duration_or_zero)]
    pub db_statement_timeout: Duration,

    /// SQLite only: how long a write waits for another process holding the database's write lock
    /// before the call answers UNAVAILABLE. 0s: it does not wait.
    #[arg(long, env = "IDENTITYD_SQLITE_BUSY_TIMEOUT", default_value = "10s", value_parser = parse_duration_or_zero)]
    pub sqlite_busy_timeout: Duration,

    /// Absolute session lifetime, e.g. `12h`, `30m`, `7d`.
    #[arg(long, env = "IDENTITYD_SESSION_LIFETIME", default_value = "12h", value_parser = parse_duration)]
    pub session_lifetime: Duration,

    /// A session ends after this long without use.
    #[arg(long, env = "IDENTITYD_SESSION_IDLE_TIMEOUT", default_value = "1h", value_parser = parse_duration)]
    pub session_idle_timeout: Duration,

    /// The furthest ahead a service-account session's expiration_date may lie (CreateSession and
    /// UpdateSession), e.g. `365d`.
    #[arg(long, env = "IDENTITYD_SERVICE_ACCOUNT_SESSION_MAX_LIFETIME", default_value = "365d", value_parser = parse_duration)]
    pub service_account_session_max_lifetime: Duration,

    /// How long expired and ended sessions are kept (for ListMySessions, ListUserSessions and
    /// investigations) before the sweep deletes them.
    #[arg(long, env = "IDENTITYD_SESSION_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub session_retention: Duration,

    /// How often the sweep looks for sessions past their retention. Every instance sweeps; they
    /// may overlap safely.
    #[arg(long, env = "IDENTITYD_SESSION_SWEEP_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub session_sweep_interval: Duration,

    /// Most sessions the sweep deletes in one statement; it repeats until none is left, so that no
    /// statement holds locks for long.
    #[arg(long, env = "IDENTITYD_SESSION_SWEEP_BATCH", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub session_sweep_batch: u32,
    /// Absolute lifetime of a proxy or customer-support session (an impersonation).
    #[arg(long, env = "IDENTITYD_IMPERSONATION_LIFETIME", default_value = "1h", value_parser = parse_duration)]
    pub impersonation_lifetime: Duration,

    /// A proxy or customer-support session ends after this long without use.
    #[arg(long, env = "IDENTITYD_IMPERSONATION_IDLE_TIMEOUT", default_value = "15m", value_parser = parse_duration)]
    pub impersonation_idle_timeout: Duration,

    /// How long a session JWT is valid after it is issued (never past its session's end).
    #[arg(long, env = "IDENTITYD_JWT_LIFETIME", default_value = "10m", value_parser = parse_duration)]
    pub jwt_lifetime: Duration,

    /// The `iss` claim of session JWTs.
    #[arg(long, env = "IDENTITYD_JWT_ISSUER", default_value = "identityd")]
    pub jwt_issuer: String,

    /// The `aud` claim of session JWTs.
    #[arg(long, env = "IDENTITYD_JWT_AUDIENCE", default_value = "identityd")]
    pub jwt_audience: String,

    /// How long each session-JWT signing key signs before the next one takes over.
    #[arg(long, env = "IDENTITYD_JWT_KEY_ROTATION", default_value = "7d", value_parser = parse_duration)]
    pub jwt_key_rotation: Duration,

    /// How long before it signs a new key is published by GetJwks; verifiers must fetch the key
    /// set at least this often. At least 5m, as instances read the keys again every minute.
    #[arg(long, env = "IDENTITYD_JWT_KEY_PUBLISH_AHEAD", default_value = "1h", value_parser = parse_publish_ahead)]
    pub jwt_key_publish_ahead: Duration,

    /// The key that seals session-JWT signing keys in the database: 32 random bytes in base64
    /// (`openssl rand -base64 32`). Unset: a key generated into the data directory on first start
    /// (`key-encryption.key`), which suits one instance; instances sharing a database must be given
    /// the same key.
    #[arg(long, env = "IDENTITYD_KEY_ENCRYPTION_KEY", hide_env_values = true)]
    pub key_encryption_key: Option<SecretString>,

    /// argon2id memory per hash, KiB (at least OWASP's 19456 in production).
    #[arg(long, env = "IDENTITYD_ARGON2_MEMORY_KIB", default_value_t = 19456)]
    pub argon2_memory_kib: u32,

    /// argon2id passes.
    #[arg(long, env = "IDENTITYD_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,

    /// argon2id lanes.
    #[arg(long, env = "IDENTITYD_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,

    /// Password hashes computed at once (default: the number of cores).
    #[arg(long, env = "IDENTITYD_HASHING_CONCURRENCY")]
    pub hashing_concurrency: Option<usize>,

    /// Password hashes allowed to wait; beyond this a login is refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "IDENTITYD_HASHING_QUEUE", default_value_t = 64)]
    pub hashing_queue: usize,

    /// How much lower the password-hashing threads are scheduled than the rest of the service:
    /// `idle` (Linux's SCHED_IDLE: they run only on cores nothing else wants and give a core up
    /// the moment another thread needs it), or a nice increment from 0 to 19 (0 for the same
    /// priority).
    #[arg(long, env = "IDENTITYD_HASHING_NICE", default_value_t = HashingPriority::Idle)]
    pub hashing_nice: HashingPriority,

    /// Most live user access tokens one user may hold.
    #[arg(long, env = "IDENTITYD_MAX_ACCESS_TOKENS_PER_USER", default_value_t = 50)]
    pub max_access_tokens_per_user: u32,

    /// How long ValidateSession may answer a session from memory. Revocations on this instance
    /// take effect at once; those on others as soon as Postgres pushes them (a round trip), or
    /// within the 50 ms revocation poll on SQLite or while the listening connection is down. 0s
    /// turns it off.
    #[arg(long, env = "IDENTITYD_VALIDATION_CACHE_TTL", default_value = "2s", value_parser = parse_duration_or_zero)]
    pub validation_cache_ttl: Duration,

    /// Failed user-access-token logins one client address (IPv6: its /64) may make within the
    /// failure window; then its token logins are refused with RESOURCE_EXHAUSTED, without a
    /// database lookup, until its allowance comes back (a failure's worth every window / this).
    /// 0 turns the limit off.
    #[arg(long, env = "IDENTITYD_TOKEN_LOGIN_FAILURES", default_value_t = 20)]
    pub token_login_failures: u32,

    /// The window of the failed-token-login limit; also the interval over which one address's
    /// repeated failures are written as one audit event with a count.
    #[arg(long, env = "IDENTITYD_TOKEN_LOGIN_FAILURE_WINDOW", default_value = "1m", value_parser = parse_duration)]
    pub token_login_failure_window: Duration,

    /// Failed password logins (and password changes) one client address (IPv6: its /64) may make
    /// within the failure window; then its password logins are refused with RESOURCE_EXHAUSTED,
    /// before any hashing, until its allowance comes back (one failure every window / this).
    /// 0 turns the limit off.
    #[arg(long, env = "IDENTITYD_PASSWORD_LOGIN_FAILURES", default_value_t = 20)]
    pub password_login_failures: u32,

    /// The window of the failed-password-login limit per client address.
    #[arg(long, env = "IDENTITYD_PASSWORD_LOGIN_FAILURE_WINDOW", default_value = "1m", value_parser = parse_duration)]
    pub password_login_failure_window: Duration,

    /// How often last-use times of sessions and access tokens are written to the database.
    #[arg(long, env = "IDENTITYD_LAST_USE_FLUSH", default_value = "5s", value_parser = parse_duration)]
    pub last_use_flush_interval: Duration,

    /// Longest time a call may take, or less when the call's `grpc-timeout` says so; then the
    /// server ends it (CANCELLED, "Timeout expired", as tonic answers).
    #[arg(long, env = "IDENTITYD_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// After a shutdown signal, how long calls in flight may take to finish; streams (health
    /// watches, reflection) still open then are cut, and the process exits.
    #[arg(long, env = "IDENTITYD_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration_or_zero)]
    pub shutdown_grace: Duration,

    /// Largest request message accepted, in bytes.
    #[arg(long, env = "IDENTITYD_MAX_REQUEST_BYTES", default_value_t = 64 * 1024)]
    pub max_request_bytes: usize,

    /// REST layer: the session cookie's name. Unset: `__Host-identityd_session` when cookies are
    /// Secure (the prefix binds the cookie to this host), `identityd_session` when they are not.
    #[arg(long, env = "IDENTITYD_REST_COOKIE_NAME")]
    pub rest_cookie_name: Option<String>,

    /// REST layer: mark cookies `Secure`, for a service reached over TLS (at a proxy in front of
    /// it); browsers then send them over HTTPS only.
    #[arg(long, env = "IDENTITYD_REST_COOKIE_SECURE", default_value_t = false)]
    pub rest_cookie_secure: bool,

    /// Log format.
    #[arg(long, env = "IDENTITYD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// First start: create this tenant and an administrator, if the database has no tenant.
    #[arg(long, env = "IDENTITYD_BOOTSTRAP_TENANT")]
    pub bootstrap_tenant: Option<String>,

    /// First start: the administrator's user name.
    #[arg(long, env = "IDENTITYD_BOOTSTRAP_USER")]
    pub bootstrap_user: Option<String>,

    /// First start: the administrator's password (read from the environment; avoid the flag).
    #[arg(long, env = "IDENTITYD_BOOTSTRAP_PASSWORD", hide_env_values = true)]
    pub bootstrap_password: Option<SecretString>,
}

impl Config {
    /// The configuration a test or an embedding program starts from: the defaults, a database URL,
    /// and an OS-chosen port on loopback. No `IDENTITYD_*` (or `DATABASE_URL`) variable of the
    /// environment is read, so that what a test runs with does not depend on where it runs.
    pub fn for_database(database_url: &str) -> Self {
        let matches = Self::command_without_environment().get_matches_from([
            "identityd",
            "--database-url",
            database_url,
            "--listen",
            "127.0.0.1:0",
        ]);
        <Self as clap::FromArgMatches>::from_arg_matches(&matches)
            .unwrap_or_else(|e| panic!("the built-in configuration does not parse: {e}"))
    }

    /// The command line of [`Config`] with every argument's environment variable removed.
    fn command_without_environment() -> clap::Command {
        <Self as Args>::augment_args(clap::Command::new("identityd")).mut_args(|arg| arg.env(None))
    }

    /// The TLS settings, when a certificate is configured.
    pub fn tls(&self) -> Option<crate::tls::TlsSettings> {
        Some(crate::tls::TlsSettings {
            certificate: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }

    /// The database URL in force: the one given, or the embedded SQLite file in the data directory.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("identityd.db").display()),
        }
    }

    /// The URL that reaches Postgres itself, for what cannot go through a pooler in transaction
    /// mode (listening, migrations): the listen URL, else the database URL when no such pooler is
    /// configured; `None` on SQLite.
    pub fn direct_database_url(&self) -> anyhow::Result<Option<String>> {
        let Some(url) = self.revocation_listen_url() else {
            return Ok(None);
        };
        if self.database_pooler == DatabasePooler::Transaction && self.database_listen_url.is_none() {
            anyhow::bail!(
                "IDENTITYD_DATABASE_POOLER=transaction needs DATABASE_LISTEN_URL: a connection straight to \
                 Postgres, for listening for revocations and applying migrations"
            );
        }
        Ok(Some(url))
    }

    /// Where to listen for pushed revocations: on Postgres, the listen URL or else the database
    /// URL; `None` on SQLite (one instance; the poll is all it needs).
    pub fn revocation_listen_url(&self) -> Option<String> {
        let database = self.effective_database_url();
        if !(database.starts_with("postgres://") || database.starts_with("postgresql://")) {
            return None;
        }
        Some(match &self.database_listen_url {
            Some(url) => url.expose_secret().to_owned(),
            None => database,
        })
    }

    /// Session-JWT settings, with the key-encryption key configured or the data directory's.
    pub fn jwt(&self) -> anyhow::Result<JwtSettings> {
        let key_encryption_key = match &self.key_encryption_key {
            Some(key) => KeyEncryptionKey::parse(key.expose_secret())?,
            None => KeyEncryptionKey::in_data_dir(&self.data_dir)?,
        };
        Ok(JwtSettings {
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            lifetime: chrono::Duration::from_std(self.jwt_lifetime)?,
            key_signing_period: chrono::Duration::from_std(self.jwt_key_rotation)?,
            key_publish_ahead: chrono::Duration::from_std(self.jwt_key_publish_ahead)?,
            key_encryption_key,
        })
    }

    pub fn hashing(&self) -> HashingSettings {
        let defaults = HashingSettings::default();
        HashingSettings {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
            concurrency: self.hashing_concurrency.unwrap_or(defaults.concurrency),
            queue: self.hashing_queue,
            priority: self.hashing_nice,
        }
    }

    pub fn sessions(&self) -> anyhow::Result<SessionSettings> {
        Ok(SessionSettings {
            lifetime: chrono::Duration::from_std(self.session_lifetime)?,
            idle_timeout: chrono::Duration::from_std(self.session_idle_timeout)?,
            service_account_max_lifetime: chrono::Duration::from_std(self.service_account_session_max_lifetime)?,
            retention: chrono::Duration::from_std(self.session_retention)?,
            sweep_batch: self.session_sweep_batch,
            impersonation_lifetime: chrono::Duration::from_std(self.impersonation_lifetime)?,
            impersonation_idle_timeout: chrono::Duration::from_std(self.impersonation_idle_timeout)?,
        })
    }
}

/// Parses `90s`, `15m`, `12h`, `7d` (or a bare number of seconds), more than zero.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    match parse_duration_or_zero(raw)? {
        Duration::ZERO => Err("a duration must be more than zero".into()),
        duration => Ok(duration),
    }
}

/// As [`parse_duration`], at least five minutes: a signing key must be published long enough
/// before it signs for every instance (they read the keys every minute) to know it.
fn parse_publish_ahead(raw: &str) -> Result<Duration, String> {
    match parse_duration(raw)? {
        d if d < Duration::from_secs(300) => Err("publish keys at least 5m ahead".into()),
        d => Ok(d),
    }
}

/// As [`parse_duration`], for settings where zero turns something off.
pub fn parse_duration_or_zero(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration such as 90s, 15m, 12h or 7d"))?;
    let unit_seconds: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{raw:?} has an unknown unit; use s, m, h or d")),
    };
    let seconds = n
        .checked_mul(unit_seconds)
        .ok_or_else(|| format!("{raw:?} is longer than any duration this setting takes"))?;
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration_or_zero("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(
            parse_duration("18446744073709551615d").is_err(),
            "too long, not an overflow"
        );
    }

    #[test]
    fn a_transaction_pooler_needs_a_direct_url_for_listening_and_migrations() {
        let mut config = Config::for_database("postgres://identityd@pgbouncer:6432/identityd");
        assert_eq!(config.database_pooler, DatabasePooler::None);
        assert_eq!(
            config.direct_database_url().unwrap().as_deref(),
            Some("postgres://identityd@pgbouncer:6432/identityd")
        );
        config.database_pooler = DatabasePooler::Transaction;
        let refused = config.direct_database_url().unwrap_err().to_string();
        assert!(refused.contains("DATABASE_LISTEN_URL"), "{refused}");
        config.database_listen_url = Some("postgres://identityd@postgres:5432/identityd".into());
        assert_eq!(
            config.direct_database_url().unwrap().as_deref(),
            Some("postgres://identityd@postgres:5432/identityd")
        );
        // SQLite has nothing to listen on and no pooler.
        assert_eq!(
            Config::for_database("sqlite::memory:").direct_database_url().unwrap(),
            None
        );
    }

    #[test]
    fn the_configuration_for_a_database_reads_no_environment() {
        let command = Config::command_without_environment();
        let reading: Vec<_> = command
            .get_arguments()
            .filter(|arg| arg.get_env().is_some())
            .map(|arg| arg.get_id().to_string())
            .collect();
        assert!(
            reading.is_empty(),
            "arguments still reading the environment: {reading:?}"
        );
        // The real command line does read it: the test above would pass vacuously otherwise.
        let real = <Config as Args>::augment_args(clap::Command::new("identityd"));
        assert!(real.get_arguments().any(|arg| arg.get_env().is_some()));
    }
}
