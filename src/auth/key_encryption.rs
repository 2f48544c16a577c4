//! The key-encryption key: what session-JWT signing keys are sealed with before they reach the
//! database, so that a copy of the database (a backup, a replica, a dump) holds no usable key.
//!
//! It comes from configuration (32 random bytes, base64), or — for a start with nothing
//! configured — from a file in the data directory, generated on first start. Every instance that
//! shares a database must use the same key.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};

/// The name of the generated key's file in the data directory.
pub const KEY_FILE_NAME: &str = "key-encryption.key";

/// AES-GCM's nonce length.
const NONCE_BYTES: usize = 12;

/// A 256-bit AES-GCM key. Cloning shares it; its bytes are wiped when the last clone goes.
#[derive(Clone)]
pub struct KeyEncryptionKey(std::sync::Arc<SecretBox<[u8; 32]>>);

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(..)")
    }
}

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("the sealed value does not open with this key-encryption key (another key sealed it, or it was changed)")]
pub struct UnsealError;

impl KeyEncryptionKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(std::sync::Arc::new(SecretBox::new(Box::new(bytes))))
    }

    /// Parses the configured form: 32 bytes in standard base64.
    pub fn parse(base64: &str) -> anyhow::Result<Self> {
        let bytes = STANDARD
            .decode(base64.trim())
            .map_err(|_| anyhow::anyhow!("the key-encryption key must be 32 random bytes in base64"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("the key-encryption key must be exactly 32 bytes (44 base64 characters)"))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key in the data directory, generated there (readable by its owner only) when missing.
    /// Processes starting together over one directory all end up with the same key.
    pub fn in_data_dir(dir: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let path = dir.join(KEY_FILE_NAME);
        let read = || -> anyhow::Result<Option<Self>> {
            match std::fs::read_to_string(&path) {
                Ok(text) => Self::parse(&text)
                    .with_context(|| format!("reading {}", path.display()))
                    .map(Some),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
            }
        };
        if let Some(key) = read()? {
            return Ok(key);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let key = Self::generate();
        let text = STANDARD.encode(key.0.expose_secret());
        if publish_private(dir, &path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))? {
            tracing::info!(path = %path.display(), "generated a key-encryption key for the signing keys");
            return Ok(key);
        }
        // Another process made it first: theirs is the key.
        read()?.with_context(|| format!("{} vanished while being read", path.display()))
    }

    /// Seals `secret`, bound to `context` (a value stored beside it, such as the key id, so that
    /// a sealed value moved to another row does not open). The answer is nonce ‖ ciphertext.
    pub fn seal(&self, secret: &[u8], context: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: context,
                },
            )
            .expect("AES-GCM encrypts any input of this size");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`Self::seal`] sealed with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<SecretBox<Vec<u8>>, UnsealError> {
        if sealed.len() < NONCE_BYTES {
            return Err(UnsealError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map(|plain| SecretBox::new(Box::new(plain)))
            .map_err(|_| UnsealError)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.expose_secret().into())
    }
}

/// Writes `contents` to `path`, readable and writable by its owner only, whole or not at all:
/// written beside it first, then linked into place. Returns false, writing nothing, when `path`
/// already exists.
fn publish_private(dir: &Path, path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    use std::io::Write;
    let draft = dir.join(format!(".{KEY_FILE_NAME}.{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&draft).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&draft, path));
    let _ = std::fs::remove_file(&draft);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let key = KeyEncryptionKey::generate();
        let sealed = key.seal(b"a signing key", b"kid-1");
        assert!(!sealed.windows(13).any(|w| w == b"a signing key"));
        assert_eq!(key.open(&sealed, b"kid-1").unwrap().expose_secret(), b"a signing key");
        assert!(key.open(&sealed, b"kid-2").is_err());
        assert!(KeyEncryptionKey::generate().open(&sealed, b"kid-1").is_err());
        assert!(key.open(&sealed[..5], b"kid-1").is_err());
    }

    #[test]
    fn the_data_directory_key_is_generated_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("identityd-kek-{}", uuid::Uuid::new_v4().simple()));
        let first = KeyEncryptionKey::in_data_dir(&dir).unwrap();
        let sealed = first.seal(b"secret", b"");
        let again = KeyEncryptionKey::in_data_dir(&dir).unwrap();
        assert_eq!(again.open(&sealed, b"").unwrap().expose_secret(), b"secret");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_configured_key_must_be_32_bytes_of_base64() {
        assert!(KeyEncryptionKey::parse(&STANDARD.encode([7u8; 32])).is_ok());
        assert!(KeyEncryptionKey::parse(&STANDARD.encode([7u8; 16])).is_err());
        assert!(KeyEncryptionKey::parse("not base64!").is_err());
    }
}
