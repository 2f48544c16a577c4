//! The rows the store keeps and finds, and the changes it is asked to make. Times decode through
//! [`StoredTime`], so the same row types serve every database.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::time::{StoredOptionalTime, StoredTime};
use crate::domain::{AuditEvent, SessionKind, UserProfile};

/// A tenant row and the list of client tenants it serves.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TenantRecord {
    pub tenant_id: Uuid,
    pub name: String,
    /// The normalised name, for uniqueness.
    pub name_key: String,
    /// Days a password stays valid; `None` for never.
    pub password_expiry_days: Option<i32>,
    /// Longest user-access-token lifetime in days; 0 for no cap.
    pub max_access_token_days: i32,
    /// Fewest characters a new password may have.
    pub min_password_length: i32,
    /// Consecutive failed logins that lock an account.
    pub lockout_failures: i32,
    /// The first lock's length, in seconds; it doubles with each further failure.
    pub lockout_seconds: i32,
    /// The longest lock, in seconds.
    pub max_lockout_seconds: i32,
    /// Whether customer-support and cross-tenant proxy logins into this tenant are allowed.
    pub allow_customer_support: bool,
    /// Read from `served_tenants`, not from the tenant row.
    #[sqlx(skip)]
    pub served_tenant_ids: Vec<Uuid>,
    #[sqlx(try_from = "StoredTime")]
    pub create_time: DateTime<Utc>,
    #[sqlx(try_from = "StoredTime")]
    pub update_time: DateTime<Utc>,
}

/// A user found by name to prove a password, with what a login needs of their tenant, read in the
/// same query: a password login reads nothing else before it opens the session.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserSigningIn {
    #[sqlx(flatten)]
    pub user: UserRecord,
    pub tenant_name: String,
    /// The tenant's password-expiry policy, in days (`None` for never).
    pub password_expiry_days: Option<i32>,
    /// The tenant's lockout settings (see [`TenantRecord`]).
    pub lockout_failures: i32,
    pub lockout_seconds: i32,
    pub max_lockout_seconds: i32,
}

/// The fields of a tenant to change; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantChanges {
    pub tenant_id: Uuid,
    /// The new name and its key.
    pub name: Option<(String, String)>,
    /// The new password-expiry policy in days (`Some(None)`: never).
    pub password_expiry_days: Option<Option<i32>>,
    pub max_access_token_days: Option<i32>,
    pub served_tenant_ids: Option<Vec<Uuid>>,
    pub min_password_length: Option<i32>,
    /// The new lockout settings: failures, seconds and longest seconds, together.
    pub lockout: Option<(i32, i32, i32)>,
    pub allow_customer_support: Option<bool>,
}

/// A user row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRecord {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub user_name: String,
    pub user_name_key: String,
    /// The profile columns (see the [`FromRow`](sqlx::FromRow) impl below).
    #[sqlx(flatten)]
    pub profile: UserProfile,
    /// Bit mask of [`crate::domain::Roles`].
    pub roles: i32,
    pub disabled: bool,
    /// An argon2id PHC string.
    pub password_hash: String,
    #[sqlx(try_from = "StoredTime")]
    pub password_change_time: DateTime<Utc>,
    /// An administrator set the password: it must be changed at the next login.
    pub force_change_password: bool,
    /// Consecutive failed password logins since the last successful one.
    pub failed_login_count: i32,
    /// The end of the latest temporary lock after failed logins.
    #[sqlx(try_from = "StoredOptionalTime")]
    pub locked_until: Option<DateTime<Utc>>,
    #[sqlx(try_from = "StoredTime")]
    pub create_time: DateTime<Utc>,
    #[sqlx(try_from = "StoredTime")]
    pub update_time: DateTime<Utc>,
}

/// A user's own password change, proven with the current password.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    pub user_id: Uuid,
    /// The hash the current password was checked against: the change happens only while it is
    /// still the stored one, so that of two concurrent changes one wins.
    pub old_hash: String,
    pub new_hash: String,
    /// The session the change comes through, which stays open; every other one ends.
    pub keep_session: Option<Uuid>,
}

/// A stored hash made with other argon2 parameters, and the same password hashed with the current
/// ones to replace it.
#[derive(Debug, Clone)]
pub struct PasswordRehash {
    pub old_hash: String,
    pub new_hash: String,
}

