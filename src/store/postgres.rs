//! The production store: Postgres through sqlx, with runtime-checked queries.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{FromRow, PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use super::{
    AccessTokenLookup, AccessTokenRecord, AuditFilter, AuditRecord, ServiceAccountRecord, SessionKind, SessionLookup,
    SessionRecord, Store, StoreError, StoreResult, TenantRecord, UserRecord,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A Postgres-backed [`Store`].
/// Connections idle at least this long are pinged before use (see [`PostgresStore::connect_lazy`]).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects lazily: the pool opens connections on first use, so the service can start (and
    /// report NOT_SERVING) while the database is still coming up.
    pub fn connect_lazy(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url.parse().context("the database URL is not a valid postgres:// URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // sqlx pings a connection before every use by default, which doubled the round trips
            // of the hot paths. Only connections idle for a while are checked: under load a
            // connection is reused within microseconds, while one that outlived a database restart
            // has been idle for seconds and is replaced here rather than failing a call.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    /// Applies the migrations in `migrations/postgres/` that have not run yet.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.pool).await.context("applying Postgres migrations")
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
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
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(session_from_row).collect()
    }
}

fn unique(field: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, field)
}

async fn insert_audit_tx(tx: &mut Transaction<'_, Postgres>, a: &AuditRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (event_id, time, action, tenant_id, actor_user_id, subject_user_id, session_id, \
         peer_address, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(a.event_id)
    .bind(a.time)
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

async fn insert_tenant_tx(tx: &mut Transaction<'_, Postgres>, t: &TenantRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tenants (tenant_id, name, name_key, password_expiry_days, max_access_token_days, create_time, \
         update_time) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(t.tenant_id)
    .bind(&t.name)
    .bind(&t.name_key)
    .bind(t.password_expiry_days)
    .bind(t.max_access_token_days)
    .bind(t.create_time)
    .bind(t.update_time)
    .execute(&mut **tx)
    .await
    .map_err(unique("tenant.name"))?;
    replace_served_tx(tx, t).await
}

async fn replace_served_tx(tx: &mut Transaction<'_, Postgres>, t: &TenantRecord) -> StoreResult<()> {
    sqlx::query("DELETE FROM served_tenants WHERE support_tenant_id = $1")
        .bind(t.tenant_id)
        .execute(&mut **tx)
        .await?;
    for client in &t.served_tenant_ids {
        sqlx::query("INSERT INTO served_tenants (support_tenant_id, client_tenant_id) VALUES ($1, $2)")
            .bind(t.tenant_id)
            .bind(client)
            .execute(&mut **tx)
            .await
            .map_err(unique("tenant.served_tenant_ids"))?;
    }
    Ok(())
}

async fn insert_user_tx(tx: &mut Transaction<'_, Postgres>, u: &UserRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (user_id, tenant_id, user_name, user_name_key, email, first_name, last_name, time_zone, \
         locale, date_format, employee_number, roles, disabled, password_hash, password_change_time, create_time, \
         update_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
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
    .bind(u.password_change_time)
    .bind(u.create_time)
    .bind(u.update_time)
    .execute(&mut **tx)
    .await
    .map_err(unique("user.user_name"))?;
    Ok(())
}

fn session_from_row(row: &sqlx::postgres::PgRow) -> StoreResult<SessionRecord> {
    let kind: String = row.try_get("kind")?;
    Ok(SessionRecord {
        session_id: row.try_get("session_id")?,
        token_hash: row.try_get("token_hash")?,
        user_id: row.try_get("user_id")?,
        tenant_id: row.try_get("tenant_id")?,
        kind: SessionKind::parse(&kind)
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("unknown session kind {kind:?}")))?,
        create_time: row.try_get("create_time")?,
        expire_time: row.try_get("expire_time")?,
        last_use_time: row.try_get("last_use_time")?,
        end_time: row.try_get("end_time")?,
        impersonator_user_id: row.try_get("impersonator_user_id")?,
        access_token_id: row.try_get("access_token_id")?,
    })
}

