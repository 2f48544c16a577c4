//! The use cases of identityd. Nothing here knows about gRPC, REST or SQL: calls take parsed
//! domain values, reach the database through [`Store`], and answer with [`Error`].

mod access_tokens;
mod admin;
mod audit;
mod authorization;
mod bootstrap;
mod caller;
mod coalesced_reads;
pub mod error;
mod failure_audit;
mod failure_throttle;
mod identity_providers;
mod impersonation;
mod last_use;
mod liveness;
mod login;
mod login_failures;
mod oidc_relying_party;
mod passwords;
mod revocation_poll;
mod revocation_push;
mod saml_service_provider;
mod saml_sso;
mod service_account_sessions;
mod session_details;
mod session_jwt;
mod session_sweep;
mod sessions;
mod signing_keys;
mod sso;
mod user_sessions;
mod validation_cache;
mod views;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Duration;

use crate::auth::PasswordHasher;
use crate::clock::Clock;
use crate::store::{SessionLookup, Store};
use coalesced_reads::CoalescedReads;
use failure_throttle::FailureThrottle;
use login_failures::{ClientAddress, TokenLoginFailures};
use revocation_poll::RevocationPoll;
use session_jwt::SessionJwts;

pub use access_tokens::NewAccessToken;
pub use admin::{NewTenant, NewUser, PasswordSettings, TenantPatch};
pub use audit::RequestMeta;
pub use bootstrap::BootstrapRequest;
pub use caller::Caller;
pub use error::{Error, Result};
pub use failure_throttle::FailureLimit;
pub use identity_providers::{IdentityProviderView, ProviderPatch};
pub use impersonation::SwitchBackOutcome;
pub use last_use::{LastUseRecorder, UseOf};
pub use login::LoginOutcome;
pub use saml_service_provider::{ExpectedRequest, SamlFailure, SamlServiceProvider, VerifiedAssertion};
pub use session_jwt::{JwksView, JwtSettings, PublicJwk, SessionJwt};
pub use sessions::{Principal, SessionValidity};
pub use sso::{SsoCallback, SsoStart};
pub use validation_cache::ValidationCache;
pub use views::{AccessTokenView, ServiceAccountView, SessionView, TenantRef, TenantView, UserView};

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// A session ends this long after it was opened, however much it is used.
    pub lifetime: Duration,
    /// A session ends when it has not been used for this long. Service-account sessions, made
    /// for automation that may call rarely, end only at their expiry.
    pub idle_timeout: Duration,
    /// The furthest ahead a service-account session's expiry may be set.
    pub service_account_max_lifetime: Duration,
    /// How long expired and ended sessions are kept before the sweep deletes them.
    pub retention: Duration,
    /// Most sessions the sweep deletes in one statement.
    pub sweep_batch: u32,
    /// A proxy or customer-support session ends this long after it was opened: impersonation is
    /// where accounts are misused, so it lasts for a piece of work, not a day.
    pub impersonation_lifetime: Duration,
    /// A proxy or customer-support session ends when it has not been used for this long.
    pub impersonation_idle_timeout: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            lifetime: Duration::hours(12),
            idle_timeout: Duration::hours(1),
            service_account_max_lifetime: Duration::days(365),
            retention: Duration::days(30),
            sweep_batch: 500,
            impersonation_lifetime: Duration::hours(1),
            impersonation_idle_timeout: Duration::minutes(15),
        }
    }
}

/// The core's rules that configuration may change.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sessions: SessionSettings,
    /// Most live (neither revoked nor expired) user access tokens a user may hold.
    pub max_access_tokens_per_user: u32,
    /// How long ValidateSession may answer from memory before asking the store again.
    pub validation_cache_ttl: std::time::Duration,
    /// Session lookups that run at once; lookups asked for meanwhile share the next query.
    pub session_lookups_in_flight: usize,
    /// Failed user-access-token logins one client address may make within a window before its
    /// token logins are refused for a while; the window is also how long its failures are summed
    /// into one audit event.
    pub token_login_failures: FailureLimit,
    /// Failed password logins (and password changes) one client address may make within a window
    /// before its password logins are refused for a while.
    pub password_login_failures: FailureLimit,
    /// Session JWTs and their signing keys.
    pub jwt: JwtSettings,
}

/// The default of [`Settings::session_lookups_in_flight`]: one per core. Measured against one
/// per pool connection (16) and no sharing at all, it read the most sessions a second on both
/// stores (BENCHMARKS.md, "Session lookups sharing queries").
pub fn default_session_lookups_in_flight() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sessions: SessionSettings::default(),
            max_access_tokens_per_user: 50,
            validation_cache_ttl: std::time::Duration::from_secs(2),
            session_lookups_in_flight: default_session_lookups_in_flight(),
            token_login_failures: FailureLimit {
                failures: 20,
                window: std::time::Duration::from_secs(60),
            },
            password_login_failures: FailureLimit {
                failures: 20,
                window: std::time::Duration::from_secs(60),
            },
            jwt: JwtSettings::default(),
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
    /// Session lookups by token hash, sharing queries while the database is busy.
    session_lookups: Arc<CoalescedReads<[u8; 32], Arc<SessionLookup>>>,
    validation_cache_ttl: std::time::Duration,
    revocation_poll: Arc<RevocationPoll>,
    /// Whether the store pushes revocations to this instance right now; the poll stands down
    /// meanwhile (see [`revocation_push`]).
    revocations_pushed: Arc<AtomicBool>,
    token_login_failures: Arc<TokenLoginFailures>,
    /// Failed password logins per client address.
    password_login_failures: Arc<FailureThrottle<ClientAddress>>,
    session_jwts: Arc<SessionJwts>,
    /// Seals what the store keeps secret: signing keys, identity providers' client secrets.
    key_encryption_key: crate::auth::KeyEncryptionKey,
    /// Talks to tenants' identity providers, caching their metadata.
    relying_party: oidc_relying_party::RelyingParty,
}

