//! The embedded store: SQLite through sqlx, compiled in (no system library).
//!
//! SQLite takes one writer at a time. Rather than let concurrent requests collide on the write
//! lock, every write goes through a pool of exactly one connection, in `BEGIN IMMEDIATE`
//! transactions (so that a second process waits on the busy timeout instead of failing midway);
//! reads use a pool of read-only connections that WAL lets run beside the writer.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

use super::{
    AccessTokenLookup, AccessTokenRecord, AuditFilter, AuditRecord, ServiceAccountRecord, SessionKind, SessionLookup,
    SessionRecord, Store, StoreError, StoreResult, TenantRecord, UserRecord,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A SQLite-backed [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database a `sqlite://PATH` or `sqlite::memory:` URL names.
    /// `busy_timeout` is how long a connection waits for another process's write lock.
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
                writer: pool.clone(),
                reader: pool,
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
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening SQLite database {}", options.get_filename().display()))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(max_readers.max(1))
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await
            .context("opening SQLite readers")?;
        Ok(Self { writer, reader })
    }

    /// Applies the migrations in `migrations/sqlite/` that have not run yet.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.writer).await.context("applying SQLite migrations")
    }

    async fn write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// One page of sessions selected by `sql`, whose parameters are: the owner's id, whether ended
    /// sessions are included, the id to continue after, and the page size.
    async fn list_sessions(
        &self,
        sql: &'static str,
        owner: Uuid,
        include_ended: bool,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<SessionRecord>> {
        let rows = sqlx::query(sql)
            .bind(owner)
            .bind(include_ended)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(|r| session_from_row(r, "")).collect()
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(m: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(m).ok_or_else(|| StoreError::Other(anyhow::anyhow!("time {m} out of range")))
}

fn get_time(row: &SqliteRow, column: &str) -> StoreResult<DateTime<Utc>> {
    time(row.try_get(column)?)
}

fn get_opt_time(row: &SqliteRow, column: &str) -> StoreResult<Option<DateTime<Utc>>> {
    row.try_get::<Option<i64>, _>(column)?.map(time).transpose()
}

fn unique(field: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, field)
}

fn user_from_row(row: &SqliteRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        user_id: row.try_get("user_id")?,
        tenant_id: row.try_get("tenant_id")?,
        user_name: row.try_get("user_name")?,
        user_name_key: row.try_get("user_name_key")?,
        email: row.try_get("email")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        time_zone: row.try_get("time_zone")?,
        locale: row.try_get("locale")?,
        date_format: row.try_get("date_format")?,
        employee_number: row.try_get("employee_number")?,
        roles: row.try_get("roles")?,
        disabled: row.try_get("disabled")?,
        password_hash: row.try_get("password_hash")?,
        password_change_time: get_time(row, "password_change_time")?,
        create_time: get_time(row, "create_time")?,
        update_time: get_time(row, "update_time")?,
    })
}

/// Reads session columns, named with `prefix` (the lookup join prefixes them with `s_`).
fn session_from_row(row: &SqliteRow, prefix: &str) -> StoreResult<SessionRecord> {
    let col = |name: &str| format!("{prefix}{name}");
    let kind: String = row.try_get(col("kind").as_str())?;
    Ok(SessionRecord {
        session_id: row.try_get(col("session_id").as_str())?,
        token_hash: row.try_get(col("token_hash").as_str())?,
        user_id: row.try_get(col("user_id").as_str())?,
        tenant_id: row.try_get(col("tenant_id").as_str())?,
        kind: SessionKind::parse(&kind)
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("unknown session kind {kind:?}")))?,
        create_time: get_time(row, &col("create_time"))?,
        expire_time: get_time(row, &col("expire_time"))?,
        last_use_time: get_time(row, &col("last_use_time"))?,
        end_time: get_opt_time(row, &col("end_time"))?,
        impersonator_user_id: row.try_get(col("impersonator_user_id").as_str())?,
        access_token_id: row.try_get(col("access_token_id").as_str())?,
    })
}

