//! argon2id itself: hashing a password into a standard PHC string, and checking a password
//! against one. The work is synchronous and CPU-bound; [`super::PasswordHasher`] decides where
//! and when it runs.

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordVerifier as _, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::argon2_memory::Argon2Memory;

/// argon2id at fixed parameters, over pooled working memory.
pub struct Argon2id {
    argon2: Argon2<'static>,
    params: Params,
    memory: Argon2Memory,
}

impl Argon2id {
    /// argon2id with `memory_kib` KiB of memory, `iterations` passes and `parallelism` lanes.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        Ok(Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()),
            memory: Argon2Memory::new(params.block_count()),
            params,
        })
    }

    /// Hashes with a random salt into a standard PHC string
    /// (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), readable by any argon2 implementation.
    pub fn hash(&self, password: &str) -> anyhow::Result<String> {
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let mut out = [0u8; 32];
        self.hash_into(password.as_bytes(), &salt, &mut out)?;
        Ok(format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            self.params.m_cost(),
            self.params.t_cost(),
            self.params.p_cost(),
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(out)
        ))
    }

    /// Checks a password against a PHC string. A hash with these parameters is recomputed over
    /// pooled memory and compared in constant time; one with other parameters (made before a
    /// configuration change) goes through argon2's own verifier.
    pub fn verify(&self, password: &str, phc: &str) -> anyhow::Result<bool> {
        let parsed = PasswordHash::new(phc).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        let same_params = self.made_with_these_parameters(&parsed);
        let (Some(salt), Some(expected), true) = (parsed.salt, parsed.hash, same_params) else {
            return Ok(self.argon2.verify_password(password.as_bytes(), &parsed).is_ok());
        };
        let mut salt_buf = [0u8; 64];
        let salt = salt
            .decode_b64(&mut salt_buf)
            .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        let expected = expected.as_bytes();
        let mut out = vec![0u8; expected.len()];
        self.hash_into(password.as_bytes(), salt, &mut out)?;
        Ok(bool::from(out.ct_eq(expected)))
    }

    /// Whether a PHC string was made by argon2id with these parameters; one made with others (a
    /// cost since raised or lowered) should be replaced when its password is next known.
    pub fn is_current(&self, phc: &str) -> bool {
        PasswordHash::new(phc).is_ok_and(|parsed| self.made_with_these_parameters(&parsed))
    }

    fn made_with_these_parameters(&self, parsed: &PasswordHash<'_>) -> bool {
        parsed.algorithm.as_str() == "argon2id"
            && parsed.version == Some(0x13)
            && parsed.params.get_decimal("m") == Some(self.params.m_cost())
            && parsed.params.get_decimal("t") == Some(self.params.t_cost())
            && parsed.params.get_decimal("p") == Some(self.params.p_cost())
    }

    /// Frees the pooled working memory if no hash has run for `idle`; returns whether it freed any.
    pub fn release_idle_memory(&self, idle: std::time::Duration) -> bool {
        self.memory.release_if_idle(idle)
    }

    /// Runs argon2 over a buffer from the pool.
    fn hash_into(&self, password: &[u8], salt: &[u8], out: &mut [u8]) -> anyhow::Result<()> {
        self.memory
            .with_blocks(|blocks| self.argon2.hash_password_into_with_memory(password, salt, out, blocks))
            .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2id {
        Argon2id::new(1024, 1, 1).unwrap()
    }

    #[test]
    fn hashes_verify_and_read_as_standard_phc_strings() {
        let argon2id = cheap();
        let hash = argon2id.hash("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(argon2id.verify("correct horse", &hash).unwrap());
        assert!(!argon2id.verify("wrong horse", &hash).unwrap());
        // Argon2's own verifier agrees, so the strings are standard.
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
    }

    #[test]
    fn hashes_made_with_other_parameters_still_verify() {
        let old = Argon2id::new(2048, 1, 1).unwrap();
        let hash = old.hash("correct horse").unwrap();
        let new = cheap();
        assert!(new.verify("correct horse", &hash).unwrap());
        assert!(!new.verify("wrong horse", &hash).unwrap());
    }

    #[test]
    fn hashes_made_with_other_parameters_are_not_current() {
        let (old, new) = (Argon2id::new(2048, 1, 1).unwrap(), cheap());
        let hash = old.hash("correct horse").unwrap();
        assert!(old.is_current(&hash));
        assert!(!new.is_current(&hash));
        assert!(!new.is_current("not a phc string"));
    }

    #[test]
    fn a_malformed_stored_hash_is_an_error_not_a_match() {
        assert!(cheap().verify("correct horse", "not a phc string").is_err());
    }
}