impl Identity {
    pub fn new(store: Arc<dyn Store>, hasher: PasswordHasher, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        let token_login_failures = Arc::new(TokenLoginFailures::new(settings.token_login_failures, clock.clone()));
        Self {
            password_login_failures: Arc::new(FailureThrottle::new(settings.password_login_failures, clock.clone())),
            store,
            hasher,
            clock,
            sessions: settings.sessions,
            max_access_tokens_per_user: settings.max_access_tokens_per_user,
            last_use: LastUseRecorder::new(UseOf::Sessions),
            token_last_use: LastUseRecorder::new(UseOf::AccessTokens),
            validation_cache: Arc::new(ValidationCache::new(settings.validation_cache_ttl)),
            session_lookups: Arc::new(CoalescedReads::new(
                settings.session_lookups_in_flight,
                crate::store::LOOKUP_BATCH_MAX,
            )),
            validation_cache_ttl: settings.validation_cache_ttl,
            // Look back over more than an entry's lifetime, so that no ending is missed through
            // small clock differences between instances.
            revocation_poll: Arc::new(RevocationPoll::new(
                chrono::Duration::from_std(settings.validation_cache_ttl * 2).unwrap_or_default()
                    + chrono::Duration::seconds(10),
            )),
            revocations_pushed: Arc::new(AtomicBool::new(false)),
            token_login_failures,
            key_encryption_key: settings.jwt.key_encryption_key.clone(),
            session_jwts: Arc::new(SessionJwts::new(settings.jwt)),
            relying_party: oidc_relying_party::RelyingParty::new(),
        }
    }

    /// Drops from the validation cache the sessions any instance ended since the previous poll
    /// (see [`revocation_poll`]). Runs every 50 ms while revocations are not pushed; while it
    /// fails, the cache is not used.
    pub async fn poll_revocations(&self) {
        if let Err(e) = self.read_ended_sessions().await {
            // Logged once per outage, not on every 50 ms poll.
            if self.validation_cache.set_trusted(false) {
                tracing::warn!(error = %e, "cannot poll for revocations; validating without the cache");
            }
        }
    }

    /// The background poll: [`Self::poll_revocations`], unless revocations are pushed.
    pub async fn poll_revocations_unless_pushed(&self) {
        if !self.revocations_pushed.load(Ordering::Acquire) {
            self.poll_revocations().await;
        }
    }

    /// One poll: reads the sessions ended since the previous one and forgets them; the cache may
    /// be used once that succeeded.
    async fn read_ended_sessions(&self) -> crate::store::StoreResult<()> {
        if self.validation_cache_ttl.is_zero() {
            return Ok(()); // no cache to keep honest
        }
        let plan = self.revocation_poll.plan(self.clock.now());
        let ended = self.store.sessions_ended_since(plan.since).await?;
        let ended = self.revocation_poll.newly_ended(&plan, ended);
        self.store.ended_elsewhere(&ended);
        self.validation_cache.forget_sessions(&ended);
        self.validation_cache.set_trusted(true);
        Ok(())
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
            crate::memory::return_free_memory();
            tracing::debug!("released idle password-hashing memory");
        }
    }

    /// Forgets client addresses whose failed-login allowance is whole again. Runs with the flush.
    pub fn forget_old_login_failures(&self) {
        self.password_login_failures.prune();
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

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Waker};

    use super::*;
    use crate::auth::HashingSettings;
    use crate::clock::ManualClock;
    use crate::store::sqlite::SqliteStore;

    async fn identity() -> Identity {
        let store = SqliteStore::open("sqlite::memory:", 1, std::time::Duration::from_secs(10))
            .await
            .expect("an in-memory store");
        let hashing = HashingSettings {
            memory_kib: 64,
            iterations: 1,
            concurrency: 1,
            ..HashingSettings::default()
        };
        let hasher = PasswordHasher::new(hashing).expect("a hasher");
        Identity::new(
            Arc::new(store),
            hasher,
            Arc::new(ManualClock::default()),
            Settings::default(),
        )
    }

    #[tokio::test]
    async fn a_change_cancelled_after_its_commit_still_empties_the_validation_cache() {
        let identity = identity().await;
        let cache = identity.validation_cache.clone();
        cache.set_trusted(true);
        let token = b"a cached session's token hash".to_vec();
        let read_before = cache.generation();
        cache.insert(
            token.clone(),
            validation_cache::tests::lookup(uuid::Uuid::now_v7()),
            read_before,
        );
        assert_eq!(cache.len(), 1);

        // A change shaped like every revoking call: the guard first, then the commit, then an
        // answer that never goes out because the caller went away.
        let (committed, was_committed) = tokio::sync::oneshot::channel();
        let mut change = Box::pin(async {
            let _invalidate = identity.invalidate_validations();
            let _ = committed.send(());
            std::future::pending::<()>().await;
        });
        let mut cx = Context::from_waker(Waker::noop());
        assert!(change.as_mut().poll(&mut cx).is_pending());
        was_committed.await.expect("the change ran up to its commit");
        assert_eq!(cache.len(), 1, "emptied when the change is over, not before");

        drop(change);
        assert_eq!(cache.len(), 0, "the cancelled change emptied the cache");
        cache.insert(
            token,
            validation_cache::tests::lookup(uuid::Uuid::now_v7()),
            read_before,
        );
        assert_eq!(cache.len(), 0, "and a lookup read before it is not put back");
    }
}
