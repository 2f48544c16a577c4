//! Where a statement outside a write transaction runs, and how.
//!
//! Straight to Postgres (or SQLite), a statement runs on a pool connection as it is. Behind a
//! pooler that lends server connections one transaction at a time (pgbouncer's transaction mode),
//! that is not safe: sqlx sends a statement with parameters as two exchanges — parse and describe,
//! then bind and execute, each ending in a Sync — and between them, outside a transaction, the
//! pooler may hand the client's next exchange to another server, one that never saw the parse.
//! So there every such statement runs in a transaction of its own, which keeps one server for all
//! its messages, opened by the store's begin statement (see [`super::postgres`] for what that
//! statement does about prepared statements other clients left on the server).

use std::future::Future;

use sqlx::query::Query;
use sqlx::{Executor, Pool};

use super::StoreResult;
use super::dialect::Dialect;
use super::held_connections::HeldConnections;

/// A pool, the statement that opens a transaction on it, and whether each statement runs in a
/// transaction of its own.
pub struct On<'a, DB: sqlx::Database> {
    pub(super) pool: &'a Pool<DB>,
    /// Connections the reads on `pool` keep between statements, if they keep any.
    pub(super) held: Option<&'a HeldConnections<DB>>,
    pub(super) begin: &'static str,
    pub(super) own_transaction: bool,
}

impl<DB: sqlx::Database> Clone for On<'_, DB> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<DB: sqlx::Database> Copy for On<'_, DB> {}

/// Runs a query [`On`] a pool: `query.fetch_all_on(self.reading())` where the statement alone
/// would be `query.fetch_all(&self.reader)`.
pub trait RunOn<DB: Dialect>: Sized {
    fn fetch_optional_on(self, on: On<'_, DB>) -> impl Future<Output = StoreResult<Option<DB::Row>>> + Send;
    fn fetch_all_on(self, on: On<'_, DB>) -> impl Future<Output = StoreResult<Vec<DB::Row>>> + Send;
    fn execute_on(self, on: On<'_, DB>) -> impl Future<Output = StoreResult<DB::QueryResult>> + Send;
}

impl<'q, DB: Dialect> RunOn<DB> for Query<'q, DB, DB::Arguments>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    async fn fetch_optional_on(self, on: On<'_, DB>) -> StoreResult<Option<DB::Row>> {
        timed(async {
            if let (false, Some(held)) = (on.own_transaction, on.held) {
                let mut connection = held.take(on.pool).await?;
                let row = self.fetch_optional(&mut *connection).await?;
                held.keep(connection);
                return Ok(row);
            }
            if !on.own_transaction {
                return Ok(self.fetch_optional(on.pool).await?);
            }
            let mut tx = on.pool.begin_with(on.begin).await?;
            let row = self.fetch_optional(&mut *tx).await?;
            tx.commit().await?;
            Ok(row)
        })
        .await
    }

    async fn fetch_all_on(self, on: On<'_, DB>) -> StoreResult<Vec<DB::Row>> {
        timed(async {
            if let (false, Some(held)) = (on.own_transaction, on.held) {
                let mut connection = held.take(on.pool).await?;
                let rows = self.fetch_all(&mut *connection).await?;
                held.keep(connection);
                return Ok(rows);
            }
            if !on.own_transaction {
                return Ok(self.fetch_all(on.pool).await?);
            }
            let mut tx = on.pool.begin_with(on.begin).await?;
            let rows = self.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            Ok(rows)
        })
        .await
    }

    async fn execute_on(self, on: On<'_, DB>) -> StoreResult<DB::QueryResult> {
        timed(async {
            if !on.own_transaction {
                return Ok(self.execute(on.pool).await?);
            }
            let mut tx = on.pool.begin_with(on.begin).await?;
            let result = self.execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(result)
        })
        .await
    }
}

/// Runs a statement and records how long it took (`identityd_db_statement_duration_seconds`),
/// whether it succeeded or not.
async fn timed<T>(statement: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
    let started = std::time::Instant::now();
    let result = statement.await;
    crate::telemetry::metrics::db_statement(started.elapsed());
    result
}