/// Reads token columns, named with `prefix` (the lookup join prefixes them with `t_`).
fn token_from_row(row: &SqliteRow, prefix: &str) -> StoreResult<AccessTokenRecord> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(AccessTokenRecord {
        token_id: row.try_get(col("token_id").as_str())?,
        user_id: row.try_get(col("user_id").as_str())?,
        name: row.try_get(col("name").as_str())?,
        name_key: row.try_get(col("name_key").as_str())?,
        description: row.try_get(col("description").as_str())?,
        token_hash: row.try_get(col("token_hash").as_str())?,
        hint: row.try_get(col("hint").as_str())?,
        create_time: get_time(row, &col("create_time"))?,
        expire_time: get_opt_time(row, &col("expire_time"))?,
        last_use_time: get_opt_time(row, &col("last_use_time"))?,
        revoke_time: get_opt_time(row, &col("revoke_time"))?,
    })
}

fn audit_from_row(row: &SqliteRow) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        event_id: row.try_get("event_id")?,
        time: get_time(row, "time")?,
        action: row.try_get("action")?,
        tenant_id: row.try_get("tenant_id")?,
        actor_user_id: row.try_get("actor_user_id")?,
        subject_user_id: row.try_get("subject_user_id")?,
        session_id: row.try_get("session_id")?,
        peer_address: row.try_get("peer_address")?,
        details: row.try_get("details")?,
    })
}