/// Reads a domain type, which knows no SQL, from a row: `from_row!(Type, |row| expression)`.
macro_rules! from_row {
    ($ty:ty, |$row:ident| $read:expr) => {
        impl<'r, R: Row> sqlx::FromRow<'r, R> for $ty
        where
            &'r str: ColumnIndex<R>,
            Uuid: Decode<'r, R::Database> + Type<R::Database>,
            String: Decode<'r, R::Database> + Type<R::Database>,
            StoredTime: Decode<'r, R::Database> + Type<R::Database>,
        {
            fn from_row($row: &'r R) -> sqlx::Result<Self> {
                $read
            }
        }
    };
}

from_row!(UserProfile, |row| Ok(UserProfile {
    email: row.try_get("email")?,
    first_name: row.try_get("first_name")?,
    last_name: row.try_get("last_name")?,
    time_zone: row.try_get("time_zone")?,
    locale: row.try_get("locale")?,
    date_format: row.try_get("date_format")?,
    employee_number: row.try_get("employee_number")?,
}));

// Details are kept as a JSON object of strings.
from_row!(AuditEvent, |row| Ok(AuditEvent {
    event_id: row.try_get("event_id")?,
    time: row.try_get::<StoredTime, _>("time")?.0,
    action: row.try_get("action")?,
    tenant_id: row.try_get("tenant_id")?,
    actor_user_id: row.try_get("actor_user_id")?,
    subject_user_id: row.try_get("subject_user_id")?,
    session_id: row.try_get("session_id")?,
    peer_address: row.try_get("peer_address")?,
    details: serde_json::from_str(&row.try_get::<String, _>("details")?).map_err(|e| sqlx::Error::ColumnDecode {
        index: "details".into(),
        source: Box::new(e),
    })?,
}));

/// What a change to a user is conditional on, checked in the transaction that makes it, so that
/// a change decided on an earlier read cannot land on a user who has changed since.
#[derive(Debug, Clone, Copy)]
pub struct UserGuard {
    pub user_id: Uuid,
    /// The roles the decision saw; the change happens only while the user still holds exactly these.
    pub roles: i32,
    /// Refuse the change if afterwards no enabled user holds this role bit.
    pub keep_an_enabled_holder_of: Option<i32>,
}

/// How a guarded change to a user ended. Only [`Self::Written`] changed anything.
#[derive(Debug, Clone)]
pub enum UserWrite {
    /// The user as it is now.
    Written(Box<UserRecord>),
    /// No such user.
    Missing,
    /// The user's roles are no longer those the decision saw.
    RolesChanged,
    /// The change would leave no enabled holder of the guarded role.
    LastHolder,
}

/// A session row. Only the SHA-256 hash of its token is kept. A session acts as a user or, opened
/// by the deprecated CloudBees createSession, as a service account: exactly one of `user_id` and
/// `service_account_id` is set.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRecord {
    pub session_id: Uuid,
    pub token_hash: Vec<u8>,
    /// The user the session acts as; `None` for a service-account session.
    pub user_id: Option<Uuid>,
    /// The tenant the session acts in (a customer-support session acts in the client tenant).
    /// Selected under another name, so that it can be read beside its user's columns.
    #[sqlx(rename = "session_tenant_id")]
    pub tenant_id: Uuid,
    #[sqlx(try_from = "String")]
    pub kind: SessionKind,
    #[sqlx(rename = "session_create_time", try_from = "StoredTime")]
    pub create_time: DateTime<Utc>,
    #[sqlx(try_from = "StoredTime")]
    pub expire_time: DateTime<Utc>,
    #[sqlx(try_from = "StoredTime")]
    pub last_use_time: DateTime<Utc>,
    #[sqlx(try_from = "StoredOptionalTime")]
    pub end_time: Option<DateTime<Utc>>,
    pub impersonator_user_id: Option<Uuid>,
    /// For an impersonated session, the real user's session it was opened from, which stays open
    /// and which switching back returns to.
    pub original_session_id: Option<Uuid>,
    /// The user access token the session was opened with, if any.
    pub access_token_id: Option<Uuid>,
    /// That token's name, read with the session (not a column of it).
    pub access_token_name: Option<String>,
    /// The impersonator's user name, read with the session (not a column of it).
    pub impersonator_user_name: Option<String>,
    /// The service account the session acts as; `None` for a user's session.
    pub service_account_id: Option<Uuid>,
    /// That service account's name, read with the session (not a column of it).
    pub service_account_name: Option<String>,
    /// What the client told about itself when the session was opened, truncated.
    #[sqlx(flatten)]
    pub details: SessionDetails,
}

