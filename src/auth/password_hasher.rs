use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, PasswordVerifier as _, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::RngCore;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::hashing_workers::HashingWorkers;
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
    /// How much lower than the rest of the service the hashing threads are scheduled (a nice
    /// increment, 0 to 19), so that validations are not kept waiting by a login storm.
    pub nice: i32,
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
            nice: 15,
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
    params: Params,
    /// Argon2's working memory (19 MiB at OWASP's parameters), kept between hashes: allocating
    /// and faulting it in for every hash costs about a quarter of the hashing rate. Released when
    /// hashing has been idle for a while (see [`Self::release_idle_memory`]).
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    last_hash: Arc<Mutex<std::time::Instant>>,
    threads: Arc<HashingWorkers>,
    /// One permit per hashing thread: a call holds one while its hash runs.
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
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let memory = Arc::new(Mutex::new(Vec::new()));
        let dummy_hash = hash_with(&argon2, &params, &memory, &uuid::Uuid::new_v4().to_string())?;
        let concurrency = settings.concurrency.max(1);
        Ok(Self {
            argon2,
            params,
            memory,
            last_hash: Arc::new(Mutex::new(std::time::Instant::now())),
            threads: Arc::new(HashingWorkers::start(concurrency, settings.nice)?),
            workers: Arc::new(Semaphore::new(concurrency)),
            admission: Arc::new(Semaphore::new(concurrency + settings.queue)),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes a new password into a PHC string that carries its own parameters.
    pub async fn hash(&self, password: &Password) -> Result<String, HashingError> {
        let (argon2, params, memory) = (self.argon2.clone(), self.params.clone(), self.memory.clone());
        let password = password.clone();
        self.run(move || hash_with(&argon2, &params, &memory, password.expose()).map_err(HashingError::Failed))
            .await
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is no user to
    /// check against (the answer is then always false, after the same work).
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> Result<bool, HashingError> {
        let (argon2, params, memory) = (self.argon2.clone(), self.params.clone(), self.memory.clone());
        let password = password.clone();
        let (phc, real) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        self.run(move || {
            let matches = verify_with(&argon2, &params, &memory, password.expose(), &phc)?;
            Ok(matches && real)
        })
        .await
    }

    /// Frees the pooled working memory if no hash has run for `idle`, so that an idle server holds
    /// no argon2 buffers; returns whether it freed any.
    pub fn release_idle_memory(&self, idle: std::time::Duration) -> bool {
        let last = *self.last_hash.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < idle {
            return false;
        }
        let mut pool = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let freed = !pool.is_empty();
        pool.clear();
        pool.shrink_to_fit();
        freed
    }

    /// Hashes and verifies in a loop on the calling thread for `duration`, and returns how many
    /// hashes it did: one worker's share of the hashing ceiling, for benchmarks.
    pub fn measure_rate(&self, duration: std::time::Duration, reuse_memory: bool) -> u64 {
        let deadline = std::time::Instant::now() + duration;
        let mut done = 0;
        while std::time::Instant::now() < deadline {
            let fresh = Arc::new(Mutex::new(Vec::new()));
            let memory = if reuse_memory { &self.memory } else { &fresh };
            let _ = hash_with(&self.argon2, &self.params, memory, "a password of ordinary length");
            done += 1;
        }
        done
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashingError> + Send + 'static,
    ) -> Result<T, HashingError> {
        *self.last_hash.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
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
        self.threads
            .run(work)
            .await
            .ok_or_else(|| HashingError::Failed(anyhow::anyhow!("hashing thread ended")))?
    }
}

/// Runs argon2 over a reused memory buffer, taking one from the pool (or making one) and giving it
/// back after.
fn argon2_into(
    argon2: &Argon2<'_>,
    params: &Params,
    memory: &Mutex<Vec<Vec<Block>>>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> anyhow::Result<()> {
    let mut blocks = memory
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .unwrap_or_else(|| vec![Block::default(); params.block_count()]);
    let result = argon2.hash_password_into_with_memory(password, salt, out, &mut blocks);
    memory.lock().unwrap_or_else(|e| e.into_inner()).push(blocks);
    result.map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
}

/// Hashes into a standard PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), readable by any
/// argon2 implementation.
fn hash_with(
    argon2: &Argon2<'_>,
    params: &Params,
    memory: &Mutex<Vec<Vec<Block>>>,
    password: &str,
) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut out = [0u8; 32];
    argon2_into(argon2, params, memory, password.as_bytes(), &salt, &mut out)?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    ))
}

/// Checks a password against a PHC string. A hash with the configured parameters is recomputed
/// over reused memory and compared in constant time; one with other parameters (set before a
/// configuration change) goes through argon2's own verifier.
fn verify_with(
    argon2: &Argon2<'_>,
    params: &Params,
    memory: &Mutex<Vec<Vec<Block>>>,
    password: &str,
    phc: &str,
) -> Result<bool, HashingError> {
    let parsed = PasswordHash::new(phc).map_err(|e| HashingError::Failed(anyhow::anyhow!("stored hash: {e}")))?;
    let same_params = parsed.algorithm.as_str() == "argon2id"
        && parsed.version == Some(0x13)
        && parsed.params.get_decimal("m") == Some(params.m_cost())
        && parsed.params.get_decimal("t") == Some(params.t_cost())
        && parsed.params.get_decimal("p") == Some(params.p_cost());
    let (Some(salt), Some(expected), true) = (parsed.salt, parsed.hash, same_params) else {
        return Ok(argon2.verify_password(password.as_bytes(), &parsed).is_ok());
    };
    let mut salt_buf = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_buf)
        .map_err(|e| HashingError::Failed(anyhow::anyhow!("salt: {e}")))?;
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    argon2_into(argon2, params, memory, password.as_bytes(), salt, &mut out).map_err(HashingError::Failed)?;
    Ok(bool::from(out.ct_eq(expected)))
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
            nice: 0,
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_read_as_standard_phc_strings() {
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
        // Argon2's own verifier agrees, so the strings are standard.
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
    }

    #[tokio::test]
    async fn hashes_made_with_other_parameters_still_verify() {
        let old = PasswordHasher::new(HashingSettings {
            memory_kib: 2048,
            ..cheap()
        })
        .unwrap();
        let password = Password::for_login("p", "correct horse").unwrap();
        let hash = old.hash(&password).await.unwrap();
        let new = PasswordHasher::new(cheap()).unwrap();
        assert!(new.verify(&password, Some(&hash)).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        // One worker and a queue of one. The test holds the worker itself, so the calls it starts
        // cannot finish until it lets go: no timing is involved.
        let hasher = PasswordHasher::new(HashingSettings { queue: 1, ..cheap() }).unwrap();
        let worker = hasher.workers.clone().try_acquire_owned().unwrap();
        let password = Password::for_login("p", "correct horse").unwrap();
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let (hasher, password) = (hasher.clone(), password.clone());
                tokio::spawn(async move { hasher.hash(&password).await })
            })
            .collect();
        // Both are admitted (one for the worker, one queued) once no admission permit is left.
        while hasher.admission.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let refused = hasher.hash(&password).await;
        assert!(matches!(refused, Err(HashingError::Overloaded)), "{refused:?}");
        drop(worker);
        for call in waiting {
            assert!(
                call.await.unwrap().is_ok(),
                "admitted calls finish once the worker is free"
            );
        }
        assert!(hasher.hash(&password).await.is_ok(), "and new calls are admitted again");
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
