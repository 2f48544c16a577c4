//! The use cases of identityd. Nothing here knows about gRPC, REST or SQL: calls take parsed
//! domain values, reach the database through [`Store`], and answer with [`Error`].

mod access_tokens;
mod admin;
mod audit;
mod authorization;
mod bootstrap;
mod caller;
pub mod error;
mod failed_login_limit;
mod last_use;
mod liveness;
mod login;
mod passwords;
mod sessions;
mod validation_cache;
mod views;

use std::sync::Arc;

use chrono::Duration;

use crate::auth::PasswordHasher;
use crate::clock::Clock;
use crate::store::Store;

pub use access_tokens::NewAccessToken;
pub use admin::{NewUser, PasswordSettings, TenantPatch};
pub use audit::RequestMeta;
pub use bootstrap::BootstrapRequest;
pub use caller::Caller;
pub use error::{Error, Result};
pub use failed_login_limit::FailedLoginAllowance;
pub use last_use::{LastUseRecorder, UseOf};
pub use login::LoginOutcome;
pub use sessions::SessionValidity;
pub use validation_cache::ValidationCache;
pub use views::{AccessTokenView, ServiceAccountView, SessionView, TenantView, UserView};

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// A session ends this long after it was opened, however much it is used.
    pub lifetime: Duration,
    /// A session ends when it has not been used for this long.
    pub idle_timeout: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            lifetime: Duration::hours(12),
            idle_timeout: Duration::hours(1),
        }
    }
}

/// The core's rules that configuration may change.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub sessions: SessionSettings,
    /// Most live (neither revoked nor expired) user access tokens a user may hold.
    pub max_access_tokens_per_user: u32,
    /// How long ValidateSession may answer from memory before asking the store again.
    pub validation_cache_ttl: std::time::Duration,
    /// Failed password logins one client address may make within a window before its password
    /// logins are refused for a while.
    pub failed_login_allowance: FailedLoginAllowance,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sessions: SessionSettings::default(),
            max_access_tokens_per_user: 50,
            validation_cache_ttl: std::time::Duration::from_secs(2),
            failed_login_allowance: FailedLoginAllowance::default(),
        }
    }
}

/// The identity core: one per process, shared by every transport.
#[derive(Clone)]
pub struct Identity {
    store: Arc<dyn Store>,
    hasher: PasswordHasher,
    clock: Arc<dyn Clock>,
    sessions: SessionSettings,
    max_access_tokens_per_user: u32,
    last_use: LastUseRecorder,
    token_last_use: LastUseRecorder,
    validation_cache: Arc<ValidationCache>,
    validation_cache_ttl: std::time::Duration,
    failed_logins: Arc<failed_login_limit::FailedLoginLimit>,
}

impl Identity {
    pub fn new(store: Arc<dyn Store>, hasher: PasswordHasher, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        Self {
            failed_logins: Arc::new(failed_login_limit::FailedLoginLimit::new(
                settings.failed_login_allowance,
                clock.clone(),
            )),
            store,
            hasher,
            clock,
            sessions: settings.sessions,
            max_access_tokens_per_user: settings.max_access_tokens_per_user,
            last_use: LastUseRecorder::new(UseOf::Sessions),
            token_last_use: LastUseRecorder::new(UseOf::AccessTokens),
            validation_cache: Arc::new(ValidationCache::new(settings.validation_cache_ttl)),
            validation_cache_ttl: settings.validation_cache_ttl,
        }
    }

    /// Drops from the validation cache the sessions any instance ended recently. Runs every 50 ms;
    /// while it fails, the cache is not used.
    pub async fn poll_revocations(&self) {
        if self.validation_cache_ttl.is_zero() {
            return; // no cache to keep honest
        }
        // Look back over more than an entry's lifetime, so that no ending is missed between polls
        // or through small clock differences between instances.
        let window = chrono::Duration::from_std(self.validation_cache_ttl * 2).unwrap_or_default()
            + chrono::Duration::seconds(10);
        match self.store.sessions_ended_since(self.clock.now() - window).await {
            Ok(ended) => {
                self.validation_cache.forget_sessions(&ended);
                self.validation_cache.set_trusted(true);
            }
            // Logged once per outage, not on every 50 ms poll.
            Err(e) => {
                if self.validation_cache.set_trusted(false) {
                    tracing::warn!(error = %e, "cannot poll for revocations; validating without the cache");
                }
            }
        }
    }

    /// Taken before a change that ends sessions or changes what a validation answers; empties the
    /// validation cache when dropped — after the change, and also when the call is cancelled
    /// between its commit and its answer.
    pub(crate) fn invalidate_validations(&self) -> CacheInvalidation<'_> {
        CacheInvalidation(&self.validation_cache)
    }

    /// Frees password-hashing memory once hashing has been idle for `idle`.
    pub fn release_idle_memory(&self, idle: std::time::Duration) {
        if self.hasher.release_idle_memory(idle) {
            tracing::debug!("released idle password-hashing memory");
        }
    }

    /// Forgets client addresses whose failed-login allowance is whole again. Runs with the flush.
    pub fn forget_old_login_failures(&self) {
        self.failed_logins.prune();
    }

    /// Writes the last-use times of sessions and tokens noted since the previous flush.
    pub async fn flush_last_use(&self) {
        self.last_use.flush(self.store.as_ref()).await;
        self.token_last_use.flush(self.store.as_ref()).await;
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

/// Empties the validation cache when dropped; see [`Identity::invalidate_validations`].
pub(crate) struct CacheInvalidation<'a>(&'a ValidationCache);

impl Drop for CacheInvalidation<'_> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

impl From<crate::auth::HashingError> for Error {
    fn from(e: crate::auth::HashingError) -> Self {
        match e {
            crate::auth::HashingError::Overloaded => Error::Overloaded,
            crate::auth::HashingError::Failed(cause) => Error::Internal(cause),
        }
    }
}
