//! The production database: Postgres. Many writers run at once, so the transactions whose
//! decisions depend on other rows take the locks they need; batches of last-use times go in one
//! statement through `UNNEST`.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Row};
use uuid::Uuid;

use super::dialect::{Arg, Dialect, LastUseOf, Lock};
use super::held_connections::HeldConnections;
use super::standbys::{CHECK_EVERY, LagProbe, Standbys, parse_lsn};
use super::statement_target::{On, RunOn};
use super::{SqlStore, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections idle at least this long are pinged before use (see [`PostgresStore::connect_lazy`]).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The key of the advisory lock that serialises changes to who holds a role.
const ROLE_HOLDERS_LOCK: i64 = 0x6964_5f72_6f6c_6573; // "id_roles"

/// The statement that opens every transaction behind a pooler in transaction mode. The server
/// connection the pooler lends may hold statements another client prepared there (sqlx names
/// them `sqlx_s_1`, `sqlx_s_2`, … on every connection alike): they go first, in the same message,
/// so that no name this client prepares clashes with one already there.
pub const BEGIN_BEHIND_POOLER: &str = "DEALLOCATE ALL; BEGIN";

/// The Postgres-backed store.
pub type PostgresStore = SqlStore<Postgres>;

#[async_trait]
impl Dialect for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const WRITES_IN_ONE_STATEMENT: bool = true;

    const DELETE_OLD_SESSIONS: &'static str = "DELETE FROM sessions WHERE session_id IN (SELECT session_id FROM sessions \
         WHERE expire_time < $1 OR end_time < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)";

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn lock(conn: &mut PgConnection, lock: Lock) -> StoreResult<()> {
        let query = match lock {
            // Only one of several concurrent first starts may see an empty table.
            Lock::FirstTenant => sqlx::query("LOCK TABLE tenants IN SHARE ROW EXCLUSIVE MODE"),
            Lock::User(user_id) => sqlx::query("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE").arg(user_id),
            // Two administrators disabling each other at once must not both see the other enabled.
            Lock::RoleHolders => sqlx::query("SELECT pg_advisory_xact_lock($1)").arg(ROLE_HOLDERS_LOCK),
        };
        query.execute(conn).await?;
        Ok(())
    }

    async fn watch_standbys(primary: &PgPool, standbys: &Standbys<Postgres>) {
        if standbys.is_empty() {
            return;
        }
        let mut probe = LagProbe::default();
        let keep = standbys.max_lag() * 2 + CHECK_EVERY * 4;
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let sampled = std::time::Instant::now();
            // The simple protocol: one message, safe through a pooler in transaction mode.
            let primary_position = sqlx::raw_sql("SELECT pg_current_wal_lsn()::text")
                .fetch_one(primary)
                .await
                .and_then(|row| row.try_get::<String, _>(0));
            match primary_position.ok().as_deref().and_then(parse_lsn) {
                Some(position) => probe.primary_at(sampled, position, keep),
                // The primary does not answer: nothing can be measured, and so nothing is read
                // from a standby either.
                None => {
                    for standby in standbys.all() {
                        standbys.set_lag(standby, None);
                    }
                    continue;
                }
            }
            for standby in standbys.all() {
                // NULL on a server that is not in recovery: not a standby, never read.
                let replayed = sqlx::raw_sql("SELECT pg_last_wal_replay_lsn()::text")
                    .fetch_one(&standby.pool)
                    .await
                    .and_then(|row| row.try_get::<Option<String>, _>(0));
                let lag = match replayed {
                    Ok(Some(text)) => parse_lsn(&text).and_then(|r| probe.lag(r, std::time::Instant::now())),
                    Ok(None) | Err(_) => None,
                };
                if standbys.set_lag(standby, lag) {
                    match lag.filter(|lag| *lag <= standbys.max_lag()) {
                        Some(lag) => tracing::info!(standby = %standby.name, ?lag, "reading from the standby"),
                        None => tracing::warn!(standby = %standby.name, ?lag, max_lag = ?standbys.max_lag(),
                            "the standby is too far behind or unreachable; reading the primary instead"),
                    }
                }
            }
        }
    }

    async fn record_last_use(
        writer: On<'_, Postgres>,
        of: LastUseOf,
        uses: &[(Uuid, DateTime<Utc>)],
    ) -> StoreResult<()> {
        let sql = match of {
            LastUseOf::Sessions => {
                "UPDATE sessions s SET last_use_time = u.time \
                 FROM UNNEST($1::uuid[], $2::timestamptz[]) AS u(id, time) \
                 WHERE s.session_id = u.id AND s.last_use_time < u.time"
            }
            LastUseOf::AccessTokens => {
                "UPDATE user_access_tokens t SET last_use_time = u.time \
                 FROM UNNEST($1::uuid[], $2::timestamptz[]) AS u(id, time) \
                 WHERE t.token_id = u.id AND (t.last_use_time IS NULL OR t.last_use_time < u.time)"
            }
        };
        let (ids, times): (Vec<Uuid>, Vec<DateTime<Utc>>) = uses.iter().copied().unzip();
        sqlx::query(sql).bind(ids).bind(times).execute_on(writer).await?;
        Ok(())
    }
}