/// Reads token columns, named with `prefix` (the lookup join prefixes them with `t_`).
fn token_from_row(row: &sqlx::postgres::PgRow, prefix: &str) -> StoreResult<AccessTokenRecord> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(AccessTokenRecord {
        token_id: row.try_get(col("token_id").as_str())?,
        user_id: row.try_get(col("user_id").as_str())?,
        name: row.try_get(col("name").as_str())?,
        name_key: row.try_get(col("name_key").as_str())?,
        description: row.try_get(col("description").as_str())?,
        token_hash: row.try_get(col("token_hash").as_str())?,
        hint: row.try_get(col("hint").as_str())?,
        create_time: row.try_get(col("create_time").as_str())?,
        expire_time: row.try_get(col("expire_time").as_str())?,
        last_use_time: row.try_get(col("last_use_time").as_str())?,
        revoke_time: row.try_get(col("revoke_time").as_str())?,
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn bootstrap(&self, tenant: &TenantRecord, admin: &UserRecord, audit: &AuditRecord) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        // Serialises concurrent first starts: only one of them sees an empty table.
        sqlx::query("LOCK TABLE tenants IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
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
        let mut tx = self.pool.begin().await?;
        insert_tenant_tx(&mut tx, tenant).await?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_tenant(&self, tenant_id: Uuid) -> StoreResult<Option<TenantRecord>> {
        let Some(row) = sqlx::query(
            "SELECT tenant_id, name, name_key, password_expiry_days, max_access_token_days, create_time, update_time \
             FROM tenants WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let served: Vec<Uuid> = sqlx::query_scalar(
            "SELECT client_tenant_id FROM served_tenants WHERE support_tenant_id = $1 ORDER BY client_tenant_id",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(TenantRecord {
            tenant_id: row.try_get("tenant_id")?,
            name: row.try_get("name")?,
            name_key: row.try_get("name_key")?,
            password_expiry_days: row.try_get("password_expiry_days")?,
            max_access_token_days: row.try_get("max_access_token_days")?,
            served_tenant_ids: served,
            create_time: row.try_get("create_time")?,
            update_time: row.try_get("update_time")?,
        }))
    }

    async fn update_tenant(&self, t: &TenantRecord, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE tenants SET name = $2, name_key = $3, password_expiry_days = $4, max_access_token_days = $5, \
             update_time = $6 WHERE tenant_id = $1",
        )
        .bind(t.tenant_id)
        .bind(&t.name)
        .bind(&t.name_key)
        .bind(t.password_expiry_days)
        .bind(t.max_access_token_days)
        .bind(t.update_time)
        .execute(&mut *tx)
        .await
        .map_err(unique("tenant.name"))?;
        replace_served_tx(&mut tx, t).await?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_user(&self, user: &UserRecord, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_user_tx(&mut tx, user).await?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_user(&self, user_id: Uuid) -> StoreResult<Option<UserRecord>> {
        Ok(sqlx::query_as("SELECT * FROM users WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn find_user_by_name(&self, user_name_key: &str) -> StoreResult<Option<UserRecord>> {
        Ok(sqlx::query_as("SELECT * FROM users WHERE user_name_key = $1")
            .bind(user_name_key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn list_users(&self, tenant_id: Uuid, after: Option<Uuid>, limit: i64) -> StoreResult<Vec<UserRecord>> {
        Ok(sqlx::query_as(
            "SELECT * FROM users WHERE tenant_id = $1 AND ($2::uuid IS NULL OR user_id > $2) ORDER BY user_id LIMIT $3",
        )
        .bind(tenant_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn update_user(&self, u: &UserRecord, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE users SET email = $2, first_name = $3, last_name = $4, time_zone = $5, locale = $6, \
             date_format = $7, employee_number = $8, roles = $9, disabled = $10, password_hash = $11, \
             password_change_time = $12, update_time = $13 WHERE user_id = $1",
        )
        .bind(u.user_id)
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
        .bind(u.password_change_time)
        .bind(u.update_time)
        .execute(&mut *tx)
        .await?;
        if u.disabled {
            sqlx::query("UPDATE sessions SET end_time = $2 WHERE user_id = $1 AND end_time IS NULL")
                .bind(u.user_id)
                .bind(u.update_time)
                .execute(&mut *tx)
                .await?;
        }
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_service_account(&self, a: &ServiceAccountRecord, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO service_accounts (service_account_id, tenant_id, name, name_key, description, create_time) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(a.service_account_id)
        .bind(a.tenant_id)
        .bind(&a.name)
        .bind(&a.name_key)
        .bind(&a.description)
        .bind(a.create_time)
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
        Ok(sqlx::query_as(
            "SELECT * FROM service_accounts WHERE tenant_id = $1 AND ($2::uuid IS NULL OR service_account_id > $2) \
             ORDER BY service_account_id LIMIT $3",
        )
        .bind(tenant_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn insert_session(&self, s: &SessionRecord, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (session_id, token_hash, user_id, tenant_id, kind, create_time, expire_time, \
             last_use_time, end_time, impersonator_user_id, access_token_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(s.session_id)
        .bind(&s.token_hash)
        .bind(s.user_id)
        .bind(s.tenant_id)
        .bind(s.kind.as_str())
        .bind(s.create_time)
        .bind(s.expire_time)
        .bind(s.last_use_time)
        .bind(s.end_time)
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
            "SELECT s.session_id, s.token_hash, s.user_id, s.tenant_id, s.kind, s.create_time, s.expire_time, \
             s.last_use_time, s.end_time, s.impersonator_user_id, s.access_token_id, \
             u.tenant_id AS u_tenant_id, u.user_name, u.user_name_key, u.email, u.first_name, u.last_name, \
             u.time_zone, u.locale, u.date_format, u.employee_number, u.roles, u.disabled, u.password_hash, \
             u.password_change_time, u.create_time AS u_create_time, u.update_time AS u_update_time, \
             ut.password_expiry_days, st.name AS tenant_name \
             FROM sessions s JOIN users u ON u.user_id = s.user_id \
             JOIN tenants ut ON ut.tenant_id = u.tenant_id JOIN tenants st ON st.tenant_id = s.tenant_id \
             WHERE s.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let session = session_from_row(&row)?;
        let user = UserRecord {
            user_id: session.user_id,
            tenant_id: row.try_get("u_tenant_id")?,
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
            password_change_time: row.try_get("password_change_time")?,
            create_time: row.try_get("u_create_time")?,
            update_time: row.try_get("u_update_time")?,
        };
        Ok(Some(SessionLookup {
            session,
            user,
            password_expiry_days: row.try_get("password_expiry_days")?,
            tenant_name: row.try_get("tenant_name")?,
        }))
    }

    async fn get_session(&self, session_id: Uuid) -> StoreResult<Option<SessionRecord>> {
        let row = sqlx::query(
            "SELECT s.session_id, s.token_hash, s.user_id, s.tenant_id, s.kind, s.create_time, s.expire_time, \
             s.last_use_time, s.end_time, s.impersonator_user_id, s.access_token_id FROM sessions s WHERE s.session_id = $1",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn end_session(&self, session_id: Uuid, at: DateTime<Utc>, audit: &AuditRecord) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let ended = sqlx::query("UPDATE sessions SET end_time = $2 WHERE session_id = $1 AND end_time IS NULL")
            .bind(session_id)
            .bind(at)
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
        let mut tx = self.pool.begin().await?;
        let ended = sqlx::query(
            "UPDATE sessions SET end_time = $3 WHERE user_id = $1 AND end_time IS NULL \
             AND ($2::uuid IS NULL OR session_id <> $2)",
        )
        .bind(user_id)
        .bind(keep)
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(ended)
    }

    async fn sessions_ended_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<Uuid>> {
        Ok(
            sqlx::query_scalar("SELECT session_id FROM sessions WHERE end_time >= $1")
                .bind(since)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn record_session_use(&self, uses: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = uses.iter().map(|(id, _)| *id).collect();
        let times: Vec<DateTime<Utc>> = uses.iter().map(|(_, t)| *t).collect();
        sqlx::query(
            "UPDATE sessions s SET last_use_time = u.time FROM UNNEST($1::uuid[], $2::timestamptz[]) AS u(id, time) \
             WHERE s.session_id = u.id AND s.last_use_time < u.time",
        )
        .bind(ids)
        .bind(times)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_user_sessions(
        &self,
        user_id: Uuid,
        include_ended: bool,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<SessionRecord>> {
        let sql = "SELECT s.session_id, s.token_hash, s.user_id, s.tenant_id, s.kind, s.create_time, s.expire_time, \
                   s.last_use_time, s.end_time, s.impersonator_user_id, s.access_token_id FROM sessions s \
                   WHERE s.user_id = $1 AND ($2 OR s.end_time IS NULL) AND ($3::uuid IS NULL OR s.session_id > $3) \
                   ORDER BY s.session_id LIMIT $4";
        self.list_sessions(sql, user_id, include_ended, after, limit).await
    }

    async fn insert_access_token(
        &self,
        t: &AccessTokenRecord,
        max_live: i64,
        audit: &AuditRecord,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        // Locking the user's row serialises concurrent creations for that user, so the cap holds.
        sqlx::query("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE")
            .bind(t.user_id)
            .execute(&mut *tx)
            .await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM user_access_tokens WHERE user_id = $1 AND revoke_time IS NULL \
             AND (expire_time IS NULL OR expire_time > $2)",
        )
        .bind(t.user_id)
        .bind(t.create_time)
        .fetch_one(&mut *tx)
        .await?;
        if live >= max_live {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO user_access_tokens (token_id, user_id, name, name_key, description, token_hash, hint, \
             create_time, expire_time, last_use_time, revoke_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(t.token_id)
        .bind(t.user_id)
        .bind(&t.name)
        .bind(&t.name_key)
        .bind(&t.description)
        .bind(&t.token_hash)
        .bind(&t.hint)
        .bind(t.create_time)
        .bind(t.expire_time)
        .bind(t.last_use_time)
        .bind(t.revoke_time)
        .execute(&mut *tx)
        .await
        .map_err(unique("user_access_token_name"))?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn find_access_token(&self, user_id: Uuid, name_key: &str) -> StoreResult<Option<AccessTokenRecord>> {
        let row = sqlx::query(
            "SELECT * FROM user_access_tokens WHERE user_id = $1 AND name_key = $2 \
             ORDER BY (revoke_time IS NULL) DESC, token_id DESC LIMIT 1",
        )
        .bind(user_id)
        .bind(name_key)
        .fetch_optional(&self.pool)
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
            "SELECT * FROM user_access_tokens WHERE user_id = $1 AND ($2::uuid IS NULL OR token_id > $2) \
             ORDER BY token_id LIMIT $3",
        )
        .bind(user_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| token_from_row(r, "")).collect()
    }

    async fn update_access_token(&self, t: &AccessTokenRecord, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE user_access_tokens SET name = $2, name_key = $3, description = $4, token_hash = $5, hint = $6 \
             WHERE token_id = $1",
        )
        .bind(t.token_id)
        .bind(&t.name)
        .bind(&t.name_key)
        .bind(&t.description)
        .bind(&t.token_hash)
        .bind(&t.hint)
        .execute(&mut *tx)
        .await
        .map_err(unique("new_name"))?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_access_token(&self, token_id: Uuid, at: DateTime<Utc>, audit: &AuditRecord) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let revoked =
            sqlx::query("UPDATE user_access_tokens SET revoke_time = $2 WHERE token_id = $1 AND revoke_time IS NULL")
                .bind(token_id)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if revoked == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE sessions SET end_time = $2 WHERE access_token_id = $1 AND end_time IS NULL")
            .bind(token_id)
            .bind(at)
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
             JOIN tenants ut ON ut.tenant_id = u.tenant_id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(AccessTokenLookup {
            token: token_from_row(&row, "t_")?,
            user: UserRecord::from_row(&row)?,
            password_expiry_days: row.try_get("password_expiry_days")?,
            tenant_name: row.try_get("tenant_name")?,
        }))
    }

    async fn record_token_use(&self, uses: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = uses.iter().map(|(id, _)| *id).collect();
        let times: Vec<DateTime<Utc>> = uses.iter().map(|(_, t)| *t).collect();
        sqlx::query(
            "UPDATE user_access_tokens t SET last_use_time = u.time \
             FROM UNNEST($1::uuid[], $2::timestamptz[]) AS u(id, time) \
             WHERE t.token_id = u.id AND (t.last_use_time IS NULL OR t.last_use_time < u.time)",
        )
        .bind(ids)
        .bind(times)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_token_sessions(
        &self,
        token_id: Uuid,
        include_ended: bool,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<SessionRecord>> {
        let sql = "SELECT s.session_id, s.token_hash, s.user_id, s.tenant_id, s.kind, s.create_time, s.expire_time, \
                   s.last_use_time, s.end_time, s.impersonator_user_id, s.access_token_id FROM sessions s \
                   WHERE s.access_token_id = $1 AND ($2 OR s.end_time IS NULL) \
                   AND ($3::uuid IS NULL OR s.session_id > $3) ORDER BY s.session_id LIMIT $4";
        self.list_sessions(sql, token_id, include_ended, after, limit).await
    }

    async fn insert_audit(&self, audit: &AuditRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(&self, f: &AuditFilter, after: Option<Uuid>, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        Ok(sqlx::query_as(
            "SELECT * FROM audit_events WHERE ($1::uuid IS NULL OR tenant_id = $1) \
             AND ($2::uuid IS NULL OR actor_user_id = $2 OR subject_user_id = $2) \
             AND ($3::text IS NULL OR action = $3) AND ($4::timestamptz IS NULL OR time >= $4) \
             AND ($5::timestamptz IS NULL OR time < $5) AND ($6::uuid IS NULL OR event_id > $6) \
             ORDER BY event_id LIMIT $7",
        )
        .bind(f.tenant_id)
        .bind(f.user_id)
        .bind(&f.action)
        .bind(f.start_time)
        .bind(f.end_time)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