impl SessionRecord {
    /// A session of `kind` opened at `now` in `tenant_id`, with its token's hash and a fresh id,
    /// open until `expire_time`; who it acts as and everything else is left unset for the caller
    /// to fill in (`SessionRecord { user_id: …, ..SessionRecord::opened(…) }`).
    pub fn opened(
        token_hash: Vec<u8>,
        tenant_id: Uuid,
        kind: SessionKind,
        now: DateTime<Utc>,
        expire_time: DateTime<Utc>,
    ) -> Self {
        Self {
            session_id: Uuid::now_v7(),
            token_hash,
            user_id: None,
            tenant_id,
            kind,
            create_time: now,
            expire_time,
            last_use_time: now,
            end_time: None,
            impersonator_user_id: None,
            original_session_id: None,
            access_token_id: None,
            access_token_name: None,
            impersonator_user_name: None,
            service_account_id: None,
            service_account_name: None,
            details: SessionDetails::default(),
        }
    }
}

/// What the client told about itself when a session was opened, so that a person can recognise
/// the session later. Each field is bounded in length by the core before it is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionDetails {
    /// The client's `user-agent`.
    pub user_agent: Option<String>,
    /// The address the session was opened from.
    pub peer_address: Option<String>,
    /// The name the client gave its device on login.
    pub device_name: Option<String>,
}

/// Whose sessions to list.
#[derive(Debug, Clone, Copy)]
pub enum SessionsOf {
    User(Uuid),
    /// Those opened with this user access token.
    AccessToken(Uuid),
    /// Those of this service account.
    ServiceAccount(Uuid),
}

/// What validating a session needs, read in one query: the session, its user (none for a
/// service-account session), and their tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLookup {
    pub session: SessionRecord,
    /// The user the session acts as; `None` for a service-account session.
    pub user: Option<UserRecord>,
    /// The password-expiry policy of the user's own tenant, in days (`None` for never, and for a
    /// service-account session).
    pub password_expiry_days: Option<i32>,
    /// The name of the tenant the session acts in.
    pub tenant_name: String,
}

impl<'r, R: Row> sqlx::FromRow<'r, R> for SessionLookup
where
    &'r str: ColumnIndex<R>,
    SessionRecord: sqlx::FromRow<'r, R>,
    UserRecord: sqlx::FromRow<'r, R>,
    Option<i32>: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> sqlx::Result<Self> {
        let session = SessionRecord::from_row(row)?;
        // The user's columns come from an outer join: all null for a service-account session.
        let user = match session.user_id {
            Some(_) => Some(UserRecord::from_row(row)?),
            None => None,
        };
        Ok(Self {
            session,
            user,
            password_expiry_days: row.try_get("password_expiry_days")?,
            tenant_name: row.try_get("tenant_name")?,
        })
    }
}

/// A user access token row. Only the SHA-256 hash of its secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccessTokenRecord {
    pub token_id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// The normalised name, unique among the user's live tokens.
    pub name_key: String,
    pub description: String,
    pub token_hash: Vec<u8>,
    /// Non-secret: prefix and last characters.
    pub hint: String,
    #[sqlx(try_from = "StoredTime")]
    pub create_time: DateTime<Utc>,
    /// `None`: never expires.
    #[sqlx(try_from = "StoredOptionalTime")]
    pub expire_time: Option<DateTime<Utc>>,
    #[sqlx(try_from = "StoredOptionalTime")]
    pub last_use_time: Option<DateTime<Utc>>,
    #[sqlx(try_from = "StoredOptionalTime")]
    pub revoke_time: Option<DateTime<Utc>>,
}

