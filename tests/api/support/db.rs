//! Direct looks into a test database, for the few tests that check what is stored.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, SqliteConnection};
use uuid::Uuid;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Postgres,
    Sqlite,
}

impl StoreKind {
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Postgres => "postgres",
            StoreKind::Sqlite => "sqlite",
        }
    }
}

/// A test's database, reached with its own connection.
#[derive(Debug, Clone)]
pub struct TestDb {
    pub kind: StoreKind,
    pub url: String,
}

impl TestDb {
    async fn pg(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    async fn sqlite(&self) -> SqliteConnection {
        SqliteConnection::connect(&self.url)
            .await
            .expect("open the test database")
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"));
        match self.kind {
            StoreKind::Postgres => sqlx::query_scalar(sql).fetch_one(&mut self.pg().await).await.unwrap(),
            StoreKind::Sqlite => sqlx::query_scalar(sql)
                .fetch_one(&mut self.sqlite().await)
                .await
                .unwrap(),
        }
    }

    /// Every row of a table as one line of text, every column included.
    pub async fn rows_as_text(&self, table: &str) -> Vec<String> {
        match self.kind {
            StoreKind::Postgres => {
                let sql = sqlx::AssertSqlSafe(format!("SELECT t::text FROM {table} t"));
                sqlx::query_scalar(sql).fetch_all(&mut self.pg().await).await.unwrap()
            }
            StoreKind::Sqlite => {
                let mut db = self.sqlite().await;
                let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
                    .bind(table)
                    .fetch_all(&mut db)
                    .await
                    .unwrap();
                let joined = columns
                    .iter()
                    .map(|c| format!("quote({c})"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                let sql = sqlx::AssertSqlSafe(format!("SELECT {joined} FROM {table}"));
                sqlx::query_scalar(sql).fetch_all(&mut db).await.unwrap()
            }
        }
    }

    /// The tables of the schema (not the migration bookkeeping).
    pub async fn tables(&self) -> Vec<String> {
        let tables: Vec<String> = match self.kind {
            StoreKind::Postgres => {
                sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                    .fetch_all(&mut self.pg().await)
                    .await
                    .unwrap()
            }
            StoreKind::Sqlite => sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&mut self.sqlite().await)
                .await
                .unwrap(),
        };
        let tables: Vec<String> = tables
            .into_iter()
            .filter(|t| !t.starts_with("_sqlx") && !t.starts_with("sqlite_"))
            .collect();
        assert!(tables.len() >= 6, "the schema's tables: {tables:?}");
        tables
    }

    /// Makes a Postgres database refuse connections (and drops those open), or accept them again,
    /// to show what a server does when its database goes away.
    pub async fn refuse_connections(&self, postgres_base_url: &str, refuse: bool) {
        assert_eq!(self.kind, StoreKind::Postgres, "only a database server can go away");
        let name = self
            .url
            .rsplit('/')
            .next()
            .unwrap()
            .split('?')
            .next()
            .unwrap()
            .to_owned();
        let mut maintenance = PgConnection::connect(postgres_base_url).await.unwrap();
        let allow = if refuse { "false" } else { "true" };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"
        )))
        .execute(&mut maintenance)
        .await
        .unwrap();
        if refuse {
            sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                .bind(&name)
                .execute(&mut maintenance)
                .await
                .unwrap();
        }
    }

    pub async fn session_token_hash(&self, session_id: Uuid) -> Vec<u8> {
        let sql = "SELECT token_hash FROM sessions WHERE session_id = $1";
        match self.kind {
            StoreKind::Postgres => sqlx::query_scalar(sql)
                .bind(session_id)
                .fetch_one(&mut self.pg().await)
                .await
                .unwrap(),
            StoreKind::Sqlite => sqlx::query_scalar(sql)
                .bind(session_id)
                .fetch_one(&mut self.sqlite().await)
                .await
                .unwrap(),
        }
    }

    /// Every signing key's id and stored private key, as the database holds them.
    pub async fn signing_keys_as_stored(&self) -> Vec<(String, Vec<u8>)> {
        let sql = "SELECT key_id, private_key_sealed FROM signing_keys ORDER BY activate_time";
        match self.kind {
            StoreKind::Postgres => sqlx::query_as(sql).fetch_all(&mut self.pg().await).await.unwrap(),
            StoreKind::Sqlite => sqlx::query_as(sql).fetch_all(&mut self.sqlite().await).await.unwrap(),
        }
    }

    pub async fn session_last_use(&self, session_id: Uuid) -> DateTime<Utc> {
        let sql = "SELECT last_use_time FROM sessions WHERE session_id = $1";
        match self.kind {
            StoreKind::Postgres => sqlx::query_scalar(sql)
                .bind(session_id)
                .fetch_one(&mut self.pg().await)
                .await
                .unwrap(),
            StoreKind::Sqlite => {
                let micros: i64 = sqlx::query_scalar(sql)
                    .bind(session_id)
                    .fetch_one(&mut self.sqlite().await)
                    .await
                    .unwrap();
                DateTime::from_timestamp_micros(micros).unwrap()
            }
        }
    }

    /// Runs a statement of text parameters directly on the database, behind the service's back.
    pub async fn execute(&self, sql: &'static str, params: &[&str]) {
        match self.kind {
            StoreKind::Postgres => {
                let mut query = sqlx::query(sql);
                for p in params {
                    query = query.bind(*p);
                }
                query.execute(&mut self.pg().await).await.unwrap();
            }
            StoreKind::Sqlite => {
                let mut query = sqlx::query(sql);
                for p in params {
                    query = query.bind(*p);
                }
                query.execute(&mut self.sqlite().await).await.unwrap();
            }
        }
    }

    /// Ends a session directly in the database, behind the service's back, at `end_time`. On
    /// Postgres the triggers that push revocations do not fire either (the connection acts as a
    /// replication applier), so no instance hears of it but through the poll.
    pub async fn end_session_behind_the_back(&self, session_id: Uuid, end_time: DateTime<Utc>) {
        let sql = "UPDATE sessions SET end_time = $1 WHERE session_id = $2";
        let updated = match self.kind {
            StoreKind::Postgres => {
                let mut connection = self.pg().await;
                sqlx::query("SET session_replication_role = replica")
                    .execute(&mut connection)
                    .await
                    .unwrap();
                sqlx::query(sql)
                    .bind(end_time)
                    .bind(session_id)
                    .execute(&mut connection)
                    .await
                    .unwrap()
                    .rows_affected()
            }
            StoreKind::Sqlite => sqlx::query(sql)
                .bind(end_time.timestamp_micros())
                .bind(session_id)
                .execute(&mut self.sqlite().await)
                .await
                .unwrap()
                .rows_affected(),
        };
        assert_eq!(updated, 1, "the session exists");
    }

    /// Takes SQLite's write lock on another connection, as a second process writing would, and
    /// holds it until [`HeldLock::release`].
    pub async fn hold_sqlite_write_lock(&self) -> HeldLock {
        assert_eq!(self.kind, StoreKind::Sqlite);
        let mut connection = self.sqlite().await;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut connection).await.unwrap();
        HeldLock::Sqlite(connection)
    }

    /// Locks a Postgres table against every use (reads included) on another connection, until
    /// [`HeldLock::release`].
    pub async fn lock_postgres_table(&self, table: &str) -> HeldLock {
        assert_eq!(self.kind, StoreKind::Postgres);
        let mut connection = self.pg().await;
        sqlx::query("BEGIN").execute(&mut connection).await.unwrap();
        let lock = sqlx::AssertSqlSafe(format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"));
        sqlx::query(lock).execute(&mut connection).await.unwrap();
        HeldLock::Postgres(connection)
    }

    /// Waits until `count` connections of the service wait on a lock in this Postgres database:
    /// proof that the calls behind them have reached the server.
    pub async fn wait_for_lock_waiters(&self, count: i64) {
        assert_eq!(self.kind, StoreKind::Postgres);
        let mut connection = self.pg().await;
        let sql = "SELECT count(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
        let wait = async {
            while sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&mut connection)
                .await
                .unwrap()
                < count
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), wait)
            .await
            .expect("the calls never reached the database");
    }
}

/// A lock a test holds on its database from its own connection.
pub enum HeldLock {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl HeldLock {
    pub async fn release(self) {
        match self {
            HeldLock::Sqlite(mut c) => {
                sqlx::query("ROLLBACK").execute(&mut c).await.unwrap();
            }
            HeldLock::Postgres(mut c) => {
                sqlx::query("ROLLBACK").execute(&mut c).await.unwrap();
            }
        }
    }
}
