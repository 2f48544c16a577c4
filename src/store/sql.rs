//! The store, written once: each statement is one SQL text that Postgres and SQLite both run.
//! Parameters are `$n` on both (Postgres learns their types from the bound values); times bind
//! and decode through [`StoredTime`]; rows decode through `#[derive(sqlx::FromRow)]`. What truly
//! differs lives in the [`Dialect`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::query::Query;
use sqlx::{Database, Executor, Pool, Transaction};
use uuid::Uuid;

use super::dialect::{Arg, Binds, Dialect, LastUseOf, Lock, Reads};
use super::held_connections::HeldConnections;
use super::sqlite::DatabaseFile;
use super::sqlite_session_reads::SqliteSessionReads;
use super::standbys::Standbys;
use super::statement_target::{On, RunOn};
use super::time::{StoredTime, stored};
use super::{
    AccessTokenLookup, AccessTokenRecord, IdentityProviderRecord, PasswordChange, PasswordRehash, ServiceAccountRecord,
    SessionLookup, SessionRecord, SessionsOf, SigningKeyRecord, SsoAttemptRecord, SsoSignIn, Store, StoreError,
    StoreResult, TenantChanges, TenantRecord, TokenChanges, TokenRotation, UserGuard, UserRecord, UserSigningIn,
    UserWrite,
};
use crate::domain::{AuditEvent, AuditFilter, PageRequest, ProfilePatch};
use crate::telemetry::metrics;

/// A [`Store`] over any database with a [`Dialect`].
pub struct SqlStore<DB: Database> {
    /// Where writes go (on SQLite, its one writer connection).
    pub(super) writer: Pool<DB>,
    /// Where reads go (on SQLite, read-only connections beside the writer; on Postgres, the same pool).
    pub(super) reader: Pool<DB>,
    /// The file the database lives in, for a database that is a file: [`Store::ping`] checks it.
    pub(super) file: Option<DatabaseFile>,
    /// Hot standbys the hot reads may use (Postgres with `DATABASE_READ_URL`; none otherwise).
    pub(super) standbys: std::sync::Arc<Standbys<DB>>,
    /// The statement that opens a transaction: the dialect's, or the one for a pooler.
    pub(super) begin: &'static str,
    /// Whether a statement outside a write transaction runs in a transaction of its own (behind
    /// a pooler that lends server connections by the transaction; see [`super::statement_target`]).
    pub(super) lone_statements_in_transactions: bool,
    /// Connections the reads on `reader` keep between statements (see [`super::held_connections`]).
    pub(super) held_readers: std::sync::Arc<HeldConnections<DB>>,
    /// Session lookups read on the calling thread (a SQLite file; none otherwise).
    pub(super) session_reads: Option<std::sync::Arc<SqliteSessionReads>>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            writer: self.writer.clone(),
            reader: self.reader.clone(),
            file: self.file.clone(),
            standbys: self.standbys.clone(),
            begin: self.begin,
            lone_statements_in_transactions: self.lone_statements_in_transactions,
            held_readers: self.held_readers.clone(),
            session_reads: self.session_reads.clone(),
        }
    }
}

/// The columns of a [`SessionRecord`] from [`sessions_with_tokens!`].
macro_rules! session_columns {
    () => {
        "s.session_id, s.token_hash, s.user_id, s.tenant_id AS session_tenant_id, s.kind, \
         s.create_time AS session_create_time, s.expire_time, s.last_use_time, s.end_time, \
         s.impersonator_user_id, s.original_session_id, s.access_token_id, t.name AS access_token_name, \
         s.service_account_id, sa.name AS service_account_name, s.user_agent, s.peer_address, s.device_name, \
         iu.user_name AS impersonator_user_name"
    };
}

/// Sessions `s`, each with the user access token `t` it was opened with, the service account `sa`
/// it acts as and the impersonator `iu` behind it, if any.
macro_rules! sessions_with_tokens {
    () => {
        "sessions s LEFT JOIN user_access_tokens t ON t.token_id = s.access_token_id \
         LEFT JOIN service_accounts sa ON sa.service_account_id = s.service_account_id \
         LEFT JOIN users iu ON iu.user_id = s.impersonator_user_id"
    };
}

/// Selects [`SessionRecord`]s, followed by `$rest`.
macro_rules! select_sessions {
    ($rest:literal) => {
        concat!(
            "SELECT ",
            session_columns!(),
            " FROM ",
            sessions_with_tokens!(),
            " ",
            $rest
        )
    };
}

/// The most token hashes [`Store::lookup_sessions`] reads in one statement.
pub const LOOKUP_BATCH_MAX: usize = 64;

/// A statement of [`Store::lookup_sessions`]: its text and how many hashes it takes.
pub(super) struct LookupStatement {
    pub(super) sql: String,
    pub(super) parameters: usize,
}

/// The statement that reads `count` token hashes (at most [`LOOKUP_BATCH_MAX`]). There is one per
/// power of two, a shorter list padded with a repeated hash, so that a connection prepares at most
/// seven of them rather than one per length.
pub(super) fn lookup_statement(count: usize) -> &'static LookupStatement {
    static STATEMENTS: std::sync::LazyLock<Vec<LookupStatement>> = std::sync::LazyLock::new(|| {
        std::iter::successors(Some(1), |n| (n * 2 <= LOOKUP_BATCH_MAX).then_some(n * 2))
            .map(|parameters| {
                let list: Vec<String> = (1..=parameters).map(|i| format!("${i}")).collect();
                let sql = concat!(
                    "SELECT ",
                    session_columns!(),
                    ", u.*, ut.password_expiry_days, st.name AS tenant_name FROM ",
                    sessions_with_tokens!(),
                    // Outer joins: a service-account session has no user.
                    " LEFT JOIN users u ON u.user_id = s.user_id LEFT JOIN tenants ut ON ut.tenant_id = u.tenant_id \
                     JOIN tenants st ON st.tenant_id = s.tenant_id WHERE s.token_hash IN ("
                );
                LookupStatement {
                    sql: format!("{sql}{})", list.join(", ")),
                    parameters,
                }
            })
            .collect()
    });
    STATEMENTS
        .iter()
        .find(|s| s.parameters >= count)
        .unwrap_or(&STATEMENTS[STATEMENTS.len() - 1])
}

/// `INSERT INTO sessions` with the columns [`SqlStore::bind_session`] binds, before `VALUES`.
macro_rules! insert_session {
    () => {
        "INSERT INTO sessions (session_id, token_hash, user_id, tenant_id, kind, create_time, expire_time, \
         last_use_time, end_time, impersonator_user_id, access_token_id, original_session_id, \
         service_account_id, user_agent, peer_address, device_name)"
    };
}

/// `INSERT INTO audit_events` with the columns [`SqlStore::bind_audit`] binds, before `VALUES`.
macro_rules! insert_audit {
    () => {
        "INSERT INTO audit_events (event_id, time, action, tenant_id, actor_user_id, subject_user_id, \
         session_id, peer_address, details)"
    };
}

/// A new session and its audit event in one statement, where the dialect can
/// ([`Dialect::WRITES_IN_ONE_STATEMENT`]): the session's 16 parameters, then the event's 9.
const INSERT_SESSION_WITH_AUDIT: &str = concat!(
    "WITH opened AS (",
    insert_session!(),
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)) ",
    insert_audit!(),
    " VALUES ($17, $18, $19, $20, $21, $22, $23, $24, $25)"
);

/// An audit event's details as the JSON its row holds.
fn audit_details(a: &AuditEvent) -> StoreResult<String> {
    serde_json::to_string(&a.details).map_err(|e| StoreError::Other(e.into()))
}

