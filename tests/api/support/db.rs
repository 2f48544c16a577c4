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
}
