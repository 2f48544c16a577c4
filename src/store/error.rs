/// What a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique index refused the row; `field` names the request field that holds the duplicate.
    #[error("unique violation on {field}")]
    UniqueViolation { field: &'static str },
    /// The database cannot serve right now (connection refused, pool timed out, I/O, SQLite busy).
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a bug or a broken database.
    #[error("database error")]
    Other(#[source] anyhow::Error),
}

impl StoreError {
    /// Classifies a sqlx error; a unique violation is reported against `unique_field`.
    pub fn from_sqlx(e: sqlx::Error, unique_field: &'static str) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::UniqueViolation { field: unique_field },
            sqlx::Error::Database(db) if db.code().is_some_and(|c| is_unavailable_sqlstate(&c)) => {
                Self::Unavailable(e.into())
            }
            sqlx::Error::Database(db) if is_sqlite_unavailable(db.as_ref()) => Self::Unavailable(e.into()),
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
                Self::Unavailable(e.into())
            }
            _ => Self::Other(e.into()),
        }
    }
}

/// SQLite result codes (any extended code) that say the database cannot take the statement now,
/// not that the statement is wrong: SQLITE_BUSY (another connection held the write lock for longer
/// than the busy timeout) and SQLITE_LOCKED (a conflicting lock in the same process), which may
/// well succeed when tried again; SQLITE_FULL (the disk is full), SQLITE_READONLY and SQLITE_IOERR
/// (the file cannot be written: a read-only or failing file system) and SQLITE_CANTOPEN, which last
/// until an operator acts. Reads may still be answered meanwhile, so the server keeps serving: the
/// calls that write are told the store is unavailable, as with Postgres's insufficient resources
/// (SQLSTATE class 53, which holds disk_full). SQLITE_CORRUPT is not among them: it is a fault.
fn is_sqlite_unavailable(db: &dyn sqlx::error::DatabaseError) -> bool {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    const SQLITE_READONLY: i32 = 8;
    const SQLITE_IOERR: i32 = 10;
    const SQLITE_FULL: i32 = 13;
    const SQLITE_CANTOPEN: i32 = 14;
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .and_then(|e| sqlx::error::DatabaseError::code(e)?.parse::<i32>().ok())
        .is_some_and(|code| {
            matches!(
                code & 0xff,
                SQLITE_BUSY | SQLITE_LOCKED | SQLITE_READONLY | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN
            )
        })
}

/// SQLSTATEs that mean "the database cannot serve right now", not "this query is wrong":
/// connection exceptions (08), operator intervention such as a shutdown or a terminated backend
/// (57P), insufficient resources (53), a database that does not exist (3D000) or is not
/// accepting connections (55000, raised at connect), and a statement cancelled (57014) — at the
/// statement timeout, by a database too slow or too locked to answer in time.
fn is_unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("57P")
        || code.starts_with("53")
        || code == "3D000"
        || code == "55000"
        || code == "57014"
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::from_sqlx(e, "unknown")
    }
}
