//! The password hasher the core uses: argon2id ([`super::argon2id`]) run on the low-priority
//! hashing threads under admission control ([`super::hashing_admission`]), with a dummy hash that
//! makes an unknown user cost what a real one costs.

use std::sync::Arc;

use super::argon2id::Argon2id;
use super::hashing_admission::HashingAdmission;
use super::hashing_workers::HashingPriority;
use crate::domain::Password;

/// The cost of argon2id and how much hashing may run and wait at once.
#[derive(Debug, Clone, Copy)]
pub struct HashingSettings {
    /// Memory per hash in KiB (OWASP's minimum for argon2id: 19456, i.e. 19 MiB).
    pub memory_kib: u32,
    /// Passes over the memory (OWASP's minimum at 19 MiB: 2).
    pub iterations: u32,
    /// Lanes (OWASP: 1).
    pub parallelism: u32,
    /// Hashes computed at the same time; each takes a hashing thread and a CPU core.
    pub concurrency: usize,
    /// How much lower than the rest of the service the hashing threads are scheduled, so that
    /// validations are not kept waiting by a login storm.
    pub priority: HashingPriority,
    /// Hashes allowed to wait for a free worker; beyond this a call is refused at once.
    pub queue: usize,
}

impl Default for HashingSettings {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            concurrency: std::thread::available_parallelism().map_or(1, usize::from),
            queue: 64,
            priority: HashingPriority::Idle,
        }
    }
}

/// Why a hash or a check did not run.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// The queue is full: the caller should be told to retry rather than wait without bound.
    #[error("password hashing queue is full")]
    Overloaded,
    #[error("password hashing failed")]
    Failed(#[source] anyhow::Error),
}

/// Hashes and checks passwords with argon2id on dedicated threads, at most `concurrency` at a
/// time, so that a burst of logins cannot take every core from session validation.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2id: Arc<Argon2id>,
    admission: Arc<HashingAdmission>,
    /// A hash of a random password with the current parameters. Checking a password against it
    /// costs what checking a real one costs, so an unknown or disabled user cannot be told apart
    /// from a wrong password by timing.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub fn new(settings: HashingSettings) -> anyhow::Result<Self> {
        let argon2id = Argon2id::new(settings.memory_kib, settings.iterations, settings.parallelism)?;
        let dummy_hash = argon2id.hash(&uuid::Uuid::new_v4().to_string())?;
        Ok(Self {
            argon2id: Arc::new(argon2id),
            admission: Arc::new(HashingAdmission::start(
                settings.concurrency,
                settings.queue,
                settings.priority,
            )?),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes a new password into a PHC string that carries its own parameters.
    pub async fn hash(&self, password: &Password) -> Result<String, HashingError> {
        let (argon2id, password) = (self.argon2id.clone(), password.clone());
        self.admission
            .run(move || argon2id.hash(password.expose()).map_err(HashingError::Failed))
            .await
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is no user to
    /// check against (the answer is then always false, after the same work).
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> Result<bool, HashingError> {
        let (argon2id, password) = (self.argon2id.clone(), password.clone());
        let (phc, real) = match stored {
            Some(hash) => (Arc::from(hash), true),
            None => (self.dummy_hash.clone(), false),
        };
        self.admission
            .run(move || {
                let matches = argon2id.verify(password.expose(), &phc).map_err(HashingError::Failed)?;
                Ok(matches && real)
            })
            .await
    }

    /// Whether a stored hash was made with the configured argon2 parameters. One that was not is
    /// replaced at the user's next successful login, so that raising the cost upgrades every user
    /// who logs in.
    pub fn is_current(&self, stored: &str) -> bool {
        self.argon2id.is_current(stored)
    }

    /// Frees the pooled working memory if no hash has run for `idle`, so that an idle server holds
    /// no argon2 buffers; returns whether it freed any.
    pub fn release_idle_memory(&self, idle: std::time::Duration) -> bool {
        self.argon2id.release_idle_memory(idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashingSettings {
        HashingSettings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            concurrency: 1,
            queue: 0,
            priority: HashingPriority::Nice(0),
        }
    }

    #[tokio::test]
    async fn passwords_hash_and_verify_and_an_absent_user_never_matches() {
        let hasher = PasswordHasher::new(cheap()).unwrap();
        let password = Password::for_login("p", "correct horse").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap());
        let wrong = Password::for_login("p", "wrong horse").unwrap();
        assert!(!hasher.verify(&wrong, Some(&hash)).await.unwrap());
        assert!(
            !hasher.verify(&password, None).await.unwrap(),
            "the dummy hash never matches"
        );
    }

    #[tokio::test]
    async fn idle_memory_is_released_and_hashing_goes_on() {
        let hasher = PasswordHasher::new(cheap()).unwrap();
        assert!(
            !hasher.release_idle_memory(std::time::Duration::from_secs(3600)),
            "not idle long enough"
        );
        assert!(
            hasher.release_idle_memory(std::time::Duration::ZERO),
            "the dummy hash's buffer is freed"
        );
        assert!(
            !hasher.release_idle_memory(std::time::Duration::ZERO),
            "nothing left to free"
        );
        let password = Password::for_login("p", "correct horse").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap());
    }
}
