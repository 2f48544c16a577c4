/// What a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique index refused the row; `field` names the request field that holds the duplicate.
    #[error("unique violation on {field}")]
    UniqueViolation { field: &'static str },
    /// The database could not be reached (connection refused, pool timed out, I/O).
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
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
                Self::Unavailable(e.into())
            }
            _ => Self::Other(e.into()),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::from_sqlx(e, "unknown")
    }
}
