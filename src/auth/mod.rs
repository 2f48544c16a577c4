//! Secrets: how passwords are hashed and checked, and how session tokens and user access tokens
//! are minted and hashed; the session-JWT signing keys and the key that seals them at rest.

mod access_token_secret;
mod argon2_memory;
mod argon2id;
mod hashing_admission;
mod hashing_workers;
mod key_encryption;
mod password_hasher;
mod session_token;
mod signing_key;

pub use access_token_secret::AccessTokenSecret;
pub use hashing_workers::HashingPriority;
pub use key_encryption::{KEY_FILE_NAME, KeyEncryptionKey, UnsealError};
pub use password_hasher::{HashingError, HashingSettings, PasswordHasher};
pub use session_token::{SessionToken, TokenHash};
pub use signing_key::{Es256Signer, GeneratedSigningKey, InvalidSigningKey, SigningFailed};

/// A password for a generated administrator: 24 characters from an alphabet without look-alikes
/// (about 138 bits).
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..24)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}
