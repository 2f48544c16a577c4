//! What differs between the SQL databases the store runs on — and nothing else. Every statement
//! is written once in [`super::sql`]; a database brings how its write transactions begin and
//! lock, how it writes a batch of last-use times, and the value types it binds and reads.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::query::Query;
use sqlx::{Database, Encode, FromRow, IntoArguments, Pool, Type};
use uuid::Uuid;

use super::StoreResult;
use super::records::{
    AccessTokenLookup, AccessTokenRecord, IdentityProviderRecord, ServiceAccountRecord, SessionLookup, SessionRecord,
    SigningKeyRecord, SsoAttemptRecord, TenantRecord, UserRecord, UserSigningIn,
};
use super::statement_target::On;
use super::time::StoredTime;
use crate::domain::AuditEvent;

/// A lock a write transaction takes before it reads what its change depends on. SQLite has one
/// writer at a time, so it needs none of them; Postgres serialises exactly the writers that could
/// otherwise interleave.
#[derive(Debug, Clone, Copy)]
pub enum Lock {
    /// Creating the first tenant: only one concurrent start may see an empty database.
    FirstTenant,
    /// Counting a user's live tokens before adding one.
    User(Uuid),
    /// Changes that could leave no enabled holder of a role (the last system administrator).
    RoleHolders,
}

/// Which last-use times a batch records.
#[derive(Debug, Clone, Copy)]
pub enum LastUseOf {
    Sessions,
    AccessTokens,
}

/// A database the store can run on. The supertraits list every value type the statements bind
/// ([`Binds`]) and every row type they read ([`Reads`]); both are implemented for any database
/// whose sqlx driver encodes or decodes that type.
#[async_trait]
pub trait Dialect:
    Database<Arguments: IntoArguments<Self>>
    + for<'a> Binds<'a, Uuid>
    + for<'a> Binds<'a, Option<Uuid>>
    + for<'a> Binds<'a, &'a str>
    + for<'a> Binds<'a, Option<&'a str>>
    + for<'a> Binds<'a, i32>
    + for<'a> Binds<'a, Option<i32>>
    + for<'a> Binds<'a, i64>
    + for<'a> Binds<'a, bool>
    + for<'a> Binds<'a, Option<bool>>
    + for<'a> Binds<'a, &'a [u8]>
    + for<'a> Binds<'a, Option<&'a [u8]>>
    + for<'a> Binds<'a, StoredTime>
    + for<'a> Binds<'a, Option<StoredTime>>
    + Reads<TenantRecord>
    + Reads<UserRecord>
    + Reads<UserSigningIn>
    + Reads<SessionRecord>
    + Reads<SessionLookup>
    + Reads<AccessTokenRecord>
    + Reads<AccessTokenLookup>
    + Reads<ServiceAccountRecord>
    + Reads<SigningKeyRecord>
    + Reads<IdentityProviderRecord>
    + Reads<SsoAttemptRecord>
    + Reads<(Vec<u8>,)>
    + Reads<AuditEvent>
    + Reads<(i64,)>
    + Reads<(i32,)>
    + Reads<(Uuid,)>
    + Reads<(Uuid, String, String)>
{
    /// The statement that opens a write transaction (straight to the database; see
    /// [`super::SqlStore`]'s `begin` for a pooler).
    const BEGIN_WRITE: &'static str;

    /// Whether one statement can make several writes (`WITH … AS (INSERT …) INSERT …`), so that
    /// a write and its audit event need no transaction around two statements. Postgres can;
    /// SQLite's `WITH` holds only `SELECT`s.
    const WRITES_IN_ONE_STATEMENT: bool;

    /// Deletes at most `$2` sessions that expired or ended before `$1`. The rows are chosen and
    /// deleted in one statement; on Postgres, rows another instance's sweep is deleting at that
    /// moment are skipped rather than waited for (two sweeps locking the same rows in different
    /// orders could deadlock). SQLite has one writer at a time and needs no such clause.
    const DELETE_OLD_SESSIONS: &'static str;

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Takes `lock` in the write transaction on `conn`.
    async fn lock(conn: &mut Self::Connection, lock: Lock) -> StoreResult<()>;

    /// Keeps measuring how far each standby lags behind `primary`, marking it usable or not; never
    /// returns while there are standbys.
    async fn watch_standbys(primary: &Pool<Self>, standbys: &super::standbys::Standbys<Self>);

    /// Writes a non-empty batch of last-use times, each only if newer than the stored one.
    async fn record_last_use(writer: On<'_, Self>, of: LastUseOf, uses: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()>;
}

/// A database that can bind a `T` as a statement parameter.
pub trait Binds<'t, T>: Database {
    fn bind_value<'q>(query: Query<'q, Self, Self::Arguments>, value: T) -> Query<'q, Self, Self::Arguments>;
}

impl<'t, DB: Database, T: Encode<'t, DB> + Type<DB>> Binds<'t, T> for DB {
    fn bind_value<'q>(query: Query<'q, Self, Self::Arguments>, value: T) -> Query<'q, Self, Self::Arguments> {
        query.bind(value)
    }
}

/// A database whose rows can be read as a `T`.
pub trait Reads<T>: Database {
    fn read(row: &Self::Row) -> sqlx::Result<T>;
}

impl<DB: Database, T: for<'r> FromRow<'r, DB::Row>> Reads<T> for DB {
    fn read(row: &Self::Row) -> sqlx::Result<T> {
        T::from_row(row)
    }
}

/// `query.arg(value)`: binds through [`Binds`], so that generic code needs no bound per type.
pub trait Arg<DB: Database> {
    fn arg<'t, T>(self, value: T) -> Self
    where
        DB: Binds<'t, T>;
}

impl<'q, DB: Database> Arg<DB> for Query<'q, DB, DB::Arguments> {
    fn arg<'t, T>(self, value: T) -> Self
    where
        DB: Binds<'t, T>,
    {
        DB::bind_value(self, value)
    }
}