/// What using an access token needs, read in one query: the token's state and its user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccessTokenLookup {
    pub token_id: Uuid,
    #[sqlx(rename = "token_name")]
    pub name: String,
    #[sqlx(try_from = "StoredOptionalTime")]
    pub expire_time: Option<DateTime<Utc>>,
    #[sqlx(try_from = "StoredOptionalTime")]
    pub revoke_time: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    pub user: UserRecord,
    /// The password-expiry policy of the user's tenant, in days (`None` for never).
    pub password_expiry_days: Option<i32>,
    pub tenant_name: String,
}

/// The name and description of a live token to change; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct TokenChanges {
    pub token_id: Uuid,
    /// The new name and its key.
    pub name: Option<(String, String)>,
    pub description: Option<String>,
}

/// A token's new secret, replacing `old_hash`.
#[derive(Debug, Clone)]
pub struct TokenRotation {
    pub token_id: Uuid,
    pub old_hash: Vec<u8>,
    pub new_hash: Vec<u8>,
    pub hint: String,
}

/// A service-account row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ServiceAccountRecord {
    pub service_account_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub name_key: String,
    pub description: String,
    #[sqlx(try_from = "StoredTime")]
    pub create_time: DateTime<Utc>,
}

/// A session-JWT signing key row. The private key is sealed: the store never sees it in the clear.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SigningKeyRecord {
    /// The JWK `kid`.
    pub key_id: String,
    /// The PKCS#8 private key, sealed under the key-encryption key with the key id as context.
    pub private_key_sealed: Vec<u8>,
    /// The public point's JWK coordinates (base64url).
    pub public_x: String,
    pub public_y: String,
    /// Published from this time on.
    #[sqlx(try_from = "StoredTime")]
    pub create_time: DateTime<Utc>,
    /// Signs from this time…
    #[sqlx(try_from = "StoredTime")]
    pub activate_time: DateTime<Utc>,
    /// …until this one.
    #[sqlx(try_from = "StoredTime")]
    pub retire_time: DateTime<Utc>,
    /// Published until this time, then deleted.
    #[sqlx(try_from = "StoredTime")]
    pub remove_time: DateTime<Utc>,
}

/// A tenant's OpenID Connect identity provider row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IdentityProviderRecord {
    pub tenant_id: Uuid,
    pub issuer_url: String,
    pub client_id: String,
    /// Sealed under the key-encryption key with the tenant id as context; `None` for a public
    /// client.
    pub client_secret_sealed: Option<Vec<u8>>,
    /// Space-separated.
    pub scopes: String,
    /// A JSON array of URIs.
    pub redirect_uris: String,
    pub link_by_verified_email: bool,
    pub create_users: bool,
    pub default_roles: i32,
    pub post_logout_redirect_uri: String,
    #[sqlx(try_from = "StoredTime")]
    pub create_time: DateTime<Utc>,
    #[sqlx(try_from = "StoredTime")]
    pub update_time: DateTime<Utc>,
    /// A SAML provider's settings as a JSON document; `None` for an OpenID Connect provider.
    pub saml_settings: Option<String>,
}

/// A single sign-on attempt between StartSso and LoginSso.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SsoAttemptRecord {
    /// SHA-256 of the state handed to the browser.
    pub state_hash: Vec<u8>,
    pub tenant_id: Uuid,
    /// The redirect URI the attempt was started with; LoginSso sends the same one.
    pub redirect_uri: String,
    pub nonce: String,
    /// Sealed under the key-encryption key with the state hash as context.
    pub pkce_verifier_sealed: Vec<u8>,
    #[sqlx(try_from = "StoredTime")]
    pub create_time: DateTime<Utc>,
    #[sqlx(try_from = "StoredTime")]
    pub expire_time: DateTime<Utc>,
}

/// A link from an identity provider's subject to a user of the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedIdentityRecord {
    pub tenant_id: Uuid,
    pub issuer: String,
    pub subject: String,
    pub user_id: Uuid,
    pub create_time: DateTime<Utc>,
}

/// What a single sign-on login writes in one transaction: the user created at first sign-in (if
/// any), the new link (if any), the session and the sealed ID token kept for logging out.
#[derive(Debug, Clone)]
pub struct SsoSignIn<'a> {
    pub new_user: Option<&'a UserRecord>,
    pub link: Option<&'a LinkedIdentityRecord>,
    pub session: &'a SessionRecord,
    /// Sealed with the session id as context.
    pub id_token_sealed: &'a [u8],
}
