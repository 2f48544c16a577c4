//! How times are stored: `timestamptz` on Postgres, integer microseconds since the Unix epoch on
//! SQLite (which has no time type; integers compare and sort exactly as Postgres's times do).
//! Statements bind [`StoredTime`] and rows decode through it, so one SQL text serves both.

use chrono::{DateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Decode, Encode, Postgres, Sqlite, Type, ValueRef};

/// A time as a column holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredTime(pub DateTime<Utc>);

/// A nullable time column: decodes SQL NULL as `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredOptionalTime(pub Option<DateTime<Utc>>);

impl From<StoredTime> for DateTime<Utc> {
    fn from(t: StoredTime) -> Self {
        t.0
    }
}

impl From<StoredOptionalTime> for Option<DateTime<Utc>> {
    fn from(t: StoredOptionalTime) -> Self {
        t.0
    }
}

impl Type<Postgres> for StoredTime {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for StoredTime {
    fn encode_by_ref(&self, buf: &mut sqlx::postgres::PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for StoredTime {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<Postgres>>::decode(value).map(Self)
    }
}

impl Type<Sqlite> for StoredTime {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for StoredTime {
    fn encode_by_ref(&self, buf: &mut sqlx::sqlite::SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Sqlite>>::encode_by_ref(&self.0.timestamp_micros(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for StoredTime {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let micros = <i64 as Decode<Sqlite>>::decode(value)?;
        DateTime::from_timestamp_micros(micros)
            .map(Self)
            .ok_or_else(|| format!("stored time {micros} is out of range").into())
    }
}

impl<DB: sqlx::Database> Type<DB> for StoredOptionalTime
where
    StoredTime: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        StoredTime::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        StoredTime::compatible(ty)
    }
}

impl<'r, DB: sqlx::Database> Decode<'r, DB> for StoredOptionalTime
where
    StoredTime: Decode<'r, DB>,
{
    fn decode(value: DB::ValueRef<'r>) -> Result<Self, BoxDynError> {
        if value.is_null() {
            Ok(Self(None))
        } else {
            StoredTime::decode(value).map(|t| Self(Some(t.0)))
        }
    }
}

/// Binds an optional time.
pub fn stored(t: Option<DateTime<Utc>>) -> Option<StoredTime> {
    t.map(StoredTime)
}