/// The names whose keys [`Store::rekey_names`] computes again: how to read each with its id and
/// key, how to write its key, and the request field a clash is reported against.
const KEYED_NAMES: [(&str, &str, &str); 4] = [
    (
        "SELECT tenant_id, name, name_key FROM tenants",
        "UPDATE tenants SET name_key = $2 WHERE tenant_id = $1",
        "tenant.name",
    ),
    (
        "SELECT user_id, user_name, user_name_key FROM users",
        "UPDATE users SET user_name_key = $2 WHERE user_id = $1",
        "user.user_name",
    ),
    (
        "SELECT service_account_id, name, name_key FROM service_accounts",
        "UPDATE service_accounts SET name_key = $2 WHERE service_account_id = $1",
        "name",
    ),
    (
        "SELECT token_id, name, name_key FROM user_access_tokens",
        "UPDATE user_access_tokens SET name_key = $2 WHERE token_id = $1",
        "user_access_token_name",
    ),
];

/// Which sessions a change to a user ends with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    Nothing,
    /// Every open session of the user, with those in which they impersonate someone.
    AllSessions,
    /// The open impersonated sessions the user makes or that act as them: their roles decided
    /// whether those could begin.
    Impersonations,
}

/// Reports a unique violation against the request field that holds the duplicate.
fn unique(field: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, field)
}

