//! Storage behind one trait. The store keeps and finds rows and runs each change in one
//! transaction; it has no rules about content — those live in the core.
//!
//! One implementation serves every database: [`sql::SqlStore`] holds each statement once, and a
//! small [`Dialect`] says what truly differs between Postgres and SQLite.

mod dialect;
mod error;
mod held_connections;
pub mod postgres;
mod postgres_listener;
mod records;
mod revocation_notices;
mod sql;
pub mod sqlite;
mod sqlite_session_reads;
mod standbys;
mod statement_target;
mod time;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use dialect::{Dialect, LastUseOf};
pub use error::StoreError;
pub use postgres_listener::PgRevocationFeed;
pub use records::{
    AccessTokenLookup, AccessTokenRecord, IdentityProviderRecord, LinkedIdentityRecord, PasswordChange, PasswordRehash,
    ServiceAccountRecord, SessionDetails, SessionLookup, SessionRecord, SessionsOf, SigningKeyRecord, SsoAttemptRecord,
    SsoSignIn, TenantChanges, TenantRecord, TokenChanges, TokenRotation, UserGuard, UserRecord, UserSigningIn,
    UserWrite,
};
pub use revocation_notices::{RevocationFeed, RevocationNotice};
pub use sql::{LOOKUP_BATCH_MAX, SqlStore};

