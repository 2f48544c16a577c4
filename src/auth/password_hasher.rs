use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::domain::Password;
use crate::telemetry::spawn_blocking_with_tracing;

/// The cost of argon2id and how much hashing may run and wait at once.
#[derive(Debug, Clone, Copy)]
pub struct HashingSettings {
    /// Memory per hash in KiB (OWASP's minimum for argon2id: 19456, i.e. 19 MiB).
    pub memory_kib: u32,
    /// Passes over the memory (OWASP's minimum at 19 MiB: 2).
    pub iterations: u32,
    /// Lanes (OWASP: 1).
    pub parallelism: u32,
    /// Hashes computed at the same time; each takes a blocking thread and a CPU core.
    pub concurrency: usize,
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

/// Hashes and checks passwords with argon2id on blocking threads, at most `concurrency` at a time,
/// so that a burst of logins cannot take every core from session validation.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    workers: Arc<Semaphore>,
    admission: Arc<Semaphore>,
    /// A hash of a random password with the current parameters. Checking a password against it
    /// costs what checking a real one costs, so an unknown or disabled user cannot be told apart
    /// from a wrong password by timing.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub fn new(settings: HashingSettings) -> anyhow::Result<Self> {
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = hash_with(&argon2, &uuid::Uuid::new_v4().to_string())?;
        let concurrency = settings.concurrency.max(1);
        Ok(Self {
            argon2,
            workers: Arc::new(Semaphore::new(concurrency)),
            admission: Arc::new(Semaphore::new(concurrency + settings.queue)),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes a new password into a PHC string that carries its own parameters.
    pub async fn hash(&self, password: &Password) -> Result<String, HashingError> {
        let argon2 = self.argon2.clone();
        let password = password.clone();
        self.run(move || hash_with(&argon2, password.expose()).map_err(HashingError::Failed))
            .await
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is no user to
    /// check against (the answer is then always false, after the same work).
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> Result<bool, HashingError> {
        let argon2 = self.argon2.clone();
        let password = password.clone();
        let (phc, real) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        self.run(move || {
            let parsed = PasswordHash::new(&phc).map_err(|e| HashingError::Failed(anyhow::anyhow!("{e}")))?;
            // argon2's verifier compares the digests in constant time.
            let matches = argon2.verify_password(password.expose().as_bytes(), &parsed).is_ok();
            Ok(matches && real)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashingError> + Send + 'static,
    ) -> Result<T, HashingError> {
        let _admitted = self
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashingError::Overloaded)?;
        let _worker = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HashingError::Failed(anyhow::anyhow!("hashing pool closed: {e}")))?;
        spawn_blocking_with_tracing(work)
            .await
            .map_err(|e| HashingError::Failed(anyhow::anyhow!("hashing task failed: {e}")))?
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
}
