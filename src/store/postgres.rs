//! The production database: Postgres. Many writers run at once, so the transactions whose
//! decisions depend on other rows take the locks they need; batches of last-use times go in one
//! statement through `UNNEST`.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres};
use uuid::Uuid;

use super::dialect::{Arg, Dialect, LastUseOf, Lock};
use super::{SqlStore, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections idle at least this long are pinged before use (see [`PostgresStore::connect_lazy`]).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The key of the advisory lock that serialises changes to who holds a role.
const ROLE_HOLDERS_LOCK: i64 = 0x6964_5f72_6f6c_6573; // "id_roles"

/// The Postgres-backed store.
pub type PostgresStore = SqlStore<Postgres>;

#[async_trait]
impl Dialect for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";

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

    async fn record_last_use(writer: &PgPool, of: LastUseOf, uses: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()> {
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
        sqlx::query(sql).bind(ids).bind(times).execute(writer).await?;
        Ok(())
    }
}

impl PostgresStore {
    /// Connects lazily: the pool opens connections on first use, so the service can start (and
    /// report NOT_SERVING) while the database is still coming up.
    pub fn connect_lazy(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url.parse().context("the database URL is not a valid postgres:// URL")?;
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
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
            file: None,
        })
    }

    /// Applies the migrations in `migrations/postgres/` that have not run yet.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.writer).await.context("applying Postgres migrations")
    }
}