impl PostgresStore {
    /// Connects lazily: the pool opens connections on first use, so the service can start (and
    /// report NOT_SERVING) while the database is still coming up.
    pub fn connect_lazy(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        Self::connect_lazy_with_standbys(url, &[], Duration::ZERO, max_connections, false, Duration::ZERO)
    }

    /// [`Self::connect_lazy`], with hot standbys at `read_urls` for the hot reads, each read only
    /// while at most `max_lag` behind (see [`super::standbys`]). With `transaction_pooler`, every
    /// URL may lead to a pooler that lends server connections by the transaction (pgbouncer's
    /// `pool_mode = transaction`): every statement then runs in a transaction that begins with
    /// [`BEGIN_BEHIND_POOLER`], and no statement is kept prepared between transactions. Directly
    /// connected, every statement is cancelled after `statement_timeout` (none with zero), so that
    /// no slow query holds a connection of the pool for long; the call then answers UNAVAILABLE.
    /// Behind a pooler, which refuses the startup parameter that carries it, the timeout is the
    /// database role's (`ALTER ROLE … SET statement_timeout`).
    pub fn connect_lazy_with_standbys(
        url: &str,
        read_urls: &[String],
        max_lag: Duration,
        max_connections: u32,
        transaction_pooler: bool,
        statement_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let pool =
            Self::lazy_pool(url, max_connections, transaction_pooler, statement_timeout).context("the database URL")?;
        let mut standbys = Vec::new();
        for read_url in read_urls {
            let options: PgConnectOptions = read_url
                .parse()
                .context("a database read URL is not a valid postgres:// URL")?;
            let name = format!("{}:{}", options.get_host(), options.get_port());
            standbys.push((
                Self::lazy_pool(read_url, max_connections, transaction_pooler, statement_timeout)?,
                name,
            ));
        }
        let held_readers = std::sync::Arc::new(HeldConnections::for_pool(&pool));
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
            held_readers,
            file: None,
            standbys: std::sync::Arc::new(Standbys::new(standbys, max_lag)),
            begin: if transaction_pooler {
                BEGIN_BEHIND_POOLER
            } else {
                Postgres::BEGIN_WRITE
            },
            lone_statements_in_transactions: transaction_pooler,
            session_reads: None,
        })
    }

    fn lazy_pool(
        url: &str,
        max_connections: u32,
        transaction_pooler: bool,
        statement_timeout: Duration,
    ) -> anyhow::Result<PgPool> {
        let mut options: PgConnectOptions = url.parse().context("not a valid postgres:// URL")?;
        if transaction_pooler {
            // A statement prepared on one server connection is gone, or another client's, by the
            // next transaction: sqlx must not keep any. And a startup parameter pgbouncer does not
            // know would refuse the connection (identityd binds no floating-point values).
            options = options.statement_cache_capacity(0).extra_float_digits(None);
        } else if !statement_timeout.is_zero() {
            // Set at connect (a startup parameter), so that it holds for every statement.
            options = options.options([("statement_timeout", format!("{}ms", statement_timeout.as_millis()))]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // sqlx pings a connection before every use by default, which doubled the round trips
            // of the hot paths. Only connections idle for a while are checked: under load a
            // connection is reused within microseconds, while one that outlived a database restart
            // has been idle for seconds and is replaced here rather than failing a call.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options);
        Ok(pool)
    }

    /// Applies the migrations in `migrations/postgres/` that have not run yet.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.writer).await.context("applying Postgres migrations")
    }

    /// [`Self::migrate`] over one connection to `direct_url`, which must reach Postgres itself:
    /// the migrator holds a session-level advisory lock and prepares its statements, neither of
    /// which survives a pooler in transaction mode.
    pub async fn migrate_through(direct_url: &str) -> anyhow::Result<()> {
        let direct = PgPoolOptions::new()
            .max_connections(1)
            .connect(direct_url)
            .await
            .context("connecting to Postgres directly to apply migrations")?;
        let applied = MIGRATOR.run(&direct).await.context("applying Postgres migrations");
        direct.close().await;
        applied
    }
}
