//! A few pool connections the store's reads keep between statements instead of giving them back.
//!
//! sqlx checks every connection that goes back to its pool with a round trip to the database (on
//! Postgres a Sync and its ReadyForQuery; on SQLite a message to the connection's worker thread
//! and back), so that a statement abandoned half way is not lent to the next caller. For a read
//! that ran to its end there is nothing to flush, and on the hot paths that check was one round
//! trip per statement more. A read keeps its connection here when it finishes; the next read takes
//! it back without asking the pool. A read that fails or is cancelled drops its connection, which
//! then goes back to the pool the usual way, check included.
//!
//! The pool counts these connections as in use. A connection kept unused for a while is checked
//! before its next read (as the pool's own `before_acquire` checks one idle in the pool), so that
//! one that outlived a database restart is replaced rather than failing a call.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Database, Pool};

/// Connections kept unused at least this long are checked before they are used again.
const CHECK_IF_KEPT_FOR: Duration = Duration::from_secs(1);

pub struct HeldConnections<DB: Database> {
    kept: Mutex<Vec<(PoolConnection<DB>, Instant)>>,
    /// The most connections kept at once; more concurrent reads take theirs from the pool.
    max_kept: usize,
    /// Set by [`Self::release`]: from then on every connection goes back to its pool.
    released: AtomicBool,
}

impl<DB: Database> HeldConnections<DB> {
    /// Keeps up to one connection per core, and always leaves `pool` at least one it does not
    /// keep (an in-memory SQLite database has one connection, for reads and writes alike).
    pub fn for_pool(pool: &Pool<DB>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let max_connections = pool.options().get_max_connections() as usize;
        Self {
            kept: Mutex::new(Vec::new()),
            max_kept: cores.min(max_connections.saturating_sub(1)),
            released: AtomicBool::new(false),
        }
    }

    /// A kept connection, checked if it was kept unused for a while, or else one from `pool`.
    pub async fn take(&self, pool: &Pool<DB>) -> Result<PoolConnection<DB>, sqlx::Error> {
        let kept = self.lock().pop();
        if let Some((mut connection, since)) = kept
            && (since.elapsed() < CHECK_IF_KEPT_FOR || connection.ping().await.is_ok())
        {
            return Ok(connection);
        }
        // None kept, or a broken one: that is dropped (the pool closes it), and another taken.
        pool.acquire().await
    }

    /// Keeps `connection`, on which the last statement ran to its end, for the next read.
    pub fn keep(&self, connection: PoolConnection<DB>) {
        let mut kept = self.lock();
        if kept.len() < self.max_kept && !self.released.load(Ordering::Relaxed) {
            kept.push((connection, Instant::now()));
        } else {
            drop(kept);
            drop(connection);
        }
    }

    /// Gives every kept connection back to its pool, and keeps none from now on (for when the
    /// pool closes: it waits for every connection it lent).
    pub fn release(&self) {
        let kept = {
            let mut kept = self.lock();
            self.released.store(true, Ordering::Relaxed);
            std::mem::take(&mut *kept)
        };
        drop(kept);
    }

    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(PoolConnection<DB>, Instant)>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Sqlite;
    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    async fn pool_of(max_connections: u32) -> sqlx::SqlitePool {
        SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect("sqlite::memory:")
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_read_takes_back_the_connection_the_last_one_kept() {
        let pool = pool_of(4).await;
        let held = HeldConnections::<Sqlite>::for_pool(&pool);
        let connection = held.take(&pool).await.unwrap();
        held.keep(connection);
        assert_eq!(held.kept(), 1);
        assert_eq!(
            (pool.size(), pool.num_idle()),
            (1, 0),
            "kept out of the pool, not given back"
        );

        let again = held.take(&pool).await.unwrap();
        assert_eq!(held.kept(), 0);
        assert_eq!(pool.size(), 1, "no second connection opened");
        drop(again);
    }

    #[tokio::test]
    async fn a_pool_of_one_connection_keeps_none_so_that_writes_still_get_it() {
        let pool = pool_of(1).await;
        let held = HeldConnections::<Sqlite>::for_pool(&pool);
        let connection = held.take(&pool).await.unwrap();
        held.keep(connection);
        assert_eq!(held.kept(), 0);
        assert!(pool.acquire().await.is_ok(), "the one connection is back in the pool");
    }

    #[tokio::test]
    async fn no_more_than_one_connection_per_core_is_kept() {
        let pool = pool_of(64).await;
        let held = HeldConnections::<Sqlite>::for_pool(&pool);
        let cores = std::thread::available_parallelism().unwrap().get();
        let mut taken = Vec::new();
        for _ in 0..cores + 2 {
            taken.push(held.take(&pool).await.unwrap());
        }
        for connection in taken {
            held.keep(connection);
        }
        assert_eq!(held.kept(), cores);
    }

    #[tokio::test]
    async fn released_connections_let_the_pool_close() {
        let pool = pool_of(4).await;
        let held = HeldConnections::<Sqlite>::for_pool(&pool);
        let connection = held.take(&pool).await.unwrap();
        held.keep(connection);

        held.release();
        assert_eq!(held.kept(), 0);
        // A read that ends after the release gives its connection back too.
        held.keep(pool.acquire().await.unwrap());
        assert_eq!(held.kept(), 0);
        // A pool closes once every connection it lent is back: a kept one would hold it open.
        tokio::time::timeout(Duration::from_secs(10), pool.close())
            .await
            .expect("the pool closes with nothing kept");
        assert_eq!(pool.size(), 0, "every connection closed");
    }
}
