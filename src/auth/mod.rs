//! Secrets: how passwords are hashed and checked, and how session tokens are minted and hashed.

mod password_hasher;
mod session_token;

pub use password_hasher::{HashingError, HashingSettings, PasswordHasher};
pub use session_token::{SessionToken, TokenHash};