use crate::domain::{AuditEvent, AuditFilter, PageRequest, ProfilePatch};

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the core needs from a database. Every method that changes several rows does so in
/// one transaction, and a method that takes an [`AuditEvent`] writes it in that same transaction
/// and makes its change at the event's time, so that no change is ever recorded without its audit
/// event or the other way round. Every write names the columns it changes: none writes back a
/// value it read earlier. Lists take a [`PageRequest`] and fetch one row more than the page holds.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the database is reachable and can be written.
    async fn ping(&self) -> StoreResult<()>;

    /// Sessions another instance ended, just learnt of (pushed, or polled from the primary): the
    /// hot reads must not take a lagging standby's word that they are open.
    fn ended_elsewhere(&self, _sessions: &[Uuid]) {}

    /// A user or tenant changed on another instance: the hot reads go to the primary until every
    /// usable standby surely has the change.
    fn changed_elsewhere(&self) {}

    /// How many standbys the hot reads would use right now: 0 without any, while none is close
    /// enough behind the primary, or while the primary must be read after a change.
    fn usable_standbys(&self) -> usize {
        0
    }

    /// Sets the database pool gauges to the pools' usage as of now (for a metrics scrape).
    fn report_pool_usage(&self) {}

    /// Keeps the standbys' lag measured, for as long as the task runs; returns at once when
    /// there are none.
    async fn watch_standbys(&self) {}

    /// Closes every connection, once those in use come back; every read and write after this
    /// fails. On a SQLite file the last connection to close copies the write-ahead log into the
    /// database file and removes the log, so that the file alone then holds every commit.
    async fn close(&self) {}

    /// Computes every stored name key again with `key`, if a migration asked for it, in one
    /// transaction; returns how many keys changed. Two names that now share a key fail it with a
    /// unique violation, changing nothing.
    async fn rekey_names(&self, key: for<'a> fn(&'a str) -> String) -> StoreResult<u64>;

    /// Creates the first tenant and its administrator if no tenant exists yet; returns whether it did.
    async fn bootstrap(&self, tenant: &TenantRecord, admin: &UserRecord, audit: &AuditEvent) -> StoreResult<bool>;

    async fn insert_tenant(&self, tenant: &TenantRecord, audit: &AuditEvent) -> StoreResult<()>;
    async fn get_tenant(&self, tenant_id: Uuid) -> StoreResult<Option<TenantRecord>>;
    /// Changes the given fields of a tenant; `None` when there is no such tenant. Impersonated
    /// sessions the change no longer allows end: those of its users in a client it no longer
    /// serves, and, when it switches support off, those of other tenants' users acting in it.
    async fn update_tenant(&self, changes: &TenantChanges, audit: &AuditEvent) -> StoreResult<Option<TenantRecord>>;

    async fn insert_user(&self, user: &UserRecord, audit: &AuditEvent) -> StoreResult<()>;
    async fn get_user(&self, user_id: Uuid) -> StoreResult<Option<UserRecord>>;
    /// Finds a user by the normalised user name.
    async fn find_user_by_name(&self, user_name_key: &str) -> StoreResult<Option<UserRecord>>;
    /// Finds a user by the normalised user name with what a password login needs of their tenant,
    /// in one query.
    async fn find_user_signing_in(&self, user_name_key: &str) -> StoreResult<Option<UserSigningIn>>;
    /// Users of a tenant in creation order.
    async fn list_users(&self, tenant_id: Uuid, page: PageRequest) -> StoreResult<Vec<UserRecord>>;
    /// Changes the given profile fields of a user.
    async fn update_user_profile(
        &self,
        guard: &UserGuard,
        changes: &ProfilePatch,
        audit: &AuditEvent,
    ) -> StoreResult<UserWrite>;
    /// Disables or enables a user; disabling ends their open sessions, and those in which they
    /// impersonate someone.
    async fn set_user_disabled(&self, guard: &UserGuard, disabled: bool, audit: &AuditEvent) -> StoreResult<UserWrite>;
    /// Replaces a user's roles, and ends the impersonated sessions they make or that act as them.
    async fn set_user_roles(&self, guard: &UserGuard, roles: i32, audit: &AuditEvent) -> StoreResult<UserWrite>;

    /// Records `audit` for a failed password login and counts it against `user_id`, unless there
    /// is none, the account is disabled or locked at the event's time (an attempt refused by a lock
    /// is no guess and must not lengthen it), or it already has the most consecutive failures; the
    /// same statements run either way. Returns the consecutive failures after
    /// this one, or `None` when it was not counted. The count is incremented in SQL, so that
    /// concurrent failures on every instance all count.
    async fn record_login_failure(
        &self,
        user_id: Option<Uuid>,
        max_failures: i32,
        audit: &AuditEvent,
    ) -> StoreResult<Option<i32>>;
    /// Refuses a user's password logins until `until`, unless they are already refused longer.
    async fn lock_user(&self, user_id: Uuid, until: DateTime<Utc>, audit: &AuditEvent) -> StoreResult<()>;
    /// After a successful password login: clears the user's failure count and lock when
    /// `reset_failures`, and replaces a hash made with other parameters when `rehash` says so
    /// (only while that hash is still the stored one).
    async fn record_login_success(
        &self,
        user_id: Uuid,
        reset_failures: bool,
        rehash: Option<&PasswordRehash>,
    ) -> StoreResult<()>;
    /// Sets a user's password as they asked, proven with the current one: only while the current
    /// hash is still `change.old_hash`. Clears the must-change mark, the failure count and the
    /// lock, and ends every open session of the user but `change.keep_session`. Returns false,
    /// changing nothing, when the hash was changed meanwhile.
    async fn change_password(&self, change: &PasswordChange, audit: &AuditEvent) -> StoreResult<bool>;
    /// Sets a user's password as an administrator, marking whether it must be changed at the next
    /// login; clears the failure count and the lock, and ends every open session of the user.
    async fn set_user_password(
        &self,
        guard: &UserGuard,
        password_hash: &str,
        force_change: bool,
        audit: &AuditEvent,
    ) -> StoreResult<UserWrite>;
    /// Clears a user's failure count and lock.
    async fn unlock_user(&self, guard: &UserGuard, audit: &AuditEvent) -> StoreResult<UserWrite>;

    async fn insert_service_account(&self, account: &ServiceAccountRecord, audit: &AuditEvent) -> StoreResult<()>;
    /// A tenant's service account by normalised name.
    async fn find_service_account(&self, tenant_id: Uuid, name_key: &str) -> StoreResult<Option<ServiceAccountRecord>>;
    async fn list_service_accounts(&self, tenant_id: Uuid, page: PageRequest)
    -> StoreResult<Vec<ServiceAccountRecord>>;

    async fn insert_session(&self, session: &SessionRecord, audit: &AuditEvent) -> StoreResult<()>;
    /// The hot path: the sessions whose token hashes are `token_hashes`, each joined with the user
    /// and tenants validating it needs, by indexed lookups in as few queries as the list allows
    /// (one per [`LOOKUP_BATCH_MAX`] hashes). Unknown hashes are left out; the order is the store's.
    async fn lookup_sessions(&self, token_hashes: &[[u8; 32]]) -> StoreResult<Vec<SessionLookup>>;
    async fn get_session(&self, session_id: Uuid) -> StoreResult<Option<SessionRecord>>;
    /// Ends an open session of `user_id`; returns false when there is no such open session.
    async fn end_session(&self, session_id: Uuid, user_id: Uuid, audit: &AuditEvent) -> StoreResult<bool>;
    /// Moves the expiry of a service-account session that is open and not yet expired at the
    /// event's time; returns false, changing nothing, when there is no such session.
    async fn set_service_account_session_expiry(
        &self,
        session_id: Uuid,
        expire_time: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Ends an open service-account session; returns false when there is no such open session.
    async fn end_service_account_session(&self, session_id: Uuid, audit: &AuditEvent) -> StoreResult<bool>;
    /// Deletes at most `limit` sessions that expired or ended before `before`; returns how many.
    /// Safe to run on several instances at once.
    async fn delete_old_sessions(&self, before: DateTime<Utc>, limit: i64) -> StoreResult<u64>;
    /// Opens a proxy or customer-support session, recording every one of `audits` (one per tenant
    /// concerned) in the same transaction.
    async fn start_impersonation(&self, session: &SessionRecord, audits: &[AuditEvent]) -> StoreResult<()>;
    /// Ends an open impersonated session of `user_id` and, when `fresh` is given, opens that
    /// session for the real user in its place, recording every one of `audits`; returns false,
    /// changing nothing, when there is no such open session.
    async fn end_impersonation(
        &self,
        session_id: Uuid,
        user_id: Uuid,
        fresh: Option<&SessionRecord>,
        audits: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// Ends every open session of a user but `keep`, and those in which they impersonate someone;
    /// returns how many ended.
    async fn end_user_sessions(&self, user_id: Uuid, keep: Option<Uuid>, audit: &AuditEvent) -> StoreResult<u64>;
    /// The sessions whose end was recorded at or after `since` (one indexed range scan), so that
    /// other instances can drop them from their validation caches.
    async fn sessions_ended_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<Uuid>>;
    /// Records last-use times of sessions or tokens in one batch; a time older than the stored one
    /// is ignored.
    async fn record_last_use(&self, of: LastUseOf, uses: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()>;
    /// A user's sessions, those opened with a token, or a service account's, in creation order; open ones only unless
    /// `ended`.
    async fn list_sessions(&self, of: SessionsOf, ended: bool, page: PageRequest) -> StoreResult<Vec<SessionRecord>>;

    /// Inserts a token unless its user already has `max_live` tokens that are neither revoked nor
    /// expired at `token.create_time`; returns false, inserting nothing, in that case. The count
    /// and the insert happen in one transaction, so concurrent creations cannot pass the cap.
    async fn insert_access_token(
        &self,
        token: &AccessTokenRecord,
        max_live: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
    /// A user's token by normalised name: the live one if there is one, else the newest revoked.
    async fn find_access_token(&self, user_id: Uuid, name_key: &str) -> StoreResult<Option<AccessTokenRecord>>;
    /// A user's tokens in creation order.
    async fn list_access_tokens(&self, user_id: Uuid, page: PageRequest) -> StoreResult<Vec<AccessTokenRecord>>;
    /// Renames and describes a live token; `None` when it is not live.
    async fn update_access_token(
        &self,
        changes: &TokenChanges,
        audit: &AuditEvent,
    ) -> StoreResult<Option<AccessTokenRecord>>;
    /// Replaces a live token's secret — only while its hash is still the old one, so that two
    /// rotations cannot both win — and ends every open session opened with the token. `None` when
    /// the token is revoked or was rotated meanwhile.
    async fn rotate_access_token(
        &self,
        rotation: &TokenRotation,
        audit: &AuditEvent,
    ) -> StoreResult<Option<AccessTokenRecord>>;
    /// Revokes a live token and ends every open session opened with it; returns false when the
    /// token was already revoked.
    async fn revoke_access_token(&self, token_id: Uuid, audit: &AuditEvent) -> StoreResult<bool>;
    /// One indexed lookup by secret hash, joined with the token's user and tenant.
    async fn lookup_access_token(&self, token_hash: &[u8]) -> StoreResult<Option<AccessTokenLookup>>;

    /// Every session-JWT signing key, oldest activation first.
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Adds a signing key. A key with the same activation time already there is a unique
    /// violation: another instance made it first.
    async fn insert_signing_key(&self, key: &SigningKeyRecord, audit: &AuditEvent) -> StoreResult<()>;
    /// Deletes the signing keys whose remove_time is at or before `now`; returns how many.
    async fn delete_removed_signing_keys(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Adds a tenant's identity provider; one already there is a unique violation.
    async fn insert_identity_provider(&self, provider: &IdentityProviderRecord, audit: &AuditEvent) -> StoreResult<()>;
    async fn get_identity_provider(&self, tenant_id: Uuid) -> StoreResult<Option<IdentityProviderRecord>>;
    /// Identity providers in tenant-id order.
    async fn list_identity_providers(&self, page: PageRequest) -> StoreResult<Vec<IdentityProviderRecord>>;
    /// Replaces a tenant's identity provider's settings with `provider`'s, keeping its create
    /// time, only while its update time is still `read_at` (so that two concurrent updates cannot
    /// both win); `None` when it is gone or was changed meanwhile.
    async fn update_identity_provider(
        &self,
        provider: &IdentityProviderRecord,
        read_at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> StoreResult<Option<IdentityProviderRecord>>;
    /// Deletes a tenant's identity provider; returns false when it had none.
    async fn delete_identity_provider(&self, tenant_id: Uuid, audit: &AuditEvent) -> StoreResult<bool>;

    /// Stores a single sign-on attempt, deleting those that expired before its create time.
    async fn insert_sso_attempt(&self, attempt: &SsoAttemptRecord) -> StoreResult<()>;
    /// Records that a SAML assertion signed someone in, until `expire_time`, deleting the ids that
    /// expired before `now`; false when the tenant's provider's assertion id is already there (a
    /// replay, on this instance or another).
    async fn record_saml_assertion(
        &self,
        tenant_id: Uuid,
        assertion_id: &str,
        expire_time: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Takes out the attempt with this state hash: deleted as it is read, so that of two
    /// concurrent takes one gets it.
    async fn take_sso_attempt(&self, state_hash: &[u8]) -> StoreResult<Option<SsoAttemptRecord>>;
    /// The user a provider's subject is linked to, with what a login needs of their tenant.
    async fn find_linked_user(
        &self,
        tenant_id: Uuid,
        issuer: &str,
        subject: &str,
    ) -> StoreResult<Option<UserSigningIn>>;
    /// A tenant's users whose email is `email`, compared without regard to ASCII case (at most 2:
    /// enough to tell one match from several).
    async fn find_users_by_email(&self, tenant_id: Uuid, email: &str) -> StoreResult<Vec<UserSigningIn>>;
    /// Creates the user and the link a single sign-on login brings, if any, and opens its
    /// session, keeping the sealed ID token, with every one of `audits`, in one transaction.
    async fn open_sso_session(&self, sign_in: &SsoSignIn<'_>, audits: &[AuditEvent]) -> StoreResult<()>;
    /// The sealed ID token of a single sign-on session.
    async fn sso_id_token(&self, session_id: Uuid) -> StoreResult<Option<Vec<u8>>>;

    async fn insert_audit(&self, audit: &AuditEvent) -> StoreResult<()>;
    async fn list_audit(&self, filter: &AuditFilter, page: PageRequest) -> StoreResult<Vec<AuditEvent>>;
}
