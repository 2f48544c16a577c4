//! The embedded database: SQLite, compiled in (no system library).
//!
//! SQLite takes one writer at a time. Rather than let concurrent requests collide on the write
//! lock, every write goes through a pool of exactly one connection, in `BEGIN IMMEDIATE`
//! transactions (so that a second process waits on the busy timeout instead of failing midway);
//! reads use a pool of read-only connections that WAL lets run beside the writer. With one
//! writer, no transaction needs a lock of its own.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::dialect::{Arg, Dialect, LastUseOf, Lock};
use super::held_connections::HeldConnections;
use super::sqlite_session_reads::SqliteSessionReads;
use super::statement_target::On;
use super::time::StoredTime;
use super::{SqlStore, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite-backed store.
pub type SqliteStore = SqlStore<Sqlite>;

#[async_trait]
impl Dialect for Sqlite {
    // Takes the write lock at once, so that a transaction never fails half way for want of it.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const WRITES_IN_ONE_STATEMENT: bool = false;

    const DELETE_OLD_SESSIONS: &'static str = "DELETE FROM sessions WHERE session_id IN (SELECT session_id FROM sessions \
         WHERE expire_time < $1 OR end_time < $1 LIMIT $2)";

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn lock(_: &mut SqliteConnection, _: Lock) -> StoreResult<()> {
        Ok(())
    }

    /// One instance over one file: there are no standbys to watch.
    async fn watch_standbys(_: &SqlitePool, _: &super::standbys::Standbys<Sqlite>) {}

    async fn record_last_use(writer: On<'_, Sqlite>, of: LastUseOf, uses: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()> {
        let sql = match of {
            LastUseOf::Sessions => {
                "UPDATE sessions SET last_use_time = $2 WHERE session_id = $1 AND last_use_time < $2"
            }
            LastUseOf::AccessTokens => {
                "UPDATE user_access_tokens SET last_use_time = $2 \
                 WHERE token_id = $1 AND (last_use_time IS NULL OR last_use_time < $2)"
            }
        };
        let mut tx = writer.pool.begin_with(writer.begin).await?;
        for (id, at) in uses {
            sqlx::query(sql).arg(*id).arg(StoredTime(*at)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database a `sqlite://PATH` or `sqlite::memory:` URL names.
    /// A connection waits up to `busy_timeout` for another process's write lock before giving up.
    pub async fn open(url: &str, max_readers: u32, busy_timeout: Duration) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| "the database URL is not a valid sqlite:// URL")?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(busy_timeout);
        if url.contains(":memory:") || url.contains("mode=memory") {
            // An in-memory database lives in its one connection: keep that connection forever and
            // let reads and writes share it.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .context("opening the in-memory SQLite database")?;
            return Ok(Self {
                held_readers: std::sync::Arc::new(HeldConnections::for_pool(&pool)),
                writer: pool.clone(),
                reader: pool,
                standbys: std::sync::Arc::new(super::standbys::Standbys::none()),
                file: None,
                begin: Sqlite::BEGIN_WRITE,
                lone_statements_in_transactions: false,
                session_reads: None,
            });
        }
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        // An embedded database's connections do not die while idle, so they are not pinged before
        // each use (each ping is one more hand-off to the connection's worker thread).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .before_acquire(|conn, _| Box::pin(std::future::ready(Ok(!still_in_a_transaction(conn)))))
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening SQLite database {}", options.get_filename().display()))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(max_readers.max(1))
            .test_before_acquire(false)
            .connect_with(options.clone().read_only(true))
            .await
            .context("opening SQLite readers")?;
        let file = DatabaseFile::opened(options.get_filename())?;
        Ok(Self {
            held_readers: std::sync::Arc::new(HeldConnections::for_pool(&reader)),
            writer,
            reader,
            standbys: std::sync::Arc::new(super::standbys::Standbys::none()),
            file: Some(file),
            begin: Sqlite::BEGIN_WRITE,
            lone_statements_in_transactions: false,
            session_reads: None,
        })
    }

    /// Applies the migrations in `migrations/sqlite/` that have not run yet; then, for a database
    /// file, opens the connections that read sessions on the calling thread (they check the
    /// schema they read).
    pub async fn migrate(&mut self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.writer).await.context("applying SQLite migrations")?;
        if let Some(file) = &self.file {
            let max = self.reader.options().get_max_connections() as usize;
            let reads = SqliteSessionReads::open(file.path(), max).context("opening SQLite session readers")?;
            self.session_reads = Some(std::sync::Arc::new(reads));
        }
        Ok(())
    }
}

/// The file a SQLite database was opened from. Open connections keep writing to the file they
/// opened even after it is deleted or replaced, so such a database would silently lose every
/// later write; [`Self::check`] notices, and the service then reports itself not serving.
#[derive(Debug, Clone)]
pub struct DatabaseFile {
    path: PathBuf,
    /// The device and inode opened, where the platform has them.
    identity: Option<(u64, u64)>,
}

impl DatabaseFile {
    fn opened(path: &Path) -> anyhow::Result<Self> {
        let metadata = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            identity: identity(&metadata),
        })
    }

    /// Where the database file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fails when the file is gone, replaced by another, or no longer writable.
    pub fn check(&self) -> StoreResult<()> {
        let unavailable = |why: &str| {
            Err(StoreError::Unavailable(anyhow::anyhow!(
                "the database file {} {why}",
                self.path.display()
            )))
        };
        let Ok(metadata) = std::fs::metadata(&self.path) else {
            return unavailable("is gone");
        };
        if identity(&metadata) != self.identity {
            return unavailable("was replaced by another file");
        }
        if metadata.permissions().readonly() {
            return unavailable("is not writable");
        }
        Ok(())
    }
}

#[cfg(unix)]
fn identity(metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// Whether a connection back in the pool still counts itself inside a transaction. SQLite rolls a
/// transaction back by itself on some errors (a full disk, an I/O error); the `ROLLBACK` sent when
/// the failed transaction is dropped then fails, and the connection would start its next
/// transaction with "non-zero transaction depth". Such a connection is closed, not reused.
fn still_in_a_transaction(conn: &sqlx::SqliteConnection) -> bool {
    use sqlx::Connection;
    let stuck = conn.is_in_transaction();
    if stuck {
        tracing::warn!("closing a SQLite connection whose failed transaction SQLite had rolled back itself");
    }
    stuck
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_database_file_gone_replaced_or_read_only_is_noticed() {
        let dir = std::env::temp_dir().join(format!("identityd-file-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("identityd.db");
        std::fs::write(&path, b"data").unwrap();
        let file = DatabaseFile::opened(&path).unwrap();
        assert!(file.check().is_ok());
        let aside = dir.join("aside");
        std::fs::rename(&path, &aside).unwrap();
        assert!(file.check().is_err(), "gone");
        std::fs::copy(&aside, &path).unwrap();
        assert!(file.check().is_err(), "another file under the same name");
        std::fs::rename(&aside, &path).unwrap();
        assert!(file.check().is_ok(), "the same file back");
        let mut permissions = std::fs::metadata(&path).unwrap().permissions();
        permissions.set_readonly(true);
        std::fs::set_permissions(&path, permissions).unwrap();
        assert!(file.check().is_err(), "read-only");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