async fn insert_audit_tx(tx: &mut Transaction<'_, Sqlite>, a: &AuditRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (event_id, time, action, tenant_id, actor_user_id, subject_user_id, session_id, \
         peer_address, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(a.event_id)
    .bind(micros(a.time))
    .bind(&a.action)
    .bind(a.tenant_id)
    .bind(a.actor_user_id)
    .bind(a.subject_user_id)
    .bind(a.session_id)
    .bind(&a.peer_address)
    .bind(&a.details)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_tenant_tx(tx: &mut Transaction<'_, Sqlite>, t: &TenantRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tenants (tenant_id, name, name_key, password_expiry_days, max_access_token_days, create_time, \
         update_time) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(t.tenant_id)
    .bind(&t.name)
    .bind(&t.name_key)
    .bind(t.password_expiry_days)
    .bind(t.max_access_token_days)
    .bind(micros(t.create_time))
    .bind(micros(t.update_time))
    .execute(&mut **tx)
    .await
    .map_err(unique("tenant.name"))?;
    replace_served_tx(tx, t).await
}

async fn replace_served_tx(tx: &mut Transaction<'_, Sqlite>, t: &TenantRecord) -> StoreResult<()> {
    sqlx::query("DELETE FROM served_tenants WHERE support_tenant_id = ?")
        .bind(t.tenant_id)
        .execute(&mut **tx)
        .await?;
    for client in &t.served_tenant_ids {
        sqlx::query("INSERT INTO served_tenants (support_tenant_id, client_tenant_id) VALUES (?, ?)")
            .bind(t.tenant_id)
            .bind(client)
            .execute(&mut **tx)
            .await
            .map_err(unique("tenant.served_tenant_ids"))?;
    }
    Ok(())
}

async fn insert_user_tx(tx: &mut Transaction<'_, Sqlite>, u: &UserRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (user_id, tenant_id, user_name, user_name_key, email, first_name, last_name, time_zone, \
         locale, date_format, employee_number, roles, disabled, password_hash, password_change_time, create_time, \
         update_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(u.user_id)
    .bind(u.tenant_id)
    .bind(&u.user_name)
    .bind(&u.user_name_key)
    .bind(&u.email)
    .bind(&u.first_name)
    .bind(&u.last_name)
    .bind(&u.time_zone)
    .bind(&u.locale)
    .bind(&u.date_format)
    .bind(&u.employee_number)
    .bind(u.roles)
    .bind(u.disabled)
    .bind(&u.password_hash)
    .bind(micros(u.password_change_time))
    .bind(micros(u.create_time))
    .bind(micros(u.update_time))
    .execute(&mut **tx)
    .await
    .map_err(unique("user.user_name"))?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn bootstrap(&self, tenant: &TenantRecord, admin: &UserRecord, audit: &AuditRecord) -> StoreResult<bool> {
        // BEGIN IMMEDIATE holds the write lock from the start, so only one process sees no tenant.
        let mut tx = self.write().await?;
        let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
            .fetch_one(&mut *tx)
            .await?;
        if existing > 0 {
            return Ok(false);
        }
        insert_tenant_tx(&mut tx, tenant).await?;
        insert_user_tx(&mut tx, admin).await?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn insert_tenant(&self, tenant: &TenantRecord, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.write().await?;
        insert_tenant_tx(&mut tx, tenant).await?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_tenant(&self, tenant_id: Uuid) -> StoreResult<Option<TenantRecord>> {
        let Some(row) = sqlx::query("SELECT * FROM tenants WHERE tenant_id = ?")
            .bind(tenant_id)
            .fetch_optional(&self.reader)
            .await?
        else {
            return Ok(None);
        };
        let served: Vec<Uuid> = sqlx::query_scalar(
            "SELECT client_tenant_id FROM served_tenants WHERE support_tenant_id = ? ORDER BY client_tenant_id",
        )
        .bind(tenant_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(Some(TenantRecord {
            tenant_id: row.try_get("tenant_id")?,
            name: row.try_get("name")?,
            name_key: row.try_get("name_key")?,
            password_expiry_days: row.try_get("password_expiry_days")?,
            max_access_token_days: row.try_get("max_access_token_days")?,
            served_tenant_ids: served,
            create_time: get_time(&row, "create_time")?,
            update_time: get_time(&row, "update_time")?,
        }))
    }

    async fn update_tenant(&self, t: &TenantRecord, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE tenants SET name = ?, name_key = ?, password_expiry_days = ?, max_access_token_days = ?, \
             update_time = ? WHERE tenant_id = ?",
        )
        .bind(&t.name)
        .bind(&t.name_key)
        .bind(t.password_expiry_days)
        .bind(t.max_access_token_days)
        .bind(micros(t.update_time))
        .bind(t.tenant_id)
        .execute(&mut *tx)
        .await
        .map_err(unique("tenant.name"))?;
        replace_served_tx(&mut tx, t).await?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_user(&self, user: &UserRecord, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.write().await?;
        insert_user_tx(&mut tx, user).await?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_user(&self, user_id: Uuid) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE user_id = ?")
            .bind(user_id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_user_by_name(&self, user_name_key: &str) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE user_name_key = ?")
            .bind(user_name_key)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self, tenant_id: Uuid, after: Option<Uuid>, limit: i64) -> StoreResult<Vec<UserRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM users WHERE tenant_id = ?1 AND (?2 IS NULL OR user_id > ?2) ORDER BY user_id LIMIT ?3",
        )
        .bind(tenant_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn update_user(&self, u: &UserRecord, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE users SET email = ?, first_name = ?, last_name = ?, time_zone = ?, locale = ?, date_format = ?, \
             employee_number = ?, roles = ?, disabled = ?, password_hash = ?, password_change_time = ?, \
             update_time = ? WHERE user_id = ?",
        )
        .bind(&u.email)
        .bind(&u.first_name)
        .bind(&u.last_name)
        .bind(&u.time_zone)
        .bind(&u.locale)
        .bind(&u.date_format)
        .bind(&u.employee_number)
        .bind(u.roles)
        .bind(u.disabled)
        .bind(&u.password_hash)
        .bind(micros(u.password_change_time))
        .bind(micros(u.update_time))
        .bind(u.user_id)
        .execute(&mut *tx)
        .await?;
        if u.disabled {
            sqlx::query("UPDATE sessions SET end_time = ? WHERE user_id = ? AND end_time IS NULL")
                .bind(micros(u.update_time))
                .bind(u.user_id)
                .execute(&mut *tx)
                .await?;
        }
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_service_account(&self, a: &ServiceAccountRecord, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO service_accounts (service_account_id, tenant_id, name, name_key, description, create_time) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(a.service_account_id)
        .bind(a.tenant_id)
        .bind(&a.name)
        .bind(&a.name_key)
        .bind(&a.description)
        .bind(micros(a.create_time))
        .execute(&mut *tx)
        .await
        .map_err(unique("name"))?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_service_accounts(
        &self,
        tenant_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<ServiceAccountRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM service_accounts WHERE tenant_id = ?1 AND (?2 IS NULL OR service_account_id > ?2) \
             ORDER BY service_account_id LIMIT ?3",
        )
        .bind(tenant_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ServiceAccountRecord {
                    service_account_id: row.try_get("service_account_id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    name: row.try_get("name")?,
                    name_key: row.try_get("name_key")?,
                    description: row.try_get("description")?,
                    create_time: get_time(row, "create_time")?,
                })
            })
            .collect()
    }

    async fn insert_session(&self, s: &SessionRecord, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO sessions (session_id, token_hash, user_id, tenant_id, kind, create_time, expire_time, \
             last_use_time, end_time, impersonator_user_id, access_token_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(s.session_id)
        .bind(&s.token_hash)
        .bind(s.user_id)
        .bind(s.tenant_id)
        .bind(s.kind.as_str())
        .bind(micros(s.create_time))
        .bind(micros(s.expire_time))
        .bind(micros(s.last_use_time))
        .bind(s.end_time.map(micros))
        .bind(s.impersonator_user_id)
        .bind(s.access_token_id)
        .execute(&mut *tx)
        .await?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn lookup_session(&self, token_hash: &[u8]) -> StoreResult<Option<SessionLookup>> {
        let Some(row) = sqlx::query(
            "SELECT s.session_id AS s_session_id, s.token_hash AS s_token_hash, s.user_id AS s_user_id, \
             s.tenant_id AS s_tenant_id, s.kind AS s_kind, s.create_time AS s_create_time, \
             s.expire_time AS s_expire_time, s.last_use_time AS s_last_use_time, s.end_time AS s_end_time, \
             s.impersonator_user_id AS s_impersonator_user_id, s.access_token_id AS s_access_token_id, u.*, ut.password_expiry_days, \
             st.name AS tenant_name \
             FROM sessions s JOIN users u ON u.user_id = s.user_id \
             JOIN tenants ut ON ut.tenant_id = u.tenant_id JOIN tenants st ON st.tenant_id = s.tenant_id \
             WHERE s.token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(SessionLookup {
            session: session_from_row(&row, "s_")?,
            user: user_from_row(&row)?,
            password_expiry_days: row.try_get("password_expiry_days")?,
            tenant_name: row.try_get("tenant_name")?,
        }))
    }

    async fn get_session(&self, session_id: Uuid) -> StoreResult<Option<SessionRecord>> {
        let row = sqlx::query("SELECT * FROM sessions WHERE session_id = ?")
            .bind(session_id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(|r| session_from_row(r, "")).transpose()
    }

    async fn end_session(&self, session_id: Uuid, at: DateTime<Utc>, audit: &AuditRecord) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let ended = sqlx::query("UPDATE sessions SET end_time = ? WHERE session_id = ? AND end_time IS NULL")
            .bind(micros(at))
            .bind(session_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if ended == 0 {
            return Ok(false);
        }
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn end_user_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        at: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let ended = sqlx::query(
            "UPDATE sessions SET end_time = ?1 WHERE user_id = ?2 AND end_time IS NULL \
             AND (?3 IS NULL OR session_id <> ?3)",
        )
        .bind(micros(at))
        .bind(user_id)
        .bind(keep)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(ended)
    }

    async fn sessions_ended_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<Uuid>> {
        Ok(
            sqlx::query_scalar("SELECT session_id FROM sessions WHERE end_time >= ?")
                .bind(micros(since))
                .fetch_all(&self.reader)
                .await?,
        )
    }

    async fn record_session_use(&self, uses: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for (session_id, at) in uses {
            sqlx::query("UPDATE sessions SET last_use_time = ?1 WHERE session_id = ?2 AND last_use_time < ?1")
                .bind(micros(*at))
                .bind(session_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_user_sessions(
        &self,
        user_id: Uuid,
        include_ended: bool,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<SessionRecord>> {
        let sql = "SELECT * FROM sessions WHERE user_id = ?1 AND (?2 OR end_time IS NULL) \
                   AND (?3 IS NULL OR session_id > ?3) ORDER BY session_id LIMIT ?4";
        self.list_sessions(sql, user_id, include_ended, after, limit).await
    }

    async fn insert_access_token(
        &self,
        t: &AccessTokenRecord,
        max_live: i64,
        audit: &AuditRecord,
    ) -> StoreResult<bool> {
        // BEGIN IMMEDIATE holds the write lock, so the count and the insert cannot interleave.
        let mut tx = self.write().await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM user_access_tokens WHERE user_id = ? AND revoke_time IS NULL \
             AND (expire_time IS NULL OR expire_time > ?)",
        )
        .bind(t.user_id)
        .bind(micros(t.create_time))
        .fetch_one(&mut *tx)
        .await?;
        if live >= max_live {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO user_access_tokens (token_id, user_id, name, name_key, description, token_hash, hint, \
             create_time, expire_time, last_use_time, revoke_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(t.token_id)
        .bind(t.user_id)
        .bind(&t.name)
        .bind(&t.name_key)
        .bind(&t.description)
        .bind(&t.token_hash)
        .bind(&t.hint)
        .bind(micros(t.create_time))
        .bind(t.expire_time.map(micros))
        .bind(t.last_use_time.map(micros))
        .bind(t.revoke_time.map(micros))
        .execute(&mut *tx)
        .await
        .map_err(unique("user_access_token_name"))?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn find_access_token(&self, user_id: Uuid, name_key: &str) -> StoreResult<Option<AccessTokenRecord>> {
        let row = sqlx::query(
            "SELECT * FROM user_access_tokens WHERE user_id = ? AND name_key = ? \
             ORDER BY (revoke_time IS NULL) DESC, token_id DESC LIMIT 1",
        )
        .bind(user_id)
        .bind(name_key)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(|r| token_from_row(r, "")).transpose()
    }

    async fn list_access_tokens(
        &self,
        user_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<AccessTokenRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM user_access_tokens WHERE user_id = ?1 AND (?2 IS NULL OR token_id > ?2) \
             ORDER BY token_id LIMIT ?3",
        )
        .bind(user_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| token_from_row(r, "")).collect()
    }

    async fn update_access_token(&self, t: &AccessTokenRecord, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE user_access_tokens SET name = ?, name_key = ?, description = ?, token_hash = ?, hint = ? \
             WHERE token_id = ?",
        )
        .bind(&t.name)
        .bind(&t.name_key)
        .bind(&t.description)
        .bind(&t.token_hash)
        .bind(&t.hint)
        .bind(t.token_id)
        .execute(&mut *tx)
        .await
        .map_err(unique("new_name"))?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_access_token(&self, token_id: Uuid, at: DateTime<Utc>, audit: &AuditRecord) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let revoked =
            sqlx::query("UPDATE user_access_tokens SET revoke_time = ? WHERE token_id = ? AND revoke_time IS NULL")
                .bind(micros(at))
                .bind(token_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if revoked == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE sessions SET end_time = ? WHERE access_token_id = ? AND end_time IS NULL")
            .bind(micros(at))
            .bind(token_id)
            .execute(&mut *tx)
            .await?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn lookup_access_token(&self, token_hash: &[u8]) -> StoreResult<Option<AccessTokenLookup>> {
        let Some(row) = sqlx::query(
            "SELECT t.token_id AS t_token_id, t.user_id AS t_user_id, t.name AS t_name, t.name_key AS t_name_key, \
             t.description AS t_description, t.token_hash AS t_token_hash, t.hint AS t_hint, \
             t.create_time AS t_create_time, t.expire_time AS t_expire_time, t.last_use_time AS t_last_use_time, \
             t.revoke_time AS t_revoke_time, u.*, ut.password_expiry_days, ut.name AS tenant_name \
             FROM user_access_tokens t JOIN users u ON u.user_id = t.user_id \
             JOIN tenants ut ON ut.tenant_id = u.tenant_id WHERE t.token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(AccessTokenLookup {
            token: token_from_row(&row, "t_")?,
            user: user_from_row(&row)?,
            password_expiry_days: row.try_get("password_expiry_days")?,
            tenant_name: row.try_get("tenant_name")?,
        }))
    }

    async fn record_token_use(&self, uses: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for (token_id, at) in uses {
            sqlx::query(
                "UPDATE user_access_tokens SET last_use_time = ?1 WHERE token_id = ?2 \
                 AND (last_use_time IS NULL OR last_use_time < ?1)",
            )
            .bind(micros(*at))
            .bind(token_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_token_sessions(
        &self,
        token_id: Uuid,
        include_ended: bool,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<SessionRecord>> {
        let sql = "SELECT * FROM sessions WHERE access_token_id = ?1 AND (?2 OR end_time IS NULL) \
                   AND (?3 IS NULL OR session_id > ?3) ORDER BY session_id LIMIT ?4";
        self.list_sessions(sql, token_id, include_ended, after, limit).await
    }

    async fn insert_audit(&self, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.write().await?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(&self, f: &AuditFilter, after: Option<Uuid>, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_events WHERE (?1 IS NULL OR tenant_id = ?1) \
             AND (?2 IS NULL OR actor_user_id = ?2 OR subject_user_id = ?2) \
             AND (?3 IS NULL OR action = ?3) AND (?4 IS NULL OR time >= ?4) AND (?5 IS NULL OR time < ?5) \
             AND (?6 IS NULL OR event_id > ?6) ORDER BY event_id LIMIT ?7",
        )
        .bind(f.tenant_id)
        .bind(f.user_id)
        .bind(&f.action)
        .bind(f.start_time.map(micros))
        .bind(f.end_time.map(micros))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }
}
