//! Storage behind one trait. The store keeps and finds rows and runs each change in one
//! transaction; it has no rules about content — those live in the core.

mod error;
pub mod postgres;
mod records;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use error::StoreError;
pub use records::{
    AccessTokenLookup, AccessTokenRecord, AuditFilter, AuditRecord, ServiceAccountRecord, SessionKind, SessionLookup,
    SessionRecord, TenantRecord, UserRecord,
};

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the core needs from a database. Every method that changes several rows does so in
/// one transaction, and a method that takes an [`AuditRecord`] writes it in that same transaction,
/// so that no change is ever recorded without its audit event or the other way round.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the database is reachable.
    async fn ping(&self) -> StoreResult<()>;

    /// Creates the first tenant and its administrator if no tenant exists yet; returns whether it did.
    async fn bootstrap(&self, tenant: &TenantRecord, admin: &UserRecord, audit: &AuditRecord) -> StoreResult<bool>;

    async fn insert_tenant(&self, tenant: &TenantRecord, audit: &AuditRecord) -> StoreResult<()>;
    async fn get_tenant(&self, tenant_id: Uuid) -> StoreResult<Option<TenantRecord>>;
    /// Replaces the tenant's mutable fields and its served-tenant list.
    async fn update_tenant(&self, tenant: &TenantRecord, audit: &AuditRecord) -> StoreResult<()>;

    async fn insert_user(&self, user: &UserRecord, audit: &AuditRecord) -> StoreResult<()>;
    async fn get_user(&self, user_id: Uuid) -> StoreResult<Option<UserRecord>>;
    /// Finds a user by the case-folded user name.
    async fn find_user_by_name(&self, user_name_key: &str) -> StoreResult<Option<UserRecord>>;
    /// Users of a tenant in creation order, after `after`.
    async fn list_users(&self, tenant_id: Uuid, after: Option<Uuid>, limit: i64) -> StoreResult<Vec<UserRecord>>;
    /// Replaces the user's mutable fields. When the user becomes disabled, their open sessions end
    /// at `user.update_time` in the same transaction.
    async fn update_user(&self, user: &UserRecord, audit: &AuditRecord) -> StoreResult<()>;

    async fn insert_service_account(&self, account: &ServiceAccountRecord, audit: &AuditRecord) -> StoreResult<()>;
    async fn list_service_accounts(
        &self,
        tenant_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<ServiceAccountRecord>>;

    async fn insert_session(&self, session: &SessionRecord, audit: &AuditRecord) -> StoreResult<()>;
    /// The hot path: one indexed lookup by token hash, joined with the user and tenant it needs.
    async fn lookup_session(&self, token_hash: &[u8]) -> StoreResult<Option<SessionLookup>>;
    async fn get_session(&self, session_id: Uuid) -> StoreResult<Option<SessionRecord>>;
    /// Ends an open session; returns false when it was already ended or does not exist.
    async fn end_session(&self, session_id: Uuid, at: DateTime<Utc>, audit: &AuditRecord) -> StoreResult<bool>;
    /// Ends every open session of a user but `keep`; returns how many ended.
    async fn end_user_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        at: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> StoreResult<u64>;
    /// The sessions whose end was recorded at or after `since` (one indexed range scan), so that
    /// other instances can drop them from their validation caches.
    async fn sessions_ended_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<Uuid>>;
    /// Records last-use times in one batch; a time older than the stored one is ignored.
    async fn record_session_use(&self, uses: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()>;
    /// A user's sessions in creation order after `after`; open ones only unless `include_ended`.
    async fn list_user_sessions(
        &self,
        user_id: Uuid,
        include_ended: bool,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<SessionRecord>>;

    /// Inserts a token unless its user already has `max_live` tokens that are neither revoked nor
    /// expired at `token.create_time`; returns false, inserting nothing, in that case. The count
    /// and the insert happen in one transaction, so concurrent creations cannot pass the cap.
    async fn insert_access_token(
        &self,
        token: &AccessTokenRecord,
        max_live: i64,
        audit: &AuditRecord,
    ) -> StoreResult<bool>;
    /// A user's token by case-folded name: the live one if there is one, else the newest revoked.
    async fn find_access_token(&self, user_id: Uuid, name_key: &str) -> StoreResult<Option<AccessTokenRecord>>;
    /// A user's tokens in creation order, after `after`.
    async fn list_access_tokens(
        &self,
        user_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<AccessTokenRecord>>;
    /// Replaces a token's name, description, secret hash and hint (rename, describe, rotate).
    async fn update_access_token(&self, token: &AccessTokenRecord, audit: &AuditRecord) -> StoreResult<()>;
    /// Revokes a live token and ends every open session opened with it, in one transaction;
    /// returns false when the token was already revoked.
    async fn revoke_access_token(&self, token_id: Uuid, at: DateTime<Utc>, audit: &AuditRecord) -> StoreResult<bool>;
    /// One indexed lookup by secret hash, joined with the token's user and tenant.
    async fn lookup_access_token(&self, token_hash: &[u8]) -> StoreResult<Option<AccessTokenLookup>>;
    /// Records tokens' last-use times in one batch; an older time than the stored one is ignored.
    async fn record_token_use(&self, uses: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()>;
    /// Sessions opened with a token, in creation order after `after`; open ones only unless
    /// `include_ended`.
    async fn list_token_sessions(
        &self,
        token_id: Uuid,
        include_ended: bool,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<SessionRecord>>;

    async fn insert_audit(&self, audit: &AuditRecord) -> StoreResult<()>;
    async fn list_audit(&self, filter: &AuditFilter, after: Option<Uuid>, limit: i64) -> StoreResult<Vec<AuditRecord>>;
}