impl<DB: Dialect> SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    async fn begin(&self) -> StoreResult<Transaction<'static, DB>> {
        // This instance reads its own writes: not from a standby that may lack them.
        self.standbys.read_primary_for_a_while();
        Ok(self.writer.begin_with(self.begin).await?)
    }

    /// Where a statement outside a transaction on `pool` runs.
    fn on<'a>(&self, pool: &'a Pool<DB>) -> On<'a, DB> {
        On {
            pool,
            held: None,
            begin: self.begin,
            own_transaction: self.lone_statements_in_transactions,
        }
    }

    fn reading(&self) -> On<'_, DB> {
        On {
            held: Some(&self.held_readers),
            ..self.on(&self.reader)
        }
    }

    fn writing(&self) -> On<'_, DB> {
        self.on(&self.writer)
    }

    /// One page of a listing, from a usable standby if there is one (the primary if it fails).
    async fn hot_page<'q>(
        &self,
        query: impl Fn() -> sqlx::query::Query<'q, DB, DB::Arguments>,
    ) -> StoreResult<Vec<DB::Row>>
    where
        DB::Arguments: 'q,
    {
        if let Some(standby) = self.standbys.pick() {
            match query().fetch_all_on(self.on(standby)).await {
                Ok(rows) => return Ok(rows),
                Err(e) => tracing::debug!(error = %e, "a standby failed a read; reading the primary"),
            }
        }
        query().fetch_all_on(self.reading()).await
    }

    fn row<T>(row: DB::Row) -> StoreResult<T>
    where
        DB: Reads<T>,
    {
        Ok(DB::read(&row)?)
    }

    fn optional<T>(row: Option<DB::Row>) -> StoreResult<Option<T>>
    where
        DB: Reads<T>,
    {
        row.map(Self::row).transpose()
    }

    fn all<T>(rows: Vec<DB::Row>) -> StoreResult<Vec<T>>
    where
        DB: Reads<T>,
    {
        rows.into_iter().map(Self::row).collect()
    }

    async fn count(conn: &mut DB::Connection, query: sqlx::query::Query<'_, DB, DB::Arguments>) -> StoreResult<i64> {
        let (count,): (i64,) = Self::row(query.fetch_one(&mut *conn).await?)?;
        Ok(count)
    }

    /// Records `audit` in the transaction and commits it.
    async fn commit(mut tx: Transaction<'static, DB>, audit: &AuditEvent) -> StoreResult<()> {
        Self::insert_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_session_in(conn: &mut DB::Connection, s: &SessionRecord) -> StoreResult<()> {
        Self::bind_session(
            sqlx::query(concat!(
                insert_session!(),
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            )),
            s,
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Binds `s` to the parameters of [`insert_session!`]'s columns, from the first unbound.
    fn bind_session<'q>(query: Query<'q, DB, DB::Arguments>, s: &'q SessionRecord) -> Query<'q, DB, DB::Arguments> {
        query
            .arg(s.session_id)
            .arg(s.token_hash.as_slice())
            .arg(s.user_id)
            .arg(s.tenant_id)
            .arg(s.kind.as_str())
            .arg(StoredTime(s.create_time))
            .arg(StoredTime(s.expire_time))
            .arg(StoredTime(s.last_use_time))
            .arg(stored(s.end_time))
            .arg(s.impersonator_user_id)
            .arg(s.access_token_id)
            .arg(s.original_session_id)
            .arg(s.service_account_id)
            .arg(s.details.user_agent.as_deref())
            .arg(s.details.peer_address.as_deref())
            .arg(s.details.device_name.as_deref())
    }

    /// Runs `change` in a transaction of its own with `audit`: true when it changed a row; false,
    /// recording nothing, when it matched none.
    async fn change_one(
        &self,
        change: sqlx::query::Query<'_, DB, DB::Arguments>,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        if DB::rows_affected(&change.execute(&mut *tx).await?) == 0 {
            return Ok(false);
        }
        Self::commit(tx, audit).await?;
        Ok(true)
    }

    /// Records every one of `audits` in the transaction and commits it.
    async fn commit_all(mut tx: Transaction<'static, DB>, audits: &[AuditEvent]) -> StoreResult<()> {
        for audit in audits {
            Self::insert_audit_in(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn insert_audit_in(conn: &mut DB::Connection, a: &AuditEvent) -> StoreResult<()> {
        let details = audit_details(a)?;
        Self::bind_audit(
            sqlx::query(concat!(insert_audit!(), " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")),
            a,
            &details,
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Binds `a`, with its `details` as JSON, to the parameters of [`insert_audit!`]'s columns,
    /// from the first unbound.
    fn bind_audit<'q>(
        query: Query<'q, DB, DB::Arguments>,
        a: &'q AuditEvent,
        details: &'q str,
    ) -> Query<'q, DB, DB::Arguments> {
        query
            .arg(a.event_id)
            .arg(StoredTime(a.time))
            .arg(a.action.as_str())
            .arg(a.tenant_id)
            .arg(a.actor_user_id)
            .arg(a.subject_user_id)
            .arg(a.session_id)
            .arg(a.peer_address.as_deref())
            .arg(details)
    }

    async fn insert_tenant_in(conn: &mut DB::Connection, t: &TenantRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO tenants (tenant_id, name, name_key, password_expiry_days, max_access_token_days, \
             create_time, update_time, min_password_length, lockout_failures, lockout_seconds, \
             max_lockout_seconds, allow_customer_support) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .arg(t.tenant_id)
        .arg(t.name.as_str())
        .arg(t.name_key.as_str())
        .arg(t.password_expiry_days)
        .arg(t.max_access_token_days)
        .arg(StoredTime(t.create_time))
        .arg(StoredTime(t.update_time))
        .arg(t.min_password_length)
        .arg(t.lockout_failures)
        .arg(t.lockout_seconds)
        .arg(t.max_lockout_seconds)
        .arg(t.allow_customer_support)
        .execute(&mut *conn)
        .await
        .map_err(unique("tenant.name"))?;
        Self::replace_served_in(conn, t.tenant_id, &t.served_tenant_ids).await
    }

    async fn replace_served_in(conn: &mut DB::Connection, tenant_id: Uuid, served: &[Uuid]) -> StoreResult<()> {
        sqlx::query("DELETE FROM served_tenants WHERE support_tenant_id = $1")
            .arg(tenant_id)
            .execute(&mut *conn)
            .await?;
        for client in served {
            sqlx::query("INSERT INTO served_tenants (support_tenant_id, client_tenant_id) VALUES ($1, $2)")
                .arg(tenant_id)
                .arg(*client)
                .execute(&mut *conn)
                .await
                .map_err(unique("tenant.served_tenant_ids"))?;
        }
        Ok(())
    }

    /// The tenants a support tenant serves, read by [`Self::served_ids`].
    fn served_query(tenant_id: Uuid) -> sqlx::query::Query<'static, DB, DB::Arguments> {
        sqlx::query(
            "SELECT client_tenant_id FROM served_tenants WHERE support_tenant_id = $1 ORDER BY client_tenant_id",
        )
        .arg(tenant_id)
    }

    fn served_ids(rows: Vec<DB::Row>) -> StoreResult<Vec<Uuid>> {
        Ok(Self::all::<(Uuid,)>(rows)?.into_iter().map(|(id,)| id).collect())
    }

    async fn insert_user_in(conn: &mut DB::Connection, u: &UserRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (user_id, tenant_id, user_name, user_name_key, email, first_name, last_name, \
             time_zone, locale, date_format, employee_number, roles, disabled, password_hash, \
             password_change_time, create_time, update_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .arg(u.user_id)
        .arg(u.tenant_id)
        .arg(u.user_name.as_str())
        .arg(u.user_name_key.as_str())
        .arg(u.profile.email.as_str())
        .arg(u.profile.first_name.as_str())
        .arg(u.profile.last_name.as_str())
        .arg(u.profile.time_zone.as_str())
        .arg(u.profile.locale.as_str())
        .arg(u.profile.date_format.as_str())
        .arg(u.profile.employee_number.as_str())
        .arg(u.roles)
        .arg(u.disabled)
        .arg(u.password_hash.as_str())
        .arg(StoredTime(u.password_change_time))
        .arg(StoredTime(u.create_time))
        .arg(StoredTime(u.update_time))
        .execute(&mut *conn)
        .await
        .map_err(unique("user.user_name"))?;
        Ok(())
    }

    /// Ends the open sessions of a user (with those in which they impersonate someone), those
    /// opened with a token, or a service account's, at `at`.
    async fn end_sessions_in(conn: &mut DB::Connection, of: SessionsOf, at: DateTime<Utc>) -> StoreResult<()> {
        let (sql, owner) = match of {
            SessionsOf::User(id) => (
                "UPDATE sessions SET end_time = $2 WHERE (user_id = $1 OR impersonator_user_id = $1) \
                 AND end_time IS NULL",
                id,
            ),
            SessionsOf::AccessToken(id) => (
                "UPDATE sessions SET end_time = $2 WHERE access_token_id = $1 AND end_time IS NULL",
                id,
            ),
            SessionsOf::ServiceAccount(id) => (
                "UPDATE sessions SET end_time = $2 WHERE service_account_id = $1 AND end_time IS NULL",
                id,
            ),
        };
        sqlx::query(sql).arg(owner).arg(StoredTime(at)).execute(conn).await?;
        Ok(())
    }

    /// Ends the open sessions of a user but `keep` (with those in which they impersonate someone),
    /// at `at`; returns how many ended.
    async fn end_user_sessions_in(
        conn: &mut DB::Connection,
        user_id: Uuid,
        keep: Option<Uuid>,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let ended = sqlx::query(
            "UPDATE sessions SET end_time = $3 WHERE (user_id = $1 OR impersonator_user_id = $1) \
             AND end_time IS NULL AND ($2 IS NULL OR session_id <> $2)",
        )
        .arg(user_id)
        .arg(keep)
        .arg(StoredTime(at))
        .execute(conn)
        .await?;
        Ok(DB::rows_affected(&ended))
    }

    /// Runs `update` (an `UPDATE users … WHERE user_id = $1 AND roles = $2 RETURNING *`) under
    /// `guard`, ends the sessions it `ends`, and records `audit`.
    async fn write_user(
        &self,
        guard: &UserGuard,
        update: sqlx::query::Query<'_, DB, DB::Arguments>,
        ends: Ends,
        audit: &AuditEvent,
    ) -> StoreResult<UserWrite> {
        let mut tx = self.begin().await?;
        if guard.keep_an_enabled_holder_of.is_some() {
            DB::lock(&mut tx, Lock::RoleHolders).await?;
        }
        let Some(user) = Self::optional::<UserRecord>(update.fetch_optional(&mut *tx).await?)? else {
            let exists = sqlx::query("SELECT count(*) FROM users WHERE user_id = $1").arg(guard.user_id);
            return Ok(match Self::count(&mut tx, exists).await? {
                0 => UserWrite::Missing,
                _ => UserWrite::RolesChanged,
            });
        };
        if let Some(role) = guard.keep_an_enabled_holder_of {
            let holders = sqlx::query("SELECT count(*) FROM users WHERE (roles & $1) <> 0 AND NOT disabled").arg(role);
            if Self::count(&mut tx, holders).await? == 0 {
                return Ok(UserWrite::LastHolder);
            }
        }
        match ends {
            Ends::Nothing => {}
            Ends::AllSessions => Self::end_sessions_in(&mut tx, SessionsOf::User(guard.user_id), audit.time).await?,
            Ends::Impersonations => {
                sqlx::query(
                    "UPDATE sessions SET end_time = $2 WHERE end_time IS NULL AND (impersonator_user_id = $1 \
                     OR (user_id = $1 AND impersonator_user_id IS NOT NULL))",
                )
                .arg(guard.user_id)
                .arg(StoredTime(audit.time))
                .execute(&mut *tx)
                .await?;
            }
        }
        Self::commit(tx, audit).await?;
        Ok(UserWrite::Written(Box::new(user)))
    }

    /// The sessions of `token_hashes` with what validating them needs, on `on`: one query per
    /// [`LOOKUP_BATCH_MAX`] hashes.
    async fn lookup_sessions_on(on: On<'_, DB>, token_hashes: &[[u8; 32]]) -> StoreResult<Vec<SessionLookup>> {
        let mut found = Vec::with_capacity(token_hashes.len());
        for batch in token_hashes.chunks(LOOKUP_BATCH_MAX) {
            let statement = lookup_statement(batch.len());
            // The text is made of the fixed query and placeholders only (see `lookup_statement`).
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.sql.as_str()));
            // A shorter list is padded to the statement's length with its last hash.
            for i in 0..statement.parameters {
                query = query.arg(batch[i.min(batch.len() - 1)].as_slice());
            }
            found.extend(Self::all::<SessionLookup>(query.fetch_all_on(on).await?)?);
        }
        Ok(found)
    }

    /// At most one row of `sql`, whose one parameter is `key`.
    async fn find<'k, T, K>(&self, sql: &'static str, key: K) -> StoreResult<Option<T>>
    where
        DB: Reads<T> + Binds<'k, K>,
        K: Send,
    {
        Self::optional(sqlx::query(sql).arg(key).fetch_optional_on(self.reading()).await?)
    }

    /// One page of the rows of `sql`, whose parameters are: the owner's id, the id to continue
    /// after, and the number of rows.
    async fn page_of<T>(&self, sql: &'static str, owner: Uuid, page: PageRequest) -> StoreResult<Vec<T>>
    where
        DB: Reads<T>,
    {
        let rows = self
            .hot_page(|| {
                sqlx::query(sql)
                    .arg(owner)
                    .arg(page.after.map(|t| t.0))
                    .arg(page.fetch_limit())
            })
            .await?;
        Self::all(rows)
    }
}

#[async_trait]
impl<DB: Dialect> Store for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    fn ended_elsewhere(&self, sessions: &[Uuid]) {
        self.standbys.ended_elsewhere(sessions);
    }

    fn changed_elsewhere(&self) {
        self.standbys.read_primary_for_a_while();
    }

    fn usable_standbys(&self) -> usize {
        self.standbys.usable()
    }

    async fn watch_standbys(&self) {
        DB::watch_standbys(&self.reader, &self.standbys).await;
    }

    async fn close(&self) {
        // The pools wait for the connections lent out, kept ones included; the writer goes last,
        // so that on a SQLite file it is the last connection and folds the log into the file.
        self.held_readers.release();
        if let Some(reads) = &self.session_reads {
            reads.close();
        }
        for standby in self.standbys.all() {
            standby.pool.close().await;
        }
        self.reader.close().await;
        self.writer.close().await;
    }

    fn report_pool_usage(&self) {
        let report = |name, pool: &Pool<DB>| {
            metrics::db_pool(name, pool.size(), pool.num_idle(), pool.options().get_max_connections());
        };
        report("primary", &self.writer);
        // A database file has read-only connections of its own beside its one writer; elsewhere
        // the reader is the same pool as the writer.
        if self.file.is_some() {
            report("reader", &self.reader);
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        if let Some(file) = &self.file {
            file.check()?;
        }
        sqlx::query("SELECT 1").execute_on(self.reading()).await?;
        Ok(())
    }

    async fn rekey_names(&self, key: for<'a> fn(&'a str) -> String) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        if Self::count(&mut tx, sqlx::query("SELECT count(*) FROM pending_rekeys")).await? == 0 {
            return Ok(0);
        }
        let mut changed = 0;
        for (select, update, field) in KEYED_NAMES {
            let rows = sqlx::query(select).fetch_all(&mut *tx).await?;
            for (id, name, old) in Self::all::<(Uuid, String, String)>(rows)? {
                let new = key(&name);
                if new != old {
                    let write = sqlx::query(update).arg(id).arg(new.as_str()).execute(&mut *tx);
                    write.await.map_err(unique(field))?;
                    changed += 1;
                }
            }
        }
        sqlx::query("DELETE FROM pending_rekeys").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(changed)
    }

    async fn bootstrap(&self, tenant: &TenantRecord, admin: &UserRecord, audit: &AuditEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        DB::lock(&mut tx, Lock::FirstTenant).await?;
        if Self::count(&mut tx, sqlx::query("SELECT count(*) FROM tenants")).await? > 0 {
            return Ok(false);
        }
        Self::insert_tenant_in(&mut tx, tenant).await?;
        Self::insert_user_in(&mut tx, admin).await?;
        Self::commit(tx, audit).await?;
        Ok(true)
    }

    async fn insert_tenant(&self, tenant: &TenantRecord, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        Self::insert_tenant_in(&mut tx, tenant).await?;
        Self::commit(tx, audit).await
    }

    async fn get_tenant(&self, tenant_id: Uuid) -> StoreResult<Option<TenantRecord>> {
        let found = self
            .find("SELECT * FROM tenants WHERE tenant_id = $1", tenant_id)
            .await?;
        let Some(mut tenant): Option<TenantRecord> = found else {
            return Ok(None);
        };
        tenant.served_tenant_ids = Self::served_ids(Self::served_query(tenant_id).fetch_all_on(self.reading()).await?)?;
        Ok(Some(tenant))
    }

    async fn update_tenant(&self, changes: &TenantChanges, audit: &AuditEvent) -> StoreResult<Option<TenantRecord>> {
        let tenant_id = changes.tenant_id;
        let mut tx = self.begin().await?;
        let (name, key) = changes.name.as_ref().map(|(n, k)| (n.as_str(), k.as_str())).unzip();
        let row = sqlx::query(
            "UPDATE tenants SET name = COALESCE($2, name), name_key = COALESCE($3, name_key), \
             password_expiry_days = CASE WHEN $4 THEN $5 ELSE password_expiry_days END, \
             max_access_token_days = COALESCE($6, max_access_token_days), update_time = $7, \
             min_password_length = COALESCE($8, min_password_length), \
             lockout_failures = COALESCE($9, lockout_failures), lockout_seconds = COALESCE($10, lockout_seconds), \
             max_lockout_seconds = COALESCE($11, max_lockout_seconds), \
             allow_customer_support = COALESCE($12, allow_customer_support) WHERE tenant_id = $1 RETURNING *",
        )
        .arg(tenant_id)
        .arg(name)
        .arg(key)
        .arg(changes.password_expiry_days.is_some())
        .arg(changes.password_expiry_days.flatten())
        .arg(changes.max_access_token_days)
        .arg(StoredTime(audit.time))
        .arg(changes.min_password_length)
        .arg(changes.lockout.map(|l| l.0))
        .arg(changes.lockout.map(|l| l.1))
        .arg(changes.lockout.map(|l| l.2))
        .arg(changes.allow_customer_support)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unique("tenant.name"))?;
        let Some(mut tenant) = Self::optional::<TenantRecord>(row)? else {
            return Ok(None);
        };
        if let Some(served) = &changes.served_tenant_ids {
            Self::replace_served_in(&mut tx, tenant_id, served).await?;
            // The tenant's users' sessions in clients it no longer serves end.
            sqlx::query(
                "UPDATE sessions SET end_time = $2 WHERE end_time IS NULL AND tenant_id <> $1 \
                 AND impersonator_user_id IN (SELECT user_id FROM users WHERE tenant_id = $1) \
                 AND tenant_id NOT IN (SELECT client_tenant_id FROM served_tenants WHERE support_tenant_id = $1)",
            )
            .arg(tenant_id)
            .arg(StoredTime(audit.time))
            .execute(&mut *tx)
            .await?;
        }
        if changes.allow_customer_support == Some(false) {
            // Support switched off: the sessions of other tenants' users acting in it end.
            sqlx::query(
                "UPDATE sessions SET end_time = $2 WHERE tenant_id = $1 AND end_time IS NULL \
                 AND impersonator_user_id NOT IN (SELECT user_id FROM users WHERE tenant_id = $1)",
            )
            .arg(tenant_id)
            .arg(StoredTime(audit.time))
            .execute(&mut *tx)
            .await?;
        }
        tenant.served_tenant_ids = Self::served_ids(Self::served_query(tenant_id).fetch_all(&mut *tx).await?)?;
        Self::commit(tx, audit).await?;
        Ok(Some(tenant))
    }

    async fn insert_user(&self, user: &UserRecord, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        Self::insert_user_in(&mut tx, user).await?;
        Self::commit(tx, audit).await
    }

    async fn get_user(&self, user_id: Uuid) -> StoreResult<Option<UserRecord>> {
        self.find("SELECT * FROM users WHERE user_id = $1", user_id).await
    }

    async fn find_user_by_name(&self, user_name_key: &str) -> StoreResult<Option<UserRecord>> {
        self.find("SELECT * FROM users WHERE user_name_key = $1", user_name_key)
            .await
    }

    async fn find_user_signing_in(&self, user_name_key: &str) -> StoreResult<Option<UserSigningIn>> {
        let sql = "SELECT u.*, t.name AS tenant_name, t.password_expiry_days, t.lockout_failures, t.lockout_seconds, \
                   t.max_lockout_seconds FROM users u JOIN tenants t ON t.tenant_id = u.tenant_id \
                   WHERE u.user_name_key = $1";
        self.find(sql, user_name_key).await
    }

    async fn list_users(&self, tenant_id: Uuid, page: PageRequest) -> StoreResult<Vec<UserRecord>> {
        let sql = "SELECT * FROM users WHERE tenant_id = $1 AND ($2 IS NULL OR user_id > $2) ORDER BY user_id LIMIT $3";
        self.page_of(sql, tenant_id, page).await
    }

    async fn update_user_profile(
        &self,
        guard: &UserGuard,
        c: &ProfilePatch,
        audit: &AuditEvent,
    ) -> StoreResult<UserWrite> {
        let update = sqlx::query(
            "UPDATE users SET email = COALESCE($3, email), first_name = COALESCE($4, first_name), \
             last_name = COALESCE($5, last_name), time_zone = COALESCE($6, time_zone), \
             locale = COALESCE($7, locale), date_format = COALESCE($8, date_format), \
             employee_number = COALESCE($9, employee_number), update_time = $10 \
             WHERE user_id = $1 AND roles = $2 RETURNING *",
        )
        .arg(guard.user_id)
        .arg(guard.roles)
        .arg(c.email.as_deref())
        .arg(c.first_name.as_deref())
        .arg(c.last_name.as_deref())
        .arg(c.time_zone.as_deref())
        .arg(c.locale.as_deref())
        .arg(c.date_format.as_deref())
        .arg(c.employee_number.as_deref())
        .arg(StoredTime(audit.time));
        self.write_user(guard, update, Ends::Nothing, audit).await
    }

    async fn set_user_disabled(&self, guard: &UserGuard, disabled: bool, audit: &AuditEvent) -> StoreResult<UserWrite> {
        let update = sqlx::query(
            "UPDATE users SET disabled = $3, update_time = $4 WHERE user_id = $1 AND roles = $2 RETURNING *",
        )
        .arg(guard.user_id)
        .arg(guard.roles)
        .arg(disabled)
        .arg(StoredTime(audit.time));
        let ends = if disabled { Ends::AllSessions } else { Ends::Nothing };
        self.write_user(guard, update, ends, audit).await
    }

    async fn set_user_roles(&self, guard: &UserGuard, roles: i32, audit: &AuditEvent) -> StoreResult<UserWrite> {
        let update =
            sqlx::query("UPDATE users SET roles = $3, update_time = $4 WHERE user_id = $1 AND roles = $2 RETURNING *")
                .arg(guard.user_id)
                .arg(guard.roles)
                .arg(roles)
                .arg(StoredTime(audit.time));
        self.write_user(guard, update, Ends::Impersonations, audit).await
    }

    async fn record_login_failure(
        &self,
        user_id: Option<Uuid>,
        max_failures: i32,
        audit: &AuditEvent,
    ) -> StoreResult<Option<i32>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE users SET failed_login_count = failed_login_count + 1 WHERE user_id = $1 \
             AND NOT disabled AND failed_login_count < $2 AND (locked_until IS NULL OR locked_until <= $3) \
             RETURNING failed_login_count",
        )
        .arg(user_id)
        .arg(max_failures)
        .arg(StoredTime(audit.time))
        .fetch_optional(&mut *tx)
        .await?;
        let failures = Self::optional::<(i32,)>(row)?.map(|(n,)| n);
        Self::commit(tx, audit).await?;
        Ok(failures)
    }

    async fn lock_user(&self, user_id: Uuid, until: DateTime<Utc>, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE users SET locked_until = $2 WHERE user_id = $1 AND (locked_until IS NULL OR locked_until < $2)",
        )
        .arg(user_id)
        .arg(StoredTime(until))
        .execute(&mut *tx)
        .await?;
        Self::commit(tx, audit).await
    }

    async fn record_login_success(
        &self,
        user_id: Uuid,
        reset_failures: bool,
        rehash: Option<&PasswordRehash>,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        if reset_failures {
            sqlx::query("UPDATE users SET failed_login_count = 0, locked_until = NULL WHERE user_id = $1")
                .arg(user_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(rehash) = rehash {
            sqlx::query("UPDATE users SET password_hash = $2 WHERE user_id = $1 AND password_hash = $3")
                .arg(user_id)
                .arg(rehash.new_hash.as_str())
                .arg(rehash.old_hash.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn change_password(&self, change: &PasswordChange, audit: &AuditEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let changed = sqlx::query(
            "UPDATE users SET password_hash = $2, password_change_time = $3, force_change_password = $4, \
             failed_login_count = 0, locked_until = NULL, update_time = $3 WHERE user_id = $1 AND password_hash = $5",
        )
        .arg(change.user_id)
        .arg(change.new_hash.as_str())
        .arg(StoredTime(audit.time))
        .arg(false)
        .arg(change.old_hash.as_str())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&changed) == 0 {
            return Ok(false);
        }
        Self::end_user_sessions_in(&mut tx, change.user_id, change.keep_session, audit.time).await?;
        Self::commit(tx, audit).await?;
        Ok(true)
    }

    async fn set_user_password(
        &self,
        guard: &UserGuard,
        password_hash: &str,
        force_change: bool,
        audit: &AuditEvent,
    ) -> StoreResult<UserWrite> {
        let update = sqlx::query(
            "UPDATE users SET password_hash = $3, password_change_time = $4, force_change_password = $5, \
             failed_login_count = 0, locked_until = NULL, update_time = $4 WHERE user_id = $1 AND roles = $2 \
             RETURNING *",
        )
        .arg(guard.user_id)
        .arg(guard.roles)
        .arg(password_hash)
        .arg(StoredTime(audit.time))
        .arg(force_change);
        self.write_user(guard, update, Ends::AllSessions, audit).await
    }

    async fn unlock_user(&self, guard: &UserGuard, audit: &AuditEvent) -> StoreResult<UserWrite> {
        let update = sqlx::query(
            "UPDATE users SET failed_login_count = 0, locked_until = NULL, update_time = $3 \
             WHERE user_id = $1 AND roles = $2 RETURNING *",
        )
        .arg(guard.user_id)
        .arg(guard.roles)
        .arg(StoredTime(audit.time));
        self.write_user(guard, update, Ends::Nothing, audit).await
    }

    async fn insert_service_account(&self, a: &ServiceAccountRecord, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO service_accounts (service_account_id, tenant_id, name, name_key, description, \
             create_time) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .arg(a.service_account_id)
        .arg(a.tenant_id)
        .arg(a.name.as_str())
        .arg(a.name_key.as_str())
        .arg(a.description.as_str())
        .arg(StoredTime(a.create_time))
        .execute(&mut *tx)
        .await
        .map_err(unique("name"))?;
        Self::commit(tx, audit).await
    }

    async fn find_service_account(&self, tenant_id: Uuid, name_key: &str) -> StoreResult<Option<ServiceAccountRecord>> {
        let row = sqlx::query("SELECT * FROM service_accounts WHERE tenant_id = $1 AND name_key = $2")
            .arg(tenant_id)
            .arg(name_key)
            .fetch_optional_on(self.reading())
            .await?;
        Self::optional(row)
    }

    async fn list_service_accounts(
        &self,
        tenant_id: Uuid,
        page: PageRequest,
    ) -> StoreResult<Vec<ServiceAccountRecord>> {
        let sql = "SELECT * FROM service_accounts WHERE tenant_id = $1 \
                   AND ($2 IS NULL OR service_account_id > $2) ORDER BY service_account_id LIMIT $3";
        self.page_of(sql, tenant_id, page).await
    }

    async fn insert_session(&self, s: &SessionRecord, audit: &AuditEvent) -> StoreResult<()> {
        // Not `begin`: a new session needs no reads from the primary for a while after it, since a
        // standby that lacks it answers "unknown", and its lookup then goes to the primary.
        if DB::WRITES_IN_ONE_STATEMENT {
            // Every login comes here: one round trip instead of four (begin, two inserts, commit),
            // and as atomic, a statement being a transaction of its own.
            let details = audit_details(audit)?;
            let query = Self::bind_session(sqlx::query(INSERT_SESSION_WITH_AUDIT), s);
            Self::bind_audit(query, audit, &details)
                .execute_on(self.writing())
                .await?;
        } else {
            let mut tx = self.writer.begin_with(self.begin).await?;
            Self::insert_session_in(&mut tx, s).await?;
            Self::commit(tx, audit).await?;
        }
        metrics::session_opened(s.kind.as_str());
        Ok(())
    }

    async fn start_impersonation(&self, s: &SessionRecord, audits: &[AuditEvent]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        Self::insert_session_in(&mut tx, s).await?;
        Self::commit_all(tx, audits).await?;
        metrics::session_opened(s.kind.as_str());
        Ok(())
    }

    async fn end_impersonation(
        &self,
        session_id: Uuid,
        user_id: Uuid,
        fresh: Option<&SessionRecord>,
        audits: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        // The change is made at its events' time, as every audited change is.
        let Some(at) = audits.first().map(|a| a.time) else {
            return Err(StoreError::Other(anyhow::anyhow!(
                "an impersonation ends with its audit events"
            )));
        };
        let ended = sqlx::query(
            "UPDATE sessions SET end_time = $3 WHERE session_id = $1 AND user_id = $2 AND end_time IS NULL \
             AND impersonator_user_id IS NOT NULL",
        )
        .arg(session_id)
        .arg(user_id)
        .arg(StoredTime(at))
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&ended) == 0 {
            return Ok(false);
        }
        if let Some(fresh) = fresh {
            Self::insert_session_in(&mut tx, fresh).await?;
        }
        Self::commit_all(tx, audits).await?;
        metrics::sessions_ended(1);
        if let Some(fresh) = fresh {
            metrics::session_opened(fresh.kind.as_str());
        }
        Ok(true)
    }

    async fn lookup_sessions(&self, token_hashes: &[[u8; 32]]) -> StoreResult<Vec<SessionLookup>> {
        if token_hashes.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(read_here) = self
            .session_reads
            .as_ref()
            .and_then(|r| r.lookup_sessions(token_hashes))
        {
            return Ok(read_here);
        }
        let mut found = Vec::with_capacity(token_hashes.len());
        let mut unread: Vec<[u8; 32]> = token_hashes.to_vec();
        if let Some(standby) = self.standbys.pick() {
            match Self::lookup_sessions_on(self.on(standby), &unread).await {
                Ok(rows) => {
                    // An end pushed from elsewhere that the standby may not have replayed yet.
                    found = rows
                        .into_iter()
                        .filter(|l| !self.standbys.recently_ended(l.session.session_id))
                        .collect();
                    // What the standby does not know may have been made on another instance a
                    // moment ago.
                    unread.retain(|hash| !found.iter().any(|l| l.session.token_hash == hash.as_slice()));
                }
                Err(e) => tracing::debug!(error = %e, "a standby failed a session lookup; reading the primary"),
            }
        }
        if !unread.is_empty() {
            found.extend(Self::lookup_sessions_on(self.reading(), &unread).await?);
        }
        Ok(found)
    }

    async fn get_session(&self, session_id: Uuid) -> StoreResult<Option<SessionRecord>> {
        self.find(select_sessions!("WHERE s.session_id = $1"), session_id).await
    }

    async fn end_session(&self, session_id: Uuid, user_id: Uuid, audit: &AuditEvent) -> StoreResult<bool> {
        let end = sqlx::query(
            "UPDATE sessions SET end_time = $3 WHERE session_id = $1 AND user_id = $2 AND end_time IS NULL",
        )
        .arg(session_id)
        .arg(user_id)
        .arg(StoredTime(audit.time));
        let ended = self.change_one(end, audit).await?;
        metrics::sessions_ended(u64::from(ended));
        Ok(ended)
    }

    async fn set_service_account_session_expiry(
        &self,
        session_id: Uuid,
        expire_time: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let change = sqlx::query(
            "UPDATE sessions SET expire_time = $2 WHERE session_id = $1 AND service_account_id IS NOT NULL \
             AND end_time IS NULL AND expire_time > $3",
        )
        .arg(session_id)
        .arg(StoredTime(expire_time))
        .arg(StoredTime(audit.time));
        self.change_one(change, audit).await
    }

    async fn end_service_account_session(&self, session_id: Uuid, audit: &AuditEvent) -> StoreResult<bool> {
        let end = sqlx::query(
            "UPDATE sessions SET end_time = $2 WHERE session_id = $1 AND service_account_id IS NOT NULL \
             AND end_time IS NULL",
        )
        .arg(session_id)
        .arg(StoredTime(audit.time));
        let ended = self.change_one(end, audit).await?;
        metrics::sessions_ended(u64::from(ended));
        Ok(ended)
    }

    async fn delete_old_sessions(&self, before: DateTime<Utc>, limit: i64) -> StoreResult<u64> {
        // One small batch per call: concurrent sweeps on other instances at worst pick the same
        // rows, and a row deleted twice is no harm (see the dialect's statement).
        let deleted = sqlx::query(DB::DELETE_OLD_SESSIONS)
            .arg(StoredTime(before))
            .arg(limit)
            .execute_on(self.writing())
            .await?;
        Ok(DB::rows_affected(&deleted))
    }

    async fn end_user_sessions(&self, user_id: Uuid, keep: Option<Uuid>, audit: &AuditEvent) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let ended = Self::end_user_sessions_in(&mut tx, user_id, keep, audit.time).await?;
        Self::commit(tx, audit).await?;
        metrics::sessions_ended(ended);
        Ok(ended)
    }

    async fn sessions_ended_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<Uuid>> {
        let rows = sqlx::query("SELECT session_id FROM sessions WHERE end_time >= $1")
            .arg(StoredTime(since))
            .fetch_all_on(self.reading())
            .await?;
        Ok(Self::all::<(Uuid,)>(rows)?.into_iter().map(|(id,)| id).collect())
    }

    async fn record_last_use(&self, of: LastUseOf, uses: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        DB::record_last_use(self.writing(), of, uses).await
    }

    async fn list_sessions(&self, of: SessionsOf, ended: bool, page: PageRequest) -> StoreResult<Vec<SessionRecord>> {
        let (sql, owner) = match of {
            SessionsOf::User(user_id) => (
                select_sessions!(
                    "WHERE s.user_id = $1 AND ($2 OR s.end_time IS NULL) AND ($3 IS NULL OR s.session_id > $3) \
                     ORDER BY s.session_id LIMIT $4"
                ),
                user_id,
            ),
            SessionsOf::AccessToken(token_id) => (
                select_sessions!(
                    "WHERE s.access_token_id = $1 AND ($2 OR s.end_time IS NULL) \
                     AND ($3 IS NULL OR s.session_id > $3) ORDER BY s.session_id LIMIT $4"
                ),
                token_id,
            ),
            SessionsOf::ServiceAccount(account_id) => (
                select_sessions!(
                    "WHERE s.service_account_id = $1 AND ($2 OR s.end_time IS NULL) \
                     AND ($3 IS NULL OR s.session_id > $3) ORDER BY s.session_id LIMIT $4"
                ),
                account_id,
            ),
        };
        let rows = self
            .hot_page(|| {
                sqlx::query(sql)
                    .arg(owner)
                    .arg(ended)
                    .arg(page.after.map(|t| t.0))
                    .arg(page.fetch_limit())
            })
            .await?;
        Self::all(rows)
    }

    async fn insert_access_token(&self, t: &AccessTokenRecord, max_live: i64, audit: &AuditEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        DB::lock(&mut tx, Lock::User(t.user_id)).await?;
        let live = sqlx::query(
            "SELECT count(*) FROM user_access_tokens WHERE user_id = $1 AND revoke_time IS NULL \
             AND (expire_time IS NULL OR expire_time > $2)",
        )
        .arg(t.user_id)
        .arg(StoredTime(t.create_time));
        if Self::count(&mut tx, live).await? >= max_live {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO user_access_tokens (token_id, user_id, name, name_key, description, token_hash, hint, \
             create_time, expire_time, last_use_time, revoke_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .arg(t.token_id)
        .arg(t.user_id)
        .arg(t.name.as_str())
        .arg(t.name_key.as_str())
        .arg(t.description.as_str())
        .arg(t.token_hash.as_slice())
        .arg(t.hint.as_str())
        .arg(StoredTime(t.create_time))
        .arg(stored(t.expire_time))
        .arg(stored(t.last_use_time))
        .arg(stored(t.revoke_time))
        .execute(&mut *tx)
        .await
        .map_err(unique("user_access_token_name"))?;
        Self::commit(tx, audit).await?;
        Ok(true)
    }

    async fn find_access_token(&self, user_id: Uuid, name_key: &str) -> StoreResult<Option<AccessTokenRecord>> {
        let row = sqlx::query(
            "SELECT * FROM user_access_tokens WHERE user_id = $1 AND name_key = $2 \
             ORDER BY (revoke_time IS NULL) DESC, token_id DESC LIMIT 1",
        )
        .arg(user_id)
        .arg(name_key)
        .fetch_optional_on(self.reading())
        .await?;
        Self::optional(row)
    }

    async fn list_access_tokens(&self, user_id: Uuid, page: PageRequest) -> StoreResult<Vec<AccessTokenRecord>> {
        let sql = "SELECT * FROM user_access_tokens WHERE user_id = $1 AND ($2 IS NULL OR token_id > $2) \
                   ORDER BY token_id LIMIT $3";
        self.page_of(sql, user_id, page).await
    }

    async fn update_access_token(
        &self,
        changes: &TokenChanges,
        audit: &AuditEvent,
    ) -> StoreResult<Option<AccessTokenRecord>> {
        let mut tx = self.begin().await?;
        let (name, key) = changes.name.as_ref().map(|(n, k)| (n.as_str(), k.as_str())).unzip();
        let row = sqlx::query(
            "UPDATE user_access_tokens SET name = COALESCE($2, name), name_key = COALESCE($3, name_key), \
             description = COALESCE($4, description) WHERE token_id = $1 AND revoke_time IS NULL RETURNING *",
        )
        .arg(changes.token_id)
        .arg(name)
        .arg(key)
        .arg(changes.description.as_deref())
        .fetch_optional(&mut *tx)
        .await
        .map_err(unique("new_name"))?;
        let Some(token) = Self::optional::<AccessTokenRecord>(row)? else {
            return Ok(None);
        };
        Self::commit(tx, audit).await?;
        Ok(Some(token))
    }

    async fn rotate_access_token(
        &self,
        rotation: &TokenRotation,
        audit: &AuditEvent,
    ) -> StoreResult<Option<AccessTokenRecord>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE user_access_tokens SET token_hash = $3, hint = $4 \
             WHERE token_id = $1 AND token_hash = $2 AND revoke_time IS NULL RETURNING *",
        )
        .arg(rotation.token_id)
        .arg(rotation.old_hash.as_slice())
        .arg(rotation.new_hash.as_slice())
        .arg(rotation.hint.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(token) = Self::optional::<AccessTokenRecord>(row)? else {
            return Ok(None);
        };
        Self::end_sessions_in(&mut tx, SessionsOf::AccessToken(rotation.token_id), audit.time).await?;
        Self::commit(tx, audit).await?;
        Ok(Some(token))
    }

    async fn revoke_access_token(&self, token_id: Uuid, audit: &AuditEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let revoked =
            sqlx::query("UPDATE user_access_tokens SET revoke_time = $2 WHERE token_id = $1 AND revoke_time IS NULL")
                .arg(token_id)
                .arg(StoredTime(audit.time))
                .execute(&mut *tx)
                .await?;
        if DB::rows_affected(&revoked) == 0 {
            return Ok(false);
        }
        Self::end_sessions_in(&mut tx, SessionsOf::AccessToken(token_id), audit.time).await?;
        Self::commit(tx, audit).await?;
        Ok(true)
    }

    async fn lookup_access_token(&self, token_hash: &[u8]) -> StoreResult<Option<AccessTokenLookup>> {
        let sql = "SELECT u.*, t.token_id, t.name AS token_name, t.expire_time, t.revoke_time, \
                   ut.password_expiry_days, ut.name AS tenant_name FROM user_access_tokens t \
                   JOIN users u ON u.user_id = t.user_id JOIN tenants ut ON ut.tenant_id = u.tenant_id \
                   WHERE t.token_hash = $1";
        self.find(sql, token_hash).await
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY activate_time, key_id")
            .fetch_all_on(self.reading())
            .await?;
        Self::all(rows)
    }

    async fn insert_signing_key(&self, k: &SigningKeyRecord, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO signing_keys (key_id, private_key_sealed, public_x, public_y, create_time, activate_time, \
             retire_time, remove_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .arg(k.key_id.as_str())
        .arg(k.private_key_sealed.as_slice())
        .arg(k.public_x.as_str())
        .arg(k.public_y.as_str())
        .arg(StoredTime(k.create_time))
        .arg(StoredTime(k.activate_time))
        .arg(StoredTime(k.retire_time))
        .arg(StoredTime(k.remove_time))
        .execute(&mut *tx)
        .await
        .map_err(unique("activate_time"))?;
        Self::commit(tx, audit).await
    }

    async fn delete_removed_signing_keys(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let result = sqlx::query("DELETE FROM signing_keys WHERE remove_time <= $1")
            .arg(StoredTime(now))
            .execute_on(self.writing())
            .await?;
        Ok(DB::rows_affected(&result))
    }

    async fn insert_identity_provider(&self, p: &IdentityProviderRecord, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO identity_providers (tenant_id, issuer_url, client_id, client_secret_sealed, scopes, \
             redirect_uris, link_by_verified_email, create_users, default_roles, post_logout_redirect_uri, \
             create_time, update_time, saml_settings) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .arg(p.tenant_id)
        .arg(p.issuer_url.as_str())
        .arg(p.client_id.as_str())
        .arg(p.client_secret_sealed.as_deref())
        .arg(p.scopes.as_str())
        .arg(p.redirect_uris.as_str())
        .arg(p.link_by_verified_email)
        .arg(p.create_users)
        .arg(p.default_roles)
        .arg(p.post_logout_redirect_uri.as_str())
        .arg(StoredTime(p.create_time))
        .arg(StoredTime(p.update_time))
        .arg(p.saml_settings.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(unique("tenant_id"))?;
        Self::commit(tx, audit).await
    }

    async fn get_identity_provider(&self, tenant_id: Uuid) -> StoreResult<Option<IdentityProviderRecord>> {
        let row = sqlx::query("SELECT * FROM identity_providers WHERE tenant_id = $1")
            .arg(tenant_id)
            .fetch_optional_on(self.reading())
            .await?;
        Self::optional(row)
    }

    async fn list_identity_providers(&self, page: PageRequest) -> StoreResult<Vec<IdentityProviderRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM identity_providers WHERE ($1 IS NULL OR tenant_id > $1) ORDER BY tenant_id LIMIT $2",
        )
        .arg(page.after.map(|t| t.0))
        .arg(page.fetch_limit())
        .fetch_all_on(self.reading())
        .await?;
        Self::all(rows)
    }

    async fn update_identity_provider(
        &self,
        p: &IdentityProviderRecord,
        read_at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> StoreResult<Option<IdentityProviderRecord>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE identity_providers SET issuer_url = $2, client_id = $3, client_secret_sealed = $4, scopes = $5, \
             redirect_uris = $6, link_by_verified_email = $7, create_users = $8, default_roles = $9, \
             post_logout_redirect_uri = $10, update_time = $11, saml_settings = $13 WHERE tenant_id = $1 AND update_time = $12 \
             RETURNING *",
        )
        .arg(p.tenant_id)
        .arg(p.issuer_url.as_str())
        .arg(p.client_id.as_str())
        .arg(p.client_secret_sealed.as_deref())
        .arg(p.scopes.as_str())
        .arg(p.redirect_uris.as_str())
        .arg(p.link_by_verified_email)
        .arg(p.create_users)
        .arg(p.default_roles)
        .arg(p.post_logout_redirect_uri.as_str())
        .arg(StoredTime(audit.time))
        .arg(StoredTime(read_at))
        .arg(p.saml_settings.as_deref())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(updated) = Self::optional::<IdentityProviderRecord>(row)? else {
            return Ok(None);
        };
        Self::commit(tx, audit).await?;
        Ok(Some(updated))
    }

    async fn delete_identity_provider(&self, tenant_id: Uuid, audit: &AuditEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let result = sqlx::query("DELETE FROM identity_providers WHERE tenant_id = $1")
            .arg(tenant_id)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&result) == 0 {
            return Ok(false);
        }
        Self::commit(tx, audit).await?;
        Ok(true)
    }

    async fn insert_sso_attempt(&self, a: &SsoAttemptRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sso_attempts WHERE expire_time < $1")
            .arg(StoredTime(a.create_time))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sso_attempts (state_hash, tenant_id, redirect_uri, nonce, pkce_verifier_sealed, create_time, \
             expire_time) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .arg(a.state_hash.as_slice())
        .arg(a.tenant_id)
        .arg(a.redirect_uri.as_str())
        .arg(a.nonce.as_str())
        .arg(a.pkce_verifier_sealed.as_slice())
        .arg(StoredTime(a.create_time))
        .arg(StoredTime(a.expire_time))
        .execute(&mut *tx)
        .await
        .map_err(unique("state"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_saml_assertion(
        &self,
        tenant_id: Uuid,
        assertion_id: &str,
        expire_time: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM saml_assertion_ids WHERE expire_time < $1")
            .arg(StoredTime(now))
            .execute(&mut *tx)
            .await?;
        let inserted =
            sqlx::query("INSERT INTO saml_assertion_ids (tenant_id, assertion_id, expire_time) VALUES ($1, $2, $3)")
                .arg(tenant_id)
                .arg(assertion_id)
                .arg(StoredTime(expire_time))
                .execute(&mut *tx)
                .await
                .map_err(unique("assertion_id"));
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                Ok(true)
            }
            Err(StoreError::UniqueViolation { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn take_sso_attempt(&self, state_hash: &[u8]) -> StoreResult<Option<SsoAttemptRecord>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("DELETE FROM sso_attempts WHERE state_hash = $1 RETURNING *")
            .arg(state_hash)
            .fetch_optional(&mut *tx)
            .await?;
        let attempt = Self::optional(row)?;
        tx.commit().await?;
        Ok(attempt)
    }

    async fn find_linked_user(
        &self,
        tenant_id: Uuid,
        issuer: &str,
        subject: &str,
    ) -> StoreResult<Option<UserSigningIn>> {
        let row = sqlx::query(
            "SELECT u.*, t.name AS tenant_name, t.password_expiry_days, t.lockout_failures, t.lockout_seconds, \
             t.max_lockout_seconds FROM linked_identities l JOIN users u ON u.user_id = l.user_id \
             JOIN tenants t ON t.tenant_id = u.tenant_id \
             WHERE l.tenant_id = $1 AND l.issuer = $2 AND l.subject = $3 AND u.tenant_id = $1",
        )
        .arg(tenant_id)
        .arg(issuer)
        .arg(subject)
        .fetch_optional_on(self.reading())
        .await?;
        Self::optional(row)
    }

    async fn find_users_by_email(&self, tenant_id: Uuid, email: &str) -> StoreResult<Vec<UserSigningIn>> {
        let rows = sqlx::query(
            "SELECT u.*, t.name AS tenant_name, t.password_expiry_days, t.lockout_failures, t.lockout_seconds, \
             t.max_lockout_seconds FROM users u JOIN tenants t ON t.tenant_id = u.tenant_id \
             WHERE u.tenant_id = $1 AND u.email <> '' AND lower(u.email) = lower($2) ORDER BY u.user_id LIMIT 2",
        )
        .arg(tenant_id)
        .arg(email)
        .fetch_all_on(self.reading())
        .await?;
        Self::all(rows)
    }

    async fn open_sso_session(&self, sign_in: &SsoSignIn<'_>, audits: &[AuditEvent]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        if let Some(user) = sign_in.new_user {
            Self::insert_user_in(&mut tx, user).await?;
        }
        if let Some(link) = sign_in.link {
            sqlx::query(
                "INSERT INTO linked_identities (tenant_id, issuer, subject, user_id, create_time) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .arg(link.tenant_id)
            .arg(link.issuer.as_str())
            .arg(link.subject.as_str())
            .arg(link.user_id)
            .arg(StoredTime(link.create_time))
            .execute(&mut *tx)
            .await
            .map_err(unique("subject"))?;
        }
        Self::insert_session_in(&mut tx, sign_in.session).await?;
        sqlx::query("INSERT INTO sso_sessions (session_id, id_token_sealed) VALUES ($1, $2)")
            .arg(sign_in.session.session_id)
            .arg(sign_in.id_token_sealed)
            .execute(&mut *tx)
            .await?;
        Self::commit_all(tx, audits).await?;
        metrics::session_opened(sign_in.session.kind.as_str());
        Ok(())
    }

    async fn sso_id_token(&self, session_id: Uuid) -> StoreResult<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = self
            .find(
                "SELECT id_token_sealed FROM sso_sessions WHERE session_id = $1",
                session_id,
            )
            .await?;
        Ok(row.map(|(sealed,)| sealed))
    }

    async fn insert_audit(&self, audit: &AuditEvent) -> StoreResult<()> {
        Self::commit(self.begin().await?, audit).await
    }

    async fn list_audit(&self, f: &AuditFilter, page: PageRequest) -> StoreResult<Vec<AuditEvent>> {
        let rows = self
            .hot_page(|| {
                sqlx::query(
                    "SELECT * FROM audit_events WHERE ($1 IS NULL OR tenant_id = $1) \
                     AND ($2 IS NULL OR actor_user_id = $2 OR subject_user_id = $2) \
                     AND ($3 IS NULL OR action = $3) AND ($4 IS NULL OR time >= $4) AND ($5 IS NULL OR time < $5) \
                     AND ($6 IS NULL OR event_id > $6) ORDER BY event_id LIMIT $7",
                )
                .arg(f.tenant_id)
                .arg(f.user_id)
                .arg(f.action.as_deref())
                .arg(stored(f.start_time))
                .arg(stored(f.end_time))
                .arg(page.after.map(|t| t.0))
                .arg(page.fetch_limit())
            })
            .await?;
        Self::all(rows)
    }
}
